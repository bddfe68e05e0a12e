"""The protobuf exposition, checked by an independent decoder: the ``protobuf`` package parsing
our bytes against client_model's schema (tests/client_model.py), field by field."""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
)
from prometheus_client.core import GaugeHistogramMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector

from inference_metrics.backends.exemplars import Exemplar, exemplar, trace_exemplar
from inference_metrics.backends.native import NativeHistogram, bucket_key
from inference_metrics.backends.protobuf import (
    CONTENT_TYPE,
    HistogramEncoder,
    MetricType,
    counter,
    encode_client_family,
    family,
    family_header,
    gauge,
    label_pairs,
    summary,
    untyped,
    varint,
)

from .client_model import MetricType as DecodedType
from .client_model import decode_stream

LATENCY = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def bits(value: float) -> bytes:
    """A float's exact bits: equal bits, the very same double (NaN and -0.0 included)."""
    return struct.pack("<d", value)


def decoded_labels(message: Any) -> list[tuple[str, str]]:
    return [(pair.name, pair.value) for pair in message.label]


def decoded_buckets(spans: Any, deltas: Any) -> dict[int, int]:
    """Spans and deltas as client_model defines them, decoded here (not by our own code)."""
    buckets: dict[int, int] = {}
    index = key = count = 0
    for span in spans:
        key += span.offset
        for _ in range(span.length):
            count += deltas[index]
            index += 1
            if count:
                buckets[key] = count
            key += 1
    assert index == len(deltas)
    return buckets


def assert_exemplar(message: Any, expected: Exemplar) -> None:
    assert decoded_labels(message) == list(expected.labels)
    assert bits(message.value) == bits(expected.value)
    stamp = message.timestamp
    assert stamp.seconds + stamp.nanos / 1e9 == pytest.approx(expected.timestamp, abs=1e-6)


def one(data: bytes) -> Any:
    (decoded,) = decode_stream(data)
    return decoded


def histogram_of(entry: bytes) -> Any:
    """The decoded ``Histogram`` of one encoded histogram series."""
    return one(family(family_header("h", "H.", MetricType.HISTOGRAM), [entry])).metric[0].histogram


def test_the_content_type_is_the_delimited_metric_family_stream() -> None:
    assert CONTENT_TYPE == (
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
        "encoding=delimited"
    )


@pytest.mark.parametrize(
    ("number", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
        (-1, b"\xff" * 9 + b"\x01"),  # an int64 of -1: ten bytes, two's complement
    ],
)
def test_varints_are_base_128_little_endian(number: int, encoded: bytes) -> None:
    assert varint(number) == encoded


# --- one family of each kind


def test_a_counter_family_has_its_name_help_type_labels_and_value_and_no_created_timestamp() -> (
    None
):
    header = family_header("requests_total", "Requests.", MetricType.COUNTER)
    decoded = one(family(header, [counter(label_pairs([("model", "m")]), 42.0)]))
    assert (decoded.name, decoded.help, decoded.type) == ("requests_total", "Requests.", 0)
    (metric,) = decoded.metric
    assert decoded_labels(metric) == [("model", "m")]
    assert metric.counter.value == 42.0
    assert not metric.counter.HasField("created_timestamp")
    assert not metric.counter.HasField("exemplar")
    assert not metric.HasField("timestamp_ms")


def test_a_counter_may_carry_an_exemplar() -> None:
    held = trace_exemplar((0xABC, 0xDEF), 1.0, 1700000000.25)
    header = family_header("requests_total", "Requests.", MetricType.COUNTER)
    decoded = one(family(header, [counter(b"", 1.0, held)]))
    assert_exemplar(decoded.metric[0].counter.exemplar, held)


def test_gauge_untyped_and_summary_series_hold_their_values() -> None:
    labels = label_pairs([("pool", "p")])
    data = (
        family(family_header("g", "G.", MetricType.GAUGE), [gauge(labels, -2.5, 1234)])
        + family(family_header("u", "U.", MetricType.UNTYPED), [untyped(labels, 7.0)])
        + family(
            family_header("s", "S.", MetricType.SUMMARY),
            [summary(labels, 3, 1.5, [(0.5, 0.4), (0.99, 0.9)])],
        )
    )
    g, u, s = decode_stream(data)
    assert (g.type, g.metric[0].gauge.value, g.metric[0].timestamp_ms) == (1, -2.5, 1234)
    assert (u.type, u.metric[0].untyped.value) == (3, 7.0)
    assert s.type == DecodedType.SUMMARY
    assert (s.metric[0].summary.sample_count, s.metric[0].summary.sample_sum) == (3, 1.5)
    quantiles = [(q.quantile, q.value) for q in s.metric[0].summary.quantile]
    assert quantiles == [(0.5, 0.4), (0.99, 0.9)]


def test_a_family_without_series_is_not_sent() -> None:
    assert family(family_header("g", "G.", MetricType.GAUGE), []) == b""


def test_a_classic_histogram_has_cumulative_finite_buckets_count_and_sum() -> None:
    encoder = HistogramEncoder(LATENCY)
    counts = [1, 0, 2, 0, 0, 0, 3, 4]  # the store's layout: per bucket, +Inf last
    decoded = one(
        family(
            family_header("latency_seconds", "Latency.", MetricType.HISTOGRAM),
            [encoder.metric(b"", 10, 55.5, counts=counts)],
        )
    )
    histogram = decoded.metric[0].histogram
    assert (histogram.sample_count, histogram.sample_sum) == (10, 55.5)
    buckets = [(b.upper_bound, b.cumulative_count) for b in histogram.bucket]
    assert buckets == list(zip(LATENCY, accumulate(counts[:-1]), strict=True))
    assert not histogram.HasField("schema")
    assert not histogram.HasField("zero_threshold")
    assert not histogram.HasField("created_timestamp")


def test_large_cumulative_counts_take_several_varint_bytes() -> None:
    counts = [127, 1, 2**40, 0, 0, 0, 0, 5]
    histogram = histogram_of(HistogramEncoder(LATENCY).metric(b"", sum(counts), 1.0, counts=counts))
    assert [b.cumulative_count for b in histogram.bucket] == list(accumulate(counts[:-1]))


def test_classic_exemplars_sit_on_their_buckets_and_an_inf_one_adds_the_inf_bucket() -> None:
    slow = exemplar({"trace_id": "a" * 32}, 7.5, 100.0)
    fast = exemplar({"trace_id": "b" * 32}, 0.07, 101.0)
    exemplars = [None, fast, None, None, None, None, None, slow]
    counts = [0, 1, 0, 0, 0, 0, 0, 1]
    histogram = histogram_of(
        HistogramEncoder(LATENCY).metric(b"", 2, 7.57, counts=counts, exemplars=exemplars)
    )
    assert len(histogram.bucket) == len(LATENCY) + 1
    assert_exemplar(histogram.bucket[1].exemplar, fast)
    inf = histogram.bucket[-1]
    assert (inf.upper_bound, inf.cumulative_count) == (math.inf, 2)
    assert_exemplar(inf.exemplar, slow)
    assert [b.HasField("exemplar") for b in histogram.bucket].count(True) == 2


def test_a_native_histogram_has_schema_zero_bucket_spans_and_deltas() -> None:
    native = NativeHistogram()
    native.observe([0.0, 1.0, 2.0, 3.0, -0.5, -0.5, 100.0, math.nan])
    histogram = histogram_of(HistogramEncoder().metric(b"", native.count, 105.0, native=native))
    assert (histogram.sample_count, histogram.schema) == (8, 3)
    assert histogram.zero_threshold == 2.0**-128
    assert histogram.zero_count == 1
    assert decoded_buckets(histogram.positive_span, histogram.positive_delta) == native.positive
    assert decoded_buckets(histogram.negative_span, histogram.negative_delta) == native.negative
    assert len(histogram.bucket) == 0


def test_large_deltas_and_far_apart_buckets_take_several_varint_bytes() -> None:
    native = NativeHistogram()
    native.observe([1.0] * 1000 + [1.05] * 300 + [1e300] * 70 + [-(2.0**-100)] * 200)
    histogram = histogram_of(HistogramEncoder().metric(b"", native.count, 0.0, native=native))
    assert list(histogram.positive_delta) == [1000, -700, -230]
    assert [span.offset for span in histogram.positive_span] == [0, bucket_key(1e300) - 2]
    assert decoded_buckets(histogram.positive_span, histogram.positive_delta) == native.positive
    assert decoded_buckets(histogram.negative_span, histogram.negative_delta) == native.negative


def test_a_negative_schema_and_an_empty_native_histogram_decode() -> None:
    native = NativeHistogram(-2)
    histogram = histogram_of(HistogramEncoder().metric(b"", 0, 0.0, native=native))
    assert histogram.schema == -2
    assert histogram.HasField("sample_count")
    assert histogram.HasField("zero_count")
    assert histogram.zero_threshold > 0  # how Prometheus 2.42 tells it is native
    assert (len(histogram.positive_span), len(histogram.negative_span)) == (0, 0)


def test_a_native_only_histograms_exemplar_sits_on_an_inf_bucket_holding_the_count() -> None:
    native = NativeHistogram()
    native.observe([0.3, 0.4, 12.0])
    held = trace_exemplar((1, 2), 12.0, 1700000000.5)
    histogram = histogram_of(
        HistogramEncoder().metric(b"", 3, 12.7, native=native, exemplars=[held])
    )
    (bucket,) = histogram.bucket
    assert (bucket.upper_bound, bucket.cumulative_count) == (math.inf, 3)
    assert_exemplar(bucket.exemplar, held)
    assert histogram.schema == 3


def test_both_kinds_at_once_carry_classic_buckets_and_native_fields() -> None:
    values = [0.07, 0.3, 0.3, 4.0, 9.0]
    native = NativeHistogram()
    native.observe(values)
    counts = classic_counts(values, LATENCY)
    histogram = histogram_of(
        HistogramEncoder(LATENCY).metric(b"", 5, sum(values), counts=counts, native=native)
    )
    assert [b.cumulative_count for b in histogram.bucket] == list(accumulate(counts[:-1]))
    assert decoded_buckets(histogram.positive_span, histogram.positive_delta) == native.positive


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "needs classic counts, native buckets or both"),
        ({"counts": [1, 2]}, "counts must be one per bound and one for \\+Inf \\(8\\), got 2"),
        ({"counts": [0] * 8, "exemplars": [None]}, "exemplars must be one per bucket, got 1"),
    ],
)
def test_a_histogram_series_that_does_not_fit_its_bounds_is_refused(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        HistogramEncoder(LATENCY).metric(b"", 0, 0.0, **arguments)


def test_a_native_only_histogram_takes_one_exemplar_at_most() -> None:
    held = exemplar({"a": "b"}, 1.0, 1.0)
    with pytest.raises(ValueError, match="a native-only histogram shows one exemplar"):
        HistogramEncoder().metric(b"", 1, 1.0, native=NativeHistogram(), exemplars=[held, held])


@pytest.mark.parametrize("bounds", [(1.0, 1.0), (2.0, 1.0), (1.0, math.inf), (math.nan,)])
def test_bounds_that_are_not_finite_and_increasing_are_refused(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="bounds must be finite and increasing"):
        HistogramEncoder(bounds)


# --- random families against the decoder


def classic_counts(values: list[float], bounds: tuple[float, ...]) -> list[int]:
    counts = [0] * (len(bounds) + 1)
    for value in values:
        if not math.isnan(value):
            counts[bisect_left(bounds, value)] += 1
    return counts


@dataclass
class Series:
    labels: list[tuple[str, str]]
    value: float
    observed: list[float]
    exemplars: list[Exemplar | None]


@dataclass
class Family:
    name: str
    documentation: str
    kind: str  # counter, gauge, untyped, classic, native, both
    bounds: tuple[float, ...]
    series: list[Series]


names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)
exemplars = st.one_of(
    st.none(),
    st.builds(
        lambda ids, value, timestamp: trace_exemplar(ids, value, timestamp),
        st.tuples(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1)),
        st.floats(allow_nan=False),
        st.floats(0, 2e9),
    ),
)


@st.composite
def families(draw: st.DrawFn) -> Family:
    kind = draw(st.sampled_from(["counter", "gauge", "untyped", "classic", "native", "both"]))
    bounds = tuple(sorted(draw(st.sets(st.floats(-1e6, 1e6), min_size=1, max_size=12))))
    label_set = draw(st.lists(label_names, unique=True, max_size=4))
    series = []
    for _ in range(draw(st.integers(1, 5))):
        labels = [(name, draw(st.text(max_size=20))) for name in sorted(label_set)]
        observed = draw(st.lists(st.floats(), max_size=40))
        if kind in ("native",):
            held = [draw(exemplars)]
        else:
            held = [draw(exemplars) for _ in range(len(bounds) + 1)]
        series.append(Series(labels, draw(st.floats()), observed, held))
    return Family(draw(names), draw(st.text(max_size=40)), kind, bounds, series)


def encode(spec: Family) -> bytes:
    kinds = {"counter": MetricType.COUNTER, "gauge": MetricType.GAUGE}
    header = family_header(
        spec.name, spec.documentation, kinds.get(spec.kind, MetricType.HISTOGRAM)
    )
    if spec.kind == "untyped":
        header = family_header(spec.name, spec.documentation, MetricType.UNTYPED)
    encoder = HistogramEncoder(() if spec.kind == "native" else spec.bounds)
    entries = []
    for one_series in spec.series:
        labels = label_pairs(one_series.labels)
        if spec.kind == "counter":
            entries.append(counter(labels, one_series.value, one_series.exemplars[0]))
        elif spec.kind == "gauge":
            entries.append(gauge(labels, one_series.value))
        elif spec.kind == "untyped":
            entries.append(untyped(labels, one_series.value))
        else:
            entries.append(
                encoder.metric(
                    labels,
                    len(one_series.observed),
                    sum(one_series.observed),
                    counts=None
                    if spec.kind == "native"
                    else classic_counts(one_series.observed, spec.bounds),
                    native=native_of(one_series) if spec.kind != "classic" else None,
                    exemplars=one_series.exemplars,
                )
            )
    return family(header, entries)


def native_of(series: Series) -> NativeHistogram:
    native = NativeHistogram(max_buckets=20)
    native.observe(series.observed)
    return native


def check(decoded: Any, spec: Family) -> None:
    assert (decoded.name, decoded.help) == (spec.name, spec.documentation)
    assert len(decoded.metric) == len(spec.series)
    for metric, series in zip(decoded.metric, spec.series, strict=True):
        assert decoded_labels(metric) == series.labels
        assert not metric.HasField("timestamp_ms")
        if spec.kind == "counter":
            assert decoded.type == DecodedType.COUNTER
            assert bits(metric.counter.value) == bits(series.value)
            if series.exemplars[0] is None:
                assert not metric.counter.HasField("exemplar")
            else:
                assert_exemplar(metric.counter.exemplar, series.exemplars[0])
        elif spec.kind in ("gauge", "untyped"):
            value = metric.gauge.value if spec.kind == "gauge" else metric.untyped.value
            assert bits(value) == bits(series.value)
        else:
            check_histogram(metric.histogram, spec, series)


def check_histogram(histogram: Any, spec: Family, series: Series) -> None:
    assert histogram.sample_count == len(series.observed)
    total = sum(series.observed)
    assert bits(histogram.sample_sum) == bits(total)
    assert not histogram.HasField("created_timestamp")
    buckets = list(histogram.bucket)
    if spec.kind == "native":
        held = series.exemplars[0]
        assert len(buckets) == (held is not None)
        if held is not None:
            assert (buckets[0].upper_bound, buckets[0].cumulative_count) == (
                math.inf,
                len(series.observed),
            )
            assert_exemplar(buckets[0].exemplar, held)
    else:
        cumulative = list(accumulate(classic_counts(series.observed, spec.bounds)))
        expected = [
            (bound, count, held)
            for bound, count, held in zip(
                (*spec.bounds, math.inf), cumulative, series.exemplars, strict=True
            )
            if bound != math.inf or held is not None
        ]
        assert [(b.upper_bound, b.cumulative_count) for b in buckets] == [
            (bound, count) for bound, count, _ in expected
        ]
        for bucket, (_, _, held) in zip(buckets, expected, strict=True):
            if held is None:
                assert not bucket.HasField("exemplar")
            else:
                assert_exemplar(bucket.exemplar, held)
    if spec.kind == "classic":
        assert not histogram.HasField("schema")
        return
    native = native_of(series)
    assert histogram.schema == native.schema
    assert histogram.zero_threshold == native.zero_threshold
    assert histogram.zero_count == native.zero_count
    assert decoded_buckets(histogram.positive_span, histogram.positive_delta) == native.positive
    assert decoded_buckets(histogram.negative_span, histogram.negative_delta) == native.negative


@settings(max_examples=150, deadline=None)
@given(specs=st.lists(families(), min_size=1, max_size=5))
def test_random_families_decode_to_exactly_what_was_encoded(specs: list[Family]) -> None:
    decoded = decode_stream(b"".join(encode(spec) for spec in specs))
    assert len(decoded) == len(specs)
    for one_decoded, spec in zip(decoded, specs, strict=True):
        check(one_decoded, spec)


# --- prometheus_client's families (other collectors on the same registry)


class UnknownAndGaugeHistogram(Collector):
    def collect(self) -> list[Metric]:
        unknown = UnknownMetricFamily("legacy", "Legacy.", labels=["a"])
        unknown.add_metric(["x"], 4.0)
        queue = GaugeHistogramMetricFamily("queue", "Queue.", labels=["q"])
        queue.add_metric(["q1"], [("1.0", 2.0), ("+Inf", 5.0)], gsum_value=12.0)
        return [unknown, queue]


def test_prometheus_client_families_convert_to_the_same_numbers() -> None:
    registry = CollectorRegistry()
    requests = Counter("requests", "Requests.", ["model"], registry=registry)
    requests.labels("m").inc(3)
    Gauge("temperature", "Temp.", registry=registry).set(21.5)
    latency = Histogram("latency_seconds", "L.", buckets=(0.5, 1.0), registry=registry)
    latency.observe(0.7, exemplar={"trace_id": "abc"})
    latency.observe(3.0)
    sizes = Summary("size_bytes", "S.", registry=registry)
    sizes.observe(10.0)
    Info("build", "Build.", registry=registry).info({"version": "1.2"})
    Enum("state", "State.", states=["up", "down"], registry=registry).state("down")
    registry.register(UnknownAndGaugeHistogram())

    data = b"".join(encode_client_family(metric) for metric in registry.collect())
    decoded = {f.name: f for f in decode_stream(data)}
    assert set(decoded) == {
        "requests_total",
        "temperature",
        "latency_seconds",
        "size_bytes",
        "build_info",
        "state",
        "legacy",
        "queue",
    }
    assert decoded["requests_total"].type == DecodedType.COUNTER
    assert decoded["requests_total"].metric[0].counter.value == 3.0
    assert decoded_labels(decoded["requests_total"].metric[0]) == [("model", "m")]
    assert decoded["temperature"].metric[0].gauge.value == 21.5
    histogram = decoded["latency_seconds"].metric[0].histogram
    assert (histogram.sample_count, histogram.sample_sum) == (2, 3.7)
    assert [(b.upper_bound, b.cumulative_count) for b in histogram.bucket] == [(0.5, 0), (1.0, 1)]
    assert decoded_labels(histogram.bucket[1].exemplar) == [("trace_id", "abc")]
    assert histogram.bucket[1].exemplar.value == 0.7
    assert decoded["size_bytes"].metric[0].summary.sample_count == 1
    assert decoded["build_info"].type == DecodedType.GAUGE
    assert decoded_labels(decoded["build_info"].metric[0]) == [("version", "1.2")]
    states = {decoded_labels(m)[0][1]: m.gauge.value for m in decoded["state"].metric}
    assert states == {"up": 0.0, "down": 1.0}
    assert decoded["legacy"].type == DecodedType.UNTYPED
    assert decoded["legacy"].metric[0].untyped.value == 4.0
    queue = decoded["queue"]
    assert queue.type == DecodedType.GAUGE_HISTOGRAM
    assert (queue.metric[0].histogram.sample_count, queue.metric[0].histogram.sample_sum) == (5, 12)
    assert [(b.upper_bound, b.cumulative_count) for b in queue.metric[0].histogram.bucket] == [
        (1.0, 2)
    ]
    created = [
        m for f in decode_stream(data) for m in f.metric if m.counter.HasField("created_timestamp")
    ]
    assert created == []
