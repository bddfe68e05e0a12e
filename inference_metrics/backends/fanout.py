"""Fan-out backend: every update goes to several backends (a migration runs two side by side).

:meth:`FanoutBackend.register` is all or nothing: if one backend refuses the specs (a name clash,
say), the backends that already accepted them are rolled back (``unregister``, part of the
:class:`~.base.Backend` contract) before the error propagates, so no backend is left holding half
a registration. A rollback that itself fails is noted on the propagating exception.

Updates go to the backends in the order given; a series binds one series per backend, once, and
:meth:`FanoutInstrument.remove` removes the label set from every backend.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..spec import MetricSpec
from .base import Backend, Instrument, Series, SeriesBase, check_specs

__all__ = ["FanoutBackend", "FanoutInstrument"]


class _FanoutSeries(SeriesBase):
    __slots__ = ("_adds", "_observes", "_sets")

    def __init__(self, series: Sequence[Series]) -> None:
        self._adds = tuple(s.add for s in series)
        self._observes = tuple(s.observe for s in series)
        self._sets = tuple(s.set for s in series)

    def add(self, amount: float) -> None:
        for add in self._adds:
            add(amount)

    def observe(self, value: float) -> None:
        for observe in self._observes:
            observe(value)

    def set(self, value: float) -> None:
        for set_ in self._sets:
            set_(value)


class FanoutInstrument:
    """One spec's instruments, one per backend, in the fan-out's order."""

    __slots__ = ("instruments", "spec")

    def __init__(self, spec: MetricSpec, instruments: tuple[Instrument, ...]) -> None:
        self.spec = spec
        self.instruments = instruments

    def bind(self, label_values: tuple[str, ...]) -> Series:
        if len(self.instruments) == 1:
            return self.instruments[0].bind(label_values)
        return _FanoutSeries([instrument.bind(label_values) for instrument in self.instruments])

    def remove(self, label_values: tuple[str, ...]) -> None:
        for instrument in self.instruments:
            instrument.remove(label_values)


class FanoutBackend:
    """Records into every one of ``backends`` at once (at least one)."""

    def __init__(self, *backends: Backend) -> None:
        if not backends:
            raise ValueError("FanoutBackend needs at least one backend")
        for backend in backends:
            if not isinstance(backend, Backend):
                raise TypeError(
                    "backends must implement Backend (register, unregister, close), "
                    f"got {backend!r}"
                )
        self.backends: tuple[Backend, ...] = backends

    def register(self, specs: Sequence[MetricSpec]) -> Sequence[FanoutInstrument]:
        """Register ``specs`` with every backend, or with none (see the module docstring)."""
        specs = check_specs(specs)
        accepted: list[tuple[Backend, Sequence[Instrument]]] = []
        try:
            for backend in self.backends:
                instruments = backend.register(specs)
                accepted.append((backend, instruments))
                if len(instruments) != len(specs):
                    raise ValueError(
                        f"{backend!r} returned {len(instruments)} instruments for "
                        f"{len(specs)} specs"
                    )
        except BaseException as exc:
            for backend, instruments in reversed(accepted):
                try:
                    backend.unregister(instruments)
                except Exception as undo_error:
                    exc.add_note(
                        f"FanoutBackend could not undo the registration in {backend!r}: "
                        f"{undo_error}"
                    )
            raise
        return [
            FanoutInstrument(spec, tuple(instruments[k] for _, instruments in accepted))
            for k, spec in enumerate(specs)
        ]

    def unregister(self, instruments: Sequence[Instrument]) -> None:
        """Undo a :meth:`register` in every backend."""
        per_backend: list[list[Instrument]] = [[] for _ in self.backends]
        for instrument in instruments:
            if isinstance(instrument, FanoutInstrument):
                for i, child in enumerate(instrument.instruments):
                    per_backend[i].append(child)
        for backend, children in zip(self.backends, per_backend, strict=True):
            backend.unregister(children)

    def close(self) -> None:
        """Close every backend."""
        for backend in self.backends:
            backend.close()
