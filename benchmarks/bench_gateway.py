"""What metrics cost a gateway: the example ext_proc picker behind a real Envoy, with and without.

``examples/ext_proc/server.py`` runs behind the real Envoy (``.venv/bin/envoy``, one worker) in
front of a deterministic OpenAI-compatible upstream, once with ``--metrics-backend prometheus``
and once with ``--metrics-backend noop``, alternating for ``--rounds`` rounds. Each run sends
``POST /v1/completions`` from ``--concurrency`` clients for ``--seconds`` seconds (50 models, a
JSON response), while a scraper fetches ``/metrics`` every second, as Prometheus would.
Reported per backend (its best round): requests per second, p50 and p99 latency as the client
saw it, and the picker process's CPU time per request (from ``/proc``), which is the cost itself
whatever else on the machine limits throughput. Target: metrics cost at most 5% of throughput.

Everything listens on 127.0.0.1 on free ports and is stopped at the end. The load generator and
the upstream share this process, so absolute figures say little; the ratios compare like with
like.

Run: ``.venv/bin/python -m benchmarks.bench_gateway`` (``--concurrency``, ``--seconds``,
``--rounds``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.envoy_harness import free_ports, render_envoy_config, start_envoy, start_picker
from tests.openai_upstream import OpenAIUpstream, UpstreamThread

MODELS = 50


@dataclass
class Run:
    backend: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    picker_cpu: float
    scrapes: int

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        values = sorted(self.latencies)
        return values[min(len(values) - 1, int(q * len(values)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def load(port: int, concurrency: int, seconds: float) -> tuple[int, int, list[float]]:
    """``concurrency`` clients posting completions for ``seconds``: (ok, errors, latencies)."""
    url = f"http://127.0.0.1:{port}/v1/completions"
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal errors
        i = n
        while time.perf_counter() < deadline:
            body = {"model": f"model-{i % MODELS}", "prompt": "say hello " * 8, "max_tokens": 16}
            start = time.perf_counter()
            async with session.post(url, data=json.dumps(body)) as response:
                await response.read()
                if response.status == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
            i += concurrency

    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        await asyncio.gather(*(client(session, n) for n in range(concurrency)))
    return len(latencies), errors, latencies


def one_run(
    backend: str, upstream_port: int, log_dir: Path, concurrency: int, seconds: float
) -> Run:
    grpc_port, metrics_port, admin_port, listener_port = free_ports(4)
    picker = start_picker(
        log_dir,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        extra_args=["--metrics-backend", backend, "--log-level", "WARNING"],
    )
    envoy = None
    stop = threading.Event()
    scrapes = 0

    def scrape() -> None:
        nonlocal scrapes
        while not stop.wait(1.0):
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                response.read()
            scrapes += 1

    try:
        config = render_envoy_config(
            admin_port=admin_port,
            listener_port=listener_port,
            picker_port=grpc_port,
            upstream_port=upstream_port,
            response_body_mode="BUFFERED",
        )
        envoy = start_envoy(log_dir, config, admin_port=admin_port)
        asyncio.run(load(listener_port, concurrency, 1.0))  # warm up connections and caches
        scraper = threading.Thread(target=scrape)
        scraper.start()
        cpu_before = cpu_seconds(picker.process.pid)
        start = time.perf_counter()
        ok, errors, latencies = asyncio.run(load(listener_port, concurrency, seconds))
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(picker.process.pid) - cpu_before
        stop.set()
        scraper.join()
        return Run(backend, ok, errors, elapsed, latencies, cpu, scrapes)
    finally:
        stop.set()
        if envoy is not None:
            envoy.stop()
        picker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    upstream = UpstreamThread(OpenAIUpstream())
    upstream_port = upstream.start()
    runs: dict[str, list[Run]] = {"prometheus": [], "noop": []}
    try:
        with tempfile.TemporaryDirectory() as log_dir:
            for _ in range(args.rounds):
                for backend in runs:
                    run = one_run(
                        backend, upstream_port, Path(log_dir), args.concurrency, args.seconds
                    )
                    runs[backend].append(run)
    finally:
        upstream.stop()

    best = {name: max(rs, key=lambda r: r.throughput) for name, rs in runs.items()}
    print(
        f"## the example picker behind Envoy, {args.concurrency} clients, {args.seconds:g} s "
        f"per run, best of {args.rounds} rounds; /metrics scraped every second"
    )
    print("| backend | requests/s | p50 | p99 | picker CPU per request | errors | scrapes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, run in best.items():
        print(
            f"| {name} | {run.throughput:.0f} | {run.percentile(0.5) * 1e3:.2f} ms | "
            f"{run.percentile(0.99) * 1e3:.2f} ms | {run.picker_cpu / run.requests * 1e6:.0f} µs | "
            f"{run.errors} | {run.scrapes} |"
        )
    prometheus, noop = best["prometheus"], best["noop"]
    print(
        f"\nthroughput prometheus / noop: {prometheus.throughput / noop.throughput:.3f}; "
        f"picker CPU per request prometheus / noop: "
        f"{(prometheus.picker_cpu / prometheus.requests) / (noop.picker_cpu / noop.requests):.3f}"
    )
    for name, rs in runs.items():
        print(f"{name} rounds (requests/s): " + ", ".join(f"{r.throughput:.0f}" for r in rs))


if __name__ == "__main__":
    main()
