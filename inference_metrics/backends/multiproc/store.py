"""This process' file in the multiprocess directory: where its series' entries go, and the space
for them.

The file is mapped into memory in stretches (:class:`~.series.Stretch`) of 64 KiB (or more, for an
entry that needs it); an update is a store into a stretch (no system call), under one
``threading.Lock`` per process. Each process holds an exclusive ``flock`` on its file for its
whole life, so readers know it is alive (:mod:`.reader`); the file is created under a temporary
name, locked, then renamed.

**Space is reserved before it is used.** Every stretch is ``posix_fallocate``-d before it is
mapped: a page of a sparse memory-mapped file is allocated at its first store, and a full
filesystem answers that store with SIGBUS, which kills the process. Reserved first, a full
filesystem (or a file-size limit) is an ``OSError`` at allocation instead. A stretch that cannot
be reserved lives in private memory of this process: its series record as usual, but no other
process sees them until space returns. Each new label set, and a timer every
:data:`RETRY_AFTER` seconds while any stretch is private, tries again; once it works the private
bytes are copied into the file (under the lock, so no update is lost) and the stretch is mapped
from the file again. The same holds when the file itself cannot be created (at start, or in a
forked child). Meanwhile the gauge :data:`~.layout.PRIVATE_SERIES` (in the first stretch, which is
reserved with the file) says how many series are private, and a warning is logged at most once a
minute.

After ``os.fork()`` the child writes to a file of its own (values start at zero there): a fork
handler takes every store's lock before the fork (so no stretch is copied half-moved), and the
child moves its copies of the stretches into a new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import threading
import time
import weakref
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from ...spec import MetricSpec
from ..base import DEFAULT_MAX_SERIES
from ..store import StoreOptions
from .labels import LabelRegistry
from .layout import (
    COMPACT_LOCK,
    ENTRIES_AT,
    ENTRY,
    LABELS,
    MAPPING,
    PRIVATE_SERIES,
    USED,
    USED_AT,
    FileKind,
    Header,
    check_directory,
    encode_key,
    entry_size,
    pad8,
    values_per_entry,
)
from .log import RateLimitedLog
from .series import GaugeCell, MultiprocessInstrument, Stretch

__all__ = ["RETRY_AFTER", "MultiprocessInstrument", "MultiprocessStore"]

logger = logging.getLogger(__name__)

#: Seconds between two attempts to reserve space while series are held in private memory.
RETRY_AFTER = 5.0


def _start_ticks() -> int:
    """This process' start time in clock ticks since boot (field 22 of /proc/self/stat), or 0."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # The command name (field 2) is in parentheses and may hold spaces: split after its end.
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class _Placed(NamedTuple):
    """An entry's numbers: the stretch they are in, the index of the first, how many."""

    stretch: Stretch
    first: int
    value_count: int


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
        self.labels = LabelRegistry(self.directory / LABELS, max_series)
        self._stretches = [Stretch(0, MAPPING, self.lock)]
        self._entries: list[_Placed] = []
        self._used = ENTRIES_AT
        self._fd = -1
        self._closed = False
        self._timer: threading.Timer | None = None
        self._log = RateLimitedLog(logger)
        self._private = 0
        #: What series must forget in a forked child, whose values start at zero (a native
        #: histogram's slots); called there with :attr:`lock` held.
        self._after_fork: list[Callable[[], None]] = []
        self._new_identity()
        _ensure_lock_file(self.directory)
        with self.lock:
            key = encode_key(PRIVATE_SERIES.name, ())
            gauge = self._place(key, values_per_entry(PRIVATE_SERIES))
            self._private_gauge = GaugeCell(gauge.stretch, gauge.first)
            self._share()
        _watch_forks(self)

    @property
    def path(self) -> Path:
        """This process' file (where it is, or will be once space for it could be reserved)."""
        return self.directory / f"proc-{self._pid}-{self._start}-{self._token.hex()}.db"

    def on_fork(self, forget: Callable[[], None]) -> None:
        """Call ``forget`` in a forked child, with :attr:`lock` held, after every value of this
        store was set to zero there. The caller holds :attr:`lock`."""
        self._after_fork.append(forget)

    @property
    def private_series(self) -> int:
        """Series held in private memory, waiting for space in the file."""
        return self._private

    def register(
        self,
        specs: Sequence[MetricSpec],
        options: Sequence[StoreOptions | None] | None = None,
    ) -> list[MultiprocessInstrument]:
        """One instrument per spec; ``options``: how each histogram keeps its series (None:
        classic buckets, no exemplars)."""
        if options is None:
            options = [None] * len(specs)
        return [
            MultiprocessInstrument(self, spec, option)
            for spec, option in zip(specs, options, strict=True)
        ]

    def allocate(
        self, key: bytes, count: int, initial: Sequence[float] = ()
    ) -> tuple[Stretch, int]:
        """Append an entry for ``key`` with ``count`` values, ``initial`` first and zeros after
        (written before any reader can see the entry): its stretch and the index of its first
        double there. The caller holds :attr:`lock`."""
        placed = self._place(key, count, initial)
        if not all(stretch.shared for stretch in self._stretches):
            self._share()  # space may have returned: new label sets go to the file again
        if not placed.stretch.shared:
            self._count_private()
        return placed.stretch, placed.first

    def close(self) -> None:
        """Release the file (its values stay, to be merged and compacted as an exited process'),
        after a last attempt to move series held in private memory into it."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not all(stretch.shared for stretch in self._stretches):
                self._share()
            _STORES.discard(self)
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    # --- the file, and space in it ---------------------------------------------------------------

    def _new_identity(self) -> None:
        self._pid = os.getpid()
        self._start = _start_ticks()
        self._token = secrets.token_bytes(16)
        self._created = time.time_ns()

    def _place(self, key: bytes, count: int, initial: Sequence[float] = ()) -> _Placed:
        size = entry_size(key, count)
        last = self._stretches[-1]
        position = self._used
        if position + size > last.end:
            if last.end > position:  # pad to the end of this stretch
                at = position - last.start
                last.mm[at : at + ENTRY.size] = ENTRY.pack(last.end - position, 0)
            length = max(MAPPING, -(-size // MAPPING) * MAPPING)
            last = Stretch(last.end, length, self.lock)
            self._stretches.append(last)
            position = last.start
        at = position - last.start
        last.mm[at : at + ENTRY.size] = ENTRY.pack(size, len(key))
        last.mm[at + ENTRY.size : at + ENTRY.size + len(key)] = key
        placed = _Placed(last, (at + ENTRY.size + pad8(len(key))) // 8, count)
        if initial:
            last.d[placed.first : placed.first + len(initial)] = array("d", initial)
        self._entries.append(placed)
        self._used = position + size
        # The entry is complete before "used" moves past it: readers never see half of one.
        self._publish()
        return placed

    def _publish(self) -> None:
        """Move the header's ``used`` to the end of the entries that are in the file."""
        if self._fd < 0:
            return
        private = [stretch.start for stretch in self._stretches if not stretch.shared]
        used = min([self._used, *private])
        USED.pack_into(self._stretches[0].mm, USED_AT, used)

    def _share(self) -> bool:
        """Reserve space in the file for every stretch held in private memory and move it there
        (creating the file when there is none yet); False while space cannot be had. The caller
        holds :attr:`lock`."""
        try:
            if self._fd < 0:
                self._create_file()
            for stretch in self._stretches:
                if not stretch.shared:
                    os.posix_fallocate(self._fd, stretch.start, stretch.length)
                    _write_all(self._fd, stretch.mm[:], stretch.start)  # what was recorded
                    stretch.map_file(self._fd)
        except OSError as exc:
            self._publish()
            self._count_private()
            self._log.warning(
                "space",
                "cannot reserve space in %s (%s): process %d records %d series in private "
                "memory, absent from the merged view until space returns",
                self.directory,
                exc.strerror or type(exc).__name__,
                os.getpid(),
                self._private,
            )
            self._schedule_retry()
            return False
        self._publish()
        if self._private:
            logger.warning(
                "space returned in %s: %d series of process %d moved from private memory into "
                "its file",
                self.directory,
                self._private,
                os.getpid(),
            )
            self._log.forget("space")
        self._count_private()
        return True

    def _create_file(self) -> None:
        """Create, lock and reserve this process' file under a temporary name, write what the
        stretches hold, then rename it into view: no reader ever sees it unlocked or partial."""
        creating = self.directory / f"proc-{self._token.hex()}.new"
        fd = os.open(creating, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.posix_fallocate(fd, 0, self._stretches[-1].end)
            for stretch in self._stretches:
                _write_all(fd, stretch.mm[:], stretch.start)
            header = Header(
                FileKind.PROCESS, self._used, self._pid, self._start, self._created, self._token
            )
            _write_all(fd, header.pack(), 0)
            os.rename(creating, self.path)
        except BaseException:
            os.close(fd)
            # If this fails too, a scrape removes the file once it is old.
            with contextlib.suppress(OSError):
                creating.unlink(missing_ok=True)
            raise
        self._fd = fd
        for stretch in self._stretches:
            stretch.map_file(fd)

    def _count_private(self) -> None:
        """Keep :attr:`private_series` and its gauge current (the gauge is touched only once a
        series went private, so it is not exposed by a process that never lacked space)."""
        private = sum(not placed.stretch.shared for placed in self._entries)
        if private != self._private:
            self._private = private
            self._private_gauge.put_locked(private)

    def _schedule_retry(self) -> None:
        if self._timer is None and not self._closed:
            timer = threading.Timer(RETRY_AFTER, self._retry)
            timer.daemon = True
            self._timer = timer
            timer.start()

    def _retry(self) -> None:
        with self.lock:
            self._timer = None
            if not self._closed:
                self._share()

    def _after_fork_in_child(self) -> None:
        """In a forked child: the same entries, every value zero, in a file of its own."""
        self.lock = threading.Lock()
        self._timer = None
        for stretch in self._stretches:
            stretch.lock = self.lock
            stretch.copy_to_private()
        for placed in self._entries:
            at = 8 * placed.first
            placed.stretch.mm[at : at + 8 * placed.value_count] = bytes(8 * placed.value_count)
        for forgetting in self._after_fork:
            forgetting()
        if self._fd >= 0:
            os.close(self._fd)  # the parent keeps its own descriptor, and its lock
            self._fd = -1
        self._private = 0
        self._new_identity()
        with self.lock:
            self._share()


def _ensure_lock_file(directory: Path) -> None:
    """Create ``compact.lock`` if it is missing, so a reader without write access can lock it."""
    with contextlib.suppress(OSError):  # else a scrape creates it, or reads without it
        os.close(os.open(directory / COMPACT_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


# --- fork handling: registered when the first store is made --------------------------------------

_STORES: weakref.WeakSet[MultiprocessStore] = weakref.WeakSet()
_stores_lock = threading.Lock()
_forking: list[MultiprocessStore] = []
_watching = False


def _watch_forks(store: MultiprocessStore) -> None:
    global _watching
    with _stores_lock:
        if not _watching:
            os.register_at_fork(
                before=_before_fork,
                after_in_parent=_after_fork_in_parent,
                after_in_child=_after_fork_in_child,
            )
            _watching = True
        _STORES.add(store)


def _before_fork() -> None:
    _stores_lock.acquire()
    _forking[:] = list(_STORES)
    for store in _forking:
        store.lock.acquire()


def _after_fork_in_parent() -> None:
    for store in _forking:
        store.lock.release()
    _forking.clear()
    _stores_lock.release()


def _after_fork_in_child() -> None:
    global _stores_lock
    stores = list(_forking)
    _forking.clear()
    _stores_lock = threading.Lock()
    for store in stores:
        store._after_fork_in_child()
