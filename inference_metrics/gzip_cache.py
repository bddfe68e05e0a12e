"""gzip for scrapes that reuses the compressed bytes of whatever did not change since the last one.

:class:`GzipCache` compresses an exposition given as pieces with keys
(:func:`inference_metrics.exposition.render_pieces`) into one gzip member that decompresses to
exactly ``b"".join(pieces)``:

* The pieces are cut into **chunks** at piece boundaries: a family header starts a new chunk once
  the current one holds ``chunk_bytes`` or more; inside a family a chunk is a run of a fixed number
  of series (about ``chunk_bytes`` of them, a power of two fixed by the family's first series'
  size), so a series whose lines change (or change length) moves no chunk boundary elsewhere.
* Each chunk is compressed on its own as raw deflate ending in a full flush: byte-aligned, and
  referring to nothing before it, so it can be placed anywhere in a deflate stream. The chunks
  are followed by an empty final block and wrapped in a gzip header and trailer; the trailer's
  size is the page's length mod 2**32 and its CRC-32 runs over the page: a new chunk's bytes
  continue it (in C), a reused chunk's CRC is combined into it (:func:`crc32_combine`, zlib's
  algorithm; one multiplication a chunk, in Python). A chunk's own CRC is worked out only when
  it is first reused, so a page whose every chunk is new combines nothing.
* A chunk whose pieces all carry the same keys as a chunk of the previous compression of the
  same ``slot`` (keys are stamps: equal keys, the very same bytes) reuses that chunk's compressed
  bytes and CRC; nothing else is kept. A chunk with a key of 0 (bytes made afresh each time) is
  compressed every time.

Deflate: the chunks are compressed by the fastest deflate installed (:func:`available_deflates`):
``isal`` (ISA-L, the ``fast-gzip`` extra), then ``zlib-ng``, then the standard library's ``zlib``,
which is always there. Each of them makes raw deflate ending in a full flush as zlib does, so any
of them can make any chunk; the gzip format is the same whichever did. ISA-L has levels 0 to 3
only: a zlib level maps onto it by thirds (1-3 to 1, 4-6 to 2, its default, 7-9 to 3), and level
0 (stored, no compression) is always the standard library's. The CRC-32s are the chosen
library's too (the same numbers, a few times faster than zlib's).

Memory: per slot, the compressed chunks of the last compression (about the gzip'd page: 1.4 MB
with the key tuples, one int per piece, for a 28 MB page), at most :data:`MAX_SLOTS` slots. The
uncompressed lines are not held. A slot should be a small set of values (the server uses the
format: text, OpenMetrics or protobuf), never something a client chooses freely.

Thread-safe: a compression works on its own lists and swaps its chunks in under a lock, so
several threads may compress at once (the last to finish leaves its chunks for the next).
Under several worker processes each process keeps its own cache for its own registry.
"""

from __future__ import annotations

import functools
import importlib
import struct
import threading
import zlib
from collections.abc import Callable, Hashable, Sequence
from itertools import accumulate
from typing import Any, NamedTuple

from prometheus_client.registry import CollectorRegistry

from .exposition import Representation, render_pieces

__all__ = [
    "DEFLATES",
    "MAX_SLOTS",
    "GzipCache",
    "available_deflates",
    "crc32_combine",
    "crc32_shift",
]

#: Slots (earlier compressions) kept at most; a new one beyond it evicts the oldest.
MAX_SLOTS = 4

_CRC_POLY = 0xEDB88320  # CRC-32 (gzip's), reflected
# A gzip member header: magic, deflate, no flags, no mtime, no extra flags, OS unknown (RFC 1952).
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# An empty final block: what ends the raw deflate stream after the chunks.
_END = zlib.compressobj(6, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)

#: The deflate implementations :class:`GzipCache` can use, fastest first: name -> module. Each
#: module has zlib's ``compressobj``, ``Z_FULL_FLUSH`` and ``crc32``.
DEFLATES: dict[str, str] = {"isal": "isal.isal_zlib", "zlib-ng": "zlib_ng.zlib_ng", "zlib": "zlib"}


def _deflate_module(name: str) -> Any:
    """The module of deflate ``name``, or None when it is not installed."""
    try:
        return importlib.import_module(DEFLATES[name])
    except ImportError:
        return None


def available_deflates() -> tuple[str, ...]:
    """The deflate implementations installed here, fastest first (``"zlib"`` always last)."""
    return tuple(name for name in DEFLATES if _deflate_module(name) is not None)


def _library_level(deflate: str, level: int) -> int:
    """zlib's ``level`` (1 to 9) in ``deflate``'s terms: ISA-L's 1 to 3 by thirds."""
    return (level + 2) // 3 if deflate == "isal" else level


def _multmodp(a: int, b: int) -> int:
    """``a`` times ``b`` modulo the CRC-32 polynomial (bit-reflected, as zlib's ``multmodp``)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


def _x2n_table() -> tuple[int, ...]:
    table = [1 << 30]  # x^1
    for _ in range(31):
        table.append(_multmodp(table[-1], table[-1]))
    return tuple(table)


_X2N = _x2n_table()  # x^(2^n) modulo the polynomial


@functools.cache
def _byte_shifts(k: int) -> tuple[int, ...]:
    """x^(8 * b * 256^k) for b in 0..255: the shift past ``b * 256**k`` bytes."""
    one = _X2N[(3 + 8 * k) & 31]  # x^(2^(3 + 8k)), x^(2^n) repeating with period 32 in n
    table = [1 << 31, one]
    for _ in range(254):
        table.append(_multmodp(table[-1], one))
    return tuple(table)


def crc32_shift(length: int) -> int:
    """The operator that moves a CRC-32 past ``length`` more bytes (zlib's ``crc32_combine_gen``):
    ``crc32_combine(a, b, length) == _multmodp(crc32_shift(length), a) ^ b``. One multiplication
    per nonzero byte of ``length`` (tables built on first use), not one per bit as zlib does."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be an int >= 0, got {length!r}")
    p = 1 << 31  # x^0
    k = 0
    while length:
        b = length & 0xFF
        if b:
            p = _multmodp(_byte_shifts(k)[b], p)
        length >>= 8
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of ``a + b`` from ``crc1 = crc32(a)``, ``crc2 = crc32(b)`` and ``len(b)``."""
    for name, crc in (("crc1", crc1), ("crc2", crc2)):
        if isinstance(crc, bool) or not isinstance(crc, int) or not 0 <= crc <= 0xFFFFFFFF:
            raise ValueError(f"{name} must be an int in [0, 2**32), got {crc!r}")
    return _multmodp(crc32_shift(length2), crc1) ^ crc2


class _Chunk(NamedTuple):
    """A chunk's deflate bytes and what the page's CRC-32 needs of it."""

    deflated: bytes
    length: int
    #: The page's CRC-32 just before and just after this chunk's bytes when it was compressed:
    #: a new chunk continues the page's CRC over its bytes (no combining), and its own CRC is
    #: worked out from these two only if it is ever reused (:meth:`resolved`).
    before: int
    after: int
    #: The chunk's own CRC-32 and crc32_shift(length) (so a reuse costs one multiplication),
    #: or -1 until first reused.
    crc: int = -1
    shift: int = -1

    def resolved(self) -> _Chunk:
        """This chunk with ``crc`` and ``shift`` known: ``after`` is ``before`` moved past the
        chunk's bytes combined with their CRC, so the CRC is ``after ^ (before moved)``."""
        if self.shift >= 0:
            return self
        shift = crc32_shift(self.length)
        return self._replace(crc=self.after ^ _multmodp(shift, self.before), shift=shift)


class GzipCache:
    """Compresses pieces to gzip, reusing unchanged chunks' compressed bytes (module docstring)."""

    def __init__(self, level: int = 6, chunk_bytes: int = 64 * 1024, deflate: str = "auto") -> None:
        """``level`` as zlib's (0 to 9); ``deflate`` one of :data:`DEFLATES` or ``"auto"``: the
        fastest installed (:func:`available_deflates`). :attr:`deflate` names the one used."""
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise ValueError(f"level must be an int from 0 to 9, got {level!r}")
        if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be an int >= 1, got {chunk_bytes!r}")
        if deflate != "auto" and deflate not in DEFLATES:
            raise ValueError(
                f"deflate must be 'auto' or one of {sorted(DEFLATES)}, got {deflate!r}"
            )
        name = available_deflates()[0] if deflate == "auto" else deflate
        module = _deflate_module(name)
        if module is None:
            raise ValueError(
                f"deflate {deflate!r} is not installed here (installed: {available_deflates()}); "
                "the fast-gzip extra installs isal"
            )
        #: The deflate implementation compressing this cache's chunks (a key of DEFLATES).
        self.deflate: str = name
        self._module = module
        self._crc32: Callable[[bytes, int], int] = module.crc32
        self.level = level
        self.chunk_bytes = chunk_bytes
        self._lock = threading.Lock()
        self._slots: dict[Hashable, dict[tuple[int, ...], _Chunk]] = {}

    def render(self, registry: CollectorRegistry, representation: Representation) -> bytes:
        """The exposition of ``registry`` in ``representation``, gzip'd: what the server sends.

        The slot is the format alone (text, OpenMetrics or protobuf): our pieces depend on
        nothing else, and the ``Accept`` header can vary the representation's content type
        freely."""
        pieces, keys = render_pieces(registry, representation)
        return self.compress(pieces, keys, representation.format)

    def compress(
        self, pieces: Sequence[bytes], keys: Sequence[int], slot: Hashable = None
    ) -> bytes:
        """One gzip member of ``b"".join(pieces)``; ``keys`` as ``render_pieces`` gives them,
        ``slot`` names which earlier compression to reuse chunks from (e.g. the representation)."""
        if len(pieces) != len(keys):
            raise ValueError(f"pieces and keys differ in length: {len(pieces)} != {len(keys)}")
        with self._lock:
            before = self._slots.get(slot, {})
        now: dict[tuple[int, ...], _Chunk] = {}
        out = [_HEADER]
        crc = 0
        total = 0
        for start, end in self._cuts(pieces, keys):
            key = tuple(keys[start:end])
            chunk = before.get(key) or now.get(key)
            if chunk is None:
                chunk = self._deflate(b"".join(pieces[start:end]), crc)
                crc = chunk.after
            elif chunk.length:
                chunk = chunk.resolved()
                crc = _multmodp(chunk.shift, crc) ^ chunk.crc
            if 0 not in key:
                now[key] = chunk
            if chunk.length:
                out.append(chunk.deflated)
                total += chunk.length
        out.append(_END)
        out.append(struct.pack("<II", crc, total & 0xFFFFFFFF))
        with self._lock:
            self._slots.pop(slot, None)
            if now:
                while len(self._slots) >= MAX_SLOTS:  # the oldest goes
                    del self._slots[next(iter(self._slots))]
                self._slots[slot] = now
        return b"".join(out)

    def _deflate(self, data: bytes, crc: int) -> _Chunk:
        """``data`` as raw deflate ending in a full flush (byte-aligned, no final block), placed
        where the page's CRC-32 so far is ``crc``."""
        level = self.level
        # Level 0 is stored blocks, which only zlib makes (ISA-L's 0 still compresses).
        module = self._module if level else zlib
        compressor = module.compressobj(_library_level(self.deflate, level), zlib.DEFLATED, -15)
        deflated = compressor.compress(data) + compressor.flush(module.Z_FULL_FLUSH)
        return _Chunk(deflated, len(data), crc, self._crc32(data, crc))

    def _cuts(self, pieces: Sequence[bytes], keys: Sequence[int]) -> list[tuple[int, int]]:
        """(start, end) of each chunk; see the module docstring for where chunks are cut.

        Pieces with a key <= 0 (family headers, bytes made afresh) split the page into runs of
        series; inside a run a chunk is ``run`` series, a power of two fixed by the size of the
        run's first non-empty piece (the first cut comes ``run`` pieces into the run, or right
        after that piece if it came later). A header starts a chunk once the current one holds
        ``chunk_bytes``, a piece made afresh always has one of its own."""
        limit = self.chunk_bytes
        n = len(pieces)
        ends = [0, *accumulate(map(len, pieces))]  # ends[i]: the bytes before piece i
        cuts: list[tuple[int, int]] = []
        start = 0  # the current chunk's first piece
        first = 0  # the current run of series' first piece
        for head in [*(i for i, key in enumerate(keys) if key <= 0), n]:
            sized = next((i for i in range(first, head) if pieces[i]), head)
            if sized < head:
                run = 1 << max(0, (limit // len(pieces[sized])).bit_length() - 1)
                for cut in range(max(sized + 1, first + run), head, run):
                    cuts.append((start, cut))
                    start = cut
            if head == n:
                break
            key = keys[head]
            if head > start and (key == 0 or ends[head] - ends[start] >= limit or keys[start] == 0):
                cuts.append((start, head))
                start = head
            first = head + 1
        if start < n:
            cuts.append((start, n))
        return cuts
