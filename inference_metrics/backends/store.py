"""The in-process store behind :class:`~inference_metrics.backends.prometheus.PrometheusBackend`.

Layout (one object per series, numbers in flat lists):

* :class:`MetricStore`: one metric; a dict from label values (a tuple of str) to its series, in
  bind order, and the label text of each series escaped once, at bind.
* :class:`CounterSeries` / :class:`GaugeSeries`: ``value`` (a float).
* :class:`HistogramSeries`: ``counts`` (a list of ints, one per bucket, **not** cumulative: slot
  ``i`` holds observations in ``(bounds[i-1], bounds[i]]``, the last slot ``(bounds[-1], +Inf)``)
  and ``sum`` (a float); maybe ``native`` buckets and ``exemplars`` (below).

The record path takes no lock. A counter's ``add`` and a histogram's ``observe`` append the amount
to the series' ``pending`` list (``list.append`` is atomic under the GIL, and a C call, so no
thread can lose another's update) and fold the list into ``value`` / ``counts`` / ``sum`` under the
series' lock once it holds :data:`FOLD_AT` amounts, which bounds the memory an unscraped series
can hold. A scrape folds what is pending first. Folding takes a prefix (``del pending[:n]``, also
atomic), so amounts appended while a fold runs wait for the next one; nothing is lost or counted
twice. Gauges take the lock on every ``set``/``add`` (a ``set`` must not race an ``add``), which
is cheap because gauges are set rarely.

Snapshots: :meth:`MetricStore.snapshot` gives every updated series' numbers at one moment (a
counter's or gauge's value as a float, a histogram's as a :class:`HistogramSnapshot`), and
:meth:`MetricStore.load` makes a series hold numbers computed elsewhere (the multiprocess
collector loads the merged numbers of every process this way, then renders them with the same
writer). A series whose loaded numbers did not change keeps its rendered lines.

Each series also keeps ``rendered``: the exposition lines of its last scrape, as bytes, or None
once anything changed since. The writer (:mod:`.writer`) reuses them, so a series not touched
since the last scrape is not formatted again. The lines come with a *stamp*, an int drawn from
one process-wide counter when they were formatted and never drawn again, so equal stamps mean the
very same lines: the gzip cache (:mod:`inference_metrics.gzip_cache`) keys its compressed bytes by
stamps without holding the lines themselves. A series keeps one such entry per *slot* (the text
lines, the OpenMetrics lines where they differ, its protobuf bytes), all dropped by a change.

A histogram series may also hold native buckets (:class:`~.native.NativeHistogram`, folded from
the same batch as its classic counts; a native-only one has no finite bounds, so its classic
counts are the one ``+Inf`` bucket), and exemplars (:class:`~.exemplars.ExemplarSlots`, one per
classic bucket): :class:`TracedHistogramSeries` asks for the current span's ids at each
``observe`` and, inside a sampled span, queues ``(value, ids, time)`` for the fold, which offers
each to the slot of the bucket its value fell in (the latest per bucket wins).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..spec import HISTOGRAM_KINDS, Kind, MetricSpec
from .base import SeriesBase, check_label_values
from .exemplars import Exemplar, ExemplarSlots, SpanIds
from .native import NativeHistogram
from .textformat import escape_label_value

__all__ = [
    "FOLD_AT",
    "CounterSeries",
    "GaugeSeries",
    "HistogramSeries",
    "HistogramSnapshot",
    "Labels",
    "MetricStore",
    "Snapshot",
    "StoreOptions",
    "StoredSeries",
    "TracedHistogramSeries",
    "check_histogram_options",
    "new_stamp",
    "store_options",
]

logger = logging.getLogger(__name__)

#: Pending amounts a series holds at most before the recording thread folds them itself.
FOLD_AT = 256
#: A stamp never handed out before (``itertools.count`` is atomic under the GIL).
new_stamp: Callable[[], int] = itertools.count(1).__next__
# From this many pending observations on, a fold sorts them instead of searching each one's bucket.
_SORT_FOLD_AT = 32


def _numbers(batch: list[float], start: float) -> tuple[list[float], float]:
    """``batch`` and ``start`` plus its sum, added left to right as ``n`` times ``+=`` would.

    An amount that is not an int or a float is dropped, with an error logged: the Recorder never
    passes one, but a caller driving a series directly could, and it must not break every later
    scrape of the registry (the amount is only looked at here, not when it was recorded).
    """
    try:
        total = sum(batch, start)
    except TypeError:
        total = None
    if type(total) is float:
        return batch, total
    kept = [amount for amount in batch if type(amount) in (int, float)]
    logger.error("dropped %d amount(s) that are not int or float", len(batch) - len(kept))
    return kept, sum(kept, start)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """A histogram series' numbers at one moment."""

    #: Observations per bucket, **not** cumulative: one per bound, then the ``+Inf`` bucket's.
    counts: tuple[int, ...]
    #: The sum of the observed values.
    sum: float
    #: The native buckets (a copy), or None for a histogram without them.
    native: NativeHistogram | None = None
    #: The latest exemplar of each classic bucket (``+Inf`` last; a native-only histogram's one
    #: slot is its ``+Inf`` bucket's), or None for a histogram keeping none.
    exemplars: tuple[Exemplar | None, ...] | None = None

    @property
    def count(self) -> int:
        """Every observation (the ``_count`` sample)."""
        return sum(self.counts)


#: A series' numbers at one moment: a counter's or gauge's value, or a histogram's snapshot.
Snapshot = float | HistogramSnapshot


class Labels(NamedTuple):
    """A series' label pairs, escaped once at bind, sorted by label name as prometheus_client
    sorts them, and split where a histogram's ``le`` goes."""

    #: The pairs whose names sort before ``le``, each followed by ``,``.
    before: str
    #: The pairs whose names sort after ``le``, each preceded by ``,``.
    after: str
    #: Every pair, comma-separated (what counters, gauges, ``_count`` and ``_sum`` show).
    plain: str
    #: The (name, value) pairs themselves, unescaped, in the same order (the protobuf labels).
    pairs: tuple[tuple[str, str], ...] = ()


#: Where a series keeps the bytes of each representation (:meth:`_Series.render_keyed`): the
#: text lines (also the OpenMetrics ones, unless exemplars make them differ), the OpenMetrics
#: lines with exemplars, the protobuf ``Metric``.
SLOT_TEXT, SLOT_OPENMETRICS, SLOT_PROTOBUF = 0, 1, 2
_Keyed = tuple[bytes, int]
_NO_SLOTS: tuple[_Keyed | None, ...] = (None, None, None)


class _Series(SeriesBase):
    __slots__ = ("_keyed", "_lock", "_protobuf_labels", "labels", "pending", "touched")

    def __init__(self, labels: Labels) -> None:
        self._lock = threading.Lock()
        self.labels = labels
        self.touched = False
        #: Per slot, (bytes, stamp) of the last render, one object so a reader never pairs the
        #: bytes of one render with the stamp of another; None once anything changed since.
        self._keyed: tuple[_Keyed | None, ...] | None = None
        self._protobuf_labels: bytes | None = None
        #: Amounts not yet folded in (counters and histograms; a gauge's stays empty).
        self.pending: list[float] = []

    @property
    def protobuf_labels(self) -> bytes:
        """The labels as protobuf ``Metric.label`` fields, encoded at the first protobuf render."""
        encoded = self._protobuf_labels
        if encoded is None:
            from .protobuf import label_pairs

            encoded = self._protobuf_labels = label_pairs(self.labels.pairs)
        return encoded

    @property
    def rendered(self) -> bytes | None:
        """The text lines of the last scrape, or None once anything changed since. Only None can
        be assigned: it drops every slot's bytes (and stamps), so the next scrape formats them
        again."""
        keyed = self._keyed
        entry = None if keyed is None else keyed[SLOT_TEXT]
        return None if entry is None else entry[0]

    @rendered.setter
    def rendered(self, value: None) -> None:
        if value is not None:
            raise ValueError(f"rendered can only be reset to None, got {type(value).__name__}")
        self._keyed = None

    def render_with(self, format_series: Callable[[Any], bytes]) -> bytes:
        """This series' exposition lines (b"" while never updated); see :meth:`render_keyed`."""
        return self.render_keyed(format_series)[0]

    def render_keyed(
        self, format_series: Callable[[Any], bytes], slot: int = SLOT_TEXT
    ) -> tuple[bytes, int]:
        """This series' bytes in ``slot`` (b"" while never updated) and their stamp, formatted
        again only when something changed since the last call. Formatting happens under the
        series' lock, so a fold cannot slip in between the numbers read and the bytes cached."""
        keyed = self._keyed
        if keyed is not None and not self.pending:
            entry = keyed[slot]
            if entry is not None:
                return entry
        with self._lock:
            self._fold()
            keyed = self._keyed or _NO_SLOTS
            entry = keyed[slot]
            if entry is None:
                entry = (format_series(self) if self.touched else b"", new_stamp())
                self._keyed = (*keyed[:slot], entry, *keyed[slot + 1 :])
            return entry

    def has_data(self) -> bool:
        """Whether this series was updated (pending amounts folded first): only such a series is
        exposed."""
        if self.pending and not self.touched:
            with self._lock:
                self._fold()
        return self.touched

    def _fold(self) -> None:
        """Apply pending amounts (the lock is held)."""


class _PendingSeries(_Series):
    """A series recorded by appending to ``pending`` (a counter or a histogram). Their ``add`` and
    ``observe`` stay two methods, not one shared by assignment: the parameter names are public
    (``add(amount=...)``, ``observe(value=...)``) and a forwarding call would cost every record."""

    __slots__ = ()

    def _take(self) -> list[float]:
        """The pending amounts, taken off as a prefix (amounts appended meanwhile stay)."""
        pending = self.pending
        n = len(pending)
        batch = pending[:n]
        del pending[:n]
        return batch


class CounterSeries(_PendingSeries):
    __slots__ = ("value",)

    def __init__(self, labels: Labels) -> None:
        super().__init__(labels)
        self.value = 0.0

    def add(self, amount: float) -> None:
        pending = self.pending  # a local: one attribute read fewer than a bound `append` slot
        pending.append(amount)
        if len(pending) >= FOLD_AT:
            with self._lock:
                self._fold()

    def _fold(self) -> None:
        batch, self.value = _numbers(self._take(), self.value)
        if batch:
            self.touched = True
            self._keyed = None

    def snapshot(self) -> float | None:
        """The value, or None while never updated."""
        with self._lock:
            self._fold()
            return self.value if self.touched else None

    def load(self, snapshot: Snapshot) -> None:
        """Hold the value ``snapshot`` from now on, as if updated (see :meth:`MetricStore.load`)."""
        value = _value_of(self, snapshot)
        with self._lock:
            self._fold()
            if not self.touched or self.value != value:
                self.value = value
                self.touched = True
                self._keyed = None


class GaugeSeries(_Series):
    __slots__ = ("value",)

    def __init__(self, labels: Labels) -> None:
        super().__init__(labels)
        self.value = 0.0

    def add(self, amount: float) -> None:
        with self._lock:
            self.value += amount
            self.touched = True
            self._keyed = None

    def set(self, value: float) -> None:
        with self._lock:
            self.value = value
            self.touched = True
            self._keyed = None

    def snapshot(self) -> float | None:
        """The value, or None while never updated."""
        with self._lock:
            return self.value if self.touched else None

    def load(self, snapshot: Snapshot) -> None:
        """Hold the value ``snapshot`` from now on, as if set (see :meth:`MetricStore.load`)."""
        value = _value_of(self, snapshot)
        with self._lock:
            if not self.touched or self.value != value:
                self.value = value
                self.touched = True
                self._keyed = None


class HistogramSeries(_PendingSeries):
    """A histogram: classic ``counts`` (one per bound and one for ``+Inf``) and ``sum``, and,
    with ``native``, native buckets folded from the same observations (``native.sum`` is kept
    equal to ``sum``). A native-only series is given no bounds: ``counts`` is then its ``+Inf``
    bucket alone. ``exemplars``: the latest exemplar of each classic bucket (see
    :class:`TracedHistogramSeries`), or None."""

    __slots__ = ("_bounds", "counts", "exemplars", "native", "sum")

    def __init__(
        self,
        labels: Labels,
        bounds: tuple[float, ...],
        native: NativeHistogram | None = None,
        exemplars: ExemplarSlots | None = None,
    ) -> None:
        super().__init__(labels)
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.native = native
        self.exemplars = exemplars

    def observe(self, value: float) -> None:
        pending = self.pending  # a local: one attribute read fewer than a bound `append` slot
        pending.append(value)
        if len(pending) >= FOLD_AT:
            with self._lock:
                self._fold()

    def _fold(self) -> None:
        # Summed before the batch is sorted below.
        batch, self.sum = _numbers(self._take(), self.sum)
        n = len(batch)
        if not n:
            return
        counts, bounds = self.counts, self._bounds
        # A value equal to a bound belongs in that bound's bucket ("le"): bisect_left per value,
        # or, for a larger batch, the batch sorted once and bisect_right per bound (the count of
        # values <= the bound), which costs a C sort instead of a Python step per value.
        if n < _SORT_FOLD_AT:
            for value in batch:
                counts[bisect_left(bounds, value)] += 1
        else:
            batch.sort()
            below = 0
            for i, bound in enumerate(bounds):
                upto = bisect_right(batch, bound)
                counts[i] += upto - below
                below = upto
            counts[-1] += n - below
        native = self.native
        if native is not None:
            native.observe(batch, 0.0)
            native.sum = self.sum
        self.touched = True
        self._keyed = None

    def snapshot(self) -> HistogramSnapshot | None:
        """The counts and sum (and native buckets, exemplars, when kept), or None while nothing
        was observed."""
        with self._lock:
            self._fold()
            if not self.touched:
                return None
            native, held = self.native, self.exemplars
            return HistogramSnapshot(
                tuple(self.counts),
                self.sum,
                None if native is None else native.copy(),
                None if held is None else tuple(held.snapshot()),
            )

    def load(self, snapshot: Snapshot) -> None:
        """Hold ``snapshot``'s numbers from now on, as if observed (see
        :meth:`MetricStore.load`): its counts, one per bucket this series has; its native
        buckets when this series keeps them (it must have them then); its exemplars when this
        series keeps them (one per bucket, or none)."""
        if not isinstance(snapshot, HistogramSnapshot):
            raise TypeError(
                f"snapshot of a histogram must be a HistogramSnapshot, got {snapshot!r}"
            )
        counts = list(snapshot.counts)
        if len(counts) != len(self.counts):
            raise ValueError(
                f"snapshot must have {len(self.counts)} counts (one per bucket and +Inf), got "
                f"{len(counts)}"
            )
        native = snapshot.native
        if (native is None) != (self.native is None):
            wanted = "native buckets" if self.native is not None else "no native buckets"
            raise ValueError(f"snapshot must have {wanted} for this series, got {native!r}")
        held = self.exemplars
        exemplars = snapshot.exemplars
        if held is not None and exemplars is not None and len(exemplars) != len(held):
            raise ValueError(
                f"snapshot must have {len(held)} exemplars (one per bucket), got {len(exemplars)}"
            )
        with self._lock:
            self._fold()
            changed = not self.touched or counts != self.counts or snapshot.sum != self.sum
            if native is not None and native != self.native:
                self.native, changed = native.copy(), True
            if held is not None:
                shown = tuple(held.snapshot())
                wanted_exemplars = (None,) * len(held) if exemplars is None else exemplars
                if wanted_exemplars != shown:
                    held.replace(wanted_exemplars)
                    changed = True
            if changed:
                self.counts, self.sum = counts, snapshot.sum
                self.touched = True
                self._keyed = None


class TracedHistogramSeries(HistogramSeries):
    """A histogram whose observations made in a sampled OpenTelemetry span carry exemplars.

    ``span_ids`` (:func:`~.exemplars.span_reader`) gives the current span's ids or None. Inside a
    sampled span, ``observe`` queues ``(value, ids, time.time())`` before the value itself (so a
    fold that takes the value has its exemplar too); the fold offers each to the slot of the
    classic bucket its value fell in."""

    __slots__ = ("_offer", "_offered", "_span_ids")

    def __init__(
        self,
        labels: Labels,
        bounds: tuple[float, ...],
        native: NativeHistogram | None,
        span_ids: Callable[[], SpanIds | None],
    ) -> None:
        super().__init__(labels, bounds, native, ExemplarSlots(len(bounds) + 1))
        self._span_ids = span_ids
        self._offered: list[tuple[float, SpanIds, float]] = []
        self._offer = self._offered.append

    def observe(self, value: float) -> None:
        ids = self._span_ids()
        if ids is not None:
            self._offer((value, ids, _now()))
        pending = self.pending  # a local: one attribute read fewer than a bound `append` slot
        pending.append(value)
        if len(pending) >= FOLD_AT:
            with self._lock:
                self._fold()

    def _fold(self) -> None:
        offered = self._offered
        if offered:
            n = len(offered)
            taken = offered[:n]
            del offered[:n]
            bounds = self._bounds
            # Only the latest of a bucket can be shown: find it per bucket, offer that one.
            latest: dict[int, tuple[float, SpanIds, float]] = {}
            for held in taken:
                value = held[0]
                if type(value) in (int, float):  # as _numbers keeps amounts
                    bucket = bisect_left(bounds, value)
                    before = latest.get(bucket)
                    if before is None or held[2] >= before[2]:
                        latest[bucket] = held
            slots = self.exemplars
            assert slots is not None
            for bucket, (value, ids, when) in latest.items():
                slots.offer_span(bucket, ids, value, when)
            self._keyed = None
        super()._fold()


_now = time.time


StoredSeries = CounterSeries | GaugeSeries | HistogramSeries


def _value_of(series: CounterSeries | GaugeSeries, snapshot: Snapshot) -> float:
    if isinstance(snapshot, HistogramSnapshot) or not isinstance(snapshot, (int, float)):
        kind = type(series).__name__.removesuffix("Series").lower()
        raise TypeError(f"snapshot of a {kind} must be a number, got {snapshot!r}")
    return float(snapshot)


class StoreOptions(NamedTuple):
    """How a store keeps a histogram's series (from the spec's options and the backend's)."""

    #: ``classic``, ``native`` or ``both`` (:data:`~inference_metrics.spec.HISTOGRAM_KINDS`).
    kind: str = "classic"
    #: Whether the series keep exemplars (one per classic bucket).
    exemplars: bool = False
    #: The current span's ids, for a store that records exemplars (with ``exemplars``); None for
    #: one whose exemplars are loaded (the multiprocess collector's).
    span_ids: Callable[[], SpanIds | None] | None = None

    @property
    def classic(self) -> bool:
        return self.kind != "native"

    @property
    def native(self) -> bool:
        return self.kind != "classic"


def check_histogram_options(histograms: object, exemplars: object) -> None:
    """``ValueError``/``TypeError`` naming the argument unless ``histograms`` is one of
    :data:`~inference_metrics.spec.HISTOGRAM_KINDS` and ``exemplars`` a bool."""
    if not isinstance(histograms, str) or histograms not in HISTOGRAM_KINDS:
        raise ValueError(f"histograms must be one of {HISTOGRAM_KINDS}, got {histograms!r}")
    if not isinstance(exemplars, bool):
        raise TypeError(f"exemplars must be True or False, got {exemplars!r}")


def store_options(
    spec: MetricSpec, histograms: str = "classic", exemplars: bool = False
) -> StoreOptions | None:
    """How ``spec``'s series are kept: a histogram's own options (``MetricSpec.histogram``,
    ``MetricSpec.exemplars``), else ``histograms`` and ``exemplars``; None for a counter or
    gauge."""
    if spec.kind is not Kind.HISTOGRAM:
        return None
    kind = spec.histogram or histograms
    return StoreOptions(kind, exemplars if spec.exemplars is None else spec.exemplars)


class MetricStore:
    """One metric's series, keyed by label values, in bind order; a histogram's kept as
    ``options`` say (classic buckets by default)."""

    __slots__ = ("_lock", "_series", "bounds", "options", "spec")

    def __init__(self, spec: MetricSpec, options: StoreOptions | None = None) -> None:
        self.spec = spec
        self.options = options = StoreOptions() if options is None else options
        #: A histogram's classic bounds as its series keep them: none for a native-only one.
        self.bounds: tuple[float, ...] = (
            (spec.buckets or ()) if options.classic and spec.kind is Kind.HISTOGRAM else ()
        )
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], StoredSeries] = {}

    def bind(self, label_values: tuple[str, ...]) -> StoredSeries:
        check_label_values(self.spec, label_values)
        series = self._series.get(label_values)
        if series is not None:
            return series
        with self._lock:
            series = self._series.get(label_values)
            if series is None:
                series = self._new_series(label_values)
                self._series[label_values] = series
            return series

    def remove(self, label_values: tuple[str, ...]) -> None:
        check_label_values(self.spec, label_values)
        with self._lock:
            self._series.pop(label_values, None)

    def series(self) -> list[StoredSeries]:
        """The series now held, in bind order (a copy: binds and removals may go on)."""
        with self._lock:
            return list(self._series.values())

    def items(self) -> Iterator[tuple[tuple[str, ...], StoredSeries]]:
        with self._lock:
            items = list(self._series.items())
        return iter(items)

    def snapshot(self) -> list[tuple[tuple[str, ...], Snapshot]]:
        """Every updated series' label values and numbers, in bind order."""
        taken: list[tuple[tuple[str, ...], Snapshot]] = []
        for label_values, series in self.items():
            numbers = series.snapshot()
            if numbers is not None:
                taken.append((label_values, numbers))
        return taken

    def load(self, label_values: tuple[str, ...], snapshot: Snapshot) -> StoredSeries:
        """Make the series of ``label_values`` (bound if new) hold ``snapshot``, numbers computed
        elsewhere, as if it had been updated to them; a float for a counter or gauge, a
        :class:`HistogramSnapshot` with one count per bucket and ``+Inf`` for a histogram. Its
        rendered lines are kept when the numbers did not change. A counter may be loaded with a
        smaller value: whoever loads it answers for what it means. Returns the series."""
        series = self.bind(label_values)
        series.load(snapshot)
        return series

    def _new_series(self, label_values: tuple[str, ...]) -> StoredSeries:
        spec = self.spec
        pairs = sorted(zip(spec.labels, label_values, strict=True))
        texts = [(name, f'{name}="{escape_label_value(value)}"') for name, value in pairs]
        labels = Labels(
            before="".join(f"{text}," for name, text in texts if name < "le"),
            after="".join(f",{text}" for name, text in texts if name > "le"),
            plain=",".join(text for _, text in texts),
            pairs=tuple(pairs),
        )
        if spec.kind is Kind.COUNTER:
            return CounterSeries(labels)
        if spec.kind is Kind.GAUGE:
            return GaugeSeries(labels)
        options = self.options
        native = NativeHistogram() if options.native else None
        if options.exemplars and options.span_ids is not None:
            return TracedHistogramSeries(labels, self.bounds, native, options.span_ids)
        slots = ExemplarSlots(len(self.bounds) + 1) if options.exemplars else None
        return HistogramSeries(labels, self.bounds, native, slots)
