"""Concurrent scrapes of one big registry: the guarded server (shared, bounded renders) against
prometheus_client's own ``start_http_server`` serving the same registry, in the same run.

    python -m benchmarks.bench_scrape [--pairs 1000] [--clients 8] [--scrapes 5]

``--clients`` threads each make ``--scrapes`` scrapes one after another, each on a new
connection, against one server at a time (no authentication on either, text format, no gzip).
Printed per server: wall time for all of them, renders (how often the registry was collected) and
body bytes received per scrape; the ratio of the wall times is the figure to compare.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import random
import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.server import MetricsServer, NoAuth


class CountingCollector(Collector):
    """Counts collections (renders) of the registry it is in; exposes nothing."""

    def __init__(self) -> None:
        self.renders = 0
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self.renders += 1
        return iter(())


def filled_registry(pairs: int) -> tuple[CollectorRegistry, CountingCollector]:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), max_series=pairs + 1)
    rng = random.Random(1)
    for index in range(pairs):
        model, target = f"model-{index % 50}", f"target-{index}"
        recorder.record_request_counter(model, target)
        recorder.record_request_size(model, target, rng.randint(100, 10_000))
        recorder.record_request_latency(model, target, 0.0, rng.uniform(0.01, 30.0))
        recorder.record_output_tokens(model, target, rng.randint(1, 2000))
    counter = CountingCollector()
    registry.register(counter)
    return registry, counter


def scrape(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, response.status
        return len(body)
    finally:
        connection.close()


def hammer(port: int, clients: int, scrapes: int) -> tuple[float, int]:
    """Wall seconds for ``clients`` threads making ``scrapes`` scrapes each; bytes per scrape."""
    sizes: list[int] = []
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        barrier.wait()
        for _ in range(scrapes):
            sizes.append(scrape(port))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, max(sizes)


@contextlib.contextmanager
def ours(registry: CollectorRegistry) -> Iterator[int]:
    with MetricsServer(auth=NoAuth(), registry=registry, host="127.0.0.1", port=0) as server:
        yield server.port


@contextlib.contextmanager
def theirs(registry: CollectorRegistry) -> Iterator[int]:
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--scrapes", type=int, default=5)
    args = parser.parse_args()
    registry, counter = filled_registry(args.pairs)
    results = {}
    for name, start in (("start_http_server", theirs), ("MetricsServer", ours)):
        with start(registry) as port:
            scrape(port)  # warm up
            before = counter.renders
            seconds, size = hammer(port, args.clients, args.scrapes)
            results[name] = (seconds, counter.renders - before, size)
    base = results["start_http_server"][0]
    total = args.clients * args.scrapes
    print(f"{args.clients} clients x {args.scrapes} scrapes, {args.pairs} pairs:")
    print("| server | wall time | renders | body bytes per scrape | ratio to start_http_server |")
    print("|---|---:|---:|---:|---:|")
    for name, (seconds, renders, size) in results.items():
        print(
            f"| {name} | {seconds:.2f} s | {renders} of {total} | {size} | {seconds / base:.2f} |"
        )


if __name__ == "__main__":
    main()
