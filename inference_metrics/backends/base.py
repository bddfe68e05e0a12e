"""The backend protocol: the only surface the Recorder sees.

A backend turns specs into instruments (:meth:`Backend.register`); an instrument binds a label set
once (:meth:`Instrument.bind`) and returns a :class:`Series`, whose ``add`` / ``observe`` / ``set``
are the hot path. Label values arrive already validated (strings, bounded in number by the
Recorder); amounts arrive already validated (finite numbers). A series appears in the exposition at
its first update, never at bind time, so binding a label set for every metric of a group is free of
visible side effects (upstream's Go client also shows a series only once it was touched).

Backends know nothing of models or requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..spec import MetricSpec

__all__ = ["Backend", "Instrument", "Series", "UnsupportedOperation"]


class UnsupportedOperation(TypeError):
    """An operation the series' metric kind does not have (observe on a counter, say)."""


class Series(Protocol):
    """One bound label set of one metric.

    Counters support ``add`` (amount >= 0); gauges ``set`` and ``add`` (any finite amount);
    histograms ``observe``. The others raise :class:`UnsupportedOperation`.
    """

    def add(self, amount: float) -> None: ...

    def observe(self, value: float) -> None: ...

    def set(self, value: float) -> None: ...


class Instrument(Protocol):
    """One metric of a backend."""

    @property
    def spec(self) -> MetricSpec: ...

    def bind(self, label_values: tuple[str, ...]) -> Series:
        """The series for ``label_values`` (one per label name, in the spec's order)."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Somewhere metrics go."""

    def register(self, specs: Sequence[MetricSpec]) -> Sequence[Instrument]:
        """Create one instrument per spec, in order. Raises ``ValueError`` on a name clash."""
        ...


class SeriesBase:
    """Convenience base for series implementations: every operation unsupported by default."""

    __slots__ = ()

    def add(self, amount: float) -> None:
        raise UnsupportedOperation(f"{type(self).__name__} does not support add()")

    def observe(self, value: float) -> None:
        raise UnsupportedOperation(f"{type(self).__name__} does not support observe()")

    def set(self, value: float) -> None:
        raise UnsupportedOperation(f"{type(self).__name__} does not support set()")
