"""What every options module shares: the error they raise, library errors renamed to flags, and
a parser whose errors are one line of usage and the message.

An options module turns parsed arguments into a configured object; a value that cannot be used is
an :class:`OptionError` whose message names the flag (``--poll-interval must be > 0 seconds``),
never the Python parameter the value ended up in. The command turns it into a usage error (exit
status 2) with :meth:`CommandParser.error`.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

__all__ = ["CommandParser", "OptionError", "flag_errors"]


class OptionError(ValueError):
    """A flag's value, or a combination of flags, that cannot be used. The message names them."""


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one usage line and the message.

    argparse prints the whole generated usage (32 lines for ``inference-metrics serve``) before
    an error, which buries it. Here the usage is one line (``usage`` defaults to
    ``PROG [options]``), followed by a pointer to ``--help``; the exit status is 2, as
    argparse's. Subcommand parsers made by :meth:`add_subparsers` are of this class too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("usage", "%(prog)s [options]")
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        usage = self.format_usage().strip()
        self.exit(2, f"{usage} (see --help)\n{self.prog}: error: {message}\n")


#: A message's leading Python parameter name(s): ``poll_interval must ...``,
#: ``cert_file/key_file '...' cannot ...``, ``bearer_token_file: ...``.
_LEADING_PARAMETERS = re.compile(r"[a-z][a-z_]*(?:/[a-z][a-z_]*)*(?=[\s:]|$)")


def renamed(message: str, flag: str, parameters: Mapping[str, str]) -> str:
    """``message`` (a library's, about values that came from flags) naming flags instead of
    parameters: a leading parameter name of ``parameters`` is replaced by its flag; a message
    that names no flag of its own is prefixed with ``flag``."""
    if message.startswith("--"):
        return message
    match = _LEADING_PARAMETERS.match(message)
    if match is not None:
        names = match.group().split("/")
        if all(name in parameters for name in names):
            return "/".join(parameters[name] for name in names) + message[match.end() :]
    return f"{flag}: {message}"


@contextlib.contextmanager
def flag_errors(flag: str, parameters: Mapping[str, str] | None = None) -> Iterator[None]:
    """Re-raise a ``TypeError``/``ValueError`` of the block as an :class:`OptionError` naming
    flags (see :func:`renamed`): the values the block passes on came from ``flag`` (and the
    flags ``parameters`` maps the library's parameter names to)."""
    try:
        yield
    except OptionError:
        raise
    except (TypeError, ValueError) as exc:
        raise OptionError(renamed(str(exc), flag, parameters or {})) from None
