"""prometheus-client backend: our own store, exposed through a collector in a ``CollectorRegistry``.

Values live in the store of :mod:`.store` (one slotted object per series, numbers in flat lists,
no lock on the record path), not in prometheus_client metric objects, for three reasons:

* no ``*_created`` series, without touching prometheus_client's process-wide switch;
* a series appears at its first update, and a family with no series is not exposed at all, as in
  upstream's Go exposition;
* an update is one list append, not ``labels()`` with its lock and ``str()`` calls.

One render path, two ways out with the same bytes: the collector yields, per family with data, a
:class:`~.writer.StoreFamily` (a prometheus_client ``Metric``).
:func:`inference_metrics.exposition.render` (what ``MetricsServer`` serves) asks it to write
itself with our own writer (:mod:`.writer`), reusing each unchanged series' lines from the last
scrape; ``generate_latest(registry)`` and every prometheus_client server read its ``samples``,
built from the series' snapshots when they are read.

Histograms are classic by default; ``histograms="native"`` or ``"both"`` keeps native buckets
too (or only), and ``exemplars=True`` has observations made in a sampled OpenTelemetry span carry
that span's ids, for every histogram whose spec does not say otherwise (``MetricSpec.histogram``
and ``MetricSpec.exemplars``; the catalogue's latencies leave exemplars to this setting, its size
and token histograms say no). Only the protobuf exposition carries native buckets; OpenMetrics
and protobuf carry exemplars (docs/native-histograms.md).

Under several worker processes each process has its own store, and exposes only itself, unless
the backend is given ``multiprocess_dir`` (:meth:`PrometheusBackend.from_env` reads it from
``INFERENCE_METRICS_MULTIPROC_DIR``): then every process records into its own memory-mapped file
there and each exposes the merged view of all of them (:mod:`.multiproc`,
docs/multiprocess.md).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from ..spec import MetricSpec, Naming
from . import multiproc
from .base import Instrument, Series, check_specs
from .exemplars import SpanIds, span_reader
from .store import MetricStore, StoreOptions, check_histogram_options, store_options
from .writer import FamilyWriter, StoreFamily, empty_family

__all__ = ["PrometheusBackend", "PrometheusInstrument"]


class PrometheusInstrument:
    """One metric: its store and its writer."""

    __slots__ = ("store", "writer")

    def __init__(self, spec: MetricSpec, options: StoreOptions | None = None) -> None:
        self.store = MetricStore(spec, options)
        self.writer = FamilyWriter(self.store)

    @property
    def spec(self) -> MetricSpec:
        return self.store.spec

    def bind(self, label_values: tuple[str, ...]) -> Series:
        return self.store.bind(label_values)

    def remove(self, label_values: tuple[str, ...]) -> None:
        self.store.remove(label_values)

    def empty_family(self) -> Metric:
        return empty_family(self.spec)

    def collect(self) -> StoreFamily | None:
        """The family as it is now, or None while no series was updated (as in Go)."""
        return self.writer.family()


class _Collector(Collector):
    """The instruments of one :meth:`PrometheusBackend.register` call, in one registry."""

    def __init__(self, instruments: Sequence[PrometheusInstrument]) -> None:
        self.instruments = tuple(instruments)

    def describe(self) -> Iterator[Metric]:
        for instrument in self.instruments:
            yield instrument.empty_family()

    def collect(self) -> Iterator[Metric]:
        for instrument in self.instruments:
            family = instrument.collect()
            if family is not None:
                yield family


class PrometheusBackend:
    """Metrics in a prometheus_client ``CollectorRegistry`` (default: its global ``REGISTRY``).

    Each :meth:`register` call adds one collector to the registry. Registering a name the registry
    already holds is a ``ValueError`` that names the clashing metrics; nothing is registered then.

    With ``multiprocess_dir``, values go to this process' memory-mapped file in that directory
    and the registry exposes the merged values of every process writing there (see
    :mod:`.multiproc` and docs/multiprocess.md); ``max_series`` is then the bound on label sets
    per group across all those processes (give the Recorder at least as many).
    :meth:`from_env` takes the directory from ``INFERENCE_METRICS_MULTIPROC_DIR``.

    Deprecated: without ``multiprocess_dir``, the constructor still honours that variable when
    it is set, with a ``DeprecationWarning``; pass the directory, or use :meth:`from_env`.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        multiprocess_dir: str | os.PathLike[str] | None = None,
        max_series: int = multiproc.DEFAULT_MAX_SERIES,
        histograms: str = "classic",
        exemplars: bool = False,
    ) -> None:
        if registry is not None and not isinstance(registry, CollectorRegistry):
            raise TypeError(f"registry must be a CollectorRegistry or None, got {registry!r}")
        check_histogram_options(histograms, exemplars)
        self.histograms = histograms
        self.exemplars = exemplars
        # The span reader, made now when exemplars are on by default (an ImportError without
        # the OpenTelemetry API changes nothing), else at the first spec that asks for them.
        self._span_ids: Callable[[], SpanIds | None] | None = span_reader() if exemplars else None
        if multiprocess_dir is None:
            multiprocess_dir = _deprecated_implicit_directory()
        self.multiprocess: multiproc.MultiprocessStore | None = None
        if multiprocess_dir is not None:
            self.multiprocess = multiproc.MultiprocessStore(multiprocess_dir, max_series=max_series)
        self.registry: CollectorRegistry = REGISTRY if registry is None else registry
        self._lock = threading.Lock()
        self._collectors: list[_Collector | multiproc.MultiprocessCollector] = []

    @classmethod
    def from_env(
        cls,
        registry: CollectorRegistry | None = None,
        *,
        max_series: int = multiproc.DEFAULT_MAX_SERIES,
        histograms: str = "classic",
        exemplars: bool = False,
    ) -> PrometheusBackend:
        """A backend in multiprocess mode when ``INFERENCE_METRICS_MULTIPROC_DIR`` names a
        directory (see :func:`~.multiproc.multiprocess_dir_from_env`), else a single-process
        one; the rest as the constructor."""
        directory = multiproc.multiprocess_dir_from_env()
        return cls(
            registry,
            multiprocess_dir=directory,
            max_series=max_series,
            histograms=histograms,
            exemplars=exemplars,
        )

    def register(self, specs: Sequence[MetricSpec]) -> Sequence[Instrument]:
        checked = check_specs(specs)
        for spec in checked:
            if spec.naming is not Naming.PROMETHEUS:
                raise ValueError(
                    f"metric {spec.name!r} is named for OpenTelemetry, not Prometheus: record it "
                    "through an OpenTelemetryBackend"
                )
        options = [self._options(spec) for spec in checked]
        collector: _Collector | multiproc.MultiprocessCollector
        if self.multiprocess is not None:
            instruments: Sequence[Instrument] = self.multiprocess.register(checked, options)
            with self._lock:
                # The store's own metrics are exposed once per backend: with its first call.
                first = not any(
                    isinstance(c, multiproc.MultiprocessCollector) for c in self._collectors
                )
            collector = multiproc.MultiprocessCollector(
                self.multiprocess.directory,
                checked,
                instruments=instruments,
                store_metrics=first,
                histograms=self.histograms,
                exemplars=self.exemplars,
            )
        else:
            own = [
                PrometheusInstrument(spec, option)
                for spec, option in zip(checked, options, strict=True)
            ]
            instruments, collector = own, _Collector(own)
        try:
            self.registry.register(collector)
        except ValueError as exc:
            raise ValueError(
                f"cannot register the inference metrics in this registry: {exc}. Each registry "
                "holds one set of these metrics: use one Recorder per registry, or pass a new "
                "CollectorRegistry()"
            ) from None
        with self._lock:
            self._collectors.append(collector)
        return instruments

    def _options(self, spec: MetricSpec) -> StoreOptions | None:
        """How ``spec``'s series keep a histogram: its own options, else this backend's; with
        exemplars, the span reader they record with."""
        options = store_options(spec, self.histograms, self.exemplars)
        if options is None or not options.exemplars:
            return options
        if self._span_ids is None:
            self._span_ids = span_reader()
        return options._replace(span_ids=self._span_ids)

    def unregister(self, instruments: Sequence[Instrument]) -> None:
        """Remove from the registry the collector of every register call that returned any of
        ``instruments``."""
        wanted = {id(instrument) for instrument in instruments}
        with self._lock:
            found = [c for c in self._collectors if any(id(i) in wanted for i in c.instruments)]
            for collector in found:
                self._collectors.remove(collector)
        for collector in found:
            self.registry.unregister(collector)

    def close(self) -> None:
        """Remove this backend's collectors from the registry (idempotent); in multiprocess mode
        also release this process' file (its values stay, merged as an exited process')."""
        with self._lock:
            collectors, self._collectors = self._collectors, []
        for collector in collectors:
            self.registry.unregister(collector)
        if self.multiprocess is not None:
            self.multiprocess.close()


def _deprecated_implicit_directory() -> str | None:
    """The directory ``INFERENCE_METRICS_MULTIPROC_DIR`` names, with a DeprecationWarning: the
    constructor honours it only so that code written before :meth:`PrometheusBackend.from_env`
    keeps working."""
    directory = multiproc.multiprocess_dir_from_env()
    if directory is not None:
        warnings.warn(
            f"PrometheusBackend() reads {multiproc.ENV_VAR} only for compatibility, and will "
            "stop: pass multiprocess_dir=..., or use PrometheusBackend.from_env()",
            DeprecationWarning,
            stacklevel=3,
        )
    return directory
