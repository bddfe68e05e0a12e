"""A bounded time-to-live cache and a single-flight group, for authentication decisions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["SingleFlight", "TTLCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class TTLCache(Generic[K, V]):
    """At most ``max_entries`` values, each kept for its own time-to-live; least recently used
    entries go first when full. Thread-safe.
    """

    def __init__(
        self, max_entries: int = 4096, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries!r}")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` for a live entry, else ``(False, None)``."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            expires, value = entry
            if expires <= now:
                del self._entries[key]
                return False, None
            self._entries.move_to_end(key)
            return True, value

    def put(self, key: K, value: V, ttl: float) -> None:
        """Keep ``value`` for ``ttl`` seconds (not at all when ``ttl <= 0``)."""
        if ttl <= 0:
            return
        expires = self._clock() + ttl
        with self._lock:
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def keys(self) -> list[K]:
        """The keys held now (expired ones included until next looked up), oldest first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class SingleFlight(Generic[K, V]):
    """Concurrent calls with the same key share one execution of the work.

    The shared work runs as its own task, so a caller that gives up (timeout, cancellation) does
    not cancel it for the others; its result still lands wherever the work puts it (a cache).
    Work is shared only between callers on the same event loop.
    """

    def __init__(self) -> None:
        self._flights: dict[tuple[int, K], asyncio.Future[V]] = {}

    async def do(self, key: K, work: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """Run ``work()`` or join the run already in flight; returns ``(result, shared)``."""
        loop = asyncio.get_running_loop()
        slot = (id(loop), key)
        flight = self._flights.get(slot)
        shared = flight is not None
        if flight is None:

            async def run() -> V:
                try:
                    return await work()
                finally:
                    self._flights.pop(slot, None)

            flight = loop.create_task(run())
            # Retrieve the outcome even when every caller gave up, so it is never reported as
            # "exception was never retrieved".
            flight.add_done_callback(_consume)
            self._flights[slot] = flight
        return await asyncio.shield(flight), shared

    def __len__(self) -> int:
        return len(self._flights)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
