"""The in-process store behind :class:`~inference_metrics.backends.prometheus.PrometheusBackend`.

Layout (one object per series, numbers in flat lists):

* :class:`MetricStore`: one metric; a dict from label values (a tuple of str) to its series, in
  bind order, and the label text of each series escaped once, at bind.
* :class:`CounterSeries` / :class:`GaugeSeries`: ``value`` (a float).
* :class:`HistogramSeries`: ``counts`` (a list of ints, one per bucket, **not** cumulative: slot
  ``i`` holds observations in ``(bounds[i-1], bounds[i]]``, the last slot ``(bounds[-1], +Inf)``)
  and ``sum`` (a float).

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
stamps without holding the lines themselves.
"""

from __future__ import annotations

import itertools
import logging
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..spec import Kind, MetricSpec
from .base import SeriesBase, check_label_values

__all__ = [
    "FOLD_AT",
    "CounterSeries",
    "GaugeSeries",
    "HistogramSeries",
    "HistogramSnapshot",
    "Labels",
    "MetricStore",
    "Snapshot",
    "StoredSeries",
    "new_stamp",
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


def escape_label_value(value: str) -> str:
    """A label value as both exposition formats quote it (backslash, newline, double quote)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """A histogram series' numbers at one moment."""

    #: Observations per bucket, **not** cumulative: one per bound, then the ``+Inf`` bucket's.
    counts: tuple[int, ...]
    #: The sum of the observed values.
    sum: float

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


class _Series(SeriesBase):
    __slots__ = ("_keyed", "_lock", "labels", "pending", "touched")

    def __init__(self, labels: Labels) -> None:
        self._lock = threading.Lock()
        self.labels = labels
        self.touched = False
        #: (lines, stamp) of the last scrape, one object so a reader never pairs the lines of one
        #: render with the stamp of another; None once anything changed since.
        self._keyed: tuple[bytes, int] | None = None
        #: Amounts not yet folded in (counters and histograms; a gauge's stays empty).
        self.pending: list[float] = []

    @property
    def rendered(self) -> bytes | None:
        """The lines of the last scrape, or None once anything changed since. Only None can be
        assigned: it drops the lines (and their stamp), so the next scrape formats them again."""
        keyed = self._keyed
        return None if keyed is None else keyed[0]

    @rendered.setter
    def rendered(self, value: None) -> None:
        if value is not None:
            raise ValueError(f"rendered can only be reset to None, got {type(value).__name__}")
        self._keyed = None

    def render_with(self, format_series: Callable[[Any], bytes]) -> bytes:
        """This series' exposition lines (b"" while never updated); see :meth:`render_keyed`."""
        return self.render_keyed(format_series)[0]

    def render_keyed(self, format_series: Callable[[Any], bytes]) -> tuple[bytes, int]:
        """This series' exposition lines (b"" while never updated) and their stamp, formatted
        again only when something changed since the last call. Formatting happens under the
        series' lock, so a fold cannot slip in between the numbers read and the bytes cached."""
        keyed = self._keyed
        if keyed is None or self.pending:
            with self._lock:
                self._fold()
                keyed = self._keyed
                if keyed is None:
                    keyed = (format_series(self) if self.touched else b"", new_stamp())
                    self._keyed = keyed
        return keyed

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

    __slots__ = ("_append",)

    def __init__(self, labels: Labels) -> None:
        super().__init__(labels)
        self._append = self.pending.append

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
        self._append(amount)
        if len(self.pending) >= FOLD_AT:
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
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, labels: Labels, bounds: tuple[float, ...]) -> None:
        super().__init__(labels)
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self._append(value)
        if len(self.pending) >= FOLD_AT:
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
        self.touched = True
        self._keyed = None

    def snapshot(self) -> HistogramSnapshot | None:
        """The counts and sum, or None while nothing was observed."""
        with self._lock:
            self._fold()
            return HistogramSnapshot(tuple(self.counts), self.sum) if self.touched else None

    def load(self, snapshot: Snapshot) -> None:
        """Hold ``snapshot``'s numbers from now on, as if observed (see
        :meth:`MetricStore.load`)."""
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
        with self._lock:
            self._fold()
            if not self.touched or counts != self.counts or snapshot.sum != self.sum:
                self.counts, self.sum = counts, snapshot.sum
                self.touched = True
                self._keyed = None


StoredSeries = CounterSeries | GaugeSeries | HistogramSeries


def _value_of(series: CounterSeries | GaugeSeries, snapshot: Snapshot) -> float:
    if isinstance(snapshot, HistogramSnapshot) or not isinstance(snapshot, (int, float)):
        kind = type(series).__name__.removesuffix("Series").lower()
        raise TypeError(f"snapshot of a {kind} must be a number, got {snapshot!r}")
    return float(snapshot)


class MetricStore:
    """One metric's series, keyed by label values, in bind order."""

    __slots__ = ("_lock", "_series", "spec")

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
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
        )
        if spec.kind is Kind.COUNTER:
            return CounterSeries(labels)
        if spec.kind is Kind.GAUGE:
            return GaugeSeries(labels)
        assert spec.buckets is not None
        return HistogramSeries(labels, spec.buckets)
