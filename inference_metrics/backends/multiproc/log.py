"""Log lines about faults, at most one per kind of fault per interval (never one per scrape or per
label set while a fault lasts)."""

from __future__ import annotations

import logging
import time

__all__ = ["EVERY", "RateLimitedLog"]

#: Seconds between two log lines about the same kind of fault.
EVERY = 60.0


class RateLimitedLog:
    """Warnings keyed by the kind of fault: the first one is logged, then at most one per
    ``every`` seconds, with how many were left out in between."""

    def __init__(self, logger: logging.Logger, every: float = EVERY) -> None:
        self._logger = logger
        self._every = every
        self._last: dict[str, tuple[float, int]] = {}  # kind: (logged at, left out since)

    def warning(self, kind: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``kind`` was logged less than ``every`` seconds ago;
        whether it was logged."""
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last[0] < self._every:
            self._last[kind] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            message += " (%d more like this in the last %.0f s)"
            args = (*args, last[1], now - last[0])
        self._last[kind] = (now, 0)
        self._logger.warning(message, *args)
        return True

    def forget(self, kind: str) -> None:
        """The fault is over: the next one of ``kind`` is logged at once."""
        self._last.pop(kind, None)
