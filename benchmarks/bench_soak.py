"""Soak: multiprocess mode under worker churn for minutes, beside a scraper every second.

Real processes, as a deployment runs them: ``gunicorn -w 3 -k uvicorn.workers.UvicornWorker
--max-requests N`` serving ``examples/multiprocess_app.py`` (each worker records into its own file
in one directory, and is replaced after N requests), an exporter (``inference-metrics serve
--multiprocess-dir``) next to them, client threads sending completions at ``--rate`` requests per
second in total (50 models), and a scraper fetching the exporter's ``/metrics`` every
``--interval`` seconds. Every second it records:

* the exporter's RSS (``VmRSS`` of ``/proc/<pid>/status``);
* each live worker's RSS, kept per worker generation (one worker process, from its first sample
  to its last);
* the files in the directory (process files, and all);
* the scrape's time, from the request sent to the last byte of the body received, and its size.

At the end the load stops and the last scrape must hold exactly the requests the clients got a
200 for (the benchmark fails otherwise). Printed: a table per tenth of the run; with ``--svg``, the
series as a figure (docs/soak.svg). Flat is the goal.

Run: ``.venv/bin/python -m benchmarks.bench_soak --duration 600 --svg docs/soak.svg`` (the
figure in docs/performance.md); ``--duration 30`` for a short run.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from inference_metrics.backends.multiproc import ENV_VAR, PROCESS_FILE_RE

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
REQUESTS = "inference_model_request_total"
MODELS = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def get(port: int, path: str, timeout: float = 30) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_listening(process: subprocess.Popen[bytes], port: int, path: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if get(port, path, timeout=5)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answers on port {port}")
        time.sleep(0.1)


def total_requests(body: bytes) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == REQUESTS
    )


@dataclass
class Tick:
    at: float
    exporter_mib: float
    process_files: int
    files: int
    scrape_ms: float
    scrape_bytes: int
    counted: float


@dataclass
class Generation:
    pid: int
    born: float
    last: float
    mib: list[float] = field(default_factory=list)


class Load:
    """Client threads sending completions at ``rate`` per second in total, each on a keep-alive
    connection (a new one after an error: a worker that exits closes its connections)."""

    def __init__(self, port: int, rate: float, clients: int) -> None:
        self.port = port
        self.interval = clients / rate
        self.ok = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(30)

    def _run(self, index: int) -> None:
        connection: http.client.HTTPConnection | None = None
        n = index
        next_at = time.monotonic()
        while not self._stop.is_set():
            model = f"model-{n % MODELS}"
            n += 1
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                connection.request("GET", f"/v1/completions?model={model}")
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                ok = False
                if connection is not None:
                    connection.close()
                connection = None
            with self._lock:
                if ok:
                    self.ok += 1
                else:
                    self.failed += 1
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()
        if connection is not None:
            connection.close()


def soak(args: argparse.Namespace) -> tuple[list[Tick], dict[int, Generation], int, int, float]:
    directory = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    env = {**os.environ, ENV_VAR: str(directory)}
    app_port, exporter_port = free_port(), free_port()
    script = Path(sys.executable).parent / "inference-metrics"
    exporter = subprocess.Popen(
        [
            str(script),
            "serve",
            "--multiprocess-dir",
            str(directory),
            "--host",
            "127.0.0.1",
            "--port",
            str(exporter_port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    gunicorn = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--pythonpath",
            str(EXAMPLES),
            "multiprocess_app:app",
            "-w",
            str(args.workers),
            "-k",
            "uvicorn.workers.UvicornWorker",
            "--max-requests",
            str(args.max_requests),
            "--max-requests-jitter",
            str(args.max_requests // 4),
            "--bind",
            f"127.0.0.1:{app_port}",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    load = Load(app_port, args.rate, args.clients)
    ticks: list[Tick] = []
    generations: dict[int, Generation] = {}
    try:
        wait_listening(exporter, exporter_port, "/metrics")
        wait_listening(gunicorn, app_port, "/pid")
        load.start()
        start = time.monotonic()
        next_tick = start
        while True:
            now = time.monotonic()
            if now - start >= args.duration:
                break
            sent = time.perf_counter()
            status, body = get(exporter_port, "/metrics")
            took = time.perf_counter() - sent
            if status != 200:
                raise RuntimeError(f"the exporter answered {status}")
            names = os.listdir(directory)
            ticks.append(
                Tick(
                    at=now - start,
                    exporter_mib=rss_mib(exporter.pid) or 0.0,
                    process_files=sum(1 for n in names if PROCESS_FILE_RE.fullmatch(n)),
                    files=len(names),
                    scrape_ms=took * 1e3,
                    scrape_bytes=len(body),
                    counted=total_requests(body),
                )
            )
            for pid in children(gunicorn.pid):
                mib = rss_mib(pid)
                if mib is None:
                    continue
                generation = generations.setdefault(pid, Generation(pid, now - start, now - start))
                generation.last = now - start
                generation.mib.append(mib)
            next_tick += args.interval
            time.sleep(max(0.0, next_tick - time.monotonic()))
        load.stop()
        time.sleep(1.0)  # the last responses' records are in the files before this scrape
        final = total_requests(get(exporter_port, "/metrics")[1])
        return ticks, generations, load.ok, load.failed, final
    finally:
        for process in (gunicorn, exporter):
            process.send_signal(signal.SIGTERM)
        load.stop()
        for process in (gunicorn, exporter):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def report(
    ticks: list[Tick], generations: dict[int, Generation], ok: int, failed: int, final: float
) -> None:
    print(f"requests answered 200: {ok}, failed (a worker exiting under them): {failed}")
    print(f"the exporter's last scrape counts {final:.0f} requests")
    print(f"worker generations seen: {len(generations)}")
    print()
    print(
        "| time | exporter RSS | worker RSS (generations born then) | process files "
        "(max) | files (max) | scrape time (median / max) | body |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    windows = 10
    span = (ticks[-1].at + 1e-9) / windows
    for w in range(windows):
        low, high = w * span, (w + 1) * span
        window = [t for t in ticks if low <= t.at < high]
        born = [max(g.mib) for g in generations.values() if low <= g.born < high and g.mib]
        if not window:
            continue
        workers = f"{statistics.mean(born):.1f} MiB ({len(born)})" if born else "-"
        print(
            f"| {low:.0f}-{high:.0f} s | {window[-1].exporter_mib:.1f} MiB | {workers} "
            f"| {max(t.process_files for t in window)} | {max(t.files for t in window)} "
            f"| {statistics.median(t.scrape_ms for t in window):.1f} / "
            f"{max(t.scrape_ms for t in window):.1f} ms | {window[-1].scrape_bytes:,} B |"
        )


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``value``."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= value)


def svg(ticks: list[Tick], generations: dict[int, Generation], path: Path) -> None:
    """Four panels over time: exporter RSS, worker RSS per generation, files, scrape time."""
    width, panel, left, gap = 720, 120, 70, 40
    end = ticks[-1].at if ticks else 1.0
    worker_points = [(g.born, max(g.mib)) for g in generations.values() if g.mib]
    panels = [
        ("exporter RSS (MiB)", [(t.at, t.exporter_mib) for t in ticks], "line"),
        (
            "worker RSS (MiB), one dot per worker generation: its largest sample, at its start",
            worker_points,
            "dots",
        ),
        ("process files on disk", [(t.at, float(t.process_files)) for t in ticks], "line"),
        ("scrape time (ms)", [(t.at, t.scrape_ms) for t in ticks], "line"),
    ]
    height = len(panels) * (panel + gap) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    plot = width - left - 20
    step = 60 if end >= 180 else 10  # an x tick every minute, or every 10 s in a short run
    for i, (title, points, style) in enumerate(panels):
        top = 20 + i * (panel + gap)
        ymax = nice_ceiling(max([y for _, y in points] + [1.0]) * 1.1)
        out.append(f'<text x="{left}" y="{top - 6}" font-weight="bold">{title}</text>')
        out.append(
            f'<rect x="{left}" y="{top}" width="{plot}" height="{panel}" fill="none" '
            'stroke="#999"/>'
        )
        for fraction in (0.0, 0.5, 1.0):
            y = top + panel - fraction * panel
            out.append(
                f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{fraction * ymax:g}</text>'
            )
        for tick in range(0, int(end) + 1, step):
            x = left + plot * tick / end
            label = f"{tick // 60}m" if step == 60 else f"{tick}s"
            out.append(
                f'<text x="{x:.1f}" y="{top + panel + 13}" text-anchor="middle">{label}</text>'
            )

        def xy(at: float, value: float, top: int = top, ymax: float = ymax) -> str:
            return f"{left + plot * at / end:.1f},{top + panel - panel * value / ymax:.1f}"

        if style == "line":
            path_points = " ".join(xy(at, value) for at, value in points)
            out.append(
                f'<polyline points="{path_points}" fill="none" stroke="#1f77b4" stroke-width="1"/>'
            )
        else:
            for at, value in points:
                cx, cy = xy(at, value).split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="#d62728"/>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--max-requests", type=int, default=200, help="gunicorn's, per worker")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second, total")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes")
    parser.add_argument("--svg", type=Path, help="write the figure here")
    args = parser.parse_args()
    ticks, generations, ok, failed, final = soak(args)
    report(ticks, generations, ok, failed, final)
    if args.svg is not None:
        svg(ticks, generations, args.svg)
        print(f"figure: {args.svg}")
    if final != ok:
        raise SystemExit(f"the exporter counts {final:.0f} requests, the clients got {ok}")


if __name__ == "__main__":
    main()
