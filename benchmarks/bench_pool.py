"""The pool monitor's cost: parsing an engine page, one whole poll, and the HTTP stack under
upstream's polling rate.

* **parse**: the monitor's reader (:func:`read_families` + :func:`extract` of the vLLM profile)
  on a real-sized vLLM page (two data-parallel engines, every histogram vLLM V1 exposes) against
  prometheus_client's text parser (``text_string_to_metric_families``) picking the same three
  numbers, as a hand-written poller would. Both results are checked equal first.
* **poll**: the CPU this process spends per endpoint per poll (``time.process_time``: HTTP
  request, read, parse, extract, snapshot update) polling ``--endpoints`` stand-in vLLM servers
  that run in a child process (their CPU is not counted), against a hand-written aiohttp GET +
  prometheus_client parse of the same pages.
* **stacks**: what each candidate HTTP stack costs polling ``--sustain-endpoints`` (100) stand-in
  vLLM servers every ``--interval`` (50 ms, upstream's default) for ``--seconds``, as the monitor
  does (one task per endpoint, each polling on its own schedule; a GET asking for gzip, the body
  bounded, then the same ``read_families`` + ``extract``). Each stack runs in a fresh interpreter
  of its own, so its memory is its own: CPU per poll round (all endpoints once), the share of a
  core, polls done against the schedule's number, latency of one poll (request sent to page
  parsed) p50/p99, and resident memory (what importing the stack adds, what opening the
  connections and the warm-up add, and the growth while polling). The servers (two
  child processes, their CPU not counted) answer with a fixed page, gzipped when asked (as vLLM's
  prometheus_client does), so they cost little; each stack is run ``--rounds`` times, interleaved,
  and its best round (least CPU per round) is shown.

Run: ``.venv/bin/python -m benchmarks.bench_pool`` (``--number``, ``--rounds``, ``--endpoints``,
``--polls``, ``--sustain-endpoints``, ``--interval``, ``--seconds``, ``--stacks``).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import multiprocessing
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from inference_metrics.pool import PROFILES, Endpoint, PoolMonitor, extract, read_families

from .common import per_call

PROFILE = PROFILES["vllm"]
NAMES = {
    "vllm:num_requests_waiting": "queue",
    "vllm:num_requests_running": "running",
    "vllm:kv_cache_usage_perc": "kv_cache",
}
STACKS = ("h11", "aiohttp", "httpx")
MAX_PAGE = 16 << 20


def ours(page: bytes) -> tuple[float | None, float | None, float | None]:
    reading = extract(PROFILE, read_families(page, PROFILE.families))
    return reading.queue, reading.running, reading.kv_cache


def hand_written(page: bytes) -> tuple[float | None, float | None, float | None]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(page.decode("utf-8")):
        key = NAMES.get(family.name)
        if key is not None and family.samples and key not in found:
            found[key] = family.samples[0].value
    return found.get("queue"), found.get("running"), found.get("kv_cache")


def _page() -> bytes:
    """The stand-ins' page: two data-parallel engines. (tests.model_servers imports aiohttp: not
    imported by a stack's own process, whose memory is measured.)"""
    from tests.model_servers import vllm_page

    return vllm_page(_loads()).encode()


def _loads() -> list[Any]:
    from tests.model_servers import Load

    return [Load(queue=3, running=7, kv_cache=0.42), Load(queue=1, running=2, kv_cache=0.1)]


def _serve(count: int, ports: multiprocessing.Queue[list[int]], fixed: bool) -> None:
    """``count`` stand-in vLLM servers; ``fixed``: one page rendered once, gzipped when asked."""
    from aiohttp import web

    from tests.model_servers import ModelServer

    page = _page()
    zipped = gzip.compress(page, 6)

    async def fixed_page(request: web.Request) -> web.Response:
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain"}
            return web.Response(body=zipped, headers=headers)
        return web.Response(body=page, content_type="text/plain")

    async def main() -> None:
        servers = [ModelServer(f"s{i}", engines=_loads()) for i in range(count)]
        for server in servers:
            if fixed:
                server._metrics = fixed_page  # type: ignore[method-assign]
            await server.start()
        ports.put([s.port for s in servers])
        await asyncio.Event().wait()

    asyncio.run(main())


class Servers:
    """Stand-in servers in ``processes`` child processes (their CPU is not this process's)."""

    def __init__(self, count: int, *, processes: int = 1, fixed: bool = False) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue: multiprocessing.Queue[list[int]] = context.Queue()
        shares = [count // processes + (i < count % processes) for i in range(processes)]
        self._children = [
            context.Process(target=_serve, args=(n, self._queue, fixed), daemon=True)
            for n in shares
            if n
        ]
        self.ports: list[int] = []

    def __enter__(self) -> Servers:
        for child in self._children:
            child.start()
        for _ in self._children:
            self.ports += self._queue.get(timeout=60)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for child in self._children:
            child.terminate()
            child.join(10)


# --- one poll, PoolMonitor against a hand-written poller ----------------------------------------


async def cpu_per_poll(poll: Callable[[], Awaitable[object]], polls: int) -> float:
    await poll()  # connections opened, caches warm
    start = time.process_time()
    for _ in range(polls):
        await poll()
    return (time.process_time() - start) / polls


async def poll_costs(ports: list[int], polls: int, rounds: int) -> tuple[float, float]:
    import aiohttp

    endpoints = [Endpoint(f"s{i}", f"http://127.0.0.1:{p}/metrics") for i, p in enumerate(ports)]
    monitor = PoolMonitor("bench", endpoints)
    async with aiohttp.ClientSession() as session:

        async def fetch_and_parse(url: str) -> object:
            async with session.get(url) as response:
                return hand_written(await response.read())

        async def by_hand() -> object:
            return await asyncio.gather(*(fetch_and_parse(e.url) for e in endpoints))

        try:
            best_ours = best_hand = float("inf")
            for _ in range(rounds):
                best_ours = min(best_ours, await cpu_per_poll(monitor.poll_all, polls))
                best_hand = min(best_hand, await cpu_per_poll(by_hand, polls))
        finally:
            await monitor.stop()
    return best_ours / len(ports), best_hand / len(ports)


# --- the HTTP stacks under upstream's polling rate ---------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


Fetch = Callable[[str], Awaitable[bytes]]


async def _stack(name: str) -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    """``(fetch(url) -> page, close())`` of one candidate stack, as the monitor would use it."""
    if name == "h11":
        from inference_metrics.net.client import HTTPClient

        client = HTTPClient()

        async def fetch_h11(url: str) -> bytes:
            status, body = await client.get(url, max_bytes=MAX_PAGE)
            assert status == 200
            return body

        return fetch_h11, client.aclose
    if name == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            # No limit on all connections (aiohttp's default, 100, queues a pool of 100).
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=2),
            timeout=aiohttp.ClientTimeout(total=None),
        )

        async def fetch_aiohttp(url: str) -> bytes:
            async with session.get(url, headers={"Accept-Encoding": "gzip"}) as response:
                assert response.status == 200
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    assert size <= MAX_PAGE
                    chunks.append(chunk)
                return b"".join(chunks)

        return fetch_aiohttp, session.close
    if name == "httpx":
        import httpx

        client_x = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            headers={"Accept-Encoding": "gzip"},
        )

        async def fetch_httpx(url: str) -> bytes:
            async with client_x.stream("GET", url) as response:
                assert response.status_code == 200
                chunks, size = [], 0
                async for chunk in response.aiter_bytes(1 << 16):
                    size += len(chunk)
                    assert size <= MAX_PAGE
                    chunks.append(chunk)
                return b"".join(chunks)

        return fetch_httpx, client_x.aclose
    raise ValueError(f"stack must be one of {', '.join(STACKS)}, got {name!r}")


async def sustain(name: str, ports: list[int], interval: float, seconds: float) -> dict[str, Any]:
    """Poll every port every ``interval`` for ``seconds`` (after a warm-up) with stack ``name``."""
    rss_start = _rss_mib()
    fetch, close = await _stack(name)
    rss_imported = _rss_mib()
    urls = [f"http://127.0.0.1:{port}/metrics" for port in ports]
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    measuring = False

    async def poller(url: str) -> None:
        nonlocal errors
        await asyncio.sleep(random.uniform(0, interval))
        while True:
            started = loop.time()
            try:
                page = await fetch(url)
                assert ours(page) == (3.0, 7.0, 0.42)
            except Exception:
                errors += 1
            took = loop.time() - started
            if measuring:
                latencies.append(took)
            await asyncio.sleep(max(0.0, interval - took))

    tasks = [asyncio.create_task(poller(url)) for url in urls]
    await asyncio.sleep(2.0)  # connections open, caches warm
    rss_warm = _rss_mib()
    measuring = True
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    measuring = False
    polls = len(latencies)
    rss_end = _rss_mib()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await close()
    latencies.sort()
    return {
        "stack": name,
        "cpu_per_round": cpu / (polls / len(urls)),
        "core_share": cpu / wall,
        "polls": polls,
        "scheduled": int(len(urls) * wall / interval),
        "errors": errors,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "rss_start": rss_start,
        "rss_imported": rss_imported,
        "rss_warm": rss_warm,
        "rss_growth": rss_end - rss_warm,
    }


def stacks_table(args: argparse.Namespace) -> None:
    stacks = args.stacks.split(",")
    with Servers(args.sustain_endpoints, processes=2, fixed=True) as servers:
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):
            for name in stacks:
                command = [
                    sys.executable,
                    "-m",
                    "benchmarks.bench_pool",
                    "--one-stack",
                    name,
                    "--ports",
                    ",".join(map(str, servers.ports)),
                    "--interval",
                    str(args.interval),
                    "--seconds",
                    str(args.seconds),
                ]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                result = json.loads(out.strip().splitlines()[-1])
                if name not in best or result["cpu_per_round"] < best[name]["cpu_per_round"]:
                    best[name] = result
    print()
    print(
        f"{args.sustain_endpoints} endpoints polled every {args.interval * 1000:g} ms for "
        f"{args.seconds:g} s, each stack in its own process, best of {args.rounds} rounds"
    )
    print(
        "| stack | CPU per round | x h11 | core | polls done / scheduled | errors "
        "| latency p50 | p99 | RSS + import | + 100 connections | growth while polling |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = best.get("h11", next(iter(best.values())))["cpu_per_round"]
    for name, r in best.items():
        print(
            f"| {name} | {r['cpu_per_round'] * 1e3:.1f} ms | {r['cpu_per_round'] / base:.2f} "
            f"| {r['core_share'] * 100:.0f} % | {r['polls']} / {r['scheduled']} | {r['errors']} "
            f"| {r['p50'] * 1e3:.1f} ms | {r['p99'] * 1e3:.1f} ms "
            f"| {r['rss_imported'] - r['rss_start']:+.1f} MiB "
            f"| {r['rss_warm'] - r['rss_imported']:+.1f} MiB | {r['rss_growth']:+.1f} MiB |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=300, help="parses per timing run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--polls", type=int, default=30, help="polls of every endpoint per run")
    parser.add_argument("--sustain-endpoints", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--stacks-only", action="store_true", help="only the stacks table")
    parser.add_argument("--one-stack", help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one_stack:  # a child of stacks_table: one stack, one JSON line
        ports = [int(p) for p in args.ports.split(",")]
        result = asyncio.run(sustain(args.one_stack, ports, args.interval, args.seconds))
        print(json.dumps(result))
        return
    if args.stacks_only:
        stacks_table(args)
        return

    page = _page()
    assert ours(page) == hand_written(page) == (3.0, 7.0, 0.42), (ours(page), hand_written(page))
    lines = page.count(b"\n")
    parse_ours = parse_hand = float("inf")
    for _ in range(args.rounds):
        parse_ours = min(parse_ours, per_call(lambda: ours(page), number=args.number, repeat=3))
        parse_hand = min(
            parse_hand, per_call(lambda: hand_written(page), number=args.number // 10, repeat=3)
        )
    print(f"vLLM page: {len(page)} bytes, {lines} lines, 2 data-parallel engines")
    print("| parse and extract queue, running, KV | per page | x prometheus_client parser |")
    print("|---|---:|---:|")
    print(f"| prometheus_client text parser | {parse_hand * 1e6:.0f} us | 1.00 |")
    print(
        f"| read_families + extract | {parse_ours * 1e6:.0f} us | {parse_ours / parse_hand:.3f} |"
    )

    with Servers(args.endpoints) as servers:
        poll_ours, poll_hand = asyncio.run(poll_costs(servers.ports, args.polls, args.rounds))
    print()
    print(f"one poll, {args.endpoints} endpoints polled concurrently, CPU of this process only")
    print("| one poll of one endpoint | CPU | x hand-written |")
    print("|---|---:|---:|")
    print(f"| aiohttp GET + prometheus_client parser | {poll_hand * 1e6:.0f} us | 1.00 |")
    print(f"| PoolMonitor.poll | {poll_ours * 1e6:.0f} us | {poll_ours / poll_hand:.2f} |")
    for interval in (0.05, 0.1, 0.2, 0.5):
        share = poll_ours / interval
        print(
            f"poll interval {interval * 1000:.0f} ms: {share * 100:.2f} % of a core per endpoint, "
            f"{share * 100 * 100:.0f} % for 100 endpoints"
        )

    stacks_table(args)


if __name__ == "__main__":
    main()
