"""Admission and eviction: which connections the server keeps open, and for how long.

Every open connection is in one state. Only a connection with a request in progress (``BUSY``)
is safe from the server; the others wait (for a TLS handshake, for a request head, idle between
requests) and each kind of waiting has its time limit, scaled down as connections fill up
(:meth:`ServerLimits.pressure_scale`). At the cap, a new connection is admitted by closing the
connection that has waited longest; with every connection busy, the new one is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from enum import Enum

from .limits import ServerLimits

__all__ = ["Connection", "ConnectionTable", "State", "Tally"]

logger = logging.getLogger(__name__)


class State(Enum):
    """Where a connection is. Only ``BUSY`` connections are never closed to make room."""

    HANDSHAKE = "handshake"
    HEAD = "head"
    IDLE = "idle"
    BUSY = "busy"


class Tally:
    """A warning logged at most once per ``interval`` seconds, with how many times it happened."""

    def __init__(self, message: str, interval: float = 10.0) -> None:
        self.message = message
        self.interval = interval
        self.count = 0
        self._logged_at = -float("inf")
        #: Every occurrence since the server started; for tests and diagnostics.
        self.total = 0

    def note(self, *args: object) -> None:
        self.count += 1
        self.total += 1
        now = time.monotonic()
        if now - self._logged_at >= self.interval:
            logger.warning(
                self.message + " (%d time(s) since the last such warning)", *args, self.count
            )
            self.count = 0
            self._logged_at = now


@dataclass(eq=False)
class Connection:
    """One open connection as the admission policy sees it: its state and since when."""

    writer: asyncio.StreamWriter
    task: asyncio.Task[None]
    state: State = State.HANDSHAKE
    since: float = 0.0
    #: Closed by the server to make room or on a timeout: write nothing more.
    dropped: bool = False

    def enter(self, state: State) -> None:
        self.state = state
        self.since = time.monotonic()


class ConnectionTable:
    """The open connections of one server: admitted under the cap, swept when they wait too long.

    Each connection is served by its own task; the table is keyed by it.
    """

    def __init__(self, limits: ServerLimits, *, tls: bool) -> None:
        self.limits = limits
        self._first_state = State.HANDSHAKE if tls else State.HEAD
        self._open: dict[asyncio.Task[None], Connection] = {}
        self._evicted = Tally("connection cap (%d) reached: closed the longest-waiting idle one")
        self._refused = Tally("connection cap (%d) reached with every connection busy: refused")

    def __len__(self) -> int:
        return len(self._open)

    @property
    def evictions(self) -> int:
        """Connections closed to admit new ones since the server started."""
        return self._evicted.total

    def tasks(self) -> set[asyncio.Task[None]]:
        return set(self._open)

    def admit(self, writer: asyncio.StreamWriter, task: asyncio.Task[None]) -> Connection | None:
        """Register a new connection, closing the longest-waiting idle one at the cap; None
        when every open connection is busy (the caller closes the new one)."""
        cap = self.limits.max_connections
        if len(self._open) >= cap:
            waiting = [c for c in self._open.values() if c.state is not State.BUSY]
            if not waiting:
                self._refused.note(cap)
                return None
            victim = min(waiting, key=lambda c: c.since)
            self.drop(victim, abort=True)
            self._evicted.note(cap)
        connection = Connection(writer, task)
        connection.enter(self._first_state)
        self._open[task] = connection
        return connection

    def forget(self, task: asyncio.Task[None]) -> None:
        """The connection served by ``task`` is over."""
        self._open.pop(task, None)

    def drop(self, connection: Connection, *, abort: bool) -> None:
        """Stop serving a waiting connection: reset at once (``abort``, to make room), or closed
        cleanly by its task (a timeout)."""
        self._open.pop(connection.task, None)
        if abort:
            connection.dropped = True
            connection.writer.transport.abort()
        connection.task.cancel()

    def cancel_waiting(self) -> None:
        """Cancel every connection without a request in progress (on shutdown)."""
        for connection in list(self._open.values()):
            if connection.state is not State.BUSY:
                connection.task.cancel()

    async def reap(self) -> None:
        """Close connections that waited longer than their (pressure-scaled) timeout; runs until
        cancelled."""
        limits = self.limits
        tick = min(max(min(limits.header_timeout, limits.idle_timeout) / 4, 0.05), 0.5)
        timeouts = {
            State.HANDSHAKE: limits.handshake_timeout,
            State.HEAD: limits.header_timeout,
            State.IDLE: limits.idle_timeout,
        }
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            scale = limits.pressure_scale(len(self._open))
            for connection in list(self._open.values()):
                if connection.state is State.BUSY:
                    continue
                if now - connection.since > timeouts[connection.state] * scale:
                    logger.debug(
                        "closing a connection %s for %gs",
                        connection.state.value,
                        now - connection.since,
                    )
                    self.drop(connection, abort=False)
