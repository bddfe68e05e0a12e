"""gunicorn hooks: one merged /metrics exporter next to the workers, started and stopped with them.

Every worker records into its own file in ``$INFERENCE_METRICS_MULTIPROC_DIR``; the master starts
one ``inference-metrics serve --multiprocess-dir`` process when it starts (so no worker ever binds
the metrics port, and a worker's death or restart never touches it) and stops it when it exits.
Auth and TLS are the ``serve`` command's options: add them to ``EXPORTER_ARGS``.

Run it::

    export INFERENCE_METRICS_MULTIPROC_DIR=$(mktemp -d)
    gunicorn -c examples/gunicorn_conf.py --pythonpath examples multiprocess_app:app \\
        -w 3 -k uvicorn.workers.UvicornWorker --max-requests 1000
    curl -s 127.0.0.1:9090/metrics

``EXPORTER_PORT`` (default 9090) and ``EXPORTER_HOST`` (default 127.0.0.1) set where it listens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

_exporter: subprocess.Popen[bytes] | None = None


def exporter_command() -> list[str]:
    """The exporter's command line: the installed script, else the module."""
    script = shutil.which("inference-metrics", path=os.path.dirname(sys.executable))
    base = [script] if script else [sys.executable, "-m", "inference_metrics.cli"]
    return [
        *base,
        "serve",
        "--multiprocess-dir",
        os.environ["INFERENCE_METRICS_MULTIPROC_DIR"],
        "--host",
        os.environ.get("EXPORTER_HOST", "127.0.0.1"),
        "--port",
        os.environ.get("EXPORTER_PORT", "9090"),
        *os.environ.get("EXPORTER_ARGS", "").split(),
    ]


def on_starting(server: Any) -> None:
    """In the master, before any worker: start the exporter."""
    global _exporter
    _exporter = subprocess.Popen(exporter_command())


def on_exit(server: Any) -> None:
    """In the master, at shutdown: stop the exporter."""
    if _exporter is not None and _exporter.poll() is None:
        _exporter.terminate()
        try:
            _exporter.wait(10)
        except subprocess.TimeoutExpired:
            _exporter.kill()
