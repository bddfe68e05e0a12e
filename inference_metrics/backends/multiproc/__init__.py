"""Several worker processes: one memory-mapped file per process, merged at scrape time.

Every process that records (a uvicorn or gunicorn worker, say) owns one file in a shared
directory and records into it with a store into memory (no system call per update). Every scrape,
in any process, reads every file there and exposes the merged view. The pieces, one idea each:

* :mod:`.layout`: the directory on disk: file names, the file format, where each kind of metric
  keeps its numbers;
* :mod:`.series`: a series' place in this process' file and its record calls;
* :mod:`.store`: this process' file, space reserved before it is used, fork handling;
* :mod:`.labels`: ``labels.db``, the series bound across processes;
* :mod:`.reader`: reading the directory without raising or blocking on what is there;
* :mod:`.merge`: the merge rules, and compaction of exited processes into ``archive.db``;
* :mod:`.collector`: the merged view as a prometheus_client collector, rendered by our writer.

Liveness: each process holds an exclusive ``flock`` on its own file for its whole life; the kernel
drops it when the process ends, however it ends (SIGKILL included), and it works across pid
namespaces (an exporter in another container sharing the volume).

The number of files is bounded by the live processes plus four (``archive.db``, ``labels.db``,
``compact.lock`` and a compaction's ``archive.db.new``), whatever the worker churn. What every
fault does (a full disk, a tampered or read-only directory) is in docs/multiprocess.md.

Configuration is explicit: a backend or collector is given its directory; the environment
variable :data:`ENV_VAR` is read only where asked to, by :func:`multiprocess_dir_from_env` (which
``PrometheusBackend.from_env`` and the CLI call).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..base import DEFAULT_MAX_SERIES, OVERFLOW_LABEL_VALUE
from .collector import MultiprocessCollector
from .layout import (
    ARCHIVE,
    COMPACT_LOCK,
    LABELS,
    PRIVATE_SERIES,
    PROCESS_FILE_RE,
    STORE_SPECS,
    check_directory,
)
from .series import MultiprocessInstrument
from .store import MultiprocessStore

__all__ = [
    "ARCHIVE",
    "COMPACT_LOCK",
    "DEFAULT_MAX_SERIES",
    "ENV_VAR",
    "LABELS",
    "OVERFLOW_LABEL_VALUE",
    "PRIVATE_SERIES",
    "PROCESS_FILE_RE",
    "STORE_SPECS",
    "MultiprocessCollector",
    "MultiprocessInstrument",
    "MultiprocessStore",
    "check_directory",
    "multiprocess_dir_from_env",
]

#: The environment variable that names the directory for :func:`multiprocess_dir_from_env`.
ENV_VAR = "INFERENCE_METRICS_MULTIPROC_DIR"


def multiprocess_dir_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The directory :data:`ENV_VAR` names in ``environ`` (default: ``os.environ``), or None when
    it is unset or empty. Not checked here: a backend or collector given it checks it."""
    value = (os.environ if environ is None else environ).get(ENV_VAR)
    return value or None
