"""prometheus-client backend: our own collector in a ``CollectorRegistry``.

Values live in plain Python objects (one lock per metric, taken once per update and once per
scrape), not in prometheus_client metric objects, for three reasons:

* no ``*_created`` series, without touching prometheus_client's process-wide switch;
* a series appears at its first update, and a family with no series is not exposed at all, as in
  upstream's Go exposition;
* an update is one ``bisect`` and two additions, not ``labels()`` with its lock and ``str()`` calls.

The exposition is prometheus_client's own (``generate_latest`` or any of its servers), so the text
and OpenMetrics formats, escaping and ``le`` formatting are exactly prometheus_client's.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from ..spec import Kind, MetricSpec
from .base import Series, SeriesBase

__all__ = ["PrometheusBackend"]


class _CounterSeries(SeriesBase):
    __slots__ = ("_lock", "touched", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0
        self.touched = False

    def add(self, amount: float) -> None:
        with self._lock:
            self.value += amount
            self.touched = True


class _GaugeSeries(SeriesBase):
    __slots__ = ("_lock", "touched", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.value = 0.0
        self.touched = False

    def add(self, amount: float) -> None:
        with self._lock:
            self.value += amount
            self.touched = True

    def set(self, value: float) -> None:
        with self._lock:
            self.value = value
            self.touched = True


class _HistogramSeries(SeriesBase):
    __slots__ = ("_bounds", "_lock", "counts", "sum")

    def __init__(self, lock: threading.Lock, bounds: tuple[float, ...]) -> None:
        self._lock = lock
        self._bounds = bounds
        # Non-cumulative: counts[i] holds observations in (bounds[i-1], bounds[i]]; the last
        # slot is (bounds[-1], +Inf). bisect_left puts a value equal to a bound in that bound's
        # bucket, as Prometheus' "le" requires.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect_left(self._bounds, value)
        with self._lock:
            self.counts[i] += 1
            self.sum += value


def _go_float(value: float) -> str:
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


_AnySeries = _CounterSeries | _GaugeSeries | _HistogramSeries


class PrometheusInstrument:
    """One metric's series, keyed by label values."""

    __slots__ = ("_le", "_lock", "_series", "spec")

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], _AnySeries] = {}
        # The "le" label values, formatted as prometheus_client formats its own histograms.
        bounds = spec.buckets or ()
        self._le: tuple[str, ...] = (*(_go_float(b) for b in bounds), "+Inf") if bounds else ()

    def bind(self, label_values: tuple[str, ...]) -> Series:
        if len(label_values) != len(self.spec.labels):
            raise ValueError(
                f"{self.spec.name} has labels {self.spec.labels}, got {len(label_values)} values"
            )
        with self._lock:
            series = self._series.get(label_values)
            if series is None:
                series = self._new_series()
                self._series[label_values] = series
            return series

    def _new_series(self) -> _AnySeries:
        kind = self.spec.kind
        if kind is Kind.COUNTER:
            return _CounterSeries(self._lock)
        if kind is Kind.GAUGE:
            return _GaugeSeries(self._lock)
        assert self.spec.buckets is not None
        return _HistogramSeries(self._lock, self.spec.buckets)

    def empty_family(self) -> Metric:
        spec = self.spec
        name = spec.name[: -len("_total")] if spec.kind is Kind.COUNTER else spec.name
        return Metric(name, spec.documentation, spec.kind.value)

    def collect(self) -> Metric | None:
        """The family with every touched series, or None when there is none (as in Go)."""
        if self.spec.kind is Kind.HISTOGRAM:
            return self._collect_histogram()
        with self._lock:
            values = [
                (key, s.value)
                for key, s in self._series.items()
                if not isinstance(s, _HistogramSeries) and s.touched
            ]
        if not values:
            return None
        family = self.empty_family()
        names, name = self.spec.labels, self.spec.name
        family.samples = [
            Sample(name, dict(zip(names, key, strict=True)), value) for key, value in values
        ]
        return family

    def _collect_histogram(self) -> Metric | None:
        with self._lock:
            snapshot = [
                (key, list(s.counts), s.sum)
                for key, s in self._series.items()
                if isinstance(s, _HistogramSeries) and any(s.counts)
            ]
        if not snapshot:
            return None
        family = self.empty_family()
        names, le = self.spec.labels, self._le
        bucket_name = self.spec.name + "_bucket"
        count_name = self.spec.name + "_count"
        sum_name = self.spec.name + "_sum"
        samples = family.samples
        for key, counts, total in snapshot:
            labels = dict(zip(names, key, strict=True))
            cumulative = 0
            for bound, n in zip(le, counts, strict=True):
                cumulative += n
                samples.append(Sample(bucket_name, {**labels, "le": bound}, cumulative))
            samples.append(Sample(count_name, labels, cumulative))
            samples.append(Sample(sum_name, labels, total))
        return family


class _Collector(Collector):
    def __init__(self, instruments: Sequence[PrometheusInstrument]) -> None:
        self._instruments = tuple(instruments)

    def describe(self) -> Iterator[Metric]:
        for instrument in self._instruments:
            yield instrument.empty_family()

    def collect(self) -> Iterator[Metric]:
        for instrument in self._instruments:
            family = instrument.collect()
            if family is not None:
                yield family


class PrometheusBackend:
    """Metrics in a prometheus_client ``CollectorRegistry`` (default: its global ``REGISTRY``).

    Each :meth:`register` call adds one collector to the registry. Registering a name the registry
    already holds is a ``ValueError`` that names the clashing metrics; nothing is registered then.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is not None and not isinstance(registry, CollectorRegistry):
            raise TypeError(f"registry must be a CollectorRegistry or None, got {registry!r}")
        self.registry: CollectorRegistry = REGISTRY if registry is None else registry
        self._collectors: list[_Collector] = []

    def register(self, specs: Sequence[MetricSpec]) -> Sequence[PrometheusInstrument]:
        instruments = [PrometheusInstrument(spec) for spec in specs]
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"the same metric appears twice in {names}")
        collector = _Collector(instruments)
        try:
            self.registry.register(collector)
        except ValueError as exc:
            raise ValueError(
                f"cannot register the inference metrics in this registry: {exc}. Each registry "
                "holds one set of these metrics: use one Recorder per registry, or pass a new "
                "CollectorRegistry()"
            ) from None
        self._collectors.append(collector)
        return instruments

    def close(self) -> None:
        """Remove this backend's collectors from the registry (idempotent)."""
        while self._collectors:
            self.registry.unregister(self._collectors.pop())
