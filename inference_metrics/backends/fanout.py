"""Fan-out backend: every update goes to several backends (a migration runs two side by side).

:meth:`FanoutBackend.register` is all or nothing: if one backend refuses the specs (a name clash,
say), the backends that already accepted them are rolled back before the error propagates, so no
backend is left holding half a registration.

Rolling back uses a backend's ``unregister(instruments)`` when it has one (the OpenTelemetry, no-op
and fan-out backends do). A backend without it cannot undo one register call, so such backends are
registered last, in the order given: when one of them refuses, only backends that can undo have
registered before it, unless the fan-out holds two or more backends without ``unregister``. In
that case an earlier one that already accepted is closed instead (``close()``; for
``PrometheusBackend`` that removes every collector it put in its registry), and a note on the
raised exception names any backend that could be neither unregistered nor closed.

Updates go to the backends in the order given; a series binds one series per backend, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..spec import MetricSpec
from .base import Backend, Instrument, Series, SeriesBase

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


def _unregister_of(backend: Backend) -> Callable[[Sequence[Instrument]], None] | None:
    unregister = getattr(backend, "unregister", None)
    return unregister if callable(unregister) else None


class FanoutBackend:
    """Records into every one of ``backends`` at once (at least one)."""

    def __init__(self, *backends: Backend) -> None:
        if not backends:
            raise ValueError("FanoutBackend needs at least one backend")
        for backend in backends:
            if not isinstance(backend, Backend):
                raise TypeError(f"backends must implement Backend.register(), got {backend!r}")
        self.backends: tuple[Backend, ...] = backends

    def register(self, specs: Sequence[MetricSpec]) -> Sequence[FanoutInstrument]:
        """Register ``specs`` with every backend, or with none (see the module docstring)."""
        specs = tuple(specs)
        backends = self.backends
        # Backends that can undo a register go first (stable sort: otherwise in the given order).
        order = sorted(range(len(backends)), key=lambda i: _unregister_of(backends[i]) is None)
        accepted: dict[int, Sequence[Instrument]] = {}
        try:
            for i in order:
                instruments = backends[i].register(specs)
                accepted[i] = instruments
                if len(instruments) != len(specs):
                    raise ValueError(
                        f"{backends[i]!r} returned {len(instruments)} instruments for "
                        f"{len(specs)} specs"
                    )
        except BaseException as exc:
            for i in reversed(list(accepted)):
                _undo(backends[i], accepted[i], exc)
            raise
        return [
            FanoutInstrument(spec, tuple(accepted[i][k] for i in range(len(backends))))
            for k, spec in enumerate(specs)
        ]

    def unregister(self, instruments: Sequence[Instrument]) -> None:
        """Undo a :meth:`register` in every backend (see the module docstring)."""
        per_backend: list[list[Instrument]] = [[] for _ in self.backends]
        for instrument in instruments:
            if isinstance(instrument, FanoutInstrument):
                for i, child in enumerate(instrument.instruments):
                    per_backend[i].append(child)
        for backend, children in zip(self.backends, per_backend, strict=True):
            unregister = _unregister_of(backend)
            if unregister is not None:
                unregister(children)
            else:
                _close(backend)

    def close(self) -> None:
        """Close every backend that can be closed."""
        for backend in self.backends:
            _close(backend)


def _close(backend: Backend) -> bool:
    close = getattr(backend, "close", None)
    if not callable(close):
        return False
    close()
    return True


def _undo(backend: Backend, instruments: Sequence[Instrument], exc: BaseException) -> None:
    """Roll back one accepted register while ``exc`` propagates; note on ``exc`` what failed."""
    try:
        unregister = _unregister_of(backend)
        if unregister is not None:
            unregister(instruments)
        elif not _close(backend):
            exc.add_note(
                f"FanoutBackend could not undo the registration in {backend!r}: it has neither "
                "unregister() nor close()"
            )
    except Exception as undo_error:
        exc.add_note(f"FanoutBackend could not undo the registration in {backend!r}: {undo_error}")
