"""No-op backend: metrics disabled by configuration, at near-zero cost.

Every instrument hands out one shared series per metric kind whose updates do nothing, so a
Recorder over a :class:`NoopBackend` still validates its input (a program that works with metrics
off works with them on) but records nothing and exposes nothing. Operations a kind does not have
still raise :class:`~inference_metrics.backends.base.UnsupportedOperation`, as in the real backends.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..spec import Kind, MetricSpec
from .base import Instrument, Series, SeriesBase, check_label_values, check_specs

__all__ = ["NoopBackend", "NoopInstrument"]


class _NoopCounterSeries(SeriesBase):
    __slots__ = ()

    def add(self, amount: float) -> None:
        pass


class _NoopGaugeSeries(SeriesBase):
    __slots__ = ()

    def add(self, amount: float) -> None:
        pass

    def set(self, value: float) -> None:
        pass


class _NoopHistogramSeries(SeriesBase):
    __slots__ = ()

    def observe(self, value: float) -> None:
        pass


_SERIES: dict[Kind, Series] = {
    Kind.COUNTER: _NoopCounterSeries(),
    Kind.GAUGE: _NoopGaugeSeries(),
    Kind.HISTOGRAM: _NoopHistogramSeries(),
}


class NoopInstrument:
    """A metric that records nothing; every label set binds the same do-nothing series."""

    __slots__ = ("_series", "spec")

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        self._series = _SERIES[spec.kind]

    def bind(self, label_values: tuple[str, ...]) -> Series:
        check_label_values(self.spec, label_values)
        return self._series

    def remove(self, label_values: tuple[str, ...]) -> None:
        check_label_values(self.spec, label_values)


class NoopBackend:
    """Records nothing and exposes nothing; for metrics turned off by configuration."""

    def register(self, specs: Sequence[MetricSpec]) -> Sequence[NoopInstrument]:
        return [NoopInstrument(spec) for spec in check_specs(specs)]

    def unregister(self, instruments: Sequence[Instrument]) -> None:
        """Nothing to undo."""

    def close(self) -> None:
        """Nothing to release."""
