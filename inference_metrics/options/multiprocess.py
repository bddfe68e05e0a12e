"""``--multiprocess-dir``: serve the merged metrics of every process recording into a directory.

``MultiprocessOptions().add_to(parser)`` adds the flag; :meth:`MultiprocessOptions.directory`
returns the checked directory of the flag, else of ``$INFERENCE_METRICS_MULTIPROC_DIR`` (the
environment is read here, by the command, never by a constructor), else None; a directory that
cannot be used is an :class:`~.parsing.OptionError`. See docs/multiprocess.md.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..backends import multiproc
from .parsing import flag_errors

__all__ = ["MultiprocessOptions"]


@dataclass(frozen=True)
class MultiprocessOptions:
    """The multiprocess directory flag of one command."""

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--multiprocess-dir",
            metavar="DIR",
            help="serve the merged metrics of every process recording into DIR (see "
            f"docs/multiprocess.md; default: ${multiproc.ENV_VAR}, else this process)",
        )

    def directory(self, args: argparse.Namespace) -> Path | None:
        """The directory of ``--multiprocess-dir`` (or the environment variable), checked; None
        when neither names one."""
        directory = args.multiprocess_dir or multiproc.multiprocess_dir_from_env()
        if directory is None:
            return None
        with flag_errors("--multiprocess-dir"):
            return multiproc.check_directory(directory, "--multiprocess-dir")
