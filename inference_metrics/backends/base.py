"""The backend protocol: the only surface the Recorder sees.

A backend turns specs into instruments (:meth:`Backend.register`); an instrument binds a label set
once (:meth:`Instrument.bind`) and returns a :class:`Series`, whose ``add`` / ``observe`` / ``set``
are the hot path. Label values arrive already validated (strings, bounded in number by the
Recorder); amounts arrive already validated (finite numbers). A series appears in the exposition at
its first update, never at bind time, so binding a label set for every metric of a group is free of
visible side effects (upstream's Go client also shows a series only once it was touched).

:meth:`Instrument.remove` forgets one label set: the series leaves the exposition (an OpenTelemetry
export included) and a later bind of the same values starts from zero. :meth:`Backend.unregister`
undoes one :meth:`Backend.register`, :meth:`Backend.close` every one.

The checks every backend needs (duplicate names in one register call, one label value per label
name) are :func:`check_specs` and :func:`check_label_values`, here, once.

Backends know nothing of models or requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..spec import MetricSpec

__all__ = [
    "DEFAULT_MAX_SERIES",
    "OVERFLOW_LABEL_VALUE",
    "Backend",
    "Instrument",
    "Series",
    "SeriesBase",
    "UnsupportedOperation",
    "check_label_values",
    "check_specs",
]


#: The label value of the series that absorbs label sets beyond ``max_series`` (the Recorder's,
#: and the multiprocess store's across processes).
OVERFLOW_LABEL_VALUE = "__overflow__"
#: The default bound on label sets per group of metrics.
DEFAULT_MAX_SERIES = 1000


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

    def remove(self, label_values: tuple[str, ...]) -> None:
        """Forget the series of ``label_values``: it is no longer exposed or exported, and a later
        :meth:`bind` starts a new one from zero. Unknown label values: nothing happens."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Somewhere metrics go."""

    def register(self, specs: Sequence[MetricSpec]) -> Sequence[Instrument]:
        """Create one instrument per spec, in order. Raises ``ValueError`` on a name clash
        (:func:`check_specs`); nothing is registered then."""
        ...

    def unregister(self, instruments: Sequence[Instrument]) -> None:
        """Undo the :meth:`register` that returned ``instruments``: their names are free again and
        they are no longer exposed."""
        ...

    def close(self) -> None:
        """Undo every :meth:`register` of this backend (idempotent)."""
        ...


def check_specs(specs: Sequence[MetricSpec]) -> tuple[MetricSpec, ...]:
    """``specs`` as a tuple, or ``TypeError``/``ValueError`` for a non-spec or a repeated name."""
    specs = tuple(specs)
    for spec in specs:
        if not isinstance(spec, MetricSpec):
            raise TypeError(f"specs must be MetricSpec instances, got {spec!r}")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"the same metric appears twice in {names}")
    return specs


def check_label_values(spec: MetricSpec, label_values: tuple[str, ...]) -> None:
    """``ValueError`` unless ``label_values`` holds one value per label name of ``spec``."""
    if len(label_values) != len(spec.labels):
        raise ValueError(f"{spec.name} has labels {spec.labels}, got {len(label_values)} values")


class SeriesBase:
    """Convenience base for series implementations: every operation unsupported by default."""

    __slots__ = ()

    def add(self, amount: float) -> None:
        raise UnsupportedOperation(f"{type(self).__name__} does not support add()")

    def observe(self, value: float) -> None:
        raise UnsupportedOperation(f"{type(self).__name__} does not support observe()")

    def set(self, value: float) -> None:
        raise UnsupportedOperation(f"{type(self).__name__} does not support set()")
