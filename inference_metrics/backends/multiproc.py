"""Several worker processes: one memory-mapped file per process, merged at scrape time.

Every process that records (a uvicorn or gunicorn worker, say) owns one file in a shared directory,
``proc-<pid>-<start>-<token>.db``: the pid, the process' start time in clock ticks (from
``/proc/self/stat``, 0 where there is no ``/proc``) and 128 random bits, so a reused pid never
names an old file. The file is mapped into memory; an update is a store into that mapping (no
system call), under one ``threading.Lock`` per process for correctness under threads.

File layout (little endian)::

    header   64 bytes   magic "IMMPROC\\0", version, kind (0 process, 1 archive), used (bytes),
                        pid, start ticks, created (ns since the epoch), token (16 bytes)
    entries  from 64    u32 total length, u32 key length, key (JSON, padded to 8), float64 values

An entry is written (header, key; values already zero) before ``used`` moves past it, so a reader
never sees half an entry. A key length of 0 is padding up to the end of a 64 KiB mapping: entries
never straddle two mappings, and the file grows by whole mappings, so nothing is ever remapped.

Values per entry: a counter ``[value, touched]``; a gauge ``[value, set time, touched]`` (``set``
stores ``time.time()``, ``add`` leaves it 0); a histogram ``[bucket counts..., +Inf count, sum]``
(not cumulative).

Liveness: each process holds an exclusive ``flock`` on its own file for its whole life; the kernel
drops it when the process ends, however it ends (SIGKILL included), and it works across pid
namespaces (an exporter in another container sharing the volume). A reader tests it with a
shared non-blocking ``flock``. A file is created under a temporary name, locked, then renamed, so
no reader ever sees an unlocked file of a live process.

Merging (:class:`MultiprocessCollector`):

* counters and histograms: summed over every process that ever wrote, live or exited;
* gauges that were ``set`` (pool gauges, ``inference_extension_info``): the value of the most recent
  ``set`` by any process, live or exited;
* gauges only ever ``add``-ed (``inference_model_running_requests``): summed over live processes,
  and still exposed (as 0) once every process that touched them has exited.

Compaction: a scrape that finds files of exited processes folds them into ``archive.db`` while it
holds an exclusive ``flock`` on ``compact.lock`` (other scrapes hold a shared one while they read,
so none sees a half-done compaction). The new archive is written to ``archive.db.new``, synced and
renamed over the old one; it lists the files it absorbed, so a crash after the rename and before
the unlinks counts nothing twice; the next compaction unlinks them and forgets their names. The
number of files is bounded by the live processes plus four, whatever the worker churn.

Series bound across processes: ``labels.db`` is an append-only, ``flock``-ed list of the admitted
label sets per group of metrics sharing label names. A process binding a label set not in it
appends it while the group holds fewer than ``max_series``; otherwise the label set goes to the
overflow series (every label ``__overflow__``) in every process, for good. A label set once admitted
stays admitted, so no count ever moves between series.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import mmap
import os
import re
import secrets
import struct
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import add
from pathlib import Path
from typing import NamedTuple

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ..spec import Kind, MetricSpec
from .base import DEFAULT_MAX_SERIES, OVERFLOW_LABEL_VALUE, SeriesBase, check_label_values
from .store import HistogramSeries, MetricStore, StoredSeries
from .writer import FamilyWriter, empty_family, family

__all__ = [
    "DEFAULT_MAX_SERIES",
    "ENV_VAR",
    "OVERFLOW_LABEL_VALUE",
    "MultiprocessCollector",
    "MultiprocessStore",
    "check_directory",
]

logger = logging.getLogger(__name__)

#: The environment variable naming the directory when no ``multiprocess_dir`` is given.
ENV_VAR = "INFERENCE_METRICS_MULTIPROC_DIR"

MAGIC = b"IMMPROC\x00"
VERSION = 1
KIND_PROCESS = 0
KIND_ARCHIVE = 1
_HEADER = struct.Struct("<8sIIQQQQ16s")
_USED = struct.Struct("<Q")
_USED_AT = 16
_ENTRIES_AT = _HEADER.size  # 64
_ENTRY = struct.Struct("<II")
MAPPING = 1 << 16
#: Seconds after which an unlocked file still being created counts as abandoned.
ABANDONED_AFTER = 60.0

ARCHIVE = "archive.db"
LABELS = "labels.db"
COMPACT_LOCK = "compact.lock"
#: The name of a process file: pid, start ticks, token.
PROCESS_FILE_RE = re.compile(r"proc-[0-9]+-[0-9]+-[0-9a-f]{32}\.db")
_CREATING_RE = re.compile(r"(proc-[0-9a-f]{32}|probe-[0-9a-f]{16})\.new")
_OURS = frozenset((ARCHIVE, ARCHIVE + ".new", LABELS, COMPACT_LOCK))


def check_directory(directory: object, argument: str = "multiprocess_dir") -> Path:
    """``directory`` as a Path, or a ValueError/TypeError naming ``argument``: it must exist, be a
    directory, and be writable and searchable (files are created there, and locks taken)."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"{argument} must be a path (str or os.PathLike), got {directory!r}")
    path = Path(directory)
    if not path.exists():
        raise ValueError(f"{argument} {str(path)!r} does not exist; create it first")
    if not path.is_dir():
        raise ValueError(f"{argument} {str(path)!r} is not a directory")
    probe = path / f"probe-{secrets.token_hex(8)}.new"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        probe.unlink(missing_ok=True)
    except OSError as exc:
        raise ValueError(
            f"{argument} {str(path)!r} is not writable by this process ({exc.strerror})"
        ) from None
    return path


def _start_ticks() -> int:
    """This process' start time in clock ticks since boot (field 22 of /proc/self/stat), or 0."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # The command name (field 2) is in parentheses and may hold spaces: split after its end.
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def _values_count(spec: MetricSpec) -> int:
    if spec.kind is Kind.COUNTER:
        return 2
    if spec.kind is Kind.GAUGE:
        return 3
    assert spec.buckets is not None
    return len(spec.buckets) + 2


def _encode_key(name: str, label_values: tuple[str, ...]) -> bytes:
    return json.dumps([name, *label_values], ensure_ascii=False, separators=(",", ":")).encode()


def _pad8(n: int) -> int:
    return (n + 7) & ~7


# --- the writer side -----------------------------------------------------------------------------


class _Mapping:
    """One mapped stretch of a process file; series keep a reference and index its doubles."""

    __slots__ = ("d", "length", "lock", "mm", "start")

    def __init__(self, fd: int, start: int, length: int, lock: threading.Lock) -> None:
        self.start = start
        self.length = length
        self.mm = mmap.mmap(fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, 0, start)
        self.d = memoryview(self.mm).cast("d")
        self.lock = lock

    def close(self) -> None:
        self.d.release()
        self.mm.close()


class _Cell(SeriesBase):
    """A series' place: its mapping and the index of its first value there."""

    __slots__ = ("_i", "_m")

    def __init__(self, mapping: _Mapping, index: int) -> None:
        self._m = mapping
        self._i = index


class _Added(_Cell):
    """A counter or gauge: ``add`` changes the value and sets the "touched" flag."""

    __slots__ = ()
    _touched = 1  # where the flag is, after the value

    def add(self, amount: float) -> None:
        m, i = self._m, self._i
        with m.lock:
            d = m.d
            d[i] += amount
            d[i + self._touched] = 1.0


class _Counter(_Added):
    __slots__ = ()


class _Gauge(_Added):
    __slots__ = ()
    _touched = 2  # after the value and the time of the last set

    def set(self, value: float) -> None:
        self._set(value, 1.0)

    def remove(self) -> None:
        """Hide the series in every process: a most recent "set" that exposes nothing (a later
        set, here or in any process, exposes it again)."""
        self._set(0.0, -1.0)

    def _set(self, value: float, touched: float) -> None:
        m, i = self._m, self._i
        now = time.time()
        with m.lock:
            d = m.d
            d[i] = value
            d[i + 1] = now
            d[i + 2] = touched


class _Histogram(_Cell):
    __slots__ = ("_bounds", "_sum")

    def __init__(self, mapping: _Mapping, index: int, bounds: tuple[float, ...]) -> None:
        super().__init__(mapping, index)
        self._bounds = bounds
        self._sum = index + len(bounds) + 1

    def observe(self, value: float) -> None:
        # bisect_left puts a value equal to a bound in that bound's bucket ("le").
        k = self._i + bisect_left(self._bounds, value)
        m = self._m
        with m.lock:
            d = m.d
            d[k] += 1.0
            d[self._sum] += value


_AnySeries = _Counter | _Gauge | _Histogram


class _LabelRegistry:
    """The shared, locked list of admitted label sets per group (``labels.db``, JSON lines)."""

    def __init__(self, path: Path, max_series: int) -> None:
        self._path = path
        self._max_series = max_series
        self._offset = 0
        self._known: dict[str, set[tuple[str, ...]]] = {}

    def admit(self, group: str, label_values: tuple[str, ...]) -> bool:
        """Whether ``label_values`` has (or now gets) its own series in ``group``."""
        known = self._known.setdefault(group, set())
        if label_values in known:
            return True
        if len(known) >= self._max_series:  # the list only grows: full stays full
            return False
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._refresh(fd)
            if label_values in known:
                return True
            if len(known) >= self._max_series:
                return False
            line = json.dumps([group, list(label_values)], separators=(",", ":")) + "\n"
            data = line.encode()
            os.lseek(fd, self._offset, os.SEEK_SET)
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            self._offset += len(data)
            known.add(label_values)
            return True
        finally:
            os.close(fd)  # releases the flock

    def _refresh(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size <= self._offset:
            return
        data = os.pread(fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1
        if end < len(data):
            # A writer died mid-line (lines are written whole under the lock): drop the stub.
            os.ftruncate(fd, self._offset + end)
        for line in data[:end].splitlines():
            try:
                group, values = json.loads(line)
                self._known.setdefault(str(group), set()).add(tuple(str(v) for v in values))
            except (ValueError, TypeError):
                logger.warning("ignoring a malformed line in %s", self._path)
        self._offset += end


_STORES: weakref.WeakSet[MultiprocessStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        try:
            store._reopen_after_fork()
        except OSError as exc:
            # Never keep writing into the parent's file (its counts would be counted twice).
            store._detach()
            logger.error(
                "after fork, process %d cannot create its file in %s (%s): it records nothing",
                os.getpid(),
                store.directory,
                exc.strerror or exc,
            )


os.register_at_fork(after_in_child=_after_fork_in_child)


class MultiprocessInstrument:
    """One metric's series in this process' file, keyed by label values."""

    __slots__ = ("_group", "_series", "_store", "spec")

    def __init__(self, store: MultiprocessStore, spec: MetricSpec) -> None:
        self.spec = spec
        self._store = store
        self._group = ",".join(spec.labels)
        self._series: dict[tuple[str, ...], _AnySeries] = {}

    def remove(self, label_values: tuple[str, ...]) -> None:
        """Forget a gauge's series in every process (it is exposed again by the next ``set``).

        Counters and histograms are never removed: their merged values include other processes'
        and exited processes' counts, and a counter must never go backwards; they stay exposed.
        """
        if self.spec.kind is not Kind.GAUGE:
            return
        with self._store.lock:
            series = self._series.get(label_values)
        if isinstance(series, _Gauge):
            series.remove()

    def bind(self, label_values: tuple[str, ...]) -> _AnySeries:
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
            mapping, index = store.allocate(_encode_key(spec.name, key), _values_count(spec))
            if spec.kind is Kind.COUNTER:
                series = _Counter(mapping, index)
            elif spec.kind is Kind.GAUGE:
                series = _Gauge(mapping, index)
            else:
                assert spec.buckets is not None
                series = _Histogram(mapping, index, spec.buckets)
            self._series[key] = series
            self._series[label_values] = series
            return series


class MultiprocessStore:
    """This process' memory-mapped file in ``directory``, and the instruments writing into it.

    ``max_series`` bounds the label sets per group of metrics across every process writing to
    ``directory``; give the Recorder a ``max_series`` at least as large (the defaults are equal),
    so that the Recorder's own per-process bound never folds a label set another process admits.
    After ``os.fork()`` the child writes to a file of its own (values start at zero there).
    """

    def __init__(self, directory: object, *, max_series: int = DEFAULT_MAX_SERIES) -> None:
        if isinstance(max_series, bool) or not isinstance(max_series, int):
            raise TypeError(f"max_series must be an int, got {max_series!r}")
        if max_series < 1:
            raise ValueError(f"max_series must be >= 1, got {max_series!r}")
        self.directory = check_directory(directory)
        self.lock = threading.Lock()
        self.labels = _LabelRegistry(self.directory / LABELS, max_series)
        self._mappings: list[_Mapping] = []
        self._entries: list[tuple[_Mapping, int, int]] = []  # mapping, first double, count
        self._used = _ENTRIES_AT
        self._fd = -1
        self.path = self._create_file(b"")
        self._mappings.append(_Mapping(self._fd, 0, MAPPING, self.lock))
        _STORES.add(self)

    def register(self, specs: Sequence[MetricSpec]) -> list[MultiprocessInstrument]:
        return [MultiprocessInstrument(self, spec) for spec in specs]

    def _create_file(self, content: bytes) -> Path:
        """Create and lock a new file under a temporary name, write ``content`` after its header,
        then rename it into view: no reader ever sees it unlocked or without its header."""
        self._pid = os.getpid()
        self._start = _start_ticks()
        self._token = secrets.token_bytes(16)
        self._created = time.time_ns()
        creating = self.directory / f"proc-{self._token.hex()}.new"
        path = self.directory / f"proc-{self._pid}-{self._start}-{self._token.hex()}.db"
        fd = os.open(creating, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, max(MAPPING, _HEADER.size + len(content)))
            data = self._header() + content
            written = 0
            while written < len(data):
                written += os.pwrite(fd, data[written:], written)
            os.rename(creating, path)
        except BaseException:
            os.close(fd)
            creating.unlink(missing_ok=True)
            raise
        self._fd = fd
        return path

    def _header(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            VERSION,
            KIND_PROCESS,
            self._used,
            self._pid,
            self._start,
            self._created,
            self._token,
        )

    def allocate(self, key: bytes, count: int) -> tuple[_Mapping, int]:
        """Append an entry for ``key`` with ``count`` zero values; its mapping and first double.
        The caller holds :attr:`lock`."""
        size = _ENTRY.size + _pad8(len(key)) + 8 * count
        last = self._mappings[-1]
        end = last.start + last.length
        position = self._used
        if position + size > end:
            if end > position:  # pad to the end of this mapping
                last.mm[position - last.start : position - last.start + _ENTRY.size] = _ENTRY.pack(
                    end - position, 0
                )
            length = max(MAPPING, -(-size // MAPPING) * MAPPING)
            os.ftruncate(self._fd, end + length)
            last = _Mapping(self._fd, end, length, self.lock)
            self._mappings.append(last)
            position = end
        offset = position - last.start
        last.mm[offset : offset + _ENTRY.size] = _ENTRY.pack(size, len(key))
        last.mm[offset + _ENTRY.size : offset + _ENTRY.size + len(key)] = key
        first = (offset + _ENTRY.size + _pad8(len(key))) // 8
        self._entries.append((last, first, count))
        self._used = position + size
        # The entry is complete before "used" moves past it: readers never see half of one.
        _USED.pack_into(self._mappings[0].mm, _USED_AT, self._used)
        return last, first

    def _reopen_after_fork(self) -> None:
        """In a forked child: the same entries in a new file of its own, every value zero."""
        old_fd, old = self._fd, self._mappings
        self.lock = threading.Lock()
        content = bytearray(old[-1].start + old[-1].length)
        for mapping in old:
            content[mapping.start : mapping.start + mapping.length] = mapping.mm[:]
        for mapping, first, count in self._entries:
            at = mapping.start + 8 * first
            content[at : at + 8 * count] = bytes(8 * count)
        self.path = self._create_file(bytes(content[_HEADER.size :]))
        # Series keep their _Mapping objects: move a mapping of the new file into each.
        for mapping in old:
            replacement = _Mapping(self._fd, mapping.start, mapping.length, self.lock)
            mm, d = mapping.mm, mapping.d
            mapping.mm, mapping.d, mapping.lock = replacement.mm, replacement.d, self.lock
            d.release()
            mm.close()
        os.close(old_fd)  # the parent keeps its own descriptor, and its lock

    def _detach(self) -> None:
        """Point every series at private memory of this process: nothing it records is seen."""
        self.lock = threading.Lock()
        for mapping in self._mappings:
            mm, d = mapping.mm, mapping.d
            mapping.mm = mmap.mmap(-1, mapping.length, mmap.MAP_PRIVATE)
            mapping.d = memoryview(mapping.mm).cast("d")
            mapping.lock = self.lock
            d.release()
            mm.close()
        _STORES.discard(self)

    def close(self) -> None:
        """Release the file (its values stay, to be merged and compacted as an exited process')."""
        _STORES.discard(self)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# --- the reader side -----------------------------------------------------------------------------


@dataclass
class _FileEntries:
    """What is known of one file's entries: parsed up to ``parsed_to``."""

    parsed_to: int = _ENTRIES_AT
    entries: list[tuple[bytes, int, int]] = field(default_factory=list)  # key, offset, count


class _Foreign(Exception):
    pass


def _parse(buffer: mmap.mmap | bytes, known: _FileEntries, used: int) -> None:
    position = known.parsed_to
    while position + _ENTRY.size <= used:
        total, key_length = _ENTRY.unpack_from(buffer, position)
        if total < _ENTRY.size or position + total > used:
            raise _Foreign(f"entry at {position} runs past the end")
        if key_length:
            values_at = position + _ENTRY.size + _pad8(key_length)
            count, rest = divmod(position + total - values_at, 8)
            if rest or count < 0:
                raise _Foreign(f"entry at {position} has a bad length")
            key = bytes(buffer[position + _ENTRY.size : position + _ENTRY.size + key_length])
            known.entries.append((key, values_at, count))
        position += total
    known.parsed_to = position


@dataclass
class _Source:
    """One file's values as read at one scrape."""

    name: str
    live: bool
    values: list[tuple[bytes, tuple[float, ...]]]
    absorbed: tuple[str, ...] = ()


_Decoded = tuple[MetricSpec, tuple[str, ...], int]


class _Shown(NamedTuple):
    """One series to expose and its numbers."""

    key: bytes
    spec: MetricSpec
    label_values: tuple[str, ...]
    numbers: tuple[float, ...]


class _Merge:
    """Values merged per key, in the per-process layout, plus live sums of add-only gauges.

    ``keys`` caches decoded keys across scrapes (a key is decoded once per collector)."""

    def __init__(self, specs: dict[str, MetricSpec], keys: dict[bytes, _Decoded | None]) -> None:
        self._specs = specs
        self.values: dict[bytes, list[float]] = {}
        self.live: dict[bytes, float] = {}
        self._keys = keys

    def decode(self, key: bytes) -> _Decoded | None:
        """The spec, label values and value count of ``key`` (None: not one of our metrics)."""
        try:
            return self._keys[key]
        except KeyError:
            pass
        decoded: _Decoded | None = None
        try:
            name, *labels = json.loads(key)
            spec = self._specs.get(name)
            if spec is not None and len(labels) == len(spec.labels):
                decoded = (spec, tuple(str(v) for v in labels), _values_count(spec))
        except (ValueError, TypeError):
            pass
        self._keys[key] = decoded
        return decoded

    def shown(self, order: dict[bytes, None]) -> list[_Shown]:
        """Every series to expose, with its numbers (a counter's or gauge's value; a histogram's
        counts and sum), in ``order``: the order in which the caller first showed them, which
        this updates (new series last; a hidden one forgets its place)."""
        exposed: dict[bytes, _Shown] = {}
        for key, values in self.values.items():
            decoded = self.decode(key)
            if decoded is None:
                continue
            spec, label_values, _ = decoded
            numbers: tuple[float, ...]
            if spec.kind is Kind.GAUGE:
                if values[2] <= 0:  # never touched, or removed by the most recent set
                    continue
                numbers = (values[0] if values[1] else self.live.get(key, 0.0),)
            elif spec.kind is Kind.COUNTER:
                if not values[1]:
                    continue
                numbers = (values[0],)
            else:
                numbers = tuple(values)
                if not any(numbers[:-1]):
                    continue
            exposed[key] = _Shown(key, spec, label_values, numbers)
        for key in [key for key in order if key not in exposed]:
            del order[key]
        for key in exposed:
            order.setdefault(key, None)
        return [exposed[key] for key in order]

    def add(self, source: _Source) -> None:
        merged, live, is_live = self.values, self.live, source.live
        for key, values in source.values:
            if not any(values):  # bound but never touched: nothing to add under any rule
                continue
            decoded = self.decode(key)
            if decoded is None or len(values) != decoded[2]:
                continue
            kind = decoded[0].kind
            current = merged.get(key)
            if kind is Kind.HISTOGRAM:
                merged[key] = list(values) if current is None else list(map(add, current, values))
            elif kind is Kind.COUNTER:
                if current is None:
                    merged[key] = list(values)
                else:
                    current[0] += values[0]
                    current[1] = max(current[1], values[1])
            else:
                value, set_time, touched = values
                if set_time == 0.0:  # add-only: this process' contribution, while it lives
                    if is_live:
                        live[key] = live.get(key, 0.0) + value
                    value = 0.0
                if current is None:
                    merged[key] = [value, set_time, touched]
                elif set_time > current[1]:  # a more recent set (or removal) decides
                    current[0], current[1], current[2] = value, set_time, touched
                elif current[1] == 0.0:  # add-only so far: exposed once any process touched it
                    current[2] = max(current[2], touched)

    def archive_bytes(self, absorbed: Sequence[str]) -> bytes:
        """This merge as an archive file (add-only gauges at 0: their processes have exited)."""
        parts = [b""]
        absorbed_entry: tuple[bytes, list[float]] = (
            json.dumps({"absorbed": list(absorbed)}).encode(),
            [],
        )
        for key, values in [absorbed_entry, *self.values.items()]:
            padded = _pad8(len(key))
            total = _ENTRY.size + padded + 8 * len(values)
            parts.append(_ENTRY.pack(total, len(key)) + key.ljust(padded, b"\0"))
            parts.append(struct.pack(f"<{len(values)}d", *values))
        body = b"".join(parts)
        used = _ENTRIES_AT + len(body)
        header = _HEADER.pack(MAGIC, VERSION, KIND_ARCHIVE, used, 0, 0, time.time_ns(), bytes(16))
        return header + body


class MultiprocessCollector(Collector):
    """The merged metrics of every process writing to ``directory``, as prometheus_client families.

    Each collect compacts the files of exited processes first (when no other scrape is
    compacting). Safe to use from any number of processes at once, writers or not.
    """

    def __init__(
        self,
        directory: object,
        specs: Iterable[MetricSpec],
        *,
        instruments: Sequence[object] = (),
    ) -> None:
        self.directory = check_directory(directory)
        #: The instruments of the backend register call this collector exposes (none in an
        #: exporter that only reads).
        self.instruments = tuple(instruments)
        self._specs = tuple(specs)
        self._by_name = {spec.name: spec for spec in self._specs}
        self._files: dict[str, _FileEntries] = {}
        self._warned: set[str] = set()
        self._keys: dict[bytes, _Decoded | None] = {}
        self._mirror = _Mirror(self._specs)
        #: Series in the order this collector first showed them (both ways out use it).
        self._order: dict[bytes, None] = {}
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        for spec in self._specs:
            yield empty_family(spec)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            shown = self.merge().shown(self._order)
        yield from _families(self._specs, shown)

    def write(self, out: list[bytes], openmetrics: bool, keys: list[int] | None = None) -> None:
        """Append the merged families to ``out`` with our own exposition writer (the bytes
        :meth:`collect` gives prometheus_client's ``generate_latest``, without its per-sample
        objects): each merged series is mirrored into a store series of this collector, whose
        lines are formatted again only when its merged values changed. With ``keys``, the
        pieces' keys as :class:`~.writer.FamilyWriter` gives them (for the gzip cache)."""
        with self._lock:
            self._mirror.update(self.merge().shown(self._order))
            self._mirror.write(out, openmetrics, keys)

    def merge(self) -> _Merge:
        """Read (and compact) the directory: the merged values of every process."""
        fd = os.open(self.directory / COMPACT_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                exclusive = True
            except BlockingIOError:
                fcntl.flock(fd, fcntl.LOCK_SH)
                exclusive = False
            return self._merge_locked(exclusive)
        finally:
            os.close(fd)

    def _merge_locked(self, exclusive: bool) -> _Merge:
        archive = self._read(self.directory / ARCHIVE, archive=True)
        absorbed = set(archive.absorbed) if archive is not None else set()
        sources: list[_Source] = []
        stale: list[str] = []
        for name in sorted(os.listdir(self.directory)):
            if name in absorbed:
                stale.append(name)
            elif PROCESS_FILE_RE.fullmatch(name):
                source = self._read(self.directory / name, archive=False)
                if source is not None:
                    sources.append(source)
            elif _CREATING_RE.fullmatch(name):
                if exclusive:
                    self._remove_abandoned(self.directory / name)
            elif name not in _OURS and name not in self._warned:
                self._warned.add(name)
                logger.warning(
                    "ignoring %r in the multiprocess directory %s: not a file of ours",
                    name,
                    self.directory,
                )
        dead = [s for s in sources if not s.live]
        if exclusive and (dead or stale):
            folded = _Merge(self._by_name, self._keys)
            if archive is not None:
                folded.add(archive)
            for source in dead:
                folded.add(source)
            # Still listed: absorbed files not yet unlinked (a crash may come before we do).
            keep = [n for n in stale if (self.directory / n).exists()]
            absorbed_now = [s.name for s in dead] + keep
            self._write_archive(folded.archive_bytes(absorbed_now))
            for name in absorbed_now:
                (self.directory / name).unlink(missing_ok=True)
                self._files.pop(name, None)
            archive = _Source(ARCHIVE, False, [(k, tuple(v)) for k, v in folded.values.items()])
            sources = [s for s in sources if s.live]
        merge = _Merge(self._by_name, self._keys)
        if archive is not None:
            merge.add(archive)
        for source in sources:
            merge.add(source)
        return merge

    @staticmethod
    def _remove_abandoned(path: Path) -> None:
        """Unlink a file left by a process that died while creating it: unlocked, and older than
        :data:`ABANDONED_AFTER` (a creator locks its file microseconds after creating it)."""
        try:
            old = time.time() - path.stat().st_mtime > ABANDONED_AFTER
        except FileNotFoundError:
            return
        if old and not _alive(path):
            path.unlink(missing_ok=True)

    def _write_archive(self, data: bytes) -> None:
        new = self.directory / (ARCHIVE + ".new")
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(new, self.directory / ARCHIVE)
        directory = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _read(self, path: Path, *, archive: bool) -> _Source | None:
        """One file's values (None if it vanished or is not ours: then warned about, once)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            if size < _ENTRIES_AT:
                raise _Foreign("shorter than a header")
            with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as buffer:
                magic, version, kind, used, *_ = _HEADER.unpack_from(buffer, 0)
                if magic != MAGIC or version != VERSION:
                    raise _Foreign("no inference-metrics header")
                if kind != (KIND_ARCHIVE if archive else KIND_PROCESS):
                    raise _Foreign(f"a header of kind {kind}")
                # The writer may have grown the file (and moved "used") since our fstat: the
                # entries past our mapping are read at the next scrape.
                used = min(used, size)
                known = self._files.get(path.name) if not archive else None
                if known is None:
                    known = _FileEntries()
                _parse(buffer, known, used)
                if not archive:
                    self._files[path.name] = known
                values = [
                    (key, struct.unpack_from(f"<{count}d", buffer, at))
                    for key, at, count in known.entries
                ]
            if archive:
                return _archive_source(values)
            return _Source(path.name, _locked_elsewhere(fd), values)
        except _Foreign as exc:
            if path.name not in self._warned:
                self._warned.add(path.name)
                logger.warning("ignoring %s in the multiprocess directory: %s", path, exc)
            return None
        finally:
            os.close(fd)


def _archive_source(values: list[tuple[bytes, tuple[float, ...]]]) -> _Source:
    absorbed: tuple[str, ...] = ()
    rest = []
    for key, vals in values:
        if key.startswith(b"{"):
            absorbed = tuple(json.loads(key).get("absorbed", ()))
        else:
            rest.append((key, vals))
    return _Source(ARCHIVE, False, rest, absorbed)


def _locked_elsewhere(fd: int) -> bool:
    """Whether another open file (a live process) holds an exclusive flock on ``fd``'s file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _alive(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return _locked_elsewhere(fd)
    finally:
        os.close(fd)


# --- our writer ---


class _Mirror:
    """The merged values as store series (:mod:`.store`), rendered by :mod:`.writer`."""

    def __init__(self, specs: Sequence[MetricSpec]) -> None:
        self._stores = {spec.name: MetricStore(spec) for spec in specs}
        self._writers = [FamilyWriter(store) for store in self._stores.values()]
        self._shown: dict[bytes, tuple[StoredSeries, MetricStore, tuple[str, ...]]] = {}

    def update(self, shown: list[_Shown]) -> None:
        now: dict[bytes, tuple[StoredSeries, MetricStore, tuple[str, ...]]] = {}
        for key, spec, label_values, numbers in shown:
            known = self._shown.get(key)
            if known is None:
                store = self._stores[spec.name]
                known = (store.bind(label_values), store, label_values)
            now[key] = known
            _mirror_values(known[0], numbers)
        for key in self._shown.keys() - now.keys():  # hidden since the last scrape
            _, store, label_values = self._shown[key]
            store.remove(label_values)
        self._shown = now

    def write(self, out: list[bytes], openmetrics: bool, keys: list[int] | None = None) -> None:
        for writer in self._writers:
            writer.write(out, openmetrics, keys)


def _mirror_values(series: StoredSeries, numbers: tuple[float, ...]) -> None:
    """Give a store series these merged numbers (only this collector, under its lock, writes
    them); its cached lines are dropped only when a number changed."""
    if isinstance(series, HistogramSeries):
        counts = [int(n) for n in numbers[:-1]]
        if series.touched and counts == series.counts and numbers[-1] == series.sum:
            return
        series.counts, series.sum = counts, numbers[-1]
    else:
        if series.touched and series.value == numbers[0]:
            return
        series.value = numbers[0]
    series.touched = True
    series.rendered = None


# --- families ------------------------------------------------------------------------------------


def _families(specs: Sequence[MetricSpec], shown: list[_Shown]) -> Iterator[Metric]:
    rows: dict[str, list[tuple[tuple[str, ...], tuple[float, ...]]]] = {
        spec.name: [] for spec in specs
    }
    for row in shown:
        rows[row.spec.name].append((row.label_values, row.numbers))
    for spec in specs:
        metric = family(spec, rows[spec.name])
        if metric is not None:
            yield metric
