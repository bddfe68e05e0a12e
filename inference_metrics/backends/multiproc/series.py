"""The series of this process' file: where each one's numbers are, and its record calls.

A file's entries live in *stretches* of 64 KiB (or more, for an entry that needs it), each
mapped from the file once space for it is reserved there, or private memory of this process until
then (:mod:`.store`). A series keeps its stretch and the index of its first double there; a record
call is a store into the stretch's memory under the process' lock (no system call). The store may
swap the memory under a stretch (into the file once space returns, or a private copy in a forked
child); it does so holding the same lock, so no update is lost.
"""

from __future__ import annotations

import mmap
import threading
import time
from bisect import bisect_left
from typing import TYPE_CHECKING

from ...spec import Kind, MetricSpec
from ..base import OVERFLOW_LABEL_VALUE, SeriesBase, check_label_values
from .layout import (
    COUNTER_TOUCHED,
    COUNTER_VALUE,
    GAUGE_SET_AT,
    GAUGE_TOUCHED,
    GAUGE_VALUE,
    encode_key,
    values_per_entry,
)

if TYPE_CHECKING:
    from .store import MultiprocessStore

__all__ = ["CounterCell", "GaugeCell", "HistogramCell", "MultiprocessInstrument", "Stretch"]


class Stretch:
    """One stretch of this process' entries: mapped from the file once space for it is reserved
    there, private memory of this process until then. Series keep a reference to their stretch
    and index its doubles (``d``) under ``lock``; :meth:`map_file` and :meth:`copy_to_private`
    swap the memory under them (the caller holds ``lock``)."""

    __slots__ = ("d", "length", "lock", "mm", "shared", "start")

    def __init__(self, start: int, length: int, lock: threading.Lock) -> None:
        self.start = start
        self.length = length
        self.lock = lock
        #: Whether the bytes are the file's (else private memory, seen by no other process).
        self.shared = False
        self.mm = mmap.mmap(-1, length, mmap.MAP_PRIVATE)
        self.d = memoryview(self.mm).cast("d")

    @property
    def end(self) -> int:
        return self.start + self.length

    def map_file(self, fd: int) -> None:
        """Use the file's bytes of this stretch (reserved, and holding what this one holds)."""
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        self._swap(mmap.mmap(fd, self.length, mmap.MAP_SHARED, prot, 0, self.start), shared=True)

    def copy_to_private(self) -> None:
        """Use a private copy of these bytes (a forked child's, before it has a file)."""
        mm = mmap.mmap(-1, self.length, mmap.MAP_PRIVATE)
        mm[:] = self.mm[:]
        self._swap(mm, shared=False)

    def _swap(self, mm: mmap.mmap, *, shared: bool) -> None:
        old_mm, old_d = self.mm, self.d
        self.mm, self.d, self.shared = mm, memoryview(mm).cast("d"), shared
        old_d.release()
        old_mm.close()


class _Cell(SeriesBase):
    __slots__ = ("_s",)

    def __init__(self, stretch: Stretch) -> None:
        self._s = stretch


class _Added(_Cell):
    """A counter or gauge: ``add`` changes the value and sets the "touched" flag."""

    __slots__ = ("_touched", "_value")

    def __init__(self, stretch: Stretch, value_at: int, touched_at: int) -> None:
        super().__init__(stretch)
        self._value = value_at
        self._touched = touched_at

    def add(self, amount: float) -> None:
        s = self._s
        with s.lock:
            d = s.d
            d[self._value] += amount
            d[self._touched] = 1.0


class CounterCell(_Added):
    __slots__ = ()

    def __init__(self, stretch: Stretch, first: int) -> None:
        super().__init__(stretch, first + COUNTER_VALUE, first + COUNTER_TOUCHED)


class GaugeCell(_Added):
    __slots__ = ("_set_at",)

    def __init__(self, stretch: Stretch, first: int) -> None:
        super().__init__(stretch, first + GAUGE_VALUE, first + GAUGE_TOUCHED)
        self._set_at = first + GAUGE_SET_AT

    def set(self, value: float) -> None:
        self._set(value, 1.0)

    def remove(self) -> None:
        """Forget the series.

        A gauge that was ``set`` (a level: the most recent set of any process shows) is hidden in
        every process: a most recent "set" that exposes nothing (a later set, here or in any
        process, exposes it again). A gauge only ever ``add``-ed (a count this process holds, such
        as a flow's queue size: the live processes' shares add up) forgets this process' share
        only: it goes to 0 and no longer keeps the series shown, so the series shows while
        another live process holds a share, and this process' next ``add`` counts from 0.
        """
        s = self._s
        with s.lock:
            d = s.d
            if d[self._set_at] == 0.0:  # add-only: this process' share
                d[self._value] = 0.0
                d[self._touched] = -1.0
                return
        self._set(0.0, -1.0)

    def _set(self, value: float, touched: float) -> None:
        s = self._s
        now = time.time()
        with s.lock:
            d = s.d
            d[self._value] = value
            d[self._set_at] = now
            d[self._touched] = touched

    def put_locked(self, value: float) -> None:
        """This process' share of an add-only gauge is ``value`` now (the caller holds the lock)."""
        d = self._s.d
        d[self._value] = value
        d[self._touched] = 1.0


class HistogramCell(_Cell):
    __slots__ = ("_bounds", "_first", "_sum")

    def __init__(self, stretch: Stretch, first: int, bounds: tuple[float, ...]) -> None:
        super().__init__(stretch)
        self._bounds = bounds
        self._first = first  # the first bucket's count; the +Inf count after the last bucket's
        self._sum = first + len(bounds) + 1

    def observe(self, value: float) -> None:
        # bisect_left puts a value equal to a bound in that bound's bucket ("le").
        k = self._first + bisect_left(self._bounds, value)
        s = self._s
        with s.lock:
            d = s.d
            d[k] += 1.0
            d[self._sum] += value


AnyCell = CounterCell | GaugeCell | HistogramCell


def _new_series(spec: MetricSpec, stretch: Stretch, first: int) -> AnyCell:
    if spec.kind is Kind.COUNTER:
        return CounterCell(stretch, first)
    if spec.kind is Kind.GAUGE:
        return GaugeCell(stretch, first)
    assert spec.buckets is not None
    return HistogramCell(stretch, first, spec.buckets)


class MultiprocessInstrument:
    """One metric's series in this process' file, keyed by label values."""

    __slots__ = ("_group", "_series", "_store", "spec")

    def __init__(self, store: MultiprocessStore, spec: MetricSpec) -> None:
        self.spec = spec
        self._store = store
        self._group = ",".join(spec.labels)
        self._series: dict[tuple[str, ...], AnyCell] = {}

    def remove(self, label_values: tuple[str, ...]) -> None:
        """Forget a gauge's series in every process (it is exposed again by the next ``set``).

        Counters and histograms are never removed: their merged values include other processes'
        and exited processes' counts, and a counter must never go backwards; they stay exposed.
        """
        if self.spec.kind is not Kind.GAUGE:
            return
        with self._store.lock:
            series = self._series.get(label_values)
        if isinstance(series, GaugeCell):
            series.remove()

    def bind(self, label_values: tuple[str, ...]) -> AnyCell:
        spec = self.spec
        check_label_values(spec, label_values)
        store = self._store
        with store.lock:
            series = self._series.get(label_values)
            if series is not None:
                return series
            key = label_values
            overflow = (OVERFLOW_LABEL_VALUE,) * len(label_values)
            if key != overflow and not store.labels.admit(self._group, key):
                key = overflow
                series = self._series.get(key)
                if series is not None:
                    self._series[label_values] = series
                    return series
            stretch, first = store.allocate(encode_key(spec.name, key), values_per_entry(spec))
            series = _new_series(spec, stretch, first)
            self._series[key] = series
            self._series[label_values] = series
            return series
