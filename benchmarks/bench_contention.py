"""How much back-to-back scrapes slow a record call on another thread (the GIL is shared).

One thread records whole requests (``record_request_started`` + ``record_request_completed``)
over ``--pairs`` (model, target) pairs, one every ``--interval`` seconds (a gateway thread between
requests waits on I/O, which releases the GIL), timing each request's record calls; the Recorder
holds data for every catalogue metric of those pairs. The run is done twice for ``--seconds``
each: with no scrapes, and while a second thread scrapes back to back as ``MetricsServer``
serves a gzip'd scrape (``GzipCache.render`` in the text format, as the server's ``Renderer``;
chunks whose series did not change since the scrape before are reused). Reported: p50,
p99, p99.9 and the maximum of a request's record time in both runs, and the scrapes made; and how
late the recording thread woke up from its sleep, which is where a thread waits for the GIL.
A third run, with a thread hashing the page instead (busy, but without holding the GIL), tells
the machine's CPU contention apart from the interpreter's lock. Target: scrapes add at most 1 ms
to the p99.

Run: ``.venv/bin/python -m benchmarks.bench_contention`` (``--pairs``, ``--seconds``,
``--interval``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.exposition import TEXT, render
from inference_metrics.gzip_cache import GzipCache
from inference_metrics.server.scrape import GZIP_LEVEL


def pair(i: int) -> tuple[str, str]:
    return f"model-{i // 4}", f"model-{i // 4}-lora-{i % 4}"


def request(recorder: Recorder, i: int) -> None:
    model, target = pair(i)
    recorder.record_request_started(model, target, 1200 + i % 5000)
    recorder.record_request_completed(
        model,
        target,
        received=1000.0,
        completed=1000.0 + (i % 300) / 10,
        response_size=2480 + i % 9000,
        input_tokens=30 + i % 4000,
        output_tokens=300 + i % 2000,
        cached_tokens=i % 64,
        first_token=1000.05,
    )


def fill(recorder: Recorder, pairs: int) -> None:
    for i in range(pairs):
        request(recorder, i)
        if i % 10 == 0:
            recorder.record_request_failed(*pair(i), "ModelServerError")
        recorder.record_running_request_started(pair(i)[0])
    for p in range(4):
        recorder.record_pool_ready_pods(f"pool-{p}", 8)
        recorder.record_pool_queue_size(f"pool-{p}", 3)
        recorder.record_pool_kv_cache_utilization(f"pool-{p}", 0.4)
        recorder.record_pool_average_running_requests(f"pool-{p}", 2)
        for q in range(8):
            recorder.record_pool_per_pod_queue_size(f"pool-{p}", f"pod-{q}", q)
    recorder.record_extension_info("0123abc", "v1.0.0")


def record_for(
    recorder: Recorder, pairs: int, seconds: float, interval: float
) -> tuple[list[int], list[int]]:
    """Nanoseconds per whole request, one request every ``interval`` seconds for ``seconds``; and
    nanoseconds each wake-up came late (sleeping releases the GIL; waking up takes it back)."""
    latencies: list[int] = []
    late: list[int] = []
    clock, sleep = time.perf_counter_ns, time.sleep
    end = clock() + int(seconds * 1e9)
    interval_ns = int(interval * 1e9)
    i = 0
    while True:
        start = clock()
        request(recorder, i % pairs)
        stop = clock()
        latencies.append(stop - start)
        i += 1
        if stop > end:
            return latencies, late
        if interval_ns:
            sleep(interval)
            late.append(clock() - stop - interval_ns)


def percentile(sorted_values: list[int], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] / 1e3


def summary(name: str, latencies: list[int], scrapes: int) -> str:
    values = sorted(latencies) or [0]
    return (
        f"| {name} | {len(latencies):,} | {scrapes} | {percentile(values, 0.5):.1f} µs | "
        f"{percentile(values, 0.99):.1f} µs | {percentile(values, 0.999):.1f} µs | "
        f"{values[-1] / 1e3:.0f} µs |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.0005, help="seconds between requests")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=sys.getswitchinterval(),
        help="sys.setswitchinterval for the run (how long a thread may hold the GIL while "
        "another waits; CPython's default 0.005)",
    )
    args = parser.parse_args()
    sys.setswitchinterval(args.switch_interval)

    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    fill(recorder, args.pairs)
    body = render(registry, TEXT)

    quiet, quiet_late = record_for(recorder, args.pairs, args.seconds, args.interval)

    def alongside(work: Callable[[], object]) -> tuple[list[int], list[int], int]:
        """Record while another thread runs ``work`` back to back; also how often it ran."""
        stop = threading.Event()
        runs = 0

        def loop() -> None:
            nonlocal runs
            while not stop.is_set():
                work()
                runs += 1

        thread = threading.Thread(target=loop)
        thread.start()
        try:
            latencies, late = record_for(recorder, args.pairs, args.seconds, args.interval)
        finally:
            stop.set()
            thread.join()
        return latencies, late, runs

    cache = GzipCache(GZIP_LEVEL)
    busy, busy_late, scrapes = alongside(lambda: cache.render(registry, TEXT))
    # A control: a thread as busy, but without the GIL (sha256 releases it), so what remains is
    # the machine's CPU contention, not the interpreter's lock.
    control, control_late, hashes = alongside(lambda: hashlib.sha256(body).digest())

    print(
        f"## record time of one whole request, {args.pairs} pairs ({len(body):,} B page), "
        f"switch interval {args.switch_interval * 1e3:g} ms"
    )
    print("| while | requests | scrapes | p50 | p99 | p99.9 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(summary("no scrapes", quiet, 0))
    print(summary("back-to-back scrapes", busy, scrapes))
    print(summary("control: hashing the page (no GIL held)", control, hashes))
    p99 = percentile(sorted(busy), 0.99) - percentile(sorted(quiet), 0.99)
    print(f"\nscrapes add {p99:.1f} µs to the p99 of the record calls")
    if args.interval:
        print("\n## how late the recording thread woke up (the GIL held by another thread)")
        print("| while | wake-ups | scrapes | p50 | p99 | p99.9 | max |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        print(summary("no scrapes", quiet_late, 0))
        print(summary("back-to-back scrapes", busy_late, scrapes))
        print(summary("control: hashing the page (no GIL held)", control_late, hashes))


if __name__ == "__main__":
    main()
