"""The multiprocess directory on disk: its file names, the layout of a process or archive file,
entry keys, and where each kind of metric keeps its numbers in an entry.

Files (all in the one directory):

* ``proc-<pid>-<start>-<token>.db``: one per recording process: its pid, its start time in clock
  ticks (from ``/proc/self/stat``, 0 where there is no ``/proc``) and 128 random bits, so a reused
  pid never names an old file. Created as ``proc-<token>.new`` and renamed once locked.
* ``archive.db``: the merged values of exited processes (same layout, kind "archive"), written as
  ``archive.db.new`` and renamed over the old one.
* ``labels.db``: the admitted label sets, JSON lines (:mod:`.labels`).
* ``compact.lock``: locked while a scrape reads (shared) or compacts (exclusive).

A process or archive file (little endian)::

    header   64 bytes   magic "IMMPROC\\0", version, kind (0 process, 1 archive), used (bytes),
                        pid, start ticks, created (ns since the epoch), token (16 bytes)
    entries  from 64    u32 total length, u32 key length, key (JSON, padded to 8), float64 values

An entry is written (header, key; values already zero) before ``used`` moves past it, so a reader
never sees half an entry. A key length of 0 is padding up to the end of a 64 KiB stretch: entries
never straddle two stretches, and a file grows by whole stretches, so nothing is ever remapped.
An archive's first entry has a JSON object as its key (``{"absorbed": [file names]}``) and no
values.

The numbers of an entry, by the kind of its metric:

==========  ===============================================================================
counter     value, touched (1.0 once updated)
gauge       value, set at (``time.time()`` of the last ``set``; 0.0 while only ``add``-ed),
            touched (1.0 once updated, -1.0 when the most recent ``set`` removed the series)
histogram   one count per bucket (not cumulative), the ``+Inf`` count, sum
==========  ===============================================================================

A histogram with native buckets or exemplars (docs/native-histograms.md) has entries of two more
*roles*, keyed ``["#native", name, label values...]`` and ``["#exemplars", name, label
values...]`` (``#`` starts no metric name, so a reader of this version's classic keys skips them):

==========  ===============================================================================
#native     steps (the schema is 3 minus it), ``C`` slots of (code, count) where a code is twice
            a bucket's key, plus 1 for a negative value's bucket (a slot with count 0 is empty),
            the zero bucket's count, count, sum: ``2C + 4`` numbers
#exemplars  one slot per classic bucket (``+Inf`` last; a native-only histogram has one):
            done, timestamp, value, the span's ids in four 48-bit chunks, begun: 8 numbers each
==========  ===============================================================================

A native-only histogram has no classic entry: its ``#native`` entry holds its count and sum.

Native buckets are written in place while the entry has a free slot. When it has none, the
writer appends a new ``#native`` entry for the series (twice the slots, at most
:data:`~..native.DEFAULT_MAX_BUCKETS`; past that, the resolution halved as client_golang does),
complete before ``used`` moves past it, and writes only there from then on: **the last
``#native`` entry of a key in a file is the series'**, earlier ones are history. An all-zero
entry (what a forked child starts from) is an empty histogram at schema 3. In a ``#native``
entry the count is after the buckets and is incremented before them, so a reader copying the
entry in order never sees more in the buckets than in the count.

An exemplar slot is a seqlock a reader can check in its one copy: the writer moves ``begun``
(the slot's last number) first, then the fields, then ``done`` (its first); a copy in address
order is whole when ``done == begun > 0``, and is skipped otherwise (one scrape without that
exemplar).

The field positions below are the only place these orders are written down; writers index their
doubles with them and readers unpack entries in the same order.
"""

from __future__ import annotations

import enum
import json
import os
import re
import secrets
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from ...spec import Kind, MetricSpec, Stability

__all__ = [
    "ARCHIVE",
    "COMPACT_LOCK",
    "COUNTER_TOUCHED",
    "COUNTER_VALUE",
    "ENTRIES_AT",
    "ENTRY",
    "EXEMPLARS",
    "EXEMPLAR_SLOT",
    "GAUGE_SET_AT",
    "GAUGE_TOUCHED",
    "GAUGE_VALUE",
    "LABELS",
    "MAPPING",
    "NATIVE",
    "PRIVATE_SERIES",
    "PROCESS_FILE_RE",
    "STORE_SPECS",
    "USED_AT",
    "Entry",
    "FileKind",
    "Header",
    "Malformed",
    "archive_bytes",
    "check_directory",
    "encode_key",
    "exemplar_values",
    "native_slots",
    "native_values",
    "pad8",
    "parse_entries",
    "values_per_entry",
]

MAGIC = b"IMMPROC\x00"
VERSION = 1
MAPPING = 1 << 16
"""Bytes of one stretch: a file grows by whole stretches, each reserved before it is used."""

ARCHIVE = "archive.db"
LABELS = "labels.db"
COMPACT_LOCK = "compact.lock"
#: The name of a process file: pid, start ticks, token.
PROCESS_FILE_RE = re.compile(r"proc-[0-9]+-[0-9]+-[0-9a-f]{32}\.db")
#: A file being created (a process file before its rename, a writability probe).
CREATING_RE = re.compile(r"(proc-[0-9a-f]{32}|probe-[0-9a-f]{16})\.new")
#: Names of ours that are neither process files nor files being created.
OURS = frozenset((ARCHIVE, ARCHIVE + ".new", LABELS, COMPACT_LOCK))

# Positions of each kind's numbers in its entry (see the table above).
COUNTER_VALUE, COUNTER_TOUCHED = 0, 1
GAUGE_VALUE, GAUGE_SET_AT, GAUGE_TOUCHED = 0, 1, 2
#: The roles of a histogram's other entries: the first element of their keys.
NATIVE, EXEMPLARS = "#native", "#exemplars"
#: Numbers per exemplar slot; within one: done, timestamp, value, four id chunks, begun.
EXEMPLAR_SLOT = 8

#: The store's own metric, kept in every process file from its creation (so reporting a fault
#: never needs space the fault took away). Defined as the catalogue defines its specs.
PRIVATE_SERIES = MetricSpec(
    name="inference_metrics_multiprocess_private_series",
    kind=Kind.GAUGE,
    help=(
        "Series that live processes record in private memory because no space could be "
        "reserved for them in the multiprocess directory; their counts join the merged view "
        "once space returns."
    ),
    unit="{series}",
    stability=Stability.ALPHA,
)
#: The metrics every multiprocess store keeps about itself.
STORE_SPECS = (PRIVATE_SERIES,)


class FileKind(enum.IntEnum):
    PROCESS = 0
    ARCHIVE = 1


class Malformed(Exception):
    """A file that is not one of ours, or is damaged; the message says how."""


_HEADER = struct.Struct("<8sIIQQQQ16s")
USED_AT = 16
"""Where ``used`` is in the header (a writer moves it in place)."""
ENTRIES_AT = _HEADER.size
ENTRY = struct.Struct("<II")
"""An entry's head: its total length and its key's length."""
USED = struct.Struct("<Q")


class Header(NamedTuple):
    """A file's first 64 bytes."""

    kind: FileKind
    #: Bytes of complete entries, header included: a reader reads no further.
    used: int
    pid: int = 0
    start_ticks: int = 0
    created_ns: int = 0
    token: bytes = bytes(16)

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            VERSION,
            self.kind,
            self.used,
            self.pid,
            self.start_ticks,
            self.created_ns,
            self.token,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        """The header at the start of ``data``; :class:`Malformed` if there is none of ours."""
        if len(data) < _HEADER.size:
            raise Malformed("shorter than a header")
        magic, version, kind, used, pid, start, created, token = _HEADER.unpack_from(data, 0)
        if magic != MAGIC or version != VERSION:
            raise Malformed("no inference-metrics header")
        if kind not in (FileKind.PROCESS, FileKind.ARCHIVE):
            raise Malformed(f"a header of kind {kind}")
        return cls(FileKind(kind), used, pid, start, created, token)


class Entry(NamedTuple):
    """Where one entry's key and numbers are in its file."""

    key: bytes
    values_at: int
    value_count: int


def values_per_entry(spec: MetricSpec) -> int:
    """How many numbers an entry of ``spec`` holds."""
    if spec.kind is Kind.COUNTER:
        return 2
    if spec.kind is Kind.GAUGE:
        return 3
    assert spec.buckets is not None
    return len(spec.buckets) + 2


def native_values(slots: int) -> int:
    """How many numbers a ``#native`` entry of ``slots`` slots holds."""
    return 2 * slots + 4


def native_slots(value_count: int) -> int | None:
    """The slots of a ``#native`` entry of ``value_count`` numbers, or None if none has that."""
    slots, odd = divmod(value_count - 4, 2)
    return None if odd or slots < 0 else slots


def exemplar_values(slots: int) -> int:
    """How many numbers an ``#exemplars`` entry of ``slots`` slots holds."""
    return EXEMPLAR_SLOT * slots


def encode_key(name: str, label_values: tuple[str, ...], role: str = "") -> bytes:
    """An entry's key: ``[name, label values...]``, or ``[role, name, label values...]`` for a
    histogram's ``#native`` or ``#exemplars`` entry."""
    parts = [role, name, *label_values] if role else [name, *label_values]
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()


def pad8(n: int) -> int:
    return (n + 7) & ~7


def entry_size(key: bytes, count: int) -> int:
    return ENTRY.size + pad8(len(key)) + 8 * count


def parse_entries(data: bytes, start: int, used: int) -> tuple[list[Entry], int]:
    """The entries of ``data`` from ``start`` (an entry's beginning) to ``used``, and where the
    last one ends; :class:`Malformed` if an entry does not fit."""
    entries: list[Entry] = []
    position = start
    while position + ENTRY.size <= used:
        total, key_length = ENTRY.unpack_from(data, position)
        if total < ENTRY.size or position + total > used:
            raise Malformed(f"entry at {position} runs past the end")
        if key_length:
            values_at = position + ENTRY.size + pad8(key_length)
            count, rest = divmod(position + total - values_at, 8)
            if rest or count < 0:
                raise Malformed(f"entry at {position} has a bad length")
            key = data[position + ENTRY.size : position + ENTRY.size + key_length]
            entries.append(Entry(key, values_at, count))
        position += total
    return entries, position


def archive_bytes(
    absorbed: Sequence[str], entries: Iterable[tuple[bytes, Sequence[float]]]
) -> bytes:
    """An archive file: the names it absorbed, then ``entries`` (key, numbers)."""
    parts = [b""]
    for key, values in [(json.dumps({"absorbed": list(absorbed)}).encode(), ()), *entries]:
        parts.append(ENTRY.pack(entry_size(key, len(values)), len(key)))
        parts.append(key.ljust(pad8(len(key)), b"\0"))
        parts.append(struct.pack(f"<{len(values)}d", *values))
    body = b"".join(parts)
    return Header(FileKind.ARCHIVE, ENTRIES_AT + len(body)).pack() + body


def absorbed_names(key: bytes) -> tuple[str, ...] | None:
    """The file names an archive's first key lists, or None if ``key`` is a metric's."""
    if not key.startswith(b"{"):
        return None
    try:
        names = json.loads(key).get("absorbed", ())
    except (ValueError, AttributeError):
        raise Malformed("a bad list of absorbed files") from None
    return tuple(str(name) for name in names)


def check_directory(
    directory: object, argument: str = "multiprocess_dir", *, writable: bool = True
) -> Path:
    """``directory`` as a Path, or a ValueError/TypeError naming ``argument``: it must exist and be
    a directory this process can search and read, and, when ``writable`` (a process that records:
    it creates its file there), one where it can create files."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"{argument} must be a path (str or os.PathLike), got {directory!r}")
    path = Path(directory)
    if not path.exists():
        raise ValueError(f"{argument} {str(path)!r} does not exist; create it first")
    if not path.is_dir():
        raise ValueError(f"{argument} {str(path)!r} is not a directory")
    if not writable:
        if not os.access(path, os.R_OK | os.X_OK):
            raise ValueError(f"{argument} {str(path)!r} is not readable by this process")
        return path
    probe = path / f"probe-{secrets.token_hex(8)}.new"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        probe.unlink(missing_ok=True)
    except OSError as exc:
        raise ValueError(
            f"{argument} {str(path)!r} is not writable by this process ({exc.strerror})"
        ) from None
    return path
