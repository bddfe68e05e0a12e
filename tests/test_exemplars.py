"""Exemplars: checked labels within OpenMetrics' 128 characters, the ids of the current sampled
OpenTelemetry span, the latest per bucket, in one process and merged across several."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.openmetrics.exposition import generate_latest

from inference_metrics.backends.exemplars import (
    MAX_LABEL_CHARS,
    Exemplar,
    ExemplarSlots,
    exemplar,
    merge_latest,
    openmetrics_exemplar,
    pack_ids,
    span_reader,
    trace_exemplar,
    unpack_ids,
)

# --- what an exemplar may hold


def test_labels_of_exactly_128_characters_are_kept() -> None:
    held = exemplar({"a": "x" * 127}, 1.5, 1700000000.25)
    assert held == Exemplar((("a", "x" * 127),), 1.5, 1700000000.25)
    assert MAX_LABEL_CHARS == 128


def test_labels_of_129_characters_are_refused() -> None:
    with pytest.raises(ValueError, match=r"at most 128 characters .* got 129"):
        exemplar([("ab", "x" * 127)], 1.0, 0.0)


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        ({"1a": "x"}, ValueError, "label name must match"),
        ({"a-b": "x"}, ValueError, "label name must match"),
        ({"a": 1}, TypeError, "must have a str value, got 1"),
        ([("a", "x"), ("a", "y")], ValueError, "names must be unique"),
        (["ab"], TypeError, "must be \\(name, value\\) pairs, got 'ab'"),
    ],
)
def test_bad_labels_are_refused(labels: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        exemplar(labels, 1.0, 0.0)


@pytest.mark.parametrize(
    ("value", "timestamp", "error", "message"),
    [
        ("1", 0.0, TypeError, "value must be a number, got '1'"),
        (True, 0.0, TypeError, "value must be a number, got True"),
        (1.0, float("inf"), ValueError, "timestamp must be finite, got inf"),
        (1.0, None, TypeError, "timestamp must be a number, got None"),
    ],
)
def test_a_bad_value_or_timestamp_is_refused(
    value: Any, timestamp: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        exemplar({"a": "b"}, value, timestamp)
    with pytest.raises(error, match=message):
        trace_exemplar((1, 1), value, timestamp)


def test_a_trace_exemplar_names_the_ids_in_lower_case_hex_of_fixed_width() -> None:
    held = trace_exemplar((0xABC, 0x1F), 0.25, 1700000000.5)
    assert held.labels == (("trace_id", "0" * 29 + "abc"), ("span_id", "0" * 14 + "1f"))
    assert sum(len(name) + len(text) for name, text in held.labels) == 63


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ((0, 1), "trace_id must be an int in"),
        ((1 << 128, 1), "trace_id must be an int in"),
        ((True, 1), "trace_id must be an int in"),
        ((1, 0), "span_id must be an int in"),
        ((1, 1 << 64), "span_id must be an int in"),
    ],
)
def test_ids_outside_opentelemetrys_ranges_are_refused(ids: tuple[int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trace_exemplar(ids, 1.0, 0.0)


# --- the current span


def test_inside_a_sampled_span_the_reader_gives_its_ids(sampled: Tracer) -> None:
    read = span_reader()
    with sampled.start_as_current_span("request") as span:
        context = span.get_span_context()
        assert read() == (context.trace_id, context.span_id)
        with sampled.start_as_current_span("child") as child:
            assert read() == (context.trace_id, child.get_span_context().span_id)


def test_the_reader_follows_the_current_span_as_spans_start_and_end(sampled: Tracer) -> None:
    read = span_reader()
    assert read() is None
    with sampled.start_as_current_span("request") as span:
        parent = (span.get_span_context().trace_id, span.get_span_context().span_id)
        assert read() == parent
        with sampled.start_as_current_span("child") as child:
            assert read() == (parent[0], child.get_span_context().span_id)
        assert read() == parent
    assert read() is None


def test_threads_in_different_spans_each_read_their_own(sampled: Tracer) -> None:
    read = span_reader()
    seen: dict[int, set[tuple[int, int] | None]] = {}
    expected: dict[int, tuple[int, int]] = {}
    barrier = threading.Barrier(2)

    def worker(n: int) -> None:
        with sampled.start_as_current_span(f"request-{n}") as span:
            context = span.get_span_context()
            expected[n] = (context.trace_id, context.span_id)
            barrier.wait(timeout=10)
            seen[n] = {read() for _ in range(2000)}

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen == {n: {expected[n]} for n in range(2)}


def test_outside_any_span_the_reader_gives_nothing() -> None:
    assert span_reader()() is None


def test_inside_an_unsampled_span_the_reader_gives_nothing(unsampled: Tracer) -> None:
    with unsampled.start_as_current_span("request") as span:
        assert span.get_span_context().is_valid
        assert span_reader()() is None


def test_the_exemplar_of_a_sampled_span_carries_its_ids_as_opentelemetry_prints_them(
    sampled: Tracer,
) -> None:
    from opentelemetry.trace import format_span_id, format_trace_id

    with sampled.start_as_current_span("request") as span:
        ids = span_reader()()
        assert ids is not None
        held = trace_exemplar(ids, 0.4, 1.0)
    context = span.get_span_context()
    assert dict(held.labels) == {
        "trace_id": format_trace_id(context.trace_id),
        "span_id": format_span_id(context.span_id),
    }


def test_without_the_opentelemetry_api_the_reader_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match="install opentelemetry-api or the 'otel' extra"):
        span_reader()


def test_importing_the_module_imports_no_opentelemetry() -> None:
    code = (
        "import sys, inference_metrics, inference_metrics.backends.exemplars; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


# --- the latest per bucket


def test_a_bucket_keeps_its_latest_exemplar_whatever_the_order_offered() -> None:
    slots = ExemplarSlots(3)
    newer, older = exemplar({"a": "new"}, 1.0, 20.0), exemplar({"a": "old"}, 1.0, 10.0)
    slots.offer(1, newer)
    slots.offer(1, older)
    assert slots.snapshot() == [None, newer, None]


def test_of_two_exemplars_with_one_timestamp_the_one_offered_last_is_kept() -> None:
    slots = ExemplarSlots(1)
    first, second = exemplar({"a": "1"}, 1.0, 5.0), exemplar({"a": "2"}, 2.0, 5.0)
    slots.offer(0, first)
    slots.offer(0, second)
    assert slots[0] is second


def test_a_spans_ids_offered_read_back_as_its_trace_exemplar() -> None:
    slots = ExemplarSlots(2)
    slots.offer_span(1, (0xABC, 0x1F), 0.25, 7.0)
    slots.offer_span(1, (0xDEF, 0x2F), 0.5, 6.0)  # older: not kept
    assert slots.snapshot() == [None, trace_exemplar((0xABC, 0x1F), 0.25, 7.0)]
    slots.offer(1, exemplar({"a": "b"}, 1.0, 7.0))  # as late: kept
    assert slots[1] == exemplar({"a": "b"}, 1.0, 7.0)


def test_the_latest_of_all_buckets_is_what_a_native_histogram_shows() -> None:
    slots = ExemplarSlots(4)
    assert slots.latest() is None
    for bucket, timestamp in ((0, 3.0), (2, 9.0), (3, 4.0)):
        slots.offer(bucket, exemplar({"b": str(bucket)}, 1.0, timestamp))
    latest = slots.latest()
    assert latest is not None
    assert latest.labels == (("b", "2"),)
    assert len(slots) == 4


def test_slots_for_no_buckets_are_refused() -> None:
    with pytest.raises(ValueError, match="buckets must be an int >= 1, got 0"):
        ExemplarSlots(0)


slot_lists = st.integers(1, 6).flatmap(
    lambda buckets: st.lists(
        st.lists(
            st.one_of(
                st.none(),
                st.builds(lambda t: exemplar({"t": str(t)}, 1.0, float(t)), st.integers(0, 10**6)),
            ),
            min_size=buckets,
            max_size=buckets,
        ),
        min_size=1,
        max_size=5,
    )
)


@given(parts=slot_lists)
def test_merged_slots_hold_the_latest_exemplar_of_each_bucket_across_processes(
    parts: list[list[Exemplar | None]],
) -> None:
    merged = merge_latest(parts)
    for bucket, held in enumerate(merged):
        offered = [part[bucket] for part in parts if part[bucket] is not None]
        if not offered:
            assert held is None
        else:
            assert held is not None
            assert held.timestamp == max(one.timestamp for one in offered if one is not None)
            assert any(held is one for one in offered)


def test_processes_with_different_buckets_are_not_merged() -> None:
    with pytest.raises(ValueError, match="parts differ in buckets: 2 != 3"):
        merge_latest([[None] * 3, [None] * 2])
    with pytest.raises(ValueError, match="parts must not be empty"):
        merge_latest([])


# --- OpenMetrics text


def test_an_exemplar_renders_as_prometheus_client_renders_it_in_openmetrics() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("latency_seconds", "L.", buckets=(0.5, 1.0), registry=registry)
    histogram.observe(0.75, exemplar={"trace_id": "ab\\c\n", "span_id": '"d"'})
    line = next(
        line
        for line in generate_latest(registry).decode().splitlines()  # type: ignore[no-untyped-call]
        if line.startswith('latency_seconds_bucket{le="1.0"}')
    )
    timestamp = float(line.rsplit(" ", 1)[1])
    ours = exemplar({"trace_id": "ab\\c\n", "span_id": '"d"'}, 0.75, timestamp)
    assert line.endswith(openmetrics_exemplar(ours))
    assert openmetrics_exemplar(ours).startswith(' # {span_id="\\"d\\"",trace_id="ab\\\\c\\n"} ')


@given(
    trace_id=st.integers(min_value=1, max_value=2**128 - 1),
    span_id=st.integers(min_value=1, max_value=2**64 - 1),
)
def test_span_ids_packed_into_four_floats_come_back_exactly(trace_id: int, span_id: int) -> None:
    packed = pack_ids((trace_id, span_id))
    assert all(isinstance(chunk, float) and chunk < 2**48 for chunk in packed)
    assert unpack_ids(packed) == (trace_id, span_id)


@pytest.mark.parametrize(
    "chunks",
    [(0.0, 0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0), (0.5, 1.0, 1.0, 1.0), (2.0**48, 1, 1, 1),
     (float("nan"), 1, 1, 1), (-1.0, 1, 1, 1), (1.0, 1.0, 1.0)],
)  # fmt: skip
def test_what_is_not_two_packed_ids_unpacks_to_none(chunks: tuple[float, ...]) -> None:
    assert unpack_ids(chunks) is None


def test_slots_replaced_hold_exactly_what_they_were_given() -> None:
    slots = ExemplarSlots(3)
    slots.offer_span(0, (1, 2), 0.5, 100.0)
    given = (None, trace_exemplar((3, 4), 1.5, 90.0), None)
    slots.replace(given)
    assert tuple(slots.snapshot()) == given
    with pytest.raises(ValueError, match=r"exemplars must be one per bucket \(3\), got 2"):
        slots.replace(given[:2])
