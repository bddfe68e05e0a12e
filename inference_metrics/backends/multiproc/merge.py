"""Merging every process' numbers into one view, and folding exited processes into the archive.

The merge rules, per key (one metric's series for one label set):

* counters and histograms: summed over every process that ever wrote, live or exited;
* gauges that were ``set`` (pool gauges, ``inference_extension_info``): the value of the most
  recent ``set`` by any process, live or exited (a removal is a ``set`` that hides the series);
* gauges only ever ``add``-ed (``inference_model_running_requests``, a flow's queue size and
  bytes): summed over live processes, and still exposed (as 0) once every process that touched it
  has exited; a process that removed the series no longer keeps it shown (its share is 0), so it
  is hidden once no process holds a share.

Compaction (:func:`compact`): the files of exited processes are folded, with the old archive,
into a new ``archive.db`` (written as ``archive.db.new``, synced, renamed over the old one), which
lists the files it absorbed; then those files are unlinked. A crash after the rename and before
the unlinks counts nothing twice: readers skip files the archive lists, and the next compaction
unlinks them and forgets their names.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import add
from pathlib import Path
from typing import NamedTuple

from ...spec import Kind, MetricSpec
from ..store import HistogramSnapshot, Snapshot
from .layout import (
    ARCHIVE,
    COUNTER_TOUCHED,
    COUNTER_VALUE,
    GAUGE_SET_AT,
    GAUGE_TOUCHED,
    GAUGE_VALUE,
    archive_bytes,
    values_per_entry,
)
from .reader import Numbers, Scan, Source, alive

__all__ = ["ABANDONED_AFTER", "DecodedKey", "KeyDecoder", "Merge", "Shown", "compact"]

#: Seconds after which an unlocked file still being created counts as abandoned.
ABANDONED_AFTER = 60.0

# Entries are unpacked in the layout's order.
assert (COUNTER_VALUE, COUNTER_TOUCHED) == (0, 1)
assert (GAUGE_VALUE, GAUGE_SET_AT, GAUGE_TOUCHED) == (0, 1, 2)


class DecodedKey(NamedTuple):
    """What an entry's key names: a metric, a label set, and how many numbers it has."""

    spec: MetricSpec
    label_values: tuple[str, ...]
    value_count: int


class KeyDecoder:
    """Decodes entry keys against the metrics a collector exposes; each key once (a key that
    names none of them decodes to None)."""

    def __init__(self, specs: Iterable[MetricSpec]) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._known: dict[bytes, DecodedKey | None] = {}

    def __call__(self, key: bytes) -> DecodedKey | None:
        try:
            return self._known[key]
        except KeyError:
            pass
        decoded: DecodedKey | None = None
        try:
            name, *labels = json.loads(key)
            spec = self._specs.get(name)
            if spec is not None and len(labels) == len(spec.labels):
                decoded = DecodedKey(spec, tuple(str(v) for v in labels), values_per_entry(spec))
        except (ValueError, TypeError):
            pass
        self._known[key] = decoded
        return decoded

    def keep(self, merge: Merge) -> None:
        """Forget keys ``merge`` does not hold, once they are many (keys of junk files, of label
        sets long gone)."""
        if len(self._known) > 2 * len(merge) + 1024:
            self._known = {k: v for k, v in self._known.items() if k in merge}


@dataclass(slots=True)
class _CounterState:
    value: float
    touched: float


@dataclass(slots=True)
class _GaugeState:
    #: The most recent set's value (0.0 while only add-ed: the live processes' sum is ``live``).
    value: float
    set_at: float
    touched: float
    #: The sum of the live processes' add-ed amounts.
    live: float


@dataclass(slots=True)
class _HistogramState:
    #: Bucket counts (not cumulative), the +Inf count, the sum: the entry's numbers.
    numbers: list[float]


class Shown(NamedTuple):
    """One series to expose and its numbers."""

    key: bytes
    spec: MetricSpec
    label_values: tuple[str, ...]
    snapshot: Snapshot


class Merge:
    """The numbers of several files merged per key under the rules above."""

    def __init__(self, decode: KeyDecoder) -> None:
        self._decode = decode
        self._counters: dict[bytes, _CounterState] = {}
        self._gauges: dict[bytes, _GaugeState] = {}
        self._histograms: dict[bytes, _HistogramState] = {}

    def __len__(self) -> int:
        return len(self._counters) + len(self._gauges) + len(self._histograms)

    def __contains__(self, key: object) -> bool:
        return key in self._counters or key in self._gauges or key in self._histograms

    def add(self, source: Source) -> None:
        decode, is_live = self._decode, source.live
        counters, gauges, histograms = self._counters, self._gauges, self._histograms
        for key, values in source.values:
            if not any(values):  # bound but never touched: nothing to add under any rule
                continue
            decoded = decode(key)
            if decoded is None or len(values) != decoded.value_count:
                continue
            kind = decoded.spec.kind
            if kind is Kind.HISTOGRAM:
                histogram = histograms.get(key)
                if histogram is None:
                    histograms[key] = _HistogramState(list(values))
                else:
                    histogram.numbers = list(map(add, histogram.numbers, values))
            elif kind is Kind.COUNTER:
                value, touched = values
                counter = counters.get(key)
                if counter is None:
                    counters[key] = _CounterState(value, touched)
                else:
                    counter.value += value
                    counter.touched = max(counter.touched, touched)
            else:
                value, set_at, touched = values
                live = 0.0
                if set_at == 0.0:  # add-only: this process' contribution, while it lives
                    live = value if is_live else 0.0
                    value = 0.0
                gauge = gauges.get(key)
                if gauge is None:
                    gauges[key] = _GaugeState(value, set_at, touched, live)
                    continue
                gauge.live += live
                if set_at > gauge.set_at:  # a more recent set (or removal) decides
                    gauge.value, gauge.set_at, gauge.touched = value, set_at, touched
                elif gauge.set_at == 0.0:  # add-only so far: exposed once any process touched it
                    gauge.touched = max(gauge.touched, touched)

    def shown(self, order: dict[bytes, None]) -> list[Shown]:
        """Every series to expose, with its numbers, in ``order``: the order in which the caller
        first showed them, which this updates (new series last; a hidden one forgets its
        place)."""
        decode = self._decode
        exposed: dict[bytes, Snapshot] = {}
        for key, counter in self._counters.items():
            if counter.touched:
                exposed[key] = counter.value
        for key, gauge in self._gauges.items():
            if gauge.touched > 0:  # never touched, or removed by the most recent set
                exposed[key] = gauge.value if gauge.set_at else gauge.live
        for key, histogram in self._histograms.items():
            counts = histogram.numbers[:-1]
            if any(counts):
                exposed[key] = HistogramSnapshot(
                    tuple([int(n) for n in counts]), histogram.numbers[-1]
                )
        for key in [key for key in order if key not in exposed]:
            del order[key]
        for key in exposed:
            order.setdefault(key, None)
        shown = []
        for key in order:
            decoded = decode(key)
            assert decoded is not None  # only decoded keys are merged
            shown.append(Shown(key, decoded.spec, decoded.label_values, exposed[key]))
        return shown

    def entries(self) -> Iterator[tuple[bytes, Numbers]]:
        """Every key's numbers in the layout of a file (an add-only gauge at 0: what an archive
        holds, its processes having exited)."""
        for key, counter in self._counters.items():
            yield key, (counter.value, counter.touched)
        for key, gauge in self._gauges.items():
            yield key, (gauge.value, gauge.set_at, gauge.touched)
        for key, histogram in self._histograms.items():
            yield key, tuple(histogram.numbers)


def compact(directory: Path, scan: Scan, decode: KeyDecoder) -> Scan:
    """Fold the exited processes' files of ``scan`` into a new archive and unlink them: the scan
    as it reads afterwards. ``OSError`` when the archive cannot be written (nothing changed)."""
    dead = [source for source in scan.sources if not source.live]
    folded = Merge(decode)
    if scan.archive is not None:
        folded.add(scan.archive)
    for source in dead:
        folded.add(source)
    # Still listed: absorbed files not yet unlinked (a crash may come before we do).
    kept = [name for name in scan.stale if os.path.lexists(directory / name)]
    absorbed = [source.name for source in dead] + kept
    _write_archive(directory, archive_bytes(absorbed, folded.entries()))
    for name in absorbed:
        # If this fails, the name stays listed in the archive: never read again, unlinked by the
        # next compaction.
        with contextlib.suppress(OSError):
            (directory / name).unlink(missing_ok=True)
    archive = Source(ARCHIVE, False, list(folded.entries()), tuple(absorbed))
    live = [source for source in scan.sources if source.live]
    return Scan(archive, True, live, [], scan.creating)


def _write_archive(directory: Path, data: bytes) -> None:
    new = directory / (ARCHIVE + ".new")
    try:
        fd = os.open(
            new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(new, directory / ARCHIVE)
    except OSError:
        with contextlib.suppress(OSError):
            new.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # the rename is done; the sync only makes it durable sooner


def remove_abandoned(directory: Path, name: str) -> None:
    """Unlink a file left by a process that died while creating it: unlocked, and older than
    :data:`ABANDONED_AFTER` (a creator locks its file microseconds after creating it)."""
    path = directory / name
    try:
        old = time.time() - path.lstat().st_mtime > ABANDONED_AFTER
        if old and not alive(path):
            path.unlink(missing_ok=True)
    except OSError:
        pass
