"""Several processes recording into one directory: merge rules, compaction, crashes, bounds.

Child processes are real (``os.fork``); each records through a real Recorder over
``PrometheusBackend(multiprocess_dir=...)`` and exits (or is killed). Expositions are
prometheus_client's own, parsed back with tests/expo.py.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import signal
import struct
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder, catalog
from inference_metrics.backends import multiproc
from inference_metrics.exposition import TEXT, negotiate, render, render_pieces
from inference_metrics.gzip_cache import GzipCache
from inference_metrics.recorder import DEFAULT_MAX_SERIES, OVERFLOW_LABEL_VALUE
from inference_metrics.simulate import simulate_pools, simulate_request

from .expo import parse_text

REQUESTS = "inference_model_request_total"
OPENMETRICS = negotiate("application/openmetrics-text; version=1.0.0")


def in_child(work: Callable[[], object]) -> int:
    """Fork; the child runs ``work`` and exits 0 (1 on an exception). Returns the child's pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            work()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def run_child(work: Callable[[], object]) -> None:
    assert wait(in_child(work)) == 0


def recorder_in(directory: Path, max_series: int = multiproc.DEFAULT_MAX_SERIES) -> Recorder:
    backend = PrometheusBackend(
        CollectorRegistry(), multiprocess_dir=directory, max_series=max_series
    )
    return Recorder(backend)


def merged(directory: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the merged exposition of ``directory``, read by a non-writing collector."""
    registry = CollectorRegistry()
    registry.register(multiproc.MultiprocessCollector(directory, catalog.CATALOG))
    text = generate_latest(registry).decode()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in parse_text(text).values():
        samples.update(family.samples)
    return samples


def value(directory: Path, metric: str, **labels: str) -> float | None:
    return merged(directory).get((metric, frozenset(labels.items())))


def requests(directory: Path, model: str = "m") -> float | None:
    return value(directory, REQUESTS, model_name=model, target_model_name=model)


def count_requests(directory: Path, n: int, model: str = "m") -> Callable[[], object]:
    def work() -> None:
        recorder = recorder_in(directory)
        for _ in range(n):
            recorder.record_request_counter(model, model)

    return work


def process_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if multiproc.PROCESS_FILE_RE.fullmatch(n))


# --- merge rules --------------------------------------------------------------------------------


def test_counters_are_summed_over_every_process_that_wrote(tmp_path: Path) -> None:
    for n in (3, 5, 7):
        run_child(count_requests(tmp_path, n))
    recorder = recorder_in(tmp_path)
    recorder.record_request_counter("m", "m")
    assert requests(tmp_path) == 16


def test_histograms_are_summed_bucket_by_bucket(tmp_path: Path) -> None:
    def work(latency: float) -> Callable[[], object]:
        return lambda: recorder_in(tmp_path).record_request_latency("m", "m", 10.0, 10.0 + latency)

    for latency in (0.3, 0.3, 2.5):
        run_child(work(latency))
    name = "inference_model_request_duration_seconds"
    labels = {"model_name": "m", "target_model_name": "m"}
    assert value(tmp_path, name + "_bucket", le="0.4", **labels) == 2
    assert value(tmp_path, name + "_bucket", le="3.0", **labels) == 3
    assert value(tmp_path, name + "_count", **labels) == 3
    assert value(tmp_path, name + "_sum", **labels) == pytest.approx(3.1)


def test_running_requests_count_live_processes_only(tmp_path: Path) -> None:
    run_child(lambda: recorder_in(tmp_path).record_running_request_started("m"))
    recorder = recorder_in(tmp_path)
    recorder.record_running_request_started("m")
    recorder.record_running_request_started("m")
    assert value(tmp_path, "inference_model_running_requests", model_name="m") == 2


def test_running_requests_stay_exposed_at_zero_once_their_processes_exited(tmp_path: Path) -> None:
    run_child(lambda: recorder_in(tmp_path).record_running_request_started("m"))
    assert value(tmp_path, "inference_model_running_requests", model_name="m") == 0


def test_a_pool_gauge_holds_the_most_recent_value_set_by_any_process(tmp_path: Path) -> None:
    recorder = recorder_in(tmp_path)
    recorder.record_pool_queue_size("pool", 5)
    run_child(lambda: recorder_in(tmp_path).record_pool_queue_size("pool", 9))
    assert value(tmp_path, "inference_pool_average_queue_size", name="pool") == 9
    recorder.record_pool_queue_size("pool", 4)
    assert value(tmp_path, "inference_pool_average_queue_size", name="pool") == 4


def test_extension_info_is_exposed_once_however_many_processes_set_it(tmp_path: Path) -> None:
    for _ in range(3):
        run_child(lambda: recorder_in(tmp_path).record_extension_info("abc", "v1"))
    recorder_in(tmp_path).record_extension_info("abc", "v1")
    info = [key for key in merged(tmp_path) if key[0] == "inference_extension_info"]
    assert info == [
        ("inference_extension_info", frozenset({("commit", "abc"), ("build_ref", "v1")}))
    ]
    assert value(tmp_path, "inference_extension_info", commit="abc", build_ref="v1") == 1


def test_a_forked_child_counts_into_its_own_file_and_nothing_twice(tmp_path: Path) -> None:
    recorder = recorder_in(tmp_path)
    recorder.record_request_counter("m", "m")

    def child() -> None:
        recorder.record_request_counter("m", "m")
        recorder.record_request_counter("m", "m")

    run_child(child)
    recorder.record_request_counter("m", "m")
    assert requests(tmp_path) == 4


def test_a_child_that_cannot_create_its_file_records_nothing_and_counts_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = recorder_in(tmp_path)
    recorder.record_request_counter("m", "m")

    def child() -> None:
        recorder.record_request_counter("m", "m")  # into private memory: seen nowhere

    real_open = os.open

    def refuse_new_files(path: object, flags: int, *args: int) -> int:
        if flags & os.O_CREAT and str(path).endswith(".new"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse_new_files)
    pid = in_child(child)
    monkeypatch.undo()
    assert wait(pid) == 0
    assert requests(tmp_path) == 1
    assert len(process_files(tmp_path)) == 1


def test_two_stores_in_one_process_have_files_of_their_own(tmp_path: Path) -> None:
    first = multiproc.MultiprocessStore(tmp_path)
    second = multiproc.MultiprocessStore(tmp_path)
    assert first.path != second.path
    assert str(os.getpid()) in first.path.name


def test_the_environment_variable_still_names_the_directory_with_a_deprecation_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(multiproc.ENV_VAR, str(tmp_path))
    with pytest.warns(DeprecationWarning, match=r"PrometheusBackend\.from_env\(\)"):
        backend = PrometheusBackend(CollectorRegistry())
    Recorder(backend).record_request_counter("m", "m")
    assert requests(tmp_path) == 1


def test_from_env_takes_the_directory_from_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(multiproc.ENV_VAR, str(tmp_path))
    Recorder(PrometheusBackend.from_env(CollectorRegistry())).record_request_counter("m", "m")
    assert requests(tmp_path) == 1


def test_from_env_without_the_variable_is_a_single_process_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(multiproc.ENV_VAR, raising=False)
    assert PrometheusBackend.from_env(CollectorRegistry()).multiprocess is None


def test_a_directory_given_explicitly_is_used_whatever_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(multiproc.ENV_VAR, str(tmp_path / "not-this-one"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend = PrometheusBackend(CollectorRegistry(), multiprocess_dir=tmp_path)
    Recorder(backend).record_request_counter("m", "m")
    assert requests(tmp_path) == 1


@pytest.mark.parametrize(("environ", "expected"), [({}, None), ({multiproc.ENV_VAR: ""}, None)])
def test_an_unset_or_empty_variable_names_no_directory(
    environ: dict[str, str], expected: None
) -> None:
    assert multiproc.multiprocess_dir_from_env(environ) is expected


def test_the_fork_handler_is_registered_by_the_first_store_not_by_the_import(
    tmp_path: Path,
) -> None:
    script = (
        "import os\n"
        "ours = []\n"
        "register = os.register_at_fork\n"
        "def counting(**hooks):\n"
        "    ours.extend(h for h in hooks.values() if h.__module__.startswith('inference_'))\n"
        "    register(**hooks)\n"
        "os.register_at_fork = counting\n"
        "import inference_metrics\n"
        "from inference_metrics.backends import multiproc\n"
        "print(len(ours))\n"
        f"multiproc.MultiprocessStore({str(tmp_path)!r})\n"
        f"multiproc.MultiprocessStore({str(tmp_path)!r})\n"
        "print(len(ours))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["0", "3"]  # before, after in parent, after in child


def test_the_overflow_marker_and_default_bound_are_the_recorders() -> None:
    assert multiproc.OVERFLOW_LABEL_VALUE == OVERFLOW_LABEL_VALUE
    assert multiproc.DEFAULT_MAX_SERIES == DEFAULT_MAX_SERIES


def test_the_merged_exposition_equals_the_single_process_one_byte_for_byte(
    tmp_path: Path,
) -> None:
    single, multi = CollectorRegistry(), CollectorRegistry()
    recorders = [
        Recorder(PrometheusBackend(single)),
        Recorder(PrometheusBackend(multi, multiprocess_dir=tmp_path)),
    ]
    for recorder in recorders:
        rng = random.Random(7)
        for i in range(300):
            simulate_request(recorder, rng, 1000.0 + i)
        simulate_pools(recorder, rng)
        recorder.record_extension_info("abc", "v1")
        recorder.record_running_request_started("llama")
    assert generate_latest(multi) == generate_latest(single)
    openmetrics = negotiate("application/openmetrics-text; version=1.0.0")
    assert render(multi, openmetrics) == render(single, openmetrics)


def test_a_removed_pod_gauge_is_hidden_in_every_process_until_set_again(tmp_path: Path) -> None:
    run_child(lambda: recorder_in(tmp_path).record_pool_per_pod_queue_size("pool", "pod-a", 3))
    recorder = recorder_in(tmp_path)
    recorder.record_pool_per_pod_queue_size("pool", "pod-a", 4)
    recorder.remove_pod("pool", "pod-a")
    pod = {"name": "pool", "model_server_pod": "pod-a"}
    assert value(tmp_path, "inference_pool_per_pod_queue_size", **pod) is None
    run_child(lambda: recorder_in(tmp_path).record_pool_per_pod_queue_size("pool", "pod-a", 7))
    assert value(tmp_path, "inference_pool_per_pod_queue_size", **pod) == 7


def test_removing_a_counters_series_never_takes_counts_back(tmp_path: Path) -> None:
    run_child(count_requests(tmp_path, 2))
    backend = PrometheusBackend(CollectorRegistry(), multiprocess_dir=tmp_path)
    (counter,) = backend.register([catalog.REQUEST_TOTAL])
    counter.bind(("m", "m")).add(1)
    counter.remove(("m", "m"))
    assert requests(tmp_path) == 3


def test_our_writer_renders_the_merged_view_as_prometheus_client_does(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    collector = multiproc.MultiprocessCollector(tmp_path, catalog.CATALOG)
    registry.register(collector)
    recorder = recorder_in(tmp_path)

    def ours(openmetrics: bool) -> bytes:
        return render(registry, OPENMETRICS if openmetrics else TEXT)

    rng = random.Random(3)
    for round_ in range(3):  # the second and third renders reuse unchanged series' lines
        run_child(lambda: simulate_request(recorder_in(tmp_path), rng, 1000.0))
        for i in range(50):
            simulate_request(recorder, rng, 1000.0 + i)
        simulate_pools(recorder, rng)
        recorder.record_pool_per_pod_queue_size("pool", f"pod-{round_}", round_)
        recorder.record_running_request_started('say "hi"\\n')
        if round_ == 2:
            recorder.remove_pod("pool", "pod-0")
        # prometheus_client's own encoders over the families' samples, whatever render writes.
        assert ours(False) == generate_latest(registry)
        assert ours(True) == openmetrics_latest(registry)  # type: ignore[no-untyped-call]


# --- the series bound across processes ----------------------------------------------------------


def test_the_series_bound_holds_across_processes(tmp_path: Path) -> None:
    def work(models: list[str]) -> Callable[[], None]:
        def record() -> None:
            recorder = recorder_in(tmp_path, max_series=3)
            for model in models:
                recorder.record_request_counter(model, model)

        return record

    for models in (["a", "b"], ["c", "d"], ["e", "a"]):
        run_child(work(models))
    counted = {
        dict(labels)["model_name"]: v
        for (name, labels), v in merged(tmp_path).items()
        if name == REQUESTS
    }
    assert counted == {"a": 2, "b": 1, "c": 1, OVERFLOW_LABEL_VALUE: 2}


def test_a_label_set_once_admitted_keeps_its_series_in_every_process(tmp_path: Path) -> None:
    run_child(lambda: recorder_in(tmp_path, max_series=1).record_request_counter("a", "a"))
    run_child(lambda: recorder_in(tmp_path, max_series=1).record_request_counter("b", "b"))
    recorder = recorder_in(tmp_path, max_series=1)
    recorder.record_request_counter("b", "b")
    recorder.record_request_counter("a", "a")
    assert requests(tmp_path, "a") == 2
    assert requests(tmp_path, OVERFLOW_LABEL_VALUE) == 2


def test_a_half_written_label_line_is_dropped_and_admission_goes_on(tmp_path: Path) -> None:
    recorder_in(tmp_path, max_series=2).record_request_counter("a", "a")
    with open(tmp_path / multiproc.LABELS, "ab") as f:
        f.write(b'["model_name,target_model_name",["zz')
    recorder = recorder_in(tmp_path, max_series=2)
    recorder.record_request_counter("b", "b")
    recorder.record_request_counter("c", "c")
    assert requests(tmp_path, "b") == 1
    assert requests(tmp_path, OVERFLOW_LABEL_VALUE) == 1
    assert (tmp_path / multiproc.LABELS).read_bytes().count(b"\n") == 2


# --- compaction ----------------------------------------------------------------------------------


def test_files_of_exited_processes_are_folded_into_one_archive(tmp_path: Path) -> None:
    for _ in range(20):
        run_child(count_requests(tmp_path, 5))
    assert len(process_files(tmp_path)) == 20
    assert requests(tmp_path) == 100
    assert process_files(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["archive.db", "compact.lock", "labels.db"]
    run_child(count_requests(tmp_path, 1))
    assert requests(tmp_path) == 101


def test_files_of_live_processes_are_never_compacted(tmp_path: Path) -> None:
    recorder = recorder_in(tmp_path)
    recorder.record_request_counter("m", "m")
    assert requests(tmp_path) == 1
    recorder.record_request_counter("m", "m")
    assert requests(tmp_path) == 2
    assert len(process_files(tmp_path)) == 1


def test_a_compaction_killed_before_its_rename_loses_and_doubles_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_child(count_requests(tmp_path, 4))

    def die(*args: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def compact_and_die() -> None:
        monkeypatch.setattr(os, "replace", die)
        merged(tmp_path)

    assert wait(in_child(compact_and_die)) == -signal.SIGKILL
    assert (tmp_path / "archive.db.new").exists()
    run_child(count_requests(tmp_path, 1))
    assert requests(tmp_path) == 5
    assert requests(tmp_path) == 5


def test_a_compaction_killed_between_rename_and_unlink_counts_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_child(count_requests(tmp_path, 4))
    run_child(count_requests(tmp_path, 3))

    def compact_and_die() -> None:
        real_unlink = Path.unlink
        calls: list[Path] = []

        def unlink(self: Path, missing_ok: bool = False) -> None:
            if self.name.startswith("proc-"):
                if calls:  # the second process file: die after the rename and one unlink
                    os.kill(os.getpid(), signal.SIGKILL)
                calls.append(self)
            real_unlink(self, missing_ok=missing_ok)

        monkeypatch.setattr(Path, "unlink", unlink)
        merged(tmp_path)

    assert wait(in_child(compact_and_die)) == -signal.SIGKILL
    assert len(process_files(tmp_path)) == 1  # renamed archive, one absorbed file still there
    assert requests(tmp_path) == 7
    assert process_files(tmp_path) == []
    assert requests(tmp_path) == 7


def test_processes_killed_mid_write_and_mid_compaction_lose_no_completed_count(
    tmp_path: Path,
) -> None:
    """Writers count requests and, after each, publish how many they completed; scrapers merge
    (and compact) in a loop. Both are SIGKILLed at random moments, over and over. Every count a
    writer completed is in the final merge; a killed writer may have one more, in flight."""
    rng = random.Random(10)
    writers = 12
    # The writers publish their completed counts with a write(2) each (through a shared mapping,
    # on this project's VM, a child's stores were seen to get lost now and then).
    published = tmp_path / "completed"
    published.write_bytes(bytes(8 * writers))
    directory = tmp_path / "metrics"
    directory.mkdir()

    def writer(slot: int) -> Callable[[], None]:
        def work() -> None:
            fd = os.open(published, os.O_WRONLY)
            recorder = recorder_in(directory)
            n = 0
            while True:
                recorder.record_request_counter("m", "m")
                n += 1
                os.pwrite(fd, struct.pack("<Q", n), 8 * slot)

        return work

    def scraper() -> None:
        while True:
            merged(directory)

    previous = 0.0
    for round_ in range(writers):
        pids = [in_child(writer(round_)), in_child(scraper), in_child(scraper)]
        os.sched_yield()
        for pid in rng.sample(pids, len(pids)):
            # Let it run for a random while (a few scrapes' worth), then kill it.
            seen = requests(directory) or 0.0
            assert seen >= previous  # no counter ever goes backwards
            previous = seen
            os.kill(pid, signal.SIGKILL)
            assert wait(pid) == -signal.SIGKILL
    done = sum(struct.unpack_from(f"<{writers}Q", published.read_bytes()))
    final = requests(directory) or 0.0
    assert done <= final <= done + writers
    assert done > 0
    assert process_files(directory) == []


def test_a_file_abandoned_while_being_created_is_removed_once_old(tmp_path: Path) -> None:
    young = tmp_path / f"proc-{'a' * 32}.new"
    old = tmp_path / f"proc-{'b' * 32}.new"
    young.write_bytes(b"")
    old.write_bytes(b"")
    os.utime(old, (0, 0))
    merged(tmp_path)
    assert young.exists()
    assert not old.exists()


# --- bad input -----------------------------------------------------------------------------------


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"multiprocess_dir '.*nope' does not exist"):
        PrometheusBackend(CollectorRegistry(), multiprocess_dir=tmp_path / "nope")


def test_a_file_given_as_the_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        PrometheusBackend(CollectorRegistry(), multiprocess_dir=tmp_path / "f")


def test_a_directory_without_write_access_is_a_clear_error(tmp_path: Path) -> None:
    # /proc refuses new files to every user, root included.
    with pytest.raises(ValueError, match="multiprocess_dir '/proc' is not writable"):
        PrometheusBackend(CollectorRegistry(), multiprocess_dir="/proc")


def test_a_directory_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="multiprocess_dir must be a path"):
        PrometheusBackend(CollectorRegistry(), multiprocess_dir=3)  # type: ignore[arg-type]


def test_foreign_files_are_ignored_with_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder_in(tmp_path).record_request_counter("m", "m")
    (tmp_path / "notes.txt").write_text("hello")
    fake = tmp_path / f"proc-1-2-{'0' * 32}.db"
    fake.write_bytes(b"\x00" * 100)
    with caplog.at_level(logging.WARNING, logger=multiproc.__name__):
        collector = multiproc.MultiprocessCollector(tmp_path, catalog.CATALOG)
        registry = CollectorRegistry()
        registry.register(collector)
        for _ in range(3):
            assert b"inference_model_request_total{" in generate_latest(registry)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert any("notes.txt" in m for m in warned)
    assert any(fake.name in m for m in warned)
    assert fake.exists()


def test_a_gzip_scrape_of_the_merged_view_decompresses_to_its_render(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(multiproc.MultiprocessCollector(tmp_path, catalog.CATALOG))
    recorder = recorder_in(tmp_path)
    cache = GzipCache(chunk_bytes=2048)
    rng = random.Random(5)
    for round_ in range(3):  # later rounds reuse the chunks of series another process left alone
        run_child(lambda: simulate_request(recorder_in(tmp_path), rng, 1000.0))
        for i in range(20):
            simulate_request(recorder, rng, 1000.0 + i)
        recorder.record_pool_per_pod_queue_size("pool", f"pod-{round_}", round_)
        for representation in (TEXT, negotiate("application/openmetrics-text; version=1.0.0")):
            body = cache.compress(*render_pieces(registry, representation), representation)
            assert gzip.decompress(body) == render(registry, representation)
