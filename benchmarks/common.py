"""Timing helpers shared by the benchmarks: best-of-N per-call cost, in seconds."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def per_call(fn: Callable[[], object], *, number: int, repeat: int = 5) -> float:
    """The best (lowest) mean seconds per call of ``fn`` over ``repeat`` runs of ``number`` calls.

    The best run is the one least disturbed by the rest of the machine; ratios of two such
    figures taken in the same run travel between machines, absolute times do not.
    """
    best = float("inf")
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best = min(best, (time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best
