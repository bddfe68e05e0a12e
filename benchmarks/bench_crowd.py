"""Scrapes against a crowd of idle, slow and churning clients: the guarded server and
prometheus_client's own ``start_http_server`` under the same crowd, in the same run.

    python -m benchmarks.bench_crowd [--rounds 30]

For each server and each crowd (``tests/flood.py``: 1000 idle keep-alive connections, 300
half-sent requests, a loop reopening 300 connections; "persistent": idle and half-sent ones
reconnect as soon as they are closed), ``--rounds`` scrapes run one after another, each on a new
connection and bounded to 1 s. Printed: scrapes that succeeded, and the median and worst time of
those that did. Both servers run in this process (threads); the crowd in its own process.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.server import MetricsServer, TokenFileAuthenticator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_scrape import theirs  # noqa: E402  (start_http_server, stopped after)
from tests.flood import crowd  # noqa: E402  (the test's own crowd and scrape)
from tests.test_server_crowd import TOKEN, scrape_within  # noqa: E402


def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    recorder.record_request_counter("llama", "llama-lora")
    return registry


@contextlib.contextmanager
def guarded(directory: Path) -> Iterator[int]:
    tokens = directory / "tokens"
    tokens.write_text(TOKEN + "\n")
    server = MetricsServer(
        auth=TokenFileAuthenticator(tokens), registry=registry(), host="127.0.0.1", port=0
    )
    with server:
        yield server.port


def prometheus_client_server(directory: Path) -> contextlib.AbstractContextManager[int]:
    return theirs(registry())


def measure(port: int, rounds: int) -> tuple[int, list[float]]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        if scrape_within(port, 1.0):
            times.append(time.perf_counter() - started)
    return len(times), sorted(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    servers: dict[str, Callable[[Path], contextlib.AbstractContextManager[int]]] = {
        "MetricsServer (token auth)": guarded,
        "prometheus_client start_http_server (no auth)": prometheus_client_server,
    }
    print("| server | crowd | scrapes within 1 s | median | worst |")
    print("|---|---|---:|---:|---:|")
    for name, start in servers.items():
        for persistent in (False, True):
            with (
                tempfile.TemporaryDirectory() as directory,
                start(Path(directory)) as port,
                crowd(port, persistent=persistent),
            ):
                ok, times = measure(port, args.rounds)
            median = f"{times[len(times) // 2] * 1000:.0f} ms" if times else "-"
            worst = f"{times[-1] * 1000:.0f} ms" if times else "-"
            label = "persistent" if persistent else "mixed"
            print(f"| {name} | {label} | {ok}/{args.rounds} | {median} | {worst} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
