"""Native histograms and exemplars in multiprocess mode: each process' native buckets merge
exactly across processes (finer schemas reduced to the coarsest, counts added), exemplars merge as
the latest per bucket, through compaction and fork; a damaged entry, a torn exemplar slot or a
full filesystem stay ordinary faults (docs/native-histograms.md, docs/multiprocess.md).

Child processes are real (``os.fork``) and record through a real Recorder over
``PrometheusBackend(multiprocess_dir=..., histograms=..., exemplars=...)``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder, catalog
from inference_metrics.backends import multiproc
from inference_metrics.backends.multiproc import series as mp_series
from inference_metrics.backends.multiproc.layout import (
    ARCHIVE,
    ENTRIES_AT,
    EXEMPLARS,
    NATIVE,
    Header,
    parse_entries,
)
from inference_metrics.backends.native import NativeHistogram, merge
from inference_metrics.exposition import PROTOBUF, TEXT, negotiate, render

from .client_model import decode_stream
from .test_multiproc import in_child, process_files, run_child, wait
from .test_multiproc_faults import fill, report_from_child, small_tmpfs
from .test_protobuf import decoded_buckets, decoded_labels

LATENCY = catalog.REQUEST_DURATION.name
OPENMETRICS = negotiate("application/openmetrics-text; version=1.0.0")


def backend(directory: Path, **options: Any) -> tuple[CollectorRegistry, Recorder]:
    registry = CollectorRegistry()
    return registry, Recorder(PrometheusBackend(registry, multiprocess_dir=directory, **options))


def spread(seed: int, n: int) -> list[float]:
    """``n`` latencies over about fifteen decades (enough buckets to halve the resolution)."""
    rng = random.Random(seed)
    return [10.0 ** rng.uniform(-9, 6) for _ in range(n)]


def observe_all(directory: Path, values: list[float], **options: Any) -> Callable[[], None]:
    def work() -> None:
        _, recorder = backend(directory, **options)
        for value in values:
            recorder.record_request_latency("m", "t", 0.0, value)

    return work


def decoded(registry: CollectorRegistry) -> Any:
    (family,) = [f for f in decode_stream(render(registry, PROTOBUF)) if f.name == LATENCY]
    (metric,) = family.metric
    return metric.histogram


def assert_native_equal(histogram: Any, expected: NativeHistogram) -> None:
    assert histogram.sample_count == expected.count
    assert histogram.schema == expected.schema
    assert histogram.zero_count == expected.zero_count
    assert decoded_buckets(histogram.positive_span, histogram.positive_delta) == expected.positive
    assert decoded_buckets(histogram.negative_span, histogram.negative_delta) == expected.negative


def reference(*batches: list[float]) -> NativeHistogram:
    """What the processes' histograms merge to: one NativeHistogram per process, merged."""
    parts = []
    for batch in batches:
        part = NativeHistogram()
        part.observe(batch)
        parts.append(part)
    return merge(parts)


# --- native buckets ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["native", "both"])
def test_three_processes_native_buckets_merge_exactly(tmp_path: Path, kind: str) -> None:
    batches = [spread(1, 700), [0.25 * (1 + i % 40) for i in range(500)], spread(3, 40)]
    for batch in batches:
        run_child(observe_all(tmp_path, batch, histograms=kind))
    registry, _ = backend(tmp_path, histograms=kind)
    expected = reference(*batches)
    assert expected.schema < 3  # the wide batch halved its process' resolution
    histogram = decoded(registry)
    assert_native_equal(histogram, expected)
    assert histogram.sample_sum == pytest.approx(sum(sum(b) for b in batches))
    if kind == "both":
        bounds = catalog.REQUEST_DURATION.buckets or ()
        every = [value for batch in batches for value in batch]
        cumulative = {b.upper_bound: b.cumulative_count for b in histogram.bucket}
        assert cumulative == {bound: sum(v <= bound for v in every) for bound in bounds}


def test_live_processes_are_merged_while_they_record(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    go_read, go_write = os.pipe()

    def worker() -> None:
        _, recorder = backend(tmp_path, histograms="native")
        for value in spread(5, 300):
            recorder.record_request_latency("m", "t", 0.0, value)
        os.write(write_end, b"x")  # recorded; stay alive until told to end
        os.read(go_read, 1)

    pid = in_child(worker)
    assert os.read(read_end, 1) == b"x"
    try:
        registry, recorder = backend(tmp_path, histograms="native")
        for value in spread(6, 200):
            recorder.record_request_latency("m", "t", 0.0, value)
        assert_native_equal(decoded(registry), reference(spread(5, 300), spread(6, 200)))
        assert len(process_files(tmp_path)) == 2  # both alive: nothing compacted
    finally:
        os.write(go_write, b"x")
        assert wait(pid) == 0


def test_a_forked_child_starts_its_native_histogram_from_zero(tmp_path: Path) -> None:
    registry, recorder = backend(tmp_path, histograms="native")
    before, in_child_values, after = spread(7, 300), spread(8, 200), spread(9, 100)
    for value in before:
        recorder.record_request_latency("m", "t", 0.0, value)

    def child() -> None:
        for value in in_child_values:
            recorder.record_request_latency("m", "t", 0.0, value)

    run_child(child)
    for value in after:
        recorder.record_request_latency("m", "t", 0.0, value)
    assert_native_equal(decoded(registry), reference(before + after, in_child_values))


def test_exited_processes_native_buckets_and_exemplars_survive_compaction(
    tmp_path: Path,
) -> None:
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("test")
    batches = [spread(10, 400), spread(11, 400)]
    for batch in batches:

        def work(batch: list[float] = batch) -> None:
            _, recorder = backend(tmp_path, histograms="native", exemplars=True)
            for value in batch:
                with tracer.start_as_current_span("request"):
                    recorder.record_request_latency("m", "t", 0.0, value)

        run_child(work)
    registry, _ = backend(tmp_path, histograms="native", exemplars=True)
    first = render(registry, PROTOBUF)  # folds both exited processes into the archive
    assert len(process_files(tmp_path)) == 1  # ours: the exited ones are in the archive
    archive = (tmp_path / ARCHIVE).read_bytes()
    keys = [json.loads(e.key) for e in entries(archive)]
    roles = {key[0] for key in keys if isinstance(key, list)}  # the first lists what it absorbed
    assert {NATIVE, EXEMPLARS} <= roles
    assert render(registry, PROTOBUF) == first  # the archive shows what the files showed
    histogram = decoded(registry)
    assert_native_equal(histogram, reference(*batches))
    (entry,) = histogram.bucket  # the latest exemplar, on a +Inf bucket entry
    assert entry.exemplar.value == batches[1][-1]


def entries(data: bytes) -> list[Any]:
    found, _ = parse_entries(data, ENTRIES_AT, Header.unpack(data).used)
    return found


# --- exemplars -----------------------------------------------------------------------------------


def test_exemplars_merge_as_the_latest_per_bucket_across_processes(tmp_path: Path) -> None:
    """Each process stamps its exemplars from a clock of its own: process ``w`` at
    ``1000 + 3 i + w`` for its ``i``-th observation, so which one is latest is known."""
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("test")
    rng = random.Random(12)
    values = [[rng.uniform(0.001, 30.0) for _ in range(60)] for _ in range(3)]
    logs = [tmp_path / f"log-{w}.json" for w in range(3)]
    directory = tmp_path / "mp"
    directory.mkdir()
    for w in range(3):

        def work(w: int = w) -> None:
            clock = iter(1000.0 + 3 * i + w for i in range(10**6))
            mp_series._now = lambda: next(clock)  # in this child only
            _, recorder = backend(directory, exemplars=True)
            made = []
            for i, value in enumerate(values[w]):
                with tracer.start_as_current_span("request") as span:
                    recorder.record_request_latency("m", "t", 0.0, value)
                made.append((value, f"{span.get_span_context().span_id:016x}", 1000.0 + 3 * i + w))
            logs[w].write_text(json.dumps(made))

        run_child(work)
    bounds = catalog.REQUEST_DURATION.buckets or ()
    latest: dict[float, tuple[float, str, float]] = {}
    for log in logs:
        for value, span_id, when in json.loads(log.read_text()):
            le = next((b for b in bounds if value <= b), float("inf"))
            if le not in latest or when > latest[le][2]:
                latest[le] = (value, span_id, when)
    registry, _ = backend(directory, exemplars=True)
    shown = {
        bucket.upper_bound: (
            bucket.exemplar.value,
            dict(decoded_labels(bucket.exemplar))["span_id"],
            bucket.exemplar.timestamp.seconds,
        )
        for bucket in decoded(registry).bucket
        if bucket.HasField("exemplar")
    }
    assert shown == {le: (v, span, int(when)) for le, (v, span, when) in latest.items()}
    page = render(registry, OPENMETRICS).decode()
    assert sum(" # {" in line for line in page.splitlines()) == len(latest)
    assert render(registry, TEXT) == generate_latest(registry)  # and no exemplar in text


def test_no_exemplar_is_recorded_outside_a_sampled_span(tmp_path: Path) -> None:
    run_child(observe_all(tmp_path, [0.1, 0.2, 3.0], exemplars=True))
    registry, _ = backend(tmp_path, exemplars=True)
    assert " # {" not in render(registry, OPENMETRICS).decode()
    assert not any(b.HasField("exemplar") for b in decoded(registry).bucket)


def _slots(path: Path, role: str) -> tuple[int, int]:
    """Where the request duration's ``role`` entry in ``path`` keeps its numbers (the last
    one: the series', see the layout): (byte offset, count)."""
    data = path.read_bytes()
    *_, entry = [e for e in entries(data) if json.loads(e.key)[:2] == [role, LATENCY]]
    return entry.values_at, entry.value_count


def test_a_torn_exemplar_slot_is_skipped_and_the_others_are_shown(tmp_path: Path) -> None:
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("test")

    def work() -> None:
        _, recorder = backend(tmp_path, exemplars=True)
        for value in (0.003, 0.3):  # the first bucket's slot, and the 0.4 bucket's
            with tracer.start_as_current_span("request"):
                recorder.record_request_latency("m", "t", 0.0, value)

    run_child(work)
    (name,) = process_files(tmp_path)
    path = tmp_path / name
    at, _ = _slots(path, EXEMPLARS)
    with open(path, "r+b") as f:  # the first slot's "done" no longer equals its "begun"
        f.seek(at)
        (done,) = struct.unpack("<d", f.read(8))
        f.seek(at)
        f.write(struct.pack("<d", done - 1))
    registry = CollectorRegistry()
    registry.register(
        multiproc.MultiprocessCollector(tmp_path, [catalog.REQUEST_DURATION], exemplars=True)
    )
    shown = [b.upper_bound for b in decoded(registry).bucket if b.HasField("exemplar")]
    assert shown == [0.4]


# --- faults and settings -------------------------------------------------------------------------


def test_a_damaged_native_entry_is_left_out_and_the_scrape_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_child(observe_all(tmp_path, spread(13, 50), histograms="native"))
    (name,) = process_files(tmp_path)
    path = tmp_path / name
    at, _ = _slots(path, NATIVE)
    with open(path, "r+b") as f:  # steps 99: no schema has that
        f.seek(at)
        f.write(struct.pack("<d", 99.0))
    registry = CollectorRegistry()
    registry.register(
        multiproc.MultiprocessCollector(
            tmp_path, [catalog.REQUEST_DURATION], histograms="native", store_metrics=False
        )
    )
    with caplog.at_level(logging.WARNING):
        assert render(registry, PROTOBUF) == b""
        assert render(registry, TEXT) == b""
    assert f"{LATENCY}: series whose #native entry is damaged are left out" in caplog.text


def test_a_collector_showing_classic_leaves_out_native_only_series_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_child(observe_all(tmp_path, [0.5, 1.5], histograms="native"))
    registry = CollectorRegistry()
    registry.register(multiproc.MultiprocessCollector(tmp_path, [catalog.REQUEST_DURATION]))
    with caplog.at_level(logging.WARNING):
        assert LATENCY not in render(registry, TEXT).decode()
    assert f"{LATENCY}: series recorded without classic buckets" in caplog.text
    native = CollectorRegistry()
    native.register(
        multiproc.MultiprocessCollector(tmp_path, [catalog.REQUEST_DURATION], histograms="native")
    )
    assert decoded(native).sample_count == 2


def test_a_native_series_grows_through_a_full_filesystem_without_losing_a_count(
    tmp_path: Path,
) -> None:
    values = spread(14, 600)

    def work(directory: Path) -> dict[str, object]:
        registry, recorder = backend(directory, histograms="native")
        recorder.record_request_latency("m", "t", 0.0, 1.0)
        filler = fill(directory)
        for value in values:  # new buckets: new #native entries, in private memory
            recorder.record_request_latency("m", "t", 0.0, value)
        filler.unlink()
        recorder.record_request_counter("after", "after")  # space again: into the file
        histogram = decoded(registry)
        return {
            "count": histogram.sample_count,
            "buckets": decoded_buckets(histogram.positive_span, histogram.positive_delta),
        }

    with small_tmpfs(tmp_path / "fs", "1m") as directory:
        ended, seen = report_from_child(lambda: work(directory))
    assert ended == "exit 0", seen
    assert isinstance(seen, dict)
    expected = reference([1.0, *values])
    assert seen["count"] == expected.count
    assert {int(k): v for k, v in seen["buckets"].items()} == expected.positive


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.one_of(
            st.floats(min_value=-1e15, max_value=1e15, allow_nan=False),
            st.floats(min_value=1e-12, max_value=1e12).map(lambda v: v * 1.0000001),
            st.sampled_from([0.0, 1.0, 2.0**-129, 1e-300]),
        ),
        max_size=400,
    )
)
def test_a_process_native_entries_hold_what_a_native_histogram_fed_the_same_values_holds(
    tmp_path_factory: pytest.TempPathFactory, values: list[float]
) -> None:
    """Slots filled in place, entries replaced by larger and coarser ones: whatever the values,
    the merged view is the in-process histogram's."""
    directory = tmp_path_factory.mktemp("native")
    spec = catalog.REQUEST_DURATION
    (instrument,) = PrometheusBackend(
        CollectorRegistry(), multiprocess_dir=directory, histograms="native"
    ).register([spec])
    registry = CollectorRegistry()
    registry.register(multiproc.MultiprocessCollector(directory, [spec], histograms="native"))
    series = instrument.bind(("m", "t"))
    for value in values:
        series.observe(value)
    if not values:
        assert render(registry, PROTOBUF) == b""
        return
    expected = NativeHistogram()
    expected.observe(values)
    assert_native_equal(decoded(registry), expected)
