"""OpenTelemetry backend: one SDK instrument per catalogue spec.

With a ``PrometheusMetricReader(disable_target_info=True, scope_info_enabled=False, registry=R)``
on the meter provider, ``generate_latest(R)`` holds the same families as the prometheus-client
backend: names, HELP, TYPE, label sets, bucket bounds (``le`` text included) and values. The few
residual differences are listed in ``docs/backends.md``. With an OTLP exporter the same instruments
travel as OTLP data points (cumulative temporality unless the exporter asks otherwise).

How each spec becomes an instrument
-----------------------------------

* **Names** are the catalogue names, unchanged (counters keep ``_total``: the Prometheus exporter's
  ``CounterMetricFamily`` strips it and the text format adds it back). The SDK lower-cases
  instrument names and accepts ``[a-zA-Z][-_./a-zA-Z0-9]*`` only, so :meth:`register` refuses a
  name it would change or reject.
* **Descriptions** are ``spec.documentation``, the rendered HELP text with its ``[ALPHA] `` prefix.
* **Units.** The Prometheus exporter (and the OpenTelemetry Collector's Prometheus translation)
  append a suffix derived from the unit unless the name already ends with it: ``s`` → ``_seconds``,
  ``By`` → ``_bytes``, ``1`` → nothing, a UCUM annotation such as ``{token}`` → nothing. The spec's
  unit is kept wherever it leaves the name alone, and otherwise replaced by an annotation that
  names it (:func:`otel_unit`). For the catalogue that means:

  - ``*_seconds`` histograms keep ``s`` (the name already ends with ``_seconds``);
  - counters, queue and running-request gauges keep ``{request}``, token histograms ``{token}``,
    the ready-pods gauge ``{pod}`` (annotations never add a suffix);
  - the KV-cache utilization and build-info gauges keep ``1`` (maps to no suffix);
  - the request and response size histograms get ``{byte}`` instead of ``By``: upstream's names
    are ``inference_model_request_sizes`` / ``..._response_sizes``, and ``By`` would expose them as
    ``..._sizes_bytes``, which no upstream dashboard queries.

* **Histograms** get the spec's buckets through ``explicit_bucket_boundaries_advisory``. The bounds
  are floats whose ``format()`` is prometheus_client's ``floatToGoString``: the exporter writes
  ``le`` as ``f"{bound}"``, so ``le`` prints exactly as the prometheus-client backend prints it
  (``1.0``, ``1.048576e+06``). Elsewhere (``repr``, arithmetic, OTLP) they are ordinary floats.
* **Gauges** are observable gauges (``create_observable_gauge``) whose callback reports the value
  each series holds. ``set`` sets and ``add`` adds (running requests go +1/-1) under the series'
  lock; the SDK reads the values at each collection. A synchronous gauge would export every
  attribute set it has ever seen until the process ends; an observable one exports what its
  callback reports, so a removed series (a pool or pod gone, :meth:`OpenTelemetryInstrument.remove`)
  stops being exported. Both travel over OTLP as the gauge the catalogue declares (an
  UpDownCounter would travel as a non-monotonic sum) and expose as a Prometheus gauge.

The hot path
------------

:meth:`OpenTelemetryInstrument.bind` builds the attributes dict once per label set; a series' update
is one call of the SDK's own bound method with that dict: ``counter.add(amount, attributes)``,
``histogram.record(value, attributes)`` (a gauge's ``set`` is an assignment under its lock). The
SDK copies and hashes the attributes on every call anyway (``Measurement`` cleans them, the view
match copies them and hashes the copy), so copying them here as well would only add cost; the
dict is never mutated after bind, so handing the same one to the SDK every time is safe. Empty
string values are valid attribute values and survive to the exposition (``model_name=""``).

Specs named for OpenTelemetry (``Naming.OPENTELEMETRY``: the GenAI conventions' own names, with
dots) keep their name, unit and bucket bounds exactly as given, and leave an ``optional_labels``
attribute out when it is empty (the conventions' "conditionally required").

One backend per meter provider: :meth:`OpenTelemetryBackend.register` refuses names that another
backend already registered on the same provider (the SDK would hand both backends the same
instruments, and the Prometheus exporter would merge their series into one family), just as a
prometheus_client registry refuses a second collector with the same names.
"""

from __future__ import annotations

import enum
import importlib.metadata
import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import Literal, cast

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import (
        CallbackOptions,
        Counter,
        Histogram,
        Meter,
        MeterProvider,
        Observation,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "OpenTelemetryBackend needs the OpenTelemetry API and SDK (1.23 or later): install the "
        "'otel' extra (pip install 'inference-metrics[otel]'), or 'inference-metrics[otlp]' to "
        f"push over OTLP ({exc})"
    ) from exc

from prometheus_client.utils import floatToGoString

from ..spec import Kind, MetricSpec, Naming
from .base import (
    Instrument,
    Series,
    SeriesBase,
    UnsupportedOperation,
    check_label_values,
    check_specs,
)

__all__ = ["OpenTelemetryBackend", "OpenTelemetryInstrument", "otel_unit"]

DEFAULT_METER_NAME = "inference_metrics"

# The SDK's instrument-name rule (opentelemetry.metrics._internal.instrument._name_regex).
_OTEL_NAME_RE = re.compile(r"[a-zA-Z][-_./a-zA-Z0-9]{0,254}")
_UNIT_ANNOTATION_RE = re.compile(r"\{[^{}]*\}")
# Units the Prometheus exporter turns into a name suffix, and a word for each to annotate with when
# the suffix would change the name. Any unit not listed here is treated as one that would.
_PROMETHEUS_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": ""}
_UNIT_WORD = {"s": "second", "ms": "millisecond", "By": "byte"}


def otel_unit(spec: MetricSpec) -> str:
    """The OpenTelemetry unit for ``spec``: its own, unless that would change the exposed name.

    ``""``, ``"1"`` and annotations (``{token}``) never add a suffix and are kept;
    ``s``/``ms``/``By`` are kept when the name (a counter's without ``_total``) already ends with
    their suffix (``_seconds``, ``_milliseconds``, ``_bytes``); any other unit becomes the
    annotation ``{<unit as a word>}`` (``By`` → ``{byte}``), which records the meaning without
    renaming. A spec named for OpenTelemetry keeps its unit.
    """
    unit = spec.unit
    if not unit or _UNIT_ANNOTATION_RE.fullmatch(unit) or spec.naming is Naming.OPENTELEMETRY:
        return unit
    suffix = _PROMETHEUS_SUFFIX.get(unit)
    base = spec.name.removesuffix("_total") if spec.kind is Kind.COUNTER else spec.name
    if suffix is not None and (not suffix or base.endswith("_" + suffix)):
        return unit
    return "{" + _UNIT_WORD.get(unit, unit) + "}"


class _GoFloat(float):
    """A bucket bound that formats like prometheus_client's ``le`` (``1.048576e+06``, ``1.0``).

    The Prometheus exporter writes ``le`` as ``f"{bound}"``; only ``format()`` with an empty spec is
    changed, so ``repr``, ``str``, comparisons and arithmetic stay those of ``float``.
    """

    __slots__ = ()

    def __format__(self, format_spec: str) -> str:
        if format_spec:
            return float.__format__(self, format_spec)
        text: str = floatToGoString(self)  # type: ignore[no-untyped-call]
        return text


class _CounterSeries(SeriesBase):
    __slots__ = ("_add", "_attributes")

    def __init__(self, counter: Counter, attributes: dict[str, str]) -> None:
        self._add = counter.add
        self._attributes = attributes

    def add(self, amount: float) -> None:
        self._add(amount, self._attributes)


class _HistogramSeries(SeriesBase):
    __slots__ = ("_attributes", "_record")

    def __init__(self, histogram: Histogram, attributes: dict[str, str]) -> None:
        self._record = histogram.record
        self._attributes = attributes

    def observe(self, value: float) -> None:
        self._record(value, self._attributes)


class _GaugeSeries(SeriesBase):
    """A gauge's series: the value lives here, under this series' lock, and the instrument's
    callback reports it at every collection (see :class:`OpenTelemetryInstrument`)."""

    __slots__ = ("_lock", "attributes", "touched", "value")

    def __init__(self, attributes: dict[str, str]) -> None:
        self.attributes = attributes
        self._lock = threading.Lock()
        self.value = 0.0
        self.touched = False

    def set(self, value: float) -> None:
        with self._lock:
            self.value = value
            self.touched = True

    def add(self, amount: float) -> None:
        with self._lock:
            self.value += amount
            self.touched = True


_AnySeries = _CounterSeries | _GaugeSeries | _HistogramSeries


class OpenTelemetryInstrument:
    """One spec's SDK instrument and its bound series, one per label set.

    A gauge is an observable gauge whose callback (:meth:`observe_gauges`) reports the value of
    every touched series at each collection, so a removed series stops being exported at the next
    collection: the SDK forgets an asynchronous instrument's attribute set that its callback no
    longer reports. Counters and histograms are synchronous instruments, which the SDK keeps
    exporting for every attribute set it has seen; their :meth:`remove` raises
    :class:`UnsupportedOperation` instead of pretending.
    """

    __slots__ = ("_instrument", "_lock", "_optional", "_series", "spec")

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        self._instrument: Counter | Histogram | None = None
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], _AnySeries] = {}
        self._optional = frozenset(spec.optional_labels)

    def bind(self, label_values: tuple[str, ...]) -> Series:
        check_label_values(self.spec, label_values)
        with self._lock:
            series = self._series.get(label_values)
            if series is None:
                attributes = {
                    label: value
                    for label, value in zip(self.spec.labels, label_values, strict=True)
                    if value or label not in self._optional
                }
                series = self._new_series(attributes)
                self._series[label_values] = series
            return series

    def remove(self, label_values: tuple[str, ...]) -> None:
        check_label_values(self.spec, label_values)
        if self.spec.kind is not Kind.GAUGE:
            raise UnsupportedOperation(
                f"{self.spec.name}: the OpenTelemetry SDK keeps exporting every attribute set a "
                f"synchronous {self.spec.kind.value} has seen, so a series cannot be removed"
            )
        with self._lock:
            self._series.pop(label_values, None)

    def observe_gauges(self, options: CallbackOptions) -> Iterable[Observation]:
        """The observable gauge's callback: every touched series' value."""
        with self._lock:
            series = list(self._series.values())
        return [
            Observation(s.value, s.attributes)
            for s in series
            if isinstance(s, _GaugeSeries) and s.touched
        ]

    def _new_series(self, attributes: dict[str, str]) -> _AnySeries:
        instrument, kind = self._instrument, self.spec.kind
        if kind is Kind.COUNTER:
            return _CounterSeries(cast(Counter, instrument), attributes)
        if kind is Kind.HISTOGRAM:
            return _HistogramSeries(cast(Histogram, instrument), attributes)
        return _GaugeSeries(attributes)


# Names registered per meter provider, so a second backend on the same provider is refused (see the
# module docstring). Weak keys: a provider that is gone releases its names.
_claims_lock = threading.Lock()
_claims: weakref.WeakKeyDictionary[object, set[str]] = weakref.WeakKeyDictionary()


def _claimed(provider: object) -> set[str] | None:
    """The provider's claimed names (created empty), or None if it cannot be weakly referenced."""
    try:
        return _claims.setdefault(provider, set())
    except TypeError:
        return None


class _Version(enum.Enum):
    PACKAGE = "package"  # the default meter version: this package's


def _package_version() -> str | None:
    try:
        return importlib.metadata.version("inference-metrics")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return None


class OpenTelemetryBackend:
    """Metrics as OpenTelemetry instruments of ``meter_provider`` (default: the global provider).

    The instruments belong to the meter ``meter_name`` (instrumentation scope) with this package's
    version. Which readers and exporters see them is the provider's configuration: a
    ``PrometheusMetricReader`` for a ``/metrics`` endpoint, a ``PeriodicExportingMetricReader``
    with an OTLP exporter to push, or both. With the default, set the global provider
    (``opentelemetry.metrics.set_meter_provider``) first: until then the API's proxy provider
    drops every measurement. ``meter_version`` is the meter's version (default: this package's;
    None: none, as :class:`~inference_metrics.genai.GenAIRecorder`'s meter has always had).
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        meter_name: str = DEFAULT_METER_NAME,
        meter_version: str | Literal[_Version.PACKAGE] | None = _Version.PACKAGE,
    ) -> None:
        if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
            raise TypeError(
                f"meter_provider must be an opentelemetry MeterProvider or None, got "
                f"{meter_provider!r}"
            )
        if not isinstance(meter_name, str) or not meter_name:
            raise ValueError(f"meter_name must be a non-empty string, got {meter_name!r}")
        self.meter_provider: MeterProvider = (
            otel_metrics.get_meter_provider() if meter_provider is None else meter_provider
        )
        self.meter_name = meter_name
        version = _package_version() if meter_version is _Version.PACKAGE else meter_version
        self.meter: Meter = self.meter_provider.get_meter(meter_name, version)
        self._names: set[str] = set()

    def register(self, specs: Sequence[MetricSpec]) -> Sequence[OpenTelemetryInstrument]:
        """One instrument per spec, in order; nothing is created if any name is refused."""
        specs = check_specs(specs)
        names = [spec.name for spec in specs]
        for spec in specs:
            _check_name(spec)
        with _claims_lock:
            claimed = _claimed(self.meter_provider)
            taken = sorted(set(names) & (claimed if claimed is not None else self._names))
            if taken:
                raise ValueError(
                    f"cannot register the inference metrics on this meter provider: {taken} "
                    "are already registered on it by another OpenTelemetryBackend. Use one "
                    "Recorder per meter provider, or pass a new MeterProvider"
                )
            instruments = [self._create(spec) for spec in specs]
            if claimed is not None:
                claimed.update(names)
            self._names.update(names)
        return instruments

    def unregister(self, instruments: Sequence[Instrument]) -> None:
        """Release the names of ``instruments`` (registered by this backend) for a new register.

        OpenTelemetry cannot remove an instrument from a provider: data points it already holds
        stay in the provider's exports. This exists so a fan-out can undo a register that nothing
        has recorded into yet.
        """
        names = {instrument.spec.name for instrument in instruments} & self._names
        with _claims_lock:
            claimed = _claimed(self.meter_provider)
            if claimed is not None:
                claimed.difference_update(names)
            self._names.difference_update(names)

    def close(self) -> None:
        """Release every name this backend registered (idempotent); see :meth:`unregister`."""
        with _claims_lock:
            claimed = _claimed(self.meter_provider)
            if claimed is not None:
                claimed.difference_update(self._names)
            self._names.clear()

    def _create(self, spec: MetricSpec) -> OpenTelemetryInstrument:
        meter, unit, description = self.meter, otel_unit(spec), spec.documentation
        instrument = OpenTelemetryInstrument(spec)
        if spec.kind is Kind.COUNTER:
            instrument._instrument = meter.create_counter(
                spec.name, unit=unit, description=description
            )
        elif spec.kind is Kind.GAUGE:
            meter.create_observable_gauge(
                spec.name,
                callbacks=[instrument.observe_gauges],
                unit=unit,
                description=description,
            )
        else:
            assert spec.buckets is not None  # a valid histogram spec always has buckets
            # Prometheus-named: bounds print as prometheus_client prints them (see _GoFloat).
            go = spec.naming is Naming.PROMETHEUS
            instrument._instrument = meter.create_histogram(
                spec.name,
                unit=unit,
                description=description,
                explicit_bucket_boundaries_advisory=[
                    _GoFloat(bound) if go else bound for bound in spec.buckets
                ],
            )
        return instrument


def _check_name(spec: MetricSpec) -> None:
    if not _OTEL_NAME_RE.fullmatch(spec.name) or spec.name != spec.name.lower():
        raise ValueError(
            f"metric {spec.name!r} cannot be an OpenTelemetry instrument under the same name: "
            "instrument names must match [a-zA-Z][-_./a-zA-Z0-9]* and the SDK lower-cases them"
        )
