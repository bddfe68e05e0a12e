"""The one fake clock of the tests: a monotonic clock that moves only when told to (injected as
``clock=`` into RequestContext, the ASGI middleware, instrument_handler, start_request and
PoolMonitor)."""

from __future__ import annotations


class FakeClock:
    """Reading it returns :attr:`now` (settable); ``step``, if set, moves it forward by that many
    seconds before each reading (every reading later than the last)."""

    def __init__(self, now: float = 100.0, *, step: float = 0.0) -> None:
        self.now = now
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds
