"""Real uvicorn and gunicorn, several workers each, recording into one directory.

examples/multiprocess_app.py runs under ``uvicorn --workers 3`` and
``gunicorn -w 3 -k uvicorn.workers.UvicornWorker`` (with examples/gunicorn_conf.py's hooks);
``inference-metrics serve --multiprocess-dir`` is the exporter. Every server listens on
127.0.0.1 on a free port and is stopped by the test.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.cli import main

from .expo import parse_text
from .prometheus_harness import free_port, stop_process

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
REQUESTS = "inference_model_request_total"
RUNNING = "inference_model_running_requests"


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def sample(port: int, name: str, **labels: str) -> float:
    """One sample of ``port``'s /metrics (0 when the series is absent).

    A scrape that reaches a gunicorn worker as it leaves at ``--max-requests`` is reset before any
    answer (the worker never read it); a scraper tries again, so does this, at most five times."""
    for attempt in range(5):
        try:
            status, body = get(port, "/metrics")
            break
        except ConnectionError:  # http.client.RemoteDisconnected included
            if attempt == 4:
                raise
    assert status == 200, body
    for family in parse_text(body.decode()).values():
        value = family.samples.get((name, frozenset(labels.items())))
        if value is not None:
            return value
    return 0.0


def requests(port: int) -> float:
    return sample(port, REQUESTS, model_name="m", target_model_name="m")


def complete(port: int) -> bool:
    """One request; whether it got its 200 (a worker killed under it: False)."""
    try:
        return get(port, "/v1/completions?model=m")[0] == 200
    except (ConnectionError, http.client.HTTPException, TimeoutError):
        return False


def wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            if get(port, "/metrics", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"nothing answers on port {port}"
        time.sleep(0.1)


class Servers:
    def __init__(self, directory: Path) -> None:
        self.env = {**os.environ, "INFERENCE_METRICS_MULTIPROC_DIR": str(directory)}
        self.directory = directory
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], port: int, env: dict[str, str] | None = None) -> None:
        process = subprocess.Popen(
            args, env={**self.env, **(env or {})}, stdout=subprocess.DEVNULL, stderr=None
        )
        self.started.append(process)
        wait_listening(process, port)

    def exporter(self, *extra: str) -> int:
        port = free_port()
        script = Path(sys.executable).parent / "inference-metrics"
        directory = str(self.directory)
        self.start(
            [
                str(script),
                "serve",
                "--multiprocess-dir",
                directory,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *extra,
            ],
            port,
        )
        return port

    def uvicorn(self) -> int:
        port = free_port()
        self.start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "multiprocess_app:app",
                "--app-dir",
                str(EXAMPLES),
                "--workers",
                "3",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
            ],
            port,
        )
        return port

    def gunicorn(self, port: int, *extra: str, env: dict[str, str] | None = None) -> None:
        """gunicorn -w 3 with uvicorn workers serving examples/multiprocess_app.py."""
        self.start(
            [
                sys.executable,
                "-m",
                "gunicorn",
                *extra,
                "--pythonpath",
                str(EXAMPLES),
                "multiprocess_app:app",
                "-w",
                "3",
                "-k",
                "uvicorn.workers.UvicornWorker",
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ],
            port,
            env,
        )

    def process_files(self) -> list[str]:
        return [n for n in os.listdir(self.directory) if n.startswith("proc-")]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    directory = tmp_path / "metrics"
    directory.mkdir()
    running = Servers(directory)
    yield running
    for process in reversed(running.started):
        stop_process(process)


def worker_pids(port: int, want: int) -> set[int]:
    """Distinct worker pids answering on ``port`` (new connection each time), up to ``want``."""
    pids: set[int] = set()
    deadline = time.monotonic() + 20
    while len(pids) < want and time.monotonic() < deadline:
        pids.add(int(get(port, "/pid")[1]))
    return pids


def send_to_three_workers(port: int, n: int) -> None:
    """Three workers answer on ``port``, and ``n`` requests (8 at a time) all get their 200."""
    assert len(worker_pids(port, 3)) == 3
    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(lambda _: complete(port), range(n)))


def test_uvicorn_workers_every_scrape_shows_every_request(servers: Servers) -> None:
    app = servers.uvicorn()
    exporter = servers.exporter()
    n = 150
    send_to_three_workers(app, n)
    for _ in range(8):
        assert requests(exporter) == n
        assert requests(app) == n
    assert sample(app, RUNNING, model_name="m") == 0


def test_a_worker_killed_mid_load_loses_no_completed_request(servers: Servers) -> None:
    app = servers.uvicorn()
    exporter = servers.exporter()
    victim = next(iter(worker_pids(app, 1)))
    completed = 0
    attempted = 0
    lock = threading.Lock()
    stop = threading.Event()
    seen: list[float] = []

    def load() -> None:
        nonlocal completed, attempted
        while not stop.is_set():
            with lock:
                attempted += 1
            ok = False
            with contextlib.suppress(ConnectionError, http.client.HTTPException, TimeoutError):
                ok = get(app, "/v1/completions?model=m&sleep=0.005")[0] == 200
            with lock:
                completed += ok

    def scrape() -> None:
        while not stop.is_set():
            seen.append(requests(exporter))

    threads = [threading.Thread(target=load) for _ in range(6)]
    threads.append(threading.Thread(target=scrape))
    for thread in threads:
        thread.start()
    try:
        while completed < 200:
            time.sleep(0.01)
        os.kill(victim, signal.SIGKILL)
        while completed < 600:
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    final = requests(exporter)
    assert completed <= final <= attempted
    assert requests(app) == final
    assert all(a <= b for a, b in itertools.pairwise(seen)), "a counter went backwards"
    assert len(seen) > 2
    # The killed worker's in-flight requests stop counting as running; nothing else is running.
    assert sample(exporter, RUNNING, model_name="m") == 0


def test_gunicorn_worker_churn_keeps_every_count_and_few_files(servers: Servers) -> None:
    """gunicorn -w 3 with --max-requests 50 over 2000 requests: about 40 worker exits. The
    exporter started by the gunicorn hooks, and every worker, show exactly the requests served;
    after every scrape the directory holds the live workers' files and a few more."""
    app, exporter = free_port(), free_port()
    servers.gunicorn(
        app,
        "-c",
        str(EXAMPLES / "gunicorn_conf.py"),
        "--max-requests",
        "50",
        env={"EXPORTER_PORT": str(exporter)},
    )
    wait_listening(servers.started[-1], exporter)
    total = 2000
    served = 0
    most_files = 0
    workers: set[str] = set()  # pids seen in the directory
    scraped: list[float] = []
    with ThreadPoolExecutor(8) as pool:
        for _ in range(total // 100):
            served += sum(pool.map(lambda _: complete(app), range(100)))
            scraped.append(requests(exporter))
            most_files = max(most_files, len(servers.process_files()))
            workers.update(pid for name in servers.process_files() for pid in name.split("-")[1:2])
    # A worker leaving at --max-requests resets the connections it accepted and never read.
    assert served >= total * 0.95
    assert requests(exporter) == served
    assert requests(app) == served
    assert scraped == sorted(scraped)
    assert len(workers) > 10  # churn: workers came and went (sampled once per 100 requests)
    assert most_files <= 3 + 2  # three live workers, and one or two that just left
    assert (servers.directory / "archive.db").exists()  # the ~40 exited workers, folded
    assert len(os.listdir(servers.directory)) <= len(servers.process_files()) + 3


def test_gunicorn_preload_workers_each_count_into_a_file_of_their_own(servers: Servers) -> None:
    """With --preload the app (and its Recorder's file) is made in the master and the workers are
    forked from it: each must record into its own file, or counts would be lost or doubled."""
    app = free_port()
    servers.gunicorn(app, "--preload")
    n = 120
    send_to_three_workers(app, n)
    for _ in range(4):
        assert requests(app) == n
    assert len(servers.process_files()) == 4  # the master's (empty) file and one per worker


def test_the_exporter_merges_the_metrics_of_the_schema_it_is_given(servers: Servers) -> None:
    def record() -> None:
        backend = PrometheusBackend(CollectorRegistry(), multiprocess_dir=servers.directory)
        Recorder(backend, schema="llm-d-router").record_request_counter("m", "m")

    for _ in range(2):
        process = multiprocessing.get_context("fork").Process(target=record)
        process.start()
        process.join(30)
        assert process.exitcode == 0
    exporter = servers.exporter("--schema", "llm-d-router")
    labels = {"model_name": "m", "target_model_name": "m", "priority": "0"}
    assert sample(exporter, "llm_d_epp_request_total", fairness_id="default-flow", **labels) == 2
    assert sample(exporter, "inference_objective_request_total", **labels) == 2


def test_serve_refuses_a_missing_multiprocess_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--multiprocess-dir", str(tmp_path / "missing"), "--port", "0"])
    assert exited.value.code == 2
    assert "--multiprocess-dir" in capsys.readouterr().err
