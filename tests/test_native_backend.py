"""PrometheusBackend(histograms=..., exemplars=...): native buckets folded from the same
observations as the classic ones, exemplars from the current sampled OpenTelemetry span, and what
each exposition format shows of them (docs/native-histograms.md)."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.trace import Tracer
from prometheus_client import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import CollectorRegistry

from inference_metrics import CATALOG, PrometheusBackend, Recorder
from inference_metrics.backends import store
from inference_metrics.backends.native import (
    DEFAULT_MAX_BUCKETS,
    ZERO_THRESHOLD,
    NativeHistogram,
    native_only_lines,
)
from inference_metrics.backends.store import FOLD_AT, HistogramSeries
from inference_metrics.exposition import PROTOBUF, TEXT, negotiate, render
from inference_metrics.spec import MetricSpec

from .client_model import decode_stream
from .test_protobuf import decoded_buckets, decoded_labels

LATENCY = CATALOG["inference_model_request_duration_seconds"]
SIZES = CATALOG["inference_model_request_sizes"]
OPENMETRICS = negotiate("application/openmetrics-text; version=1.0.0")
KEY = ("m", "t")
VALUES = [0.03, 0.3, 0.31, 2.0, 7.5]


def backend_series(spec: MetricSpec = LATENCY, **options: Any) -> tuple[CollectorRegistry, Any]:
    """A registry and one bound series of ``spec`` in a backend with ``options``."""
    registry = CollectorRegistry()
    (instrument,) = PrometheusBackend(registry, **options).register([spec])
    return registry, instrument.bind(KEY)


def om_latest(registry: CollectorRegistry) -> bytes:
    data: bytes = openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
    return data


def decoded_histogram(registry: CollectorRegistry) -> Any:
    (family,) = [f for f in decode_stream(render(registry, PROTOBUF)) if f.name == LATENCY.name]
    (metric,) = family.metric
    return metric.histogram


def ids_of(span: Any) -> dict[str, str]:
    context = span.get_span_context()
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


# --- the arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize("histograms", ["Native", "exponential", "", None, 3])
def test_histograms_must_be_classic_native_or_both(histograms: Any) -> None:
    with pytest.raises(ValueError, match=r"histograms must be one of \('classic', 'native'"):
        PrometheusBackend(CollectorRegistry(), histograms=histograms)


@pytest.mark.parametrize("exemplars", [1, "yes", None])
def test_exemplars_must_be_a_bool(exemplars: Any) -> None:
    with pytest.raises(TypeError, match="exemplars must be True or False"):
        PrometheusBackend(CollectorRegistry(), exemplars=exemplars)


def test_exemplars_without_the_opentelemetry_api_is_an_import_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match="'otel' extra"):
        PrometheusBackend(CollectorRegistry(), exemplars=True)


def test_without_exemplars_the_opentelemetry_api_is_not_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    registry, series = backend_series(histograms="native")
    series.observe(0.3)
    assert decoded_histogram(registry).sample_count == 1


# --- native buckets ------------------------------------------------------------------------------

observations = st.lists(
    st.one_of(
        st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
        st.sampled_from([0.0, ZERO_THRESHOLD, -ZERO_THRESHOLD, 1.0, 2.0, 0.5]),
    ),
    max_size=FOLD_AT * 2 + 5,
)


@settings(max_examples=80, deadline=None)
@given(
    batches=st.lists(observations, min_size=1, max_size=4), kind=st.sampled_from(["native", "both"])
)
def test_a_native_series_holds_the_buckets_of_a_native_histogram_fed_the_same_values(
    batches: list[list[float]], kind: str
) -> None:
    registry, series = backend_series(histograms=kind)
    reference = NativeHistogram()
    every: list[float] = []
    for batch in batches:
        for value in batch:
            series.observe(value)
        render(registry, TEXT)  # a scrape folds what is pending
        reference.observe(batch)
        every.extend(batch)
    if not every:
        assert render(registry, PROTOBUF) == b""
        return
    histogram = decoded_histogram(registry)
    assert histogram.sample_count == len(every)
    assert histogram.schema == reference.schema
    assert histogram.zero_threshold == ZERO_THRESHOLD
    assert histogram.zero_count == reference.zero_count
    assert decoded_buckets(histogram.positive_span, histogram.positive_delta) == reference.positive
    assert decoded_buckets(histogram.negative_span, histogram.negative_delta) == reference.negative
    assert histogram.sample_sum == series.sum  # the one sum the text formats show too


def test_many_spread_values_halve_the_resolution_to_stay_within_the_bucket_bound() -> None:
    registry, series = backend_series(histograms="native")
    for exponent in range(-40, 40):
        for step in range(8):
            series.observe(2.0**exponent * (1 + step / 8))
    histogram = decoded_histogram(registry)
    buckets = decoded_buckets(histogram.positive_span, histogram.positive_delta)
    assert histogram.schema < 3
    assert len(buckets) <= DEFAULT_MAX_BUCKETS
    assert sum(buckets.values()) == 80 * 8


def test_a_native_only_histogram_shows_its_inf_bucket_count_and_sum_in_text_and_openmetrics() -> (
    None
):
    registry, series = backend_series(histograms="native")
    for value in VALUES:
        series.observe(value)
    lines = (
        f"# HELP {LATENCY.name} {LATENCY.documentation}\n"
        f"# TYPE {LATENCY.name} histogram\n"
        f'{LATENCY.name}_bucket{{le="+Inf",model_name="m",target_model_name="t"}} 5.0\n'
        f'{LATENCY.name}_count{{model_name="m",target_model_name="t"}} 5.0\n'
        f'{LATENCY.name}_sum{{model_name="m",target_model_name="t"}} {sum(VALUES)}\n'
    )
    assert render(registry, TEXT).decode() == lines
    assert render(registry, OPENMETRICS).decode() == lines + "# EOF\n"
    assert render(registry, TEXT) == generate_latest(registry)
    assert render(registry, OPENMETRICS) == om_latest(registry)


def test_a_native_only_histogram_has_no_classic_buckets_in_protobuf() -> None:
    registry, series = backend_series(histograms="native")
    for value in VALUES:
        series.observe(value)
    histogram = decoded_histogram(registry)
    assert list(histogram.bucket) == []
    assert (histogram.sample_count, histogram.schema) == (5, 3)
    assert sum(decoded_buckets(histogram.positive_span, histogram.positive_delta).values()) == 5


def test_both_shows_exactly_the_classic_pages_in_text_and_openmetrics() -> None:
    pages = {}
    for kind in ("classic", "both"):
        registry, series = backend_series(histograms=kind)
        for value in VALUES:
            series.observe(value)
        pages[kind] = (render(registry, TEXT), render(registry, OPENMETRICS))
    assert pages["both"] == pages["classic"]


def test_both_carries_classic_and_native_buckets_in_protobuf() -> None:
    registry, series = backend_series(histograms="both")
    for value in VALUES:
        series.observe(value)
    histogram = decoded_histogram(registry)
    cumulative = {b.upper_bound: b.cumulative_count for b in histogram.bucket}
    assert len(cumulative) == len(LATENCY.buckets or ())  # +Inf implied, as client_golang
    assert (cumulative[0.025], cumulative[0.05], cumulative[0.4], cumulative[5.0]) == (0, 1, 3, 4)
    assert histogram.schema == 3
    assert sum(decoded_buckets(histogram.positive_span, histogram.positive_delta).values()) == 5


def test_a_classic_histogram_has_no_native_fields_in_protobuf() -> None:
    registry, series = backend_series()
    series.observe(0.3)
    histogram = decoded_histogram(registry)
    assert not histogram.HasField("schema")
    assert not histogram.HasField("zero_threshold")
    assert len(histogram.bucket) == len(LATENCY.buckets or ())


def test_a_spec_that_says_its_kind_overrides_the_backends() -> None:
    native = MetricSpec(
        "native_seconds", LATENCY.kind, "N.", buckets=(1.0,), histogram="native", exemplars=False
    )
    registry = CollectorRegistry()
    classic_series, native_series = (
        instrument.bind(())
        for instrument in PrometheusBackend(registry, histograms="classic").register(
            [MetricSpec("classic_seconds", LATENCY.kind, "C.", buckets=(1.0,)), native]
        )
    )
    classic_series.observe(0.5)
    native_series.observe(0.5)
    decoded = {f.name: f.metric[0].histogram for f in decode_stream(render(registry, PROTOBUF))}
    assert decoded["native_seconds"].schema == 3
    assert not decoded["native_seconds"].bucket
    assert not decoded["classic_seconds"].HasField("schema")


# --- exemplars -----------------------------------------------------------------------------------


def test_an_observation_in_a_sampled_span_carries_its_ids_on_the_bucket_it_fell_in(
    sampled: Tracer,
) -> None:
    registry, series = backend_series(exemplars=True)
    before = time.time()
    with sampled.start_as_current_span("request") as span:
        series.observe(0.3)
    after = time.time()
    ids = ids_of(span)
    page = render(registry, OPENMETRICS).decode()
    (line,) = [line for line in page.splitlines() if " # " in line]
    assert line.startswith(f'{LATENCY.name}_bucket{{le="0.4",')
    assert f'{{span_id="{ids["span_id"]}",trace_id="{ids["trace_id"]}"}} 0.3 ' in line
    assert before <= float(line.rsplit(" ", 1)[1]) <= after
    bucket = [b for b in decoded_histogram(registry).bucket if b.HasField("exemplar")]
    assert [b.upper_bound for b in bucket] == [0.4]
    assert dict(decoded_labels(bucket[0].exemplar)) == ids
    assert bucket[0].exemplar.value == 0.3


def test_no_exemplar_is_kept_outside_a_sampled_span(unsampled: Tracer) -> None:
    registry, series = backend_series(exemplars=True)
    series.observe(0.3)
    with unsampled.start_as_current_span("request"):
        series.observe(0.5)
    assert " # " not in render(registry, OPENMETRICS).decode()
    assert not [b for b in decoded_histogram(registry).bucket if b.HasField("exemplar")]


def test_a_bucket_shows_the_latest_exemplar_offered_to_it(sampled: Tracer) -> None:
    registry, series = backend_series(exemplars=True)
    with sampled.start_as_current_span("first"):
        series.observe(0.3)
    render(registry, OPENMETRICS)
    with sampled.start_as_current_span("second") as second:
        series.observe(0.35)
    with sampled.start_as_current_span("elsewhere") as elsewhere:
        series.observe(9.0)
    page = render(registry, OPENMETRICS).decode()
    shown = [line for line in page.splitlines() if " # " in line]
    assert len(shown) == 2
    assert ids_of(second)["span_id"] in shown[0]
    assert " 0.35 " in shown[0]
    assert ids_of(elsewhere)["span_id"] in shown[1]
    assert 'le="10.0"' in shown[1]


def test_the_text_format_shows_no_exemplar_and_is_the_page_without_them(sampled: Tracer) -> None:
    pages = []
    for exemplars in (False, True):
        registry, series = backend_series(exemplars=exemplars)
        with sampled.start_as_current_span("request"):
            for value in VALUES:
                series.observe(value)
        pages.append(render(registry, TEXT))
    assert pages[0] == pages[1]


@pytest.mark.parametrize("kind", ["classic", "native", "both"])
def test_openmetrics_with_exemplars_is_what_prometheus_client_writes_of_the_same_family(
    sampled: Tracer, kind: str
) -> None:
    registry, series = backend_series(exemplars=True, histograms=kind)
    for value in VALUES:
        with sampled.start_as_current_span("request"):
            series.observe(value)
    assert render(registry, OPENMETRICS) == om_latest(registry)
    assert render(registry, TEXT) == generate_latest(registry)


def test_a_native_only_histogram_carries_its_latest_exemplar_on_an_inf_bucket_entry(
    sampled: Tracer,
) -> None:
    registry, series = backend_series(exemplars=True, histograms="native")
    with sampled.start_as_current_span("fast"):
        series.observe(0.1)
    with sampled.start_as_current_span("slow") as slow:
        series.observe(7.5)
    series.observe(0.2)  # outside a span: counted, no exemplar
    histogram = decoded_histogram(registry)
    (entry,) = histogram.bucket
    assert (entry.upper_bound, entry.cumulative_count) == (math.inf, 3)
    assert dict(decoded_labels(entry.exemplar)) == ids_of(slow)
    assert entry.exemplar.value == 7.5
    (line,) = [
        line for line in render(registry, OPENMETRICS).decode().splitlines() if " # " in line
    ]
    assert 'le="+Inf"' in line
    assert ids_of(slow)["trace_id"] in line


def test_a_spec_saying_no_exemplars_keeps_none_in_a_backend_that_keeps_them(
    sampled: Tracer,
) -> None:
    registry, series = backend_series(SIZES, exemplars=True)
    assert SIZES.exemplars is False
    with sampled.start_as_current_span("request"):
        series.observe(100)
    assert " # " not in render(registry, OPENMETRICS).decode()


def test_a_spec_asking_for_exemplars_keeps_them_in_a_backend_that_does_not(
    sampled: Tracer,
) -> None:
    spec = MetricSpec(
        "traced_seconds", LATENCY.kind, "T.", LATENCY.labels, buckets=(1.0,), exemplars=True
    )
    registry, series = backend_series(spec)
    with sampled.start_as_current_span("request"):
        series.observe(0.5)
    assert " # " in render(registry, OPENMETRICS).decode()


def test_the_recorder_links_request_duration_ttft_tpot_and_itl_to_the_span_not_sizes_or_tokens(
    sampled: Tracer,
) -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry, exemplars=True), schema="llm-d-router")
    with sampled.start_as_current_span("request"):
        recorder.record_request_started("m", "t", request_size=1000)
        recorder.record_request_completed(
            "m",
            "t",
            received=10.0,
            completed=12.0,
            first_token=10.5,
            response_size=500,
            input_tokens=10,
            output_tokens=20,
            cached_tokens=4,
        )
        recorder.record_inter_token_latency("m", "t", 0.04)
    page = render(registry, OPENMETRICS).decode()
    traced = {line.split("_bucket{", 1)[0] for line in page.splitlines() if " # " in line}
    assert traced == {
        "llm_d_epp_request_duration_seconds",
        "inference_objective_request_duration_seconds",
        "llm_d_epp_request_ttft_seconds",
        "llm_d_epp_request_streaming_tpot_seconds",
        "llm_d_epp_request_streaming_itl_seconds",
    }


def test_a_folded_series_reuses_its_protobuf_bytes_until_it_changes() -> None:
    registry, series = backend_series(histograms="both")
    series.observe(0.3)
    assert isinstance(series, HistogramSeries)
    first = render(registry, PROTOBUF)
    assert series.render_keyed(lambda _: b"never formatted again", 2)[0] in first
    series.observe(0.4)
    assert render(registry, PROTOBUF) != first


def test_of_observations_folded_together_a_bucket_shows_the_latest_by_timestamp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two threads can queue out of time order: the one stamped later wins, not the one last.
    clock = iter([50.0, 40.0, 60.0, 30.0])
    monkeypatch.setattr(store, "_now", lambda: next(clock))
    spans = iter([(1, 11), (2, 12), (3, 13), (4, 14)])
    series = store.TracedHistogramSeries(
        store.Labels("", "", ""), (1.0,), None, lambda: next(spans)
    )
    for value in (0.5, 0.6, 2.0, 3.0):
        series.observe(value)
    snapshot = series.snapshot()
    assert snapshot is not None
    first, overflow = snapshot.exemplars or ()
    assert first is not None
    assert overflow is not None
    assert (first.value, first.timestamp, dict(first.labels)["span_id"]) == (
        0.5,
        50.0,
        f"{11:016x}",
    )
    assert (overflow.value, overflow.timestamp) == (2.0, 60.0)


def test_a_native_only_series_text_lines_are_native_only_lines() -> None:
    registry, series = backend_series(histograms="native")
    for value in VALUES:
        series.observe(value)
    page = render(registry, TEXT)
    lines = native_only_lines(LATENCY.name, series.labels, len(VALUES), series.sum)
    assert page.endswith(lines)
