"""The series of this process' file: where each one's numbers are, and its record calls.

A file's entries live in *stretches* of 64 KiB (or more, for an entry that needs it), each
mapped from the file once space for it is reserved there, or private memory of this process until
then (:mod:`.store`). A series keeps its stretch and the index of its first double there; a record
call is a store into the stretch's memory under the process' lock (no system call). The store may
swap the memory under a stretch (into the file once space returns, or a private copy in a forked
child); it does so holding the same lock, so no update is lost.

A histogram with native buckets or exemplars (:class:`RichHistogramCell`) writes up to three
entries per observation, under the same lock: its classic buckets (none when native-only), its
``#native`` entry (:class:`NativeEntry`: the count and sum first, then the bucket, in a slot found
by the bucket's code; a full entry is replaced by a larger or coarser one appended to the file,
see :mod:`.layout`) and, for an observation made in a sampled span, the exemplar slot of its
bucket (:class:`ExemplarEntry`, a seqlock). The span is read before the lock is taken.
"""

from __future__ import annotations

import mmap
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...spec import Kind, MetricSpec
from ..base import OVERFLOW_LABEL_VALUE, SeriesBase, check_label_values
from ..exemplars import SpanIds, pack_ids
from ..native import DEFAULT_MAX_BUCKETS, MIN_SCHEMA, SCHEMA, ZERO_THRESHOLD, keyer
from ..store import StoreOptions
from .layout import (
    COUNTER_TOUCHED,
    COUNTER_VALUE,
    EXEMPLAR_SLOT,
    EXEMPLARS,
    GAUGE_SET_AT,
    GAUGE_TOUCHED,
    GAUGE_VALUE,
    NATIVE,
    encode_key,
    exemplar_values,
    native_values,
    values_per_entry,
)

if TYPE_CHECKING:
    from .store import MultiprocessStore

__all__ = [
    "CounterCell",
    "ExemplarEntry",
    "GaugeCell",
    "HistogramCell",
    "MultiprocessInstrument",
    "NativeEntry",
    "RichHistogramCell",
    "Stretch",
]


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

    def observe_locked(self, value: float) -> None:
        """:meth:`observe`, the caller holding the process' lock."""
        d = self._s.d
        d[self._first + bisect_left(self._bounds, value)] += 1.0
        d[self._sum] += value


#: Slots of a series' first ``#native`` entry; each new entry has twice as many (at most
#: DEFAULT_MAX_BUCKETS).
NATIVE_SLOTS = 16


class NativeEntry:
    """A series' native buckets in its ``#native`` entry (see :mod:`.layout`); every method is
    called with the process' lock held."""

    __slots__ = ("_codes", "_first", "_key", "_key_of", "_s", "_slots", "_steps", "_store")

    def __init__(self, store: MultiprocessStore, key: bytes) -> None:
        self._store = store
        self._key = key
        self._s, self._first = store.allocate(key, native_values(NATIVE_SLOTS))
        self._slots = NATIVE_SLOTS
        self._forget()
        store.on_fork(self._forget)

    def _forget(self) -> None:
        """Back to an empty histogram at schema 3 (the entry's numbers are all zero)."""
        self._steps = 0
        self._key_of = keyer(SCHEMA)
        #: Bucket code -> the index of its count (in the stretch's doubles).
        self._codes: dict[int, int] = {}

    def observe(self, value: float) -> None:
        d = self._s.d
        zero = self._first + 1 + 2 * self._slots
        d[zero + 1] += 1.0  # the count first: a reader never sees more in the buckets
        d[zero + 2] += value
        if value > ZERO_THRESHOLD:
            code = 2 * self._key_of(value)
        elif value < -ZERO_THRESHOLD:
            code = 2 * self._key_of(-value) + 1
        else:
            if value == value:  # NaN counts in the count and sum only
                d[zero] += 1.0
            return
        at = self._codes.get(code)
        if at is None:
            at = self._slot(code)
            d = self._s.d
        d[at] += 1.0

    def _slot(self, code: int) -> int:
        """The index of ``code``'s count: a free slot, or one of a new entry (larger, or at a
        coarser schema when the series holds the most buckets it may)."""
        codes = self._codes
        if len(codes) < self._slots:
            at = self._first + 1 + 2 * len(codes)
            self._s.d[at] = float(code)  # the code before its count: a reader sees count 0
            codes[code] = at + 1
            return at + 1
        d = self._s.d
        buckets = {held: d[at] for held, at in codes.items()}
        buckets[code] = 0.0
        steps = self._steps
        while len(buckets) > DEFAULT_MAX_BUCKETS and SCHEMA - steps > MIN_SCHEMA:
            steps += 1
            buckets = _halved(buckets)
            code = _halve_code(code)
        zero = self._first + 1 + 2 * self._slots
        slots = max(len(buckets), min(2 * self._slots, DEFAULT_MAX_BUCKETS))
        initial = [float(steps)]
        for held, count in buckets.items():
            initial += (float(held), count)
        initial += [0.0] * (2 * (slots - len(buckets)))
        initial += (d[zero], d[zero + 1], d[zero + 2])
        self._s, self._first = self._store.allocate(self._key, native_values(slots), initial)
        self._slots = slots
        if steps != self._steps:
            self._steps = steps
            self._key_of = keyer(SCHEMA - steps)
        self._codes = {held: self._first + 2 + 2 * i for i, held in enumerate(buckets)}
        return self._codes[code]


class ExemplarEntry:
    """A series' latest exemplar per classic bucket, in its ``#exemplars`` entry (a seqlock
    per slot, see :mod:`.layout`); :meth:`offer` is called with the process' lock held."""

    __slots__ = ("_first", "_s")

    def __init__(self, store: MultiprocessStore, key: bytes, slots: int) -> None:
        self._s, self._first = store.allocate(key, exemplar_values(slots))

    def offer(self, bucket: int, ids: SpanIds, value: float, when: float) -> None:
        d = self._s.d
        at = self._first + EXEMPLAR_SLOT * bucket
        begun = d[at + EXEMPLAR_SLOT - 1] + 1.0
        d[at + EXEMPLAR_SLOT - 1] = begun  # begun, the slot's last number, first
        d[at + 1] = when
        d[at + 2] = value
        d[at + 3], d[at + 4], d[at + 5], d[at + 6] = pack_ids(ids)
        d[at] = begun  # done, its first number, last


class RichHistogramCell(SeriesBase):
    """A histogram with native buckets, exemplars or both (see the module docstring)."""

    __slots__ = ("_bounds", "_classic", "_exemplars", "_native", "_span_ids", "_store")

    def __init__(
        self,
        store: MultiprocessStore,
        classic: HistogramCell | None,
        bounds: tuple[float, ...],
        native: NativeEntry | None,
        exemplars: ExemplarEntry | None,
        span_ids: Callable[[], SpanIds | None] | None,
    ) -> None:
        self._store = store  # its lock is replaced in a forked child: read it at each call
        self._classic = classic
        self._bounds = bounds
        self._native = native
        self._exemplars = exemplars
        self._span_ids = span_ids

    def observe(self, value: float) -> None:
        span_ids = self._span_ids
        ids = None if span_ids is None else span_ids()
        when = _now() if ids is not None else 0.0
        with self._store.lock:
            if self._classic is not None:
                self._classic.observe_locked(value)
            if self._native is not None:
                self._native.observe(value)
            if ids is not None and self._exemplars is not None:
                self._exemplars.offer(bisect_left(self._bounds, value), ids, value, when)


_now = time.time


def _halve_code(code: int) -> int:
    """A bucket code one schema coarser: its key divided by 2, rounded up (client_golang's)."""
    sign = code & 1
    return 2 * ((((code - sign) >> 1) + 1) >> 1) + sign


def _halved(buckets: dict[int, float]) -> dict[int, float]:
    halved: dict[int, float] = {}
    for code, count in buckets.items():
        code = _halve_code(code)
        halved[code] = halved.get(code, 0.0) + count
    return halved


AnyCell = CounterCell | GaugeCell | HistogramCell | RichHistogramCell


def _new_series(spec: MetricSpec, stretch: Stretch, first: int) -> AnyCell:
    if spec.kind is Kind.COUNTER:
        return CounterCell(stretch, first)
    if spec.kind is Kind.GAUGE:
        return GaugeCell(stretch, first)
    assert spec.buckets is not None
    return HistogramCell(stretch, first, spec.buckets)


class MultiprocessInstrument:
    """One metric's series in this process' file, keyed by label values; a histogram's kept as
    ``options`` say (classic buckets, no exemplars by default)."""

    __slots__ = ("_group", "_options", "_series", "_store", "spec")

    def __init__(
        self, store: MultiprocessStore, spec: MetricSpec, options: StoreOptions | None = None
    ) -> None:
        self.spec = spec
        self._store = store
        self._options = options
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
            options = self._options
            if options is None or not (options.native or options.exemplars):
                stretch, first = store.allocate(encode_key(spec.name, key), values_per_entry(spec))
                series = _new_series(spec, stretch, first)
            else:
                series = self._rich(key, options)
            self._series[key] = series
            self._series[label_values] = series
            return series

    def _rich(self, key: tuple[str, ...], options: StoreOptions) -> RichHistogramCell:
        """The entries of a histogram with native buckets or exemplars (the store's lock is
        held)."""
        spec, store = self.spec, self._store
        classic: HistogramCell | None = None
        bounds: tuple[float, ...] = ()
        if options.classic:
            assert spec.buckets is not None
            bounds = spec.buckets
            stretch, first = store.allocate(encode_key(spec.name, key), values_per_entry(spec))
            classic = HistogramCell(stretch, first, bounds)
        native = NativeEntry(store, encode_key(spec.name, key, NATIVE)) if options.native else None
        exemplars = None
        if options.exemplars and options.span_ids is not None:
            exemplar_key = encode_key(spec.name, key, EXEMPLARS)
            exemplars = ExemplarEntry(store, exemplar_key, len(bounds) + 1)
        return RichHistogramCell(store, classic, bounds, native, exemplars, options.span_ids)
