"""Merging every process' numbers into one view, and folding exited processes into the archive.

The merge rules, per key (one metric's series for one label set):

* counters and histograms: summed over every process that ever wrote, live or exited;
* gauges that were ``set`` (pool gauges, ``inference_extension_info``): the value of the most
  recent ``set`` by any process, live or exited (a removal is a ``set`` that hides the series);
* gauges only ever ``add``-ed (``inference_model_running_requests``, a flow's queue size and
  bytes): summed over live processes, and still exposed (as 0) once every process that touched it
  has exited; a process that removed the series no longer keeps it shown (its share is 0), so it
  is hidden once no process holds a share;
* native buckets: each process' last ``#native`` entry of the key, merged exactly (the finer
  schemas reduced to the coarsest, counts added: :func:`~..native.merge`), over every process
  that ever wrote;
* exemplars: the latest per bucket over every process that ever wrote
  (:func:`~..exemplars.merge_latest`).

What a series shows is what the collector asks for (:class:`~..store.StoreOptions` per metric):
classic buckets need a classic entry, native buckets a ``#native`` one; a series missing what
its metric shows is left out, with one warning per metric (processes recording with other
settings than the collector's). A native-only view of classic exemplars shows their latest.

Compaction (:func:`compact`): the files of exited processes are folded, with the old archive,
into a new ``archive.db`` (written as ``archive.db.new``, synced, renamed over the old one), which
lists the files it absorbed; then those files are unlinked. A crash after the rename and before
the unlinks counts nothing twice: readers skip files the archive lists, and the next compaction
unlinks them and forgets their names.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import add
from pathlib import Path
from typing import NamedTuple

from ...spec import Kind, MetricSpec
from ..exemplars import Exemplar, later, merge_latest, pack_ids, trace_exemplar, unpack_ids
from ..native import MIN_SCHEMA, SCHEMA, NativeHistogram, merge
from ..store import HistogramSnapshot, Snapshot, StoreOptions
from .layout import (
    ARCHIVE,
    COUNTER_TOUCHED,
    COUNTER_VALUE,
    EXEMPLAR_SLOT,
    EXEMPLARS,
    GAUGE_SET_AT,
    GAUGE_TOUCHED,
    GAUGE_VALUE,
    NATIVE,
    archive_bytes,
    encode_key,
    exemplar_values,
    native_slots,
    native_values,
    values_per_entry,
)
from .reader import Numbers, Scan, Source, alive

__all__ = ["ABANDONED_AFTER", "DecodedKey", "KeyDecoder", "Merge", "Shown", "compact"]

logger = logging.getLogger(__name__)

#: Seconds after which an unlocked file still being created counts as abandoned.
ABANDONED_AFTER = 60.0

# Entries are unpacked in the layout's order.
assert (COUNTER_VALUE, COUNTER_TOUCHED) == (0, 1)
assert (GAUGE_VALUE, GAUGE_SET_AT, GAUGE_TOUCHED) == (0, 1, 2)


class DecodedKey(NamedTuple):
    """What an entry's key names: a metric, a label set, and how many numbers it has (-1: any,
    for a ``#native`` or ``#exemplars`` entry, whose size says its slots)."""

    spec: MetricSpec
    label_values: tuple[str, ...]
    value_count: int
    #: "" for the series' own entry, else ``#native`` or ``#exemplars``.
    role: str = ""
    #: The key of the series' own entry (the same key for ``role`` "").
    series: bytes = b""


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
            parts = json.loads(key)
            if not isinstance(parts, list):
                raise TypeError("a key is a list")
            role = parts[0] if parts and parts[0] in (NATIVE, EXEMPLARS) else ""
            name, *labels = parts[1:] if role else parts
            spec = self._specs.get(name)
            if spec is not None and len(labels) == len(spec.labels):
                values = tuple(str(v) for v in labels)
                if not role:
                    decoded = DecodedKey(spec, values, values_per_entry(spec), "", key)
                elif spec.kind is Kind.HISTOGRAM:
                    decoded = DecodedKey(spec, values, -1, role, encode_key(spec.name, values))
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

    def __init__(self, decode: KeyDecoder, unshown: dict[str, str] | None = None) -> None:
        self._decode = decode
        self._counters: dict[bytes, _CounterState] = {}
        self._gauges: dict[bytes, _GaugeState] = {}
        self._histograms: dict[bytes, _HistogramState] = {}
        #: Per series key: each process' native buckets, and each process' exemplars.
        self._natives: dict[bytes, list[NativeHistogram]] = {}
        self._exemplars: dict[bytes, list[tuple[Exemplar | None, ...]]] = {}
        #: The ``#native`` and ``#exemplars`` keys merged.
        self._roles: set[bytes] = set()
        #: Metrics with series left out (of :meth:`shown`, for lack of what they show; or of
        #: the merge, damaged), and why: ``unshown`` when given (shared with a compaction).
        self.unshown: dict[str, str] = {} if unshown is None else unshown

    def __len__(self) -> int:
        return len(self._counters) + len(self._gauges) + len(self._histograms) + len(self._roles)

    def __contains__(self, key: object) -> bool:
        return (
            key in self._counters
            or key in self._gauges
            or key in self._histograms
            or key in self._roles
        )

    def add(self, source: Source) -> None:
        decode, is_live = self._decode, source.live
        counters, gauges, histograms = self._counters, self._gauges, self._histograms
        #: This file's last #native entry of each key: the series' (earlier ones are history).
        natives: dict[bytes, tuple[bytes, Numbers]] = {}
        for key, values in source.values:
            decoded = decode(key)
            if decoded is None:
                continue
            if decoded.role == NATIVE:
                natives[key] = (decoded.series, values)
                continue
            if not any(values):  # bound but never touched: nothing to add under any rule
                continue
            if decoded.role == EXEMPLARS:
                held = _exemplars_of(values)
                if held is not None:
                    self._exemplars.setdefault(decoded.series, []).append(held)
                    self._roles.add(key)
                continue
            if len(values) != decoded.value_count:
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
        for key, (series, values) in natives.items():
            if not any(values):
                continue
            native = _native_of(values)
            if native is None:
                decoded = decode(key)
                assert decoded is not None
                self.unshown[decoded.spec.name] = "whose #native entry is damaged"
            elif native.count:
                self._natives.setdefault(series, []).append(native)
                self._roles.add(key)

    def shown(
        self, order: dict[bytes, None], views: Mapping[str, StoreOptions] | None = None
    ) -> list[Shown]:
        """Every series to expose, with its numbers, in ``order``: the order in which the caller
        first showed them, which this updates (new series last; a hidden one forgets its
        place). ``views``: how each histogram is shown (default: classic, no exemplars)."""
        decode = self._decode
        views = views or {}
        exposed: dict[bytes, Snapshot] = {}
        for key, counter in self._counters.items():
            if counter.touched:
                exposed[key] = counter.value
        for key, gauge in self._gauges.items():
            if gauge.touched > 0:  # never touched, or removed by the most recent set
                exposed[key] = gauge.value if gauge.set_at else gauge.live
        for key in [*self._histograms, *(k for k in self._natives if k not in self._histograms)]:
            decoded = decode(key)
            assert decoded is not None  # only decoded keys are merged
            snapshot = self._histogram(key, decoded.spec, views.get(decoded.spec.name))
            if snapshot is not None:
                exposed[key] = snapshot
        for key in [key for key in order if key not in exposed]:
            del order[key]
        for key in exposed:
            order.setdefault(key, None)
        shown = []
        for key in order:
            decoded = decode(key)
            assert decoded is not None
            shown.append(Shown(key, decoded.spec, decoded.label_values, exposed[key]))
        return shown

    def _histogram(
        self, key: bytes, spec: MetricSpec, view: StoreOptions | None
    ) -> HistogramSnapshot | None:
        """What the series of ``key`` shows as ``view`` says, or None (nothing observed, or
        missing what the view shows: then noted in :attr:`unshown`)."""
        view = view or StoreOptions()
        classic = self._histograms.get(key)
        parts = self._natives.get(key)
        if view.classic and classic is None:
            self.unshown[spec.name] = "recorded without classic buckets"
            return None
        if view.native and not parts:
            self.unshown[spec.name] = "recorded without native buckets"
            return None
        native = merge(parts) if parts else None
        if classic is not None and view.classic:
            counts = tuple([int(n) for n in classic.numbers[:-1]])
            total = classic.numbers[-1]
        else:
            assert native is not None
            counts, total = (native.count,), native.sum
        if not any(counts):
            return None
        exemplars = None
        held = self._exemplars.get(key)
        if view.exemplars and held:
            merged = merge_latest([part for part in held if len(part) == len(held[0])])
            if len(merged) == len(counts):
                exemplars = tuple(merged)
            elif len(counts) == 1:  # native-only: the latest of any bucket
                latest = None
                for exemplar in merged:
                    latest = later(latest, exemplar)
                exemplars = (latest,)
        return HistogramSnapshot(counts, total, native if view.native else None, exemplars)

    def entries(self) -> Iterator[tuple[bytes, Numbers]]:
        """Every key's numbers in the layout of a file (an add-only gauge at 0: what an archive
        holds, its processes having exited)."""
        for key, counter in self._counters.items():
            yield key, (counter.value, counter.touched)
        for key, gauge in self._gauges.items():
            yield key, (gauge.value, gauge.set_at, gauge.touched)
        for key, histogram in self._histograms.items():
            yield key, tuple(histogram.numbers)
        for key, parts in self._natives.items():
            yield self._role_key(key, NATIVE), _native_numbers(merge(parts))
        for key, held in self._exemplars.items():
            merged = merge_latest([part for part in held if len(part) == len(held[0])])
            yield self._role_key(key, EXEMPLARS), _exemplar_numbers(merged)

    def _role_key(self, key: bytes, role: str) -> bytes:
        decoded = self._decode(key)
        assert decoded is not None
        return encode_key(decoded.spec.name, decoded.label_values, role)


def _native_of(values: Numbers) -> NativeHistogram | None:
    """A ``#native`` entry's histogram, or None if its numbers are not one (damaged)."""
    slots = native_slots(len(values))
    steps = values[0]
    if slots is None or steps != int(steps) or not 0 <= steps <= SCHEMA - MIN_SCHEMA:
        return None
    zero, count, total = values[-3:]
    if not (_whole(zero) and _whole(count)):
        return None
    native = NativeHistogram(SCHEMA - int(steps))
    native.zero_count, native.count, native.sum = int(zero), int(count), total
    for i in range(slots):
        code, held = values[1 + 2 * i], values[2 + 2 * i]
        if not held:
            continue
        if not (_whole(held) and code == int(code)):
            return None
        key, negative = int(code) >> 1, int(code) & 1
        into = native.negative if negative else native.positive
        into[key] = into.get(key, 0) + int(held)
    return native


def _whole(number: float) -> bool:
    return number >= 0 and number == int(number) if number == number else False


def _native_numbers(native: NativeHistogram) -> Numbers:
    """``native`` as a ``#native`` entry's numbers (one slot per bucket)."""
    slots = [*((2 * k, n) for k, n in native.positive.items())]
    slots += [(2 * k + 1, n) for k, n in native.negative.items()]
    numbers = [float(SCHEMA - native.schema)]
    for code, count in slots:
        numbers += (float(code), float(count))
    numbers += (float(native.zero_count), float(native.count), native.sum)
    assert len(numbers) == native_values(len(slots))
    return tuple(numbers)


def _exemplars_of(values: Numbers) -> tuple[Exemplar | None, ...] | None:
    """An ``#exemplars`` entry's exemplars, one per slot (None where a slot holds none, or was
    being written when read), or None if its size is not whole slots."""
    slots, rest = divmod(len(values), EXEMPLAR_SLOT)
    if rest or not slots:
        return None
    found: list[Exemplar | None] = []
    for i in range(slots):
        done, when, value, *chunks, begun = values[EXEMPLAR_SLOT * i : EXEMPLAR_SLOT * (i + 1)]
        ids = unpack_ids(chunks) if done == begun > 0 and when > 0 else None
        held = None
        if ids is not None:
            try:
                held = trace_exemplar(ids, value, when)
            except (TypeError, ValueError):
                held = None
        found.append(held)
    return tuple(found)


def _exemplar_numbers(held: Sequence[Exemplar | None]) -> Numbers:
    """Exemplars as an ``#exemplars`` entry's numbers (a slot without one: zeros)."""
    numbers: list[float] = []
    for exemplar in held:
        labels = dict(exemplar.labels) if exemplar is not None else {}
        try:
            ids = (int(labels["trace_id"], 16), int(labels["span_id"], 16))
        except (KeyError, ValueError):
            numbers += [0.0] * EXEMPLAR_SLOT
            continue
        assert exemplar is not None
        numbers += (1.0, exemplar.timestamp, exemplar.value, *pack_ids(ids), 1.0)
    assert len(numbers) == exemplar_values(len(held))
    return tuple(numbers)


def compact(
    directory: Path, scan: Scan, decode: KeyDecoder, unshown: dict[str, str] | None = None
) -> Scan:
    """Fold the exited processes' files of ``scan`` into a new archive and unlink them: the scan
    as it reads afterwards. ``OSError`` when the archive cannot be written (nothing changed).
    ``unshown``: where to note series left out of the archive (damaged)."""
    dead = [source for source in scan.sources if not source.live]
    folded = Merge(decode, unshown)
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
