"""Reading the multiprocess directory: every process file and the archive, as numbers per key.

A scrape never raises and never blocks because of what it finds there:

* only regular files are opened (the directory listing's type first, then ``fstat`` of what was
  opened, with ``O_NONBLOCK`` and ``O_NOFOLLOW``): a FIFO, a directory, a device or a symbolic
  link named like a process file is skipped, with one warning while it is there;
* a file is read with ``pread`` into memory, not mapped, so a file truncated while it is read
  cannot raise SIGBUS in the reader, and a file shorter than its header says (truncated, or junk)
  is skipped with one warning;
* a file that vanished between the listing and the read (compacted by another scrape) is simply
  not there.

Process files are read incrementally: the entries of a file are parsed once and remembered
(:attr:`DirectoryReader.cached_files`), and only the entries appended since are parsed at the
next scrape. The cache holds at most the files on disk: a file that left the directory (folded
into the archive by any scrape, in any process) is forgotten at the next scan.

A process is alive while it holds an exclusive ``flock`` on its file; the kernel drops it when the
process ends, however it ends, and it works across PID namespaces.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .layout import (
    ARCHIVE,
    CREATING_RE,
    ENTRIES_AT,
    OURS,
    PROCESS_FILE_RE,
    Entry,
    FileKind,
    Header,
    Malformed,
    absorbed_names,
    parse_entries,
)

__all__ = ["DirectoryReader", "Scan", "Source"]

logger = logging.getLogger(__name__)

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC

Numbers = tuple[float, ...]


@dataclass
class Source:
    """One file's numbers as read at one scrape."""

    name: str
    #: Whether a live process holds the file (an archive is never live).
    live: bool
    values: list[tuple[bytes, Numbers]]
    #: The process files an archive absorbed (empty for a process file).
    absorbed: tuple[str, ...] = ()


@dataclass
class Scan:
    """What one scan of the directory found."""

    #: The archive, or None when there is none or it could not be read.
    archive: Source | None
    #: False when ``archive.db`` is there but could not be read: nothing may replace it then.
    archive_readable: bool
    sources: list[Source]
    #: Process files the archive absorbed that are still on disk (never read again).
    stale: list[str]
    #: Files being created (or abandoned while being created).
    creating: list[str]


@dataclass(slots=True)
class _Parsed:
    """What is known of one process file's entries: parsed up to ``parsed_to``."""

    inode: int
    parsed_to: int = ENTRIES_AT
    entries: list[Entry] = field(default_factory=list)


class _Skip(Exception):
    """A name in the directory that is skipped; the message says why."""


_unpackers: dict[int, Callable[[bytes, int], Numbers]] = {}


def _unpacker(count: int) -> Callable[[bytes, int], Numbers]:
    unpack = _unpackers.get(count)
    if unpack is None:
        unpack = _unpackers[count] = struct.Struct(f"<{count}d").unpack_from
    return unpack


class DirectoryReader:
    """Reads one multiprocess directory, scan after scan, remembering what it parsed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._parsed: dict[str, _Parsed] = {}
        #: Names skipped, and why: each is warned about once while it is on disk.
        self._warned: dict[str, str] = {}

    @property
    def cached_files(self) -> tuple[str, ...]:
        """The process files whose entries this reader remembers (at most those on disk)."""
        return tuple(self._parsed)

    def scan(self) -> Scan:
        """Read the directory (an ``OSError`` only if the directory itself cannot be listed)."""
        with os.scandir(self.directory) as listing:
            found = {entry.name: entry for entry in listing}
        archive: Source | None = None
        archive_readable = True
        if ARCHIVE in found:
            archive = self._read(found[ARCHIVE], FileKind.ARCHIVE)
            archive_readable = archive is not None
        absorbed = set(archive.absorbed) if archive is not None else set()
        scan = Scan(archive, archive_readable, [], [], [])
        for name in sorted(found):
            entry = found[name]
            if name in absorbed:
                scan.stale.append(name)
            elif PROCESS_FILE_RE.fullmatch(name):
                source = self._read(entry, FileKind.PROCESS)
                if source is not None:
                    scan.sources.append(source)
            elif CREATING_RE.fullmatch(name):
                scan.creating.append(name)
            elif name not in OURS:
                self._warn(name, "not a file of ours")
            elif name != ARCHIVE and not _is_regular(entry):
                self._warn(name, "not a regular file")
        # Forget what left the directory: the cache holds at most the files on disk.
        for name in self._parsed.keys() - {source.name for source in scan.sources}:
            del self._parsed[name]
        for name in self._warned.keys() - found.keys():
            del self._warned[name]
        return scan

    def forget(self, name: str) -> None:
        """``name`` was folded into the archive (and unlinked, or about to be)."""
        self._parsed.pop(name, None)

    def _read(self, entry: os.DirEntry[str], kind: FileKind) -> Source | None:
        """One file's numbers (None if it vanished or is skipped: then warned about, once)."""
        name = entry.name
        try:
            if not _is_regular(entry):
                raise _Skip("not a regular file")
            try:
                fd = os.open(entry.path, _OPEN_FLAGS)
            except FileNotFoundError:
                return None
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise _Skip("not a regular file")
                header, data = _read_used(fd)
                if header.kind is not kind:
                    raise _Skip(f"a header of kind {int(header.kind)}")
                if kind is FileKind.ARCHIVE:
                    return _archive_source(data, header.used)
                values = self._process_values(name, os.fstat(fd).st_ino, data, header.used)
                return Source(name, _locked_elsewhere(fd), values)
            finally:
                os.close(fd)
        except (_Skip, Malformed) as exc:
            self._warn(name, str(exc))
        except OSError as exc:
            self._warn(name, f"cannot be read ({exc.strerror or type(exc).__name__})")
        return None

    def _process_values(
        self, name: str, inode: int, data: bytes, used: int
    ) -> list[tuple[bytes, Numbers]]:
        parsed = self._parsed.get(name)
        if parsed is None or parsed.inode != inode or used < parsed.parsed_to:
            parsed = _Parsed(inode)  # new, replaced, or shrunk (tampered with): from the start
        new, parsed_to = parse_entries(data, parsed.parsed_to, used)
        parsed.entries.extend(new)
        parsed.parsed_to = parsed_to
        self._parsed[name] = parsed
        return [(e.key, _unpacker(e.value_count)(data, e.values_at)) for e in parsed.entries]

    def _warn(self, name: str, why: str) -> None:
        if self._warned.get(name) != why:
            self._warned[name] = why
            logger.warning(
                "ignoring %r in the multiprocess directory %s: %s", name, self.directory, why
            )


def _is_regular(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _read_used(fd: int) -> tuple[Header, bytes]:
    """A file's bytes up to the ``used`` its header gives (re-read if the writer grew the file
    after the first look; :class:`Malformed` if it is shorter than its header says)."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    header = Header.unpack(data)
    if header.used > len(data):
        size = os.fstat(fd).st_size
        if header.used > size:
            raise Malformed(f"{size} bytes, shorter than the {header.used} its header gives")
        data = os.pread(fd, header.used, 0)
    if len(data) < header.used:
        raise Malformed(f"{len(data)} bytes, shorter than the {header.used} its header gives")
    return header, data


def _archive_source(data: bytes, used: int) -> Source:
    entries, _ = parse_entries(data, ENTRIES_AT, used)
    absorbed: tuple[str, ...] = ()
    values: list[tuple[bytes, Numbers]] = []
    for e in entries:
        names = absorbed_names(e.key)
        if names is not None:
            absorbed = names
        else:
            values.append((e.key, _unpacker(e.value_count)(data, e.values_at)))
    return Source(ARCHIVE, False, values, absorbed)


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


def alive(path: Path) -> bool:
    """Whether a live process holds ``path`` (False if it is gone or cannot be opened)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return False
    try:
        return _locked_elsewhere(fd)
    finally:
        os.close(fd)
