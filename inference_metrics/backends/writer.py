"""Our exposition writer: Prometheus text 0.0.4 and OpenMetrics 1.0 lines of a :class:`MetricStore`.

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
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from ..spec import Kind, MetricSpec
from .store import (
    CounterSeries,
    GaugeSeries,
    HistogramSeries,
    HistogramSnapshot,
    MetricStore,
    Snapshot,
    StoredSeries,
    escape_label_value,
    new_stamp,
)

__all__ = ["FamilyWriter", "StoreFamily", "empty_family", "go_float", "le_values", "samples"]

_INTEGRAL = 1_000_000  # below this, floatToGoString(n) of an int count is f"{n}.0"


def go_float(value: float) -> str:
    """``value`` as prometheus_client (and Go) print sample values and ``le`` bounds."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


@functools.cache
def le_values(spec: MetricSpec) -> tuple[str, ...]:
    """The ``le`` label values of a histogram ``spec``'s buckets, ``+Inf`` last, as
    prometheus_client prints them."""
    assert spec.buckets is not None
    return (*(go_float(b) for b in spec.buckets), "+Inf")


def empty_family(spec: MetricSpec) -> Metric:
    """``spec``'s prometheus_client family, without samples (a counter's named without
    ``_total``, as prometheus_client names counter families)."""
    name = spec.name.removesuffix("_total") if spec.kind is Kind.COUNTER else spec.name
    return Metric(name, spec.documentation, spec.kind.value)


def samples(spec: MetricSpec, rows: Iterable[tuple[tuple[str, ...], Snapshot]]) -> list[Sample]:
    """prometheus_client samples of ``spec``'s series, from ``rows`` of label values and
    snapshot (a counter's or gauge's value, a histogram's :class:`~.store.HistogramSnapshot`)."""
    names, name = spec.labels, spec.name
    found: list[Sample] = []
    if spec.kind is Kind.HISTOGRAM:
        bucket, count, total = name + "_bucket", name + "_count", name + "_sum"
        le = le_values(spec)
        for label_values, snapshot in rows:
            assert isinstance(snapshot, HistogramSnapshot)
            labels = dict(zip(names, label_values, strict=True))
            cumulative: float = 0
            for bound, n in zip(le, snapshot.counts, strict=True):
                cumulative += n
                found.append(Sample(bucket, {**labels, "le": bound}, cumulative))
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
            self._samples = samples(store.spec, store.snapshot())
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        # Metric.__init__ assigns an empty list: that leaves the samples to be built when read.
        self._samples = value or None

    def write(self, out: list[bytes], openmetrics: bool, keys: list[int] | None = None) -> None:
        """Append the family's header and every series' lines to ``out`` (with ``keys``, one
        key per piece appended: a series' stamp (> 0, the same while its lines are), the
        header's (< 0, fixed))."""
        self._writer.write(out, openmetrics, keys, self._series)


def _count(n: int) -> str:
    return f"{n}.0" if n < _INTEGRAL else go_float(n)


class FamilyWriter:
    """Renders one metric of the store: its header, then the lines of every touched series."""

    __slots__ = (
        "_format",
        "_le",
        "_name",
        "_om_key",
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
        # A header's key is a negative stamp: the gzip cache starts chunks at family headers.
        self._text_key, self._om_key = -new_stamp(), -new_stamp()
        self._le: tuple[str, ...] = ()
        self._format: Callable[[Any], bytes]
        if spec.kind is Kind.HISTOGRAM:
            self._le = tuple(f'le="{bound}"' for bound in le_values(spec))
            self._format = self._histogram
        else:
            self._format = self._value

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
        openmetrics: bool,
        keys: list[int] | None = None,
        series: Sequence[StoredSeries] | None = None,
    ) -> None:
        """Append the family (``series``, by default every series of the store) to ``out``;
        nothing while it has no touched series (as in Go).

        With ``keys``, also append one key per piece appended to ``out``: a series' stamp (> 0,
        the same while its lines are), the header's (< 0, fixed)."""
        render = self._format
        if series is None:
            series = self.store.series()
        keyed = [one.render_keyed(render) for one in series]
        if any(lines for lines, _ in keyed):
            out.append(self.om_header if openmetrics else self.text_header)
            out.extend([lines for lines, _ in keyed])
            if keys is not None:
                keys.append(self._om_key if openmetrics else self._text_key)
                keys.extend([stamp for _, stamp in keyed])

    def _value(self, series: CounterSeries | GaugeSeries) -> bytes:
        plain = series.labels.plain
        value = go_float(series.value)
        if plain:
            return f"{self._name}{{{plain}}} {value}\n".encode()
        return f"{self._name} {value}\n".encode()

    def _histogram(self, series: HistogramSeries) -> bytes:
        name = self._name
        labels = series.labels
        head = f"{name}_bucket{{{labels.before}"
        tail = f"{labels.after}}} "
        cumulative = list(accumulate(series.counts))
        total = cumulative[-1]
        if total < _INTEGRAL:  # every count prints as "<n>.0"
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
