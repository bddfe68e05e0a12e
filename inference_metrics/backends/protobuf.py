"""The Prometheus protobuf exposition, encoded by hand: length-delimited ``MetricFamily`` messages.

What Prometheus asks for first when native histograms are on (``Accept:`` :data:`CONTENT_TYPE`),
and the only format that carries them: a stream of ``io.prometheus.client.MetricFamily``
messages (prometheus/client_model ``io/prometheus/client/metrics.proto``), each preceded by its
length as a varint. The message layout below is that schema's; the encoding is written here,
without the protobuf runtime (which stays a test-only dependency), so a series' bytes can be
made once and reused like its text lines:

* :func:`label_pairs` encodes a series' labels once (at bind);
* :func:`counter`, :func:`gauge`, :func:`untyped`, :func:`summary` and
  :meth:`HistogramEncoder.metric` make one series' ``Metric``, already framed as a
  ``MetricFamily.metric`` field, so a family is its header (:func:`family_header`, once per
  metric) and its series' bytes joined (:func:`family`);
* :func:`encode_client_family` converts any prometheus_client family (``collect()`` of another
  collector: process and platform metrics, ...) the same way.

What is written, as client_golang writes it: every field the series has (proto2 presence: a
zero count is written); counters without ``created_timestamp`` (we never ask for it); classic
buckets cumulative, finite bounds only, unless the ``+Inf`` bucket carries an exemplar; native
buckets as schema, zero threshold, zero count, spans and integer deltas (repeated integers
packed, which every protobuf parser accepts); an exemplar on the classic bucket it fell in, and
for a native-only histogram on a ``+Inf`` bucket entry (``cumulative_count`` the sample count), as
client_golang up to 1.18 does and Prometheus 2.42 reads.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import accumulate, pairwise

from prometheus_client.metrics_core import Metric as ClientFamily

from .exemplars import Exemplar
from .native import NativeHistogram, Span, spans_and_deltas

__all__ = [
    "CONTENT_TYPE",
    "HistogramEncoder",
    "MetricType",
    "counter",
    "encode_client_family",
    "exemplar_message",
    "family",
    "family_header",
    "gauge",
    "label_pairs",
    "summary",
    "untyped",
    "varint",
]

#: The content type of the delimited protobuf exposition (what Prometheus puts in ``Accept``).
CONTENT_TYPE = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)


class MetricType(IntEnum):
    """``io.prometheus.client.MetricType``."""

    COUNTER = 0
    GAUGE = 1
    SUMMARY = 2
    UNTYPED = 3
    HISTOGRAM = 4
    GAUGE_HISTOGRAM = 5


# Field keys: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
# MetricFamily
_FAMILY_NAME, _FAMILY_HELP, _FAMILY_TYPE, _FAMILY_METRIC = b"\x0a", b"\x12", b"\x18", b"\x22"
# Metric
_METRIC_LABEL, _METRIC_GAUGE, _METRIC_COUNTER = b"\x0a", b"\x12", b"\x1a"
_METRIC_SUMMARY, _METRIC_UNTYPED, _METRIC_HISTOGRAM = b"\x22", b"\x2a", b"\x3a"
_METRIC_TIMESTAMP_MS = b"\x30"
# LabelPair
_PAIR_NAME, _PAIR_VALUE = b"\x0a", b"\x12"
# Gauge, Counter, Untyped: value; Counter: exemplar
_VALUE, _COUNTER_EXEMPLAR = b"\x09", b"\x12"
# Summary, Quantile
_SUMMARY_COUNT, _SUMMARY_SUM, _SUMMARY_QUANTILE = b"\x08", b"\x11", b"\x1a"
_QUANTILE_QUANTILE, _QUANTILE_VALUE = b"\x09", b"\x11"
# Histogram
_HIST_COUNT, _HIST_SUM, _HIST_BUCKET = b"\x08", b"\x11", b"\x1a"
_HIST_SCHEMA, _HIST_ZERO_THRESHOLD, _HIST_ZERO_COUNT = b"\x28", b"\x31", b"\x38"
_HIST_NEGATIVE_SPAN, _HIST_NEGATIVE_DELTA = b"\x4a", b"\x52"
_HIST_POSITIVE_SPAN, _HIST_POSITIVE_DELTA = b"\x62", b"\x6a"
# Bucket
_BUCKET_COUNT, _BUCKET_BOUND, _BUCKET_EXEMPLAR = b"\x08", b"\x11", b"\x1a"
# BucketSpan
_SPAN_OFFSET, _SPAN_LENGTH = b"\x08", b"\x10"
# Exemplar, google.protobuf.Timestamp
_EXEMPLAR_LABEL, _EXEMPLAR_VALUE, _EXEMPLAR_TIMESTAMP = b"\x0a", b"\x11", b"\x1a"
_SECONDS, _NANOS = b"\x08", b"\x10"

_SMALL = tuple(bytes((n,)) for n in range(0x80))  # the varints of 0..127: one byte each
_double = struct.Struct("<d").pack
_INF_BOUND = _BUCKET_BOUND + _double(math.inf)


def varint(n: int) -> bytes:
    """``n`` as a protobuf varint: an unsigned one, or a negative int64 as its two's complement
    (ten bytes), as ``int64``/``int32`` fields carry negative numbers."""
    if 0 <= n < 0x80:
        return _SMALL[n]
    if n < 0:
        n &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag(n: int) -> int:
    """``sint32``/``sint64``'s mapping of a signed int to an unsigned one (0, -1, 1, -2 ...)."""
    return n << 1 if n >= 0 else (-n << 1) - 1


def _field(key: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its key, the payload's length, the payload."""
    return key + varint(len(payload)) + payload


def _string(key: bytes, text: str) -> bytes:
    return _field(key, text.encode())


def label_pairs(pairs: Iterable[tuple[str, str]]) -> bytes:
    """A series' labels as ``Metric.label`` fields (``LabelPair`` messages), in the order given
    (client_golang sorts them by name; so does our store). Encode once per series."""
    return b"".join(
        _field(_METRIC_LABEL, _string(_PAIR_NAME, name) + _string(_PAIR_VALUE, value))
        for name, value in pairs
    )


def _timestamp(seconds: float) -> bytes:
    """A ``google.protobuf.Timestamp`` message of Unix ``seconds``."""
    whole = math.floor(seconds)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return (_SECONDS + varint(whole) if whole else b"") + (_NANOS + varint(nanos) if nanos else b"")


def exemplar_message(exemplar: Exemplar) -> bytes:
    """An ``Exemplar`` message: its label pairs, value and timestamp."""
    labels = b"".join(
        _field(_EXEMPLAR_LABEL, _string(_PAIR_NAME, name) + _string(_PAIR_VALUE, value))
        for name, value in exemplar.labels
    )
    return (
        labels
        + _EXEMPLAR_VALUE
        + _double(exemplar.value)
        + _field(_EXEMPLAR_TIMESTAMP, _timestamp(exemplar.timestamp))
    )


def _metric(labels: bytes, body: bytes, timestamp_ms: int | None) -> bytes:
    """A ``Metric`` (labels, one typed body, maybe a timestamp) as a ``MetricFamily.metric``."""
    if timestamp_ms is not None:
        body += _METRIC_TIMESTAMP_MS + varint(timestamp_ms)
    return _field(_FAMILY_METRIC, labels + body)


def counter(
    labels: bytes,
    value: float,
    exemplar: Exemplar | None = None,
    timestamp_ms: int | None = None,
) -> bytes:
    """A counter series (``labels`` from :func:`label_pairs`), as a ``MetricFamily.metric``
    field; no ``created_timestamp``."""
    body = _VALUE + _double(value)
    if exemplar is not None:
        body += _field(_COUNTER_EXEMPLAR, exemplar_message(exemplar))
    return _metric(labels, _field(_METRIC_COUNTER, body), timestamp_ms)


def gauge(labels: bytes, value: float, timestamp_ms: int | None = None) -> bytes:
    """A gauge series, as a ``MetricFamily.metric`` field."""
    return _metric(labels, _field(_METRIC_GAUGE, _VALUE + _double(value)), timestamp_ms)


def untyped(labels: bytes, value: float, timestamp_ms: int | None = None) -> bytes:
    """An untyped series, as a ``MetricFamily.metric`` field."""
    return _metric(labels, _field(_METRIC_UNTYPED, _VALUE + _double(value)), timestamp_ms)


def summary(
    labels: bytes,
    count: int,
    total: float,
    quantiles: Sequence[tuple[float, float]] = (),
    timestamp_ms: int | None = None,
) -> bytes:
    """A summary series (``quantiles``: (quantile, value) pairs), as a ``MetricFamily.metric``."""
    body = _SUMMARY_COUNT + varint(count) + _SUMMARY_SUM + _double(total)
    for quantile, value in quantiles:
        body += _field(
            _SUMMARY_QUANTILE,
            _QUANTILE_QUANTILE + _double(quantile) + _QUANTILE_VALUE + _double(value),
        )
    return _metric(labels, _field(_METRIC_SUMMARY, body), timestamp_ms)


def _spans(key: bytes, spans: Sequence[Span]) -> bytes:
    """``BucketSpan`` fields; a span whose offset and length fit one varint byte each (almost
    every one) is one format of six bytes."""
    out = []
    for offset, length in spans:
        zigzag = _zigzag(offset)
        if zigzag < 0x80 and length < 0x80:
            out.append(b"%b\x04\x08%c\x10%c" % (key, zigzag, length))
        else:
            out.append(_field(key, _SPAN_OFFSET + varint(zigzag) + _SPAN_LENGTH + varint(length)))
    return b"".join(out)


def _packed_sint(key: bytes, numbers: Sequence[int]) -> bytes:
    """A packed repeated ``sint64`` field (nothing for no numbers); numbers within -64..63 (the
    usual deltas) are one byte each, made by ``bytes()`` in one call."""
    if not numbers:
        return b""
    zigzags = [n << 1 if n >= 0 else (-n << 1) - 1 for n in numbers]
    if max(zigzags) < 0x80:
        return _field(key, bytes(zigzags))
    return _field(key, b"".join([varint(zigzag) for zigzag in zigzags]))


def _native(native: NativeHistogram) -> bytes:
    """A native histogram's fields: schema, zero threshold, zero count, spans and deltas."""
    head = b"%b%b%b%b%b%b" % (
        _HIST_SCHEMA,
        varint(_zigzag(native.schema)),
        _HIST_ZERO_THRESHOLD,
        _double(native.zero_threshold),
        _HIST_ZERO_COUNT,
        varint(native.zero_count),
    )
    parts = [head]
    for buckets, span_key, delta_key in (
        (native.negative, _HIST_NEGATIVE_SPAN, _HIST_NEGATIVE_DELTA),
        (native.positive, _HIST_POSITIVE_SPAN, _HIST_POSITIVE_DELTA),
    ):
        if buckets:
            spans, deltas = spans_and_deltas(buckets)
            parts.append(_spans(span_key, spans))
            parts.append(_packed_sint(delta_key, deltas))
    return b"".join(parts)


class HistogramEncoder:
    """Encodes the series of one histogram metric: classic buckets with ``bounds`` (finite,
    increasing; the ``+Inf`` bucket implied), native buckets, or both. The bounds' fields are
    encoded once here."""

    __slots__ = ("_bounds", "bounds")

    def __init__(self, bounds: Sequence[float] = ()) -> None:
        bounds = tuple(bounds)
        if any(not math.isfinite(b) for b in bounds) or any(a >= b for a, b in pairwise(bounds)):
            raise ValueError(f"bounds must be finite and increasing, got {bounds!r}")
        #: The classic buckets' upper bounds (empty: a native-only histogram).
        self.bounds = bounds
        self._bounds = tuple(_BUCKET_BOUND + _double(bound) for bound in bounds)

    def metric(
        self,
        labels: bytes,
        count: int,
        total: float,
        *,
        counts: Sequence[int] | None = None,
        native: NativeHistogram | None = None,
        exemplars: Sequence[Exemplar | None] | None = None,
        timestamp_ms: int | None = None,
    ) -> bytes:
        """One histogram series as a ``MetricFamily.metric`` field.

        ``counts``: the classic buckets' counts, **not** cumulative, one per bound and one for
        ``+Inf`` (the store's layout), or None for none. ``native``: the native buckets, or None.
        ``exemplars``: with classic buckets, one per bucket (``+Inf`` last), each shown on its
        bucket; without, one at most, shown on a ``+Inf`` bucket entry. ``count`` is the sample
        count (with native buckets, NaN observations count though they have no bucket)."""
        if counts is None and native is None:
            raise ValueError("a histogram needs classic counts, native buckets or both")
        body = [_HIST_COUNT + varint(count), _HIST_SUM + _double(total)]
        if counts is not None:
            if len(counts) != len(self._bounds) + 1:
                raise ValueError(
                    f"counts must be one per bound and one for +Inf ({len(self._bounds) + 1}), "
                    f"got {len(counts)}"
                )
            if exemplars is not None and len(exemplars) != len(counts):
                raise ValueError(f"exemplars must be one per bucket, got {len(exemplars)}")
            body.append(self._classic(counts, exemplars))
        elif exemplars:
            if len(exemplars) != 1:
                raise ValueError(f"a native-only histogram shows one exemplar, got {exemplars!r}")
            if exemplars[0] is not None:
                body.append(_bucket(count, _INF_BOUND, exemplars[0]))
        if native is not None:
            body.append(_native(native))
        return _metric(labels, _field(_METRIC_HISTOGRAM, b"".join(body)), timestamp_ms)

    def _classic(self, counts: Sequence[int], exemplars: Sequence[Exemplar | None] | None) -> bytes:
        cumulative = list(accumulate(counts))
        small = _SMALL
        if exemplars is None or not any(exemplars):
            if cumulative[-1] < 0x80:  # every count one byte: one format per bucket
                return b"".join(
                    [
                        b"\x1a\x0b\x08%b%b" % (small[n], bound)
                        for n, bound in zip(cumulative, self._bounds, strict=False)
                    ]
                )
            return b"".join(
                [
                    _field(_HIST_BUCKET, _BUCKET_COUNT + varint(n) + bound)
                    for n, bound in zip(cumulative, self._bounds, strict=False)
                ]
            )
        bounds = (*self._bounds, _INF_BOUND)
        return b"".join(
            [
                _bucket(n, bound, exemplar)
                for n, bound, exemplar in zip(cumulative, bounds, exemplars, strict=True)
                if bound is not _INF_BOUND or exemplar is not None
            ]
        )


def _bucket(cumulative: int, bound: bytes, exemplar: Exemplar | None) -> bytes:
    """A ``Histogram.bucket`` field: cumulative count, the bound's field, maybe an exemplar."""
    body = _BUCKET_COUNT + varint(cumulative) + bound
    if exemplar is not None:
        body += _field(_BUCKET_EXEMPLAR, exemplar_message(exemplar))
    return _field(_HIST_BUCKET, body)


def family_header(name: str, documentation: str, kind: MetricType) -> bytes:
    """A ``MetricFamily``'s name, help and type fields (encode once per metric). A counter's
    name is the series name, ``_total`` included, as client_golang names it."""
    return (
        _string(_FAMILY_NAME, name)
        + _string(_FAMILY_HELP, documentation)
        + _FAMILY_TYPE
        + varint(int(kind))
    )


def family(header: bytes, metrics: Iterable[bytes]) -> bytes:
    """One delimited ``MetricFamily``: its length, then ``header`` and the series' fields; b""
    without series (client_golang sends no empty family)."""
    body = b"".join(metrics)
    if not body:
        return b""
    return varint(len(header) + len(body)) + header + body


_CLIENT_TYPES = {
    "counter": MetricType.COUNTER,
    "gauge": MetricType.GAUGE,
    "summary": MetricType.SUMMARY,
    "histogram": MetricType.HISTOGRAM,
    "gaugehistogram": MetricType.GAUGE_HISTOGRAM,
    "unknown": MetricType.UNTYPED,
    "untyped": MetricType.UNTYPED,
    "info": MetricType.GAUGE,
    "stateset": MetricType.GAUGE,
}


def encode_client_family(metric: ClientFamily) -> bytes:
    """A prometheus_client family (what a collector's ``collect()`` yields) as delimited
    ``MetricFamily`` bytes, b"" without samples. ``_created`` samples are left out (we send no
    created timestamps); a counter is named ``<name>_total``, an info metric ``<name>_info``
    (a gauge of 1), a state set is a gauge, as Prometheus reads them from the text format."""
    kind = _CLIENT_TYPES.get(metric.type, MetricType.UNTYPED)
    name = metric.name
    if metric.type == "counter":
        name += "_total"
    elif metric.type == "info":
        name += "_info"
    header = family_header(name, metric.documentation, kind)
    if kind in (MetricType.HISTOGRAM, MetricType.GAUGE_HISTOGRAM, MetricType.SUMMARY):
        return family(header, _grouped(metric, kind))
    entries = []
    for sample in metric.samples:
        if sample.name != name and not (kind is MetricType.UNTYPED and sample.name == metric.name):
            continue  # _created, or a sample of another name
        labels = label_pairs(sorted(sample.labels.items()))
        stamp = _timestamp_ms(sample.timestamp)
        if kind is MetricType.COUNTER:
            entries.append(counter(labels, sample.value, _exemplar(sample.exemplar), stamp))
        elif kind is MetricType.GAUGE:
            entries.append(gauge(labels, sample.value, stamp))
        else:
            entries.append(untyped(labels, sample.value, stamp))
    return family(header, entries)


@dataclass
class _Grouped:
    """One series of a histogram, gauge histogram or summary family, gathered from samples."""

    #: (``le`` or ``quantile``, value, exemplar) of each bucket or quantile sample.
    points: list[tuple[float, float, object]] = field(default_factory=list)
    count: float = 0
    total: float = 0.0
    stamp: int | None = None


def _grouped(metric: ClientFamily, kind: MetricType) -> list[bytes]:
    """The series of a histogram, gauge histogram or summary family, grouped from its samples
    by their labels (``le`` / ``quantile`` aside), in first-seen order."""
    name = metric.name
    special = "quantile" if kind is MetricType.SUMMARY else "le"
    gauge_histogram = kind is MetricType.GAUGE_HISTOGRAM
    count_name = name + ("_gcount" if gauge_histogram else "_count")
    sum_name = name + ("_gsum" if gauge_histogram else "_sum")
    point_name = name if special == "quantile" else name + "_bucket"
    series: dict[tuple[tuple[str, str], ...], _Grouped] = {}
    for sample in metric.samples:
        key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != special))
        held = series.setdefault(key, _Grouped())
        if held.stamp is None:
            held.stamp = _timestamp_ms(sample.timestamp)
        if sample.name == count_name:
            held.count = sample.value
        elif sample.name == sum_name:
            held.total = sample.value
        elif sample.name == point_name:
            held.points.append((float(sample.labels[special]), sample.value, sample.exemplar))
    entries = []
    for key, held in series.items():
        labels = label_pairs(key)
        if kind is MetricType.SUMMARY:
            quantiles = [(quantile, value) for quantile, value, _ in held.points]
            entries.append(summary(labels, int(held.count), held.total, quantiles, held.stamp))
            continue
        body = [_HIST_COUNT + varint(int(held.count)), _HIST_SUM + _double(held.total)]
        for bound, cumulative, sample_exemplar in sorted(held.points, key=lambda p: p[0]):
            exemplar = _exemplar(sample_exemplar)
            if bound != math.inf or exemplar is not None:
                body.append(_bucket(int(cumulative), _BUCKET_BOUND + _double(bound), exemplar))
        entries.append(_metric(labels, _field(_METRIC_HISTOGRAM, b"".join(body)), held.stamp))
    return entries


def _exemplar(sample_exemplar: object) -> Exemplar | None:
    """A prometheus_client exemplar (labels dict, value, timestamp or None) as ours."""
    if sample_exemplar is None:
        return None
    labels = getattr(sample_exemplar, "labels", {})
    value = getattr(sample_exemplar, "value", 0.0)
    timestamp = getattr(sample_exemplar, "timestamp", None)
    seconds = 0.0 if timestamp is None else float(timestamp)
    return Exemplar(tuple(sorted(labels.items())), float(value), seconds)


def _timestamp_ms(timestamp: object) -> int | None:
    return None if timestamp is None else round(float(timestamp) * 1000)  # type: ignore[arg-type]
