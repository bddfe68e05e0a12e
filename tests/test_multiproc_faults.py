"""Multiprocess mode under the faults operators meet: a full filesystem, a tampered directory, a
directory turned read-only, and worker churn under a long-running scraper.

Every scenario that could kill a process (SIGBUS on a memory-mapped file) or hang it (a FIFO)
runs in a forked child, so the test sees the signal or the hang instead of dying with it. The
filesystems are real: a small tmpfs (mounting one needs root, which CI has; elsewhere the test is
skipped and says why), a file-size limit (``RLIMIT_FSIZE``), a read-only bind mount; the files,
directories and FIFOs are real ones.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import json
import logging
import os
import resource
import signal
import subprocess
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import CATALOG, PrometheusBackend, Recorder
from inference_metrics.backends import multiproc
from inference_metrics.exposition import TEXT, negotiate, render

from .expo import parse_text
from .test_multiproc import (
    REQUESTS,
    count_requests,
    in_child,
    merged,
    process_files,
    recorder_in,
    requests,
    run_child,
    wait,
)

ROOT = Path(__file__).resolve().parent.parent
PRIVATE = "inference_metrics_multiprocess_private_series"
OPENMETRICS = negotiate("application/openmetrics-text; version=1.0.0")


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


def _unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True, timeout=30).returncode:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (skips the test where mounting is not allowed)."""
    where.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        _unmount(where)


@contextlib.contextmanager
def bind_mount(source: Path, where: Path) -> Iterator[Path]:
    """``source`` bind-mounted at ``where`` (skips the test where mounting is not allowed)."""
    where.mkdir()
    mounted = _mount("--bind", str(source), str(where))
    if mounted.returncode:
        pytest.skip(f"cannot bind-mount (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        _unmount(where)


def remount(where: Path, mode: str) -> None:
    result = _mount("-o", f"remount,bind,{mode}", str(where))
    assert result.returncode == 0, result.stderr


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` with one file until it refuses another byte."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            refused = None
            try:
                while True:
                    f.write(b"\xff" * size)
            except OSError as exc:
                refused = exc.errno
            assert refused in (errno.ENOSPC, errno.EFBIG)
    return filler


def outcome(pid: int, timeout: float = 60.0) -> str:
    """How a child ended: 'exit N', 'killed by SIGBUS', ..., or 'hung' (then it is killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return f"exit {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}"
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "hung"


def report_from_child(work: Callable[[], object]) -> tuple[str, object]:
    """Run ``work`` in a forked child; its outcome and the JSON of what it returned."""
    read, write = os.pipe()

    def child() -> None:
        os.close(read)
        result = json.dumps(work()).encode()
        while result:
            result = result[os.write(write, result) :]

    pid = in_child(child)
    os.close(write)
    ended = outcome(pid)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    return ended, json.loads(data) if data else None


def sample(text: bytes, name: str, **labels: str) -> float | None:
    for family in parse_text(text.decode()).values():
        found = family.samples.get((name, frozenset(labels.items())))
        if found is not None:
            return found
    return None


def total_requests(text: bytes) -> float:
    return sum(
        v
        for family in parse_text(text.decode()).values()
        for (name, _), v in family.samples.items()
        if name == REQUESTS
    )


# --- 1: a full filesystem ------------------------------------------------------------------------


def record_through_a_full_filesystem(directory: Path, pairs: int) -> dict[str, object]:
    """Record, fill the filesystem, record ``pairs`` new label sets, scrape, free the space,
    record one more label set, scrape: what each scrape showed."""
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry, multiprocess_dir=directory))
    recorder.record_request_counter("m0", "m0")
    filler = fill(directory)
    for i in range(1, pairs + 1):
        recorder.record_request_counter(f"m{i}", f"m{i}")
        recorder.record_request_latency(f"m{i}", f"m{i}", 0.0, 0.5)
        recorder.record_request_counter("m0", "m0")
    full = render(registry, TEXT)
    filler.unlink()
    recorder.record_request_counter("after", "after")  # a new label set: into the file again
    freed = render(registry, TEXT)
    return {
        "recorded": 1 + 2 * pairs + 1,
        "full": total_requests(full),
        "full_private": sample(full, PRIVATE),
        "m0_full": sample(full, REQUESTS, model_name="m0", target_model_name="m0"),
        "freed": total_requests(freed),
        "freed_private": sample(freed, PRIVATE),
    }


def test_a_full_filesystem_is_an_ordinary_fault_and_no_accepted_count_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_tmpfs(tmp_path / "fs", "1m") as directory:
        with caplog.at_level(logging.WARNING):
            ended, seen = report_from_child(lambda: record_through_a_full_filesystem(directory, 60))
        assert ended == "exit 0"
        assert isinstance(seen, dict)
        # While full: the label sets that had their place before count on in the file; the new
        # ones are held in private memory, and the gauge says how many series that is.
        assert seen["m0_full"] == 61
        assert seen["full_private"]
        assert seen["full_private"] > 0
        # Once space returned, every count a record call accepted is in the merged view.
        assert seen["freed"] == seen["recorded"]
        assert seen["freed_private"] == 0


def test_series_held_in_private_memory_reach_the_file_once_space_returns_unasked(
    tmp_path: Path,
) -> None:
    """No new label set after the space came back: the retry timer moves them."""

    def work(directory: Path) -> dict[str, object]:
        multiproc.store.RETRY_AFTER = 0.05  # in this child only
        messages: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger(multiproc.__name__).addHandler(handler)
        registry = CollectorRegistry()
        recorder = Recorder(PrometheusBackend(registry, multiprocess_dir=directory))
        filler = fill(directory)
        for i in range(40):
            recorder.record_request_counter(f"m{i}", f"m{i}")
            recorder.record_request_latency(f"m{i}", f"m{i}", 0.0, 0.5)
        private = sample(render(registry, TEXT), PRIVATE)
        filler.unlink()
        deadline = time.monotonic() + 30
        while sample(render(registry, TEXT), PRIVATE) != 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        exporter = CollectorRegistry()  # another process' view: only what is in the files
        exporter.register(multiproc.MultiprocessCollector(directory, CATALOG))
        return {
            "private": private,
            "seen": total_requests(render(exporter, TEXT)),
            "short of space": sum("cannot reserve space" in m for m in messages),
            "returned": sum("space returned" in m for m in messages),
        }

    with small_tmpfs(tmp_path / "fs", "1m") as directory:
        ended, seen = report_from_child(lambda: work(directory))
    assert ended == "exit 0"
    assert isinstance(seen, dict)
    assert seen["private"]
    assert seen["seen"] == 40
    assert seen["short of space"] == 1  # one warning however many label sets went private
    assert seen["returned"] == 1


def test_a_scrape_of_a_full_filesystem_answers_from_what_it_read(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "fs", "512k") as directory:
        run_child(count_requests(directory, 3))  # an exited process' file, to be compacted
        run_child(count_requests(directory, 4))
        fill(directory)

        def scrape() -> dict[str, object]:
            registry = CollectorRegistry()
            registry.register(multiproc.MultiprocessCollector(directory, CATALOG))
            return {"first": total_requests(render(registry, TEXT)),
                    "second": total_requests(generate_latest(registry))}  # fmt: skip

        ended, seen = report_from_child(scrape)
        assert ended == "exit 0"
        assert seen == {"first": 7, "second": 7}


def test_a_file_size_limit_is_an_ordinary_fault_too(tmp_path: Path) -> None:
    def work() -> dict[str, object]:
        registry = CollectorRegistry()
        recorder = Recorder(PrometheusBackend(registry, multiprocess_dir=tmp_path))
        recorder.record_request_counter("m0", "m0")
        (path,) = [tmp_path / name for name in process_files(tmp_path)]
        limit = path.stat().st_size
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        for i in range(1, 41):
            recorder.record_request_counter(f"m{i}", f"m{i}")
            recorder.record_request_latency(f"m{i}", f"m{i}", 0.0, 0.5)
        limited = render(registry, TEXT)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        recorder.record_request_counter("after", "after")
        family = parse_text(limited.decode())[PRIVATE]
        return {
            "limited_private": sample(limited, PRIVATE),
            "freed": total_requests(render(registry, TEXT)),
            "exposed as": (family.type, family.documentation),
        }

    ended, seen = report_from_child(work)
    assert ended == "exit 0"
    assert isinstance(seen, dict)
    assert seen["limited_private"]
    assert seen["limited_private"] > 0
    assert seen["freed"] == 42
    # The gauge a fault exposes is in the metrics reference, as exposed.
    kind, help_text = seen["exposed as"]
    stability, _, described = help_text.partition("] ")
    row = f"| {PRIVATE} | {kind.capitalize()} | {described} | none | {stability[1:]} |"
    assert row in (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8").splitlines()


# --- 2: a tampered directory ---------------------------------------------------------------------


def scrape_in_child(directory: Path) -> tuple[str, object]:
    """A fresh collector's scrapes (both ways out) of ``directory``, in a child: it may hang."""

    def scrape() -> list[float]:
        registry = CollectorRegistry()
        registry.register(multiproc.MultiprocessCollector(directory, CATALOG))
        return [
            total_requests(generate_latest(registry)),
            total_requests(render(registry, TEXT)),
            total_requests(render(registry, OPENMETRICS).replace(b"# EOF\n", b"")),
        ]

    return report_from_child(scrape)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(os.mkdir, id="directory"),
        pytest.param(os.mkfifo, id="fifo"),
        pytest.param(lambda path: os.symlink("/dev/zero", path), id="symlink-to-a-device"),
        pytest.param(lambda path: Path(path).write_bytes(b"\x00" * 10), id="short-file"),
        pytest.param(lambda path: Path(path).write_bytes(os.urandom(4096)), id="junk"),
    ],
)
def test_a_thing_named_like_a_process_file_is_skipped_and_the_scrape_answers(
    tmp_path: Path, make: Callable[[str], object]
) -> None:
    run_child(count_requests(tmp_path, 3))
    make(str(tmp_path / f"proc-1-2-{'0' * 32}.db"))
    ended, seen = scrape_in_child(tmp_path)
    assert ended == "exit 0"
    assert seen == [3, 3, 3]


@pytest.mark.parametrize("name", [multiproc.ARCHIVE, multiproc.LABELS, multiproc.COMPACT_LOCK])
@pytest.mark.parametrize("make", [os.mkdir, os.mkfifo], ids=["directory", "fifo"])
def test_our_own_file_names_taken_by_something_else_never_hang_or_break_a_scrape(
    tmp_path: Path, name: str, make: Callable[[str], object]
) -> None:
    live = recorder_in(tmp_path)
    live.record_request_counter("m", "m")
    run_child(count_requests(tmp_path, 2))
    (tmp_path / name).unlink(missing_ok=True)
    make(str(tmp_path / name))
    ended, seen = scrape_in_child(tmp_path)
    assert ended == "exit 0"
    assert seen == [3, 3, 3]


def test_a_process_file_truncated_after_a_scrape_read_it_is_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_child(count_requests(tmp_path, 2))  # folded into the archive by the first scrape
    live = recorder_in(tmp_path)
    for i in range(5):
        live.record_request_counter(f"m{i}", f"m{i}")
    registry = CollectorRegistry()
    registry.register(multiproc.MultiprocessCollector(tmp_path, CATALOG))
    assert total_requests(render(registry, TEXT)) == 7  # the live file's entries are now known
    (path,) = [tmp_path / name for name in process_files(tmp_path)]
    os.truncate(path, 136)
    with caplog.at_level(logging.WARNING, logger=multiproc.__name__):
        for _ in range(3):
            assert total_requests(render(registry, TEXT)) == 2
            assert total_requests(generate_latest(registry)) == 2
    warned = [r.getMessage() for r in caplog.records if path.name in r.getMessage()]
    assert len(warned) == 1


def test_things_that_are_not_files_of_ours_are_warned_about_once_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_child(count_requests(tmp_path, 1))
    os.mkfifo(tmp_path / f"proc-1-2-{'1' * 32}.db")
    os.mkdir(tmp_path / f"proc-1-2-{'2' * 32}.db")
    registry = CollectorRegistry()
    registry.register(multiproc.MultiprocessCollector(tmp_path, CATALOG))
    with caplog.at_level(logging.WARNING, logger=multiproc.__name__):
        for _ in range(3):
            assert total_requests(render(registry, TEXT)) == 1
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert any("1" * 32 in m and "not a regular file" in m for m in warned)
    assert any("2" * 32 in m and "not a regular file" in m for m in warned)


def test_a_label_list_that_cannot_be_written_admits_label_sets_in_this_process_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.mkdir(tmp_path / multiproc.LABELS)
    recorder = recorder_in(tmp_path)
    with caplog.at_level(logging.WARNING, logger=multiproc.__name__):
        for i in range(5):
            recorder.record_request_counter(f"m{i}", f"m{i}")
    assert [requests(tmp_path, f"m{i}") for i in range(5)] == [1] * 5
    assert len([r for r in caplog.records if r.name == multiproc.labels.__name__]) == 1


def test_a_scrape_waits_for_another_ones_compaction_a_bounded_time_then_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(multiproc.collector, "LOCK_WAIT", 0.2)
    recorder = recorder_in(tmp_path)
    recorder.record_request_counter("m", "m")
    registry = CollectorRegistry()
    registry.register(multiproc.MultiprocessCollector(tmp_path, CATALOG))
    assert total_requests(render(registry, TEXT)) == 1
    recorder.record_request_counter("m", "m")
    fd = os.open(tmp_path / multiproc.COMPACT_LOCK, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a compaction that never ends (a stopped process)
        with caplog.at_level(logging.WARNING, logger=multiproc.__name__):
            assert total_requests(render(registry, TEXT)) == 1  # the last merged view
        assert any("for more than" in r.getMessage() for r in caplog.records)
    finally:
        os.close(fd)
    assert total_requests(render(registry, TEXT)) == 2


# --- 3: a directory turned read-only -------------------------------------------------------------


def test_a_directory_turned_read_only_is_still_scraped_and_compacted_once_writable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "metrics"
    source.mkdir()
    with bind_mount(source, tmp_path / "view") as view:
        registry = CollectorRegistry()
        registry.register(multiproc.MultiprocessCollector(view, CATALOG))
        live = recorder_in(source)
        live.record_request_counter("m", "m")
        assert total_requests(render(registry, TEXT)) == 1
        run_child(count_requests(source, 3))
        run_child(count_requests(source, 4))
        files = process_files(source)  # the live one, and the children's (exited)
        remount(view, "ro")
        with caplog.at_level(logging.WARNING, logger=multiproc.__name__):
            for _ in range(3):
                assert total_requests(render(registry, TEXT)) == 8
                assert total_requests(generate_latest(registry)) == 8
        assert process_files(source) == files  # nothing could be compacted
        assert len([r for r in caplog.records if "read-only" in r.getMessage()]) == 1
        remount(view, "rw")
        assert total_requests(render(registry, TEXT)) == 8
        assert len(process_files(source)) == 1  # the exited processes' files are folded now


def test_a_read_only_directory_can_be_scraped_from_the_start(tmp_path: Path) -> None:
    source = tmp_path / "metrics"
    source.mkdir()
    run_child(count_requests(source, 5))
    with bind_mount(source, tmp_path / "view") as view:
        remount(view, "ro")
        registry = CollectorRegistry()
        registry.register(multiproc.MultiprocessCollector(view, CATALOG))
        assert total_requests(render(registry, TEXT)) == 5


# --- 4: worker churn under a long-running scraper ------------------------------------------------


def test_the_parse_cache_holds_at_most_the_files_on_disk_and_memory_stays_flat(
    tmp_path: Path,
) -> None:
    """Scraper A reads every worker's file while the worker lives; scraper B compacts it once the
    worker exited (as a second exporter, or another worker answering /metrics, does)."""
    reader = multiproc.MultiprocessCollector(tmp_path, CATALOG)
    compactor = multiproc.MultiprocessCollector(tmp_path, CATALOG)
    models = [f"model-{i}" for i in range(100)]

    def generation() -> None:
        read, write = os.pipe()

        def worker() -> None:
            os.close(write)
            recorder = recorder_in(tmp_path)
            for model in models:
                recorder.record_request_counter(model, model)
                recorder.record_request_latency(model, model, 0.0, 0.2)
            os.read(read, 1)  # until the parent closes its end

        pid = in_child(worker)
        os.close(read)
        while not process_files(tmp_path):
            time.sleep(0.005)
        list(reader.collect())  # the worker's entries are parsed (and cached) live
        os.close(write)
        assert wait(pid) == 0
        list(compactor.collect())  # folds the exited worker's file into the archive
        list(reader.collect())

    tracemalloc.start()
    try:
        for _ in range(10):  # traced too: what a steady state replaces is counted both times
            generation()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(30):
            generation()
            assert len(reader.cached_files) <= len(process_files(tmp_path))
            assert len(compactor.cached_files) <= len(process_files(tmp_path))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert requests(tmp_path, "model-0") == 40
    # Each stale parse held about 10 KB (a hundred models' entries): 30 of them would be 300 KB.
    assert grown < 64 * 1024, f"the scrapers grew by {grown} bytes over 30 worker generations"
    assert merged(tmp_path)  # still answering
