"""Our exposition writer: text 0.0.4, OpenMetrics 1.0 and protobuf bytes of a :class:`MetricStore`.

Byte for byte what prometheus_client's ``generate_latest`` (and its OpenMetrics
``generate_latest``) print for the same families: labels sorted by name, values as
``floatToGoString``, HELP escaped as each format escapes it. The differences between the two
formats are all in a family's HELP/TYPE header (a counter's family name loses ``_total`` in
OpenMetrics; OpenMetrics also escapes ``"`` in HELP) and the closing ``# EOF``, so the sample lines
of a series are formatted once and shared by both.

What is done once, and when:

* per metric (:class:`FamilyWriter`): both headers, and the ``le`` label of every bucket;
* per series, at bind (:class:`~.store.Labels`): the escaped label pairs;
* per series, per change: its lines, cached on the series (``rendered``) until it changes again.
  A scrape of an unchanged series is a list append of those bytes; no per-sample objects are
  built.

One render path: a collector of ours yields, per family with data, a :class:`StoreFamily`: a
prometheus_client ``Metric`` that holds the family's series and its writer. Our exposition
(:func:`inference_metrics.exposition.render`) asks it to :meth:`~StoreFamily.write` itself;
prometheus_client's encoders (``generate_latest``, its servers) read its ``samples`` as they read
any family's, and those are built from the series' snapshots only then.

Native histograms and exemplars (docs/native-histograms.md): a native-only histogram shows, in
both text formats, its ``+Inf`` bucket, ``_count`` and ``_sum`` (as client_golang's text encoder
shows it; its store keeps no finite bounds); ``both`` shows exactly the classic lines. Exemplars
appear in OpenMetrics only, on the bucket line of the bucket they fell in, so a histogram keeping
exemplars has OpenMetrics lines of its own (its own slot on the series); without exemplars the
two text formats share one rendering. The protobuf exposition (:class:`Format`.PROTOBUF,
:mod:`.protobuf`) carries everything: classic buckets with their exemplars, native buckets, and
for a native-only histogram its latest exemplar on a ``+Inf`` bucket entry. A series' protobuf
``Metric`` is cached and stamped like its lines; a family's length prefix, which changes with
the size of its series, is a piece of its own with a negative key (a new one per length).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar as ClientExemplar
from prometheus_client.samples import Sample

from ..spec import Kind, MetricSpec
from .exemplars import Exemplar, openmetrics_exemplar
from .protobuf import HistogramEncoder, MetricType, counter, family_header, gauge, varint
from .store import (
    SLOT_OPENMETRICS,
    SLOT_PROTOBUF,
    SLOT_TEXT,
    CounterSeries,
    GaugeSeries,
    HistogramSeries,
    HistogramSnapshot,
    MetricStore,
    Snapshot,
    StoredSeries,
    new_stamp,
)
from .textformat import escape_label_value, go_float

__all__ = [
    "FamilyWriter",
    "Format",
    "StoreFamily",
    "empty_family",
    "go_float",
    "le_values",
    "samples",
]

_INTEGRAL = 1_000_000  # below this, floatToGoString(n) of an int count is f"{n}.0"


class Format(enum.IntEnum):
    """The exposition formats our writer writes. ``Format(False)`` is TEXT and ``Format(True)``
    OPENMETRICS, so a caller passing ``openmetrics: bool`` still gets what it asked for."""

    TEXT = 0
    OPENMETRICS = 1
    PROTOBUF = 2


_PROTOBUF_TYPES = {
    Kind.COUNTER: MetricType.COUNTER,
    Kind.GAUGE: MetricType.GAUGE,
    Kind.HISTOGRAM: MetricType.HISTOGRAM,
}


@functools.cache
def _le_values(bounds: tuple[float, ...]) -> tuple[str, ...]:
    return (*(go_float(b) for b in bounds), "+Inf")


def le_values(spec: MetricSpec, bounds: tuple[float, ...] | None = None) -> tuple[str, ...]:
    """The ``le`` label values of a histogram's buckets, ``+Inf`` last, as prometheus_client
    prints them: ``bounds`` (a store's: none for a native-only histogram), else the spec's."""
    if bounds is None:
        assert spec.buckets is not None
        bounds = spec.buckets
    return _le_values(bounds)


def empty_family(spec: MetricSpec) -> Metric:
    """``spec``'s prometheus_client family, without samples (a counter's named without
    ``_total``, as prometheus_client names counter families)."""
    name = spec.name.removesuffix("_total") if spec.kind is Kind.COUNTER else spec.name
    return Metric(name, spec.documentation, spec.kind.value)


def samples(
    spec: MetricSpec,
    rows: Iterable[tuple[tuple[str, ...], Snapshot]],
    bounds: tuple[float, ...] | None = None,
) -> list[Sample]:
    """prometheus_client samples of ``spec``'s series, from ``rows`` of label values and
    snapshot (a counter's or gauge's value, a histogram's :class:`~.store.HistogramSnapshot`).
    ``bounds``: a histogram's classic bounds as its store keeps them (none for a native-only one;
    default: the spec's). A histogram's exemplars go on its bucket samples (prometheus_client's
    OpenMetrics encoder shows them, its text encoder does not)."""
    names, name = spec.labels, spec.name
    found: list[Sample] = []
    if spec.kind is Kind.HISTOGRAM:
        bucket, count, total = name + "_bucket", name + "_count", name + "_sum"
        le = le_values(spec, bounds)
        for label_values, snapshot in rows:
            assert isinstance(snapshot, HistogramSnapshot)
            labels = dict(zip(names, label_values, strict=True))
            held = snapshot.exemplars or (None,) * len(le)
            cumulative: float = 0
            for bound, n, shown in zip(le, snapshot.counts, held, strict=True):
                cumulative += n
                found.append(
                    Sample(bucket, {**labels, "le": bound}, cumulative, None, _client(shown))
                )
            found.append(Sample(count, labels, cumulative))
            found.append(Sample(total, labels, snapshot.sum))
    else:
        for label_values, value in rows:
            assert not isinstance(value, HistogramSnapshot)
            found.append(Sample(name, dict(zip(names, label_values, strict=True)), value))
    return found


class StoreFamily(Metric):
    """One family of our store as prometheus_client sees it: :meth:`write` renders its series
    with our writer (what :func:`inference_metrics.exposition.render` does); its ``samples``, for
    prometheus_client's encoders, are built from the store's snapshot when first read."""

    def __init__(self, writer: FamilyWriter, series: Sequence[StoredSeries]) -> None:
        self._writer = writer
        self._series = series
        self._samples: list[Sample] | None = None
        spec = writer.store.spec
        name = spec.name.removesuffix("_total") if spec.kind is Kind.COUNTER else spec.name
        super().__init__(name, spec.documentation, spec.kind.value)

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            store = self._writer.store
            self._samples = samples(store.spec, store.snapshot(), store.bounds)
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        # Metric.__init__ assigns an empty list: that leaves the samples to be built when read.
        self._samples = value or None

    def write(
        self, out: list[bytes], openmetrics: bool | Format, keys: list[int] | None = None
    ) -> None:
        """Append the family's header and every series' bytes to ``out`` in a :class:`Format`
        (a bool: OpenMetrics or text); with ``keys``, one key per piece appended (see
        :meth:`FamilyWriter.write`)."""
        self._writer.write(out, openmetrics, keys, self._series)


def _client(held: Exemplar | None) -> ClientExemplar | None:
    if held is None:
        return None
    return ClientExemplar(dict(held.labels), held.value, held.timestamp)


def _count(n: int) -> str:
    return f"{n}.0" if n < _INTEGRAL else go_float(n)


class FamilyWriter:
    """Renders one metric of the store: its header, then the bytes of every touched series."""

    __slots__ = (
        "_encoder",
        "_format",
        "_le",
        "_name",
        "_om_format",
        "_om_key",
        "_om_slot",
        "_prefix",
        "_protobuf",
        "_protobuf_header",
        "_text_key",
        "om_header",
        "store",
        "text_header",
    )

    def __init__(self, store: MetricStore) -> None:
        spec = store.spec
        self.store = store
        self._name = name = spec.name
        kind = spec.kind.value
        text_help = spec.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        om_help = escape_label_value(spec.documentation)
        om_name = name.removesuffix("_total") if spec.kind is Kind.COUNTER else name
        self.text_header = f"# HELP {name} {text_help}\n# TYPE {name} {kind}\n".encode()
        self.om_header = f"# HELP {om_name} {om_help}\n# TYPE {om_name} {kind}\n".encode()
        self._protobuf_header = family_header(name, spec.documentation, _PROTOBUF_TYPES[spec.kind])
        # A header's key is a negative stamp: the gzip cache starts chunks at family headers.
        self._text_key, self._om_key = -new_stamp(), -new_stamp()
        #: The protobuf family's length prefix and header for the last body length: (length,
        #: bytes, key), swapped as one tuple.
        self._prefix: tuple[int, bytes, int] = (-1, b"", 0)
        self._le: tuple[str, ...] = ()
        self._encoder: HistogramEncoder | None = None
        self._format: Callable[[Any], bytes]
        self._om_format: Callable[[Any], bytes]
        self._protobuf: Callable[[Any], bytes]
        self._om_slot = SLOT_TEXT
        if spec.kind is Kind.HISTOGRAM:
            self._le = tuple(f'le="{bound}"' for bound in le_values(spec, store.bounds))
            self._encoder = HistogramEncoder(store.bounds)
            self._format = self._om_format = self._histogram
            self._protobuf = self._protobuf_histogram
            if store.options.exemplars:  # OpenMetrics lines of their own
                self._om_format = self._histogram_exemplars
                self._om_slot = SLOT_OPENMETRICS
        else:
            self._format = self._om_format = self._value
            self._protobuf = (
                self._protobuf_counter if spec.kind is Kind.COUNTER else self._protobuf_gauge
            )

    def family(self) -> StoreFamily | None:
        """The family with its series as they are now; None while none was updated (a family
        without samples is not exposed, as in Go)."""
        series = self.store.series()
        if not any(one.has_data() for one in series):
            return None
        return StoreFamily(self, series)

    def write(
        self,
        out: list[bytes],
        openmetrics: bool | Format,
        keys: list[int] | None = None,
        series: Sequence[StoredSeries] | None = None,
    ) -> None:
        """Append the family (``series``, by default every series of the store) to ``out`` in
        the format ``openmetrics`` names (a bool: OpenMetrics or text; or a :class:`Format`);
        nothing while it has no touched series (as in Go).

        With ``keys``, also append one key per piece appended to ``out``: a series' stamp (> 0,
        the same while its bytes are), the header's (< 0: fixed, or for protobuf one per length
        of the family)."""
        chosen = Format(openmetrics)
        if series is None:
            series = self.store.series()
        if chosen is Format.PROTOBUF:
            self._write_protobuf(out, keys, series)
            return
        if chosen is Format.OPENMETRICS:
            render, slot, header, key = self._om_format, self._om_slot, self.om_header, self._om_key
        else:
            render, slot, header, key = self._format, SLOT_TEXT, self.text_header, self._text_key
        keyed = [one.render_keyed(render, slot) for one in series]
        if any(lines for lines, _ in keyed):
            out.append(header)
            out.extend([lines for lines, _ in keyed])
            if keys is not None:
                keys.append(key)
                keys.extend([stamp for _, stamp in keyed])

    def _write_protobuf(
        self, out: list[bytes], keys: list[int] | None, series: Sequence[StoredSeries]
    ) -> None:
        render = self._protobuf
        keyed = [one.render_keyed(render, SLOT_PROTOBUF) for one in series]
        size = sum([len(metric) for metric, _ in keyed])
        if not size:
            return  # client_golang sends no empty family
        length, prefix, key = self._prefix
        if length != size:
            header = self._protobuf_header
            prefix = varint(len(header) + size) + header
            key = -new_stamp()
            self._prefix = (size, prefix, key)
        out.append(prefix)
        out.extend([metric for metric, _ in keyed])
        if keys is not None:
            keys.append(key)
            keys.extend([stamp for _, stamp in keyed])

    def _value(self, series: CounterSeries | GaugeSeries) -> bytes:
        plain = series.labels.plain
        value = go_float(series.value)
        if plain:
            return f"{self._name}{{{plain}}} {value}\n".encode()
        return f"{self._name} {value}\n".encode()

    def _histogram(self, series: HistogramSeries, exemplars: Sequence[str] | None = None) -> bytes:
        name = self._name
        labels = series.labels
        head = f"{name}_bucket{{{labels.before}"
        tail = f"{labels.after}}} "
        cumulative = list(accumulate(series.counts))
        total = cumulative[-1]
        if exemplars is not None:
            buckets = "".join(
                f"{head}{le}{tail}{_count(n)}{shown}\n"
                for le, n, shown in zip(self._le, cumulative, exemplars, strict=True)
            )
        elif total < _INTEGRAL:  # every count prints as "<n>.0"
            buckets = "".join(
                [f"{head}{le}{tail}{n}.0\n" for le, n in zip(self._le, cumulative, strict=True)]
            )
        else:
            buckets = "".join(
                f"{head}{le}{tail}{_count(n)}\n" for le, n in zip(self._le, cumulative, strict=True)
            )
        plain = f"{{{labels.plain}}}" if labels.plain else ""
        return (
            f"{buckets}{name}_count{plain} {_count(total)}\n"
            f"{name}_sum{plain} {go_float(series.sum)}\n"
        ).encode()

    def _histogram_exemplars(self, series: HistogramSeries) -> bytes:
        """OpenMetrics lines: each bucket line with the exemplar of its bucket, if any."""
        held = series.exemplars
        assert held is not None
        shown = [
            "" if exemplar is None else openmetrics_exemplar(exemplar)
            for exemplar in held.snapshot()
        ]
        return self._histogram(series, shown)

    def _protobuf_counter(self, series: CounterSeries) -> bytes:
        return counter(series.protobuf_labels, series.value)

    def _protobuf_gauge(self, series: GaugeSeries) -> bytes:
        return gauge(series.protobuf_labels, series.value)

    def _protobuf_histogram(self, series: HistogramSeries) -> bytes:
        encoder = self._encoder
        assert encoder is not None
        held = series.exemplars
        counts = series.counts
        if encoder.bounds or series.native is None:  # classic buckets (and maybe native ones)
            return encoder.metric(
                series.protobuf_labels,
                sum(counts),
                series.sum,
                counts=counts,
                native=series.native,
                exemplars=None if held is None else held.snapshot(),
            )
        # Native only: the latest exemplar on a +Inf bucket entry (client_golang <= 1.18).
        return encoder.metric(
            series.protobuf_labels,
            series.native.count,
            series.sum,
            native=series.native,
            exemplars=None if held is None else [held.latest()],
        )
