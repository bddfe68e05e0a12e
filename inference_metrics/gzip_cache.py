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
  CRC-32 is combined from the chunks' CRCs (:func:`crc32_combine`, zlib's algorithm) and its
  size is the page's length mod 2**32.
* A chunk whose pieces all carry the same keys as a chunk of the previous compression of the
  same ``slot`` (keys are stamps: equal keys, the very same bytes) reuses that chunk's compressed
  bytes and CRC; nothing else is kept. A chunk with a key of 0 (bytes made afresh each time) is
  compressed every time.

Memory: per slot, the compressed chunks of the last compression (about the gzip'd page: 1.4 MB
with the key tuples, one int per piece, for a 28 MB page), at most :data:`MAX_SLOTS` slots. The
uncompressed lines are not held. A slot should be a small set of values (the server uses the
format: text or OpenMetrics), never something a client chooses freely.

Thread-safe: a compression works on its own lists and swaps its chunks in under a lock, so
several threads may compress at once (the last to finish leaves its chunks for the next).
Under several worker processes each process keeps its own cache for its own registry.
"""

from __future__ import annotations

import functools
import struct
import threading
import zlib
from collections.abc import Hashable, Sequence
from typing import NamedTuple

from prometheus_client.registry import CollectorRegistry

from .exposition import Representation, render_pieces

__all__ = ["MAX_SLOTS", "GzipCache", "crc32_combine", "crc32_shift"]

#: Slots (earlier compressions) kept at most; a new one beyond it evicts the oldest.
MAX_SLOTS = 4

_CRC_POLY = 0xEDB88320  # CRC-32 (gzip's), reflected
# A gzip member header: magic, deflate, no flags, no mtime, no extra flags, OS unknown (RFC 1952).
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# An empty final block: what ends the raw deflate stream after the chunks.
_END = zlib.compressobj(6, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)


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
    deflated: bytes
    crc: int
    length: int
    #: crc32_shift(length), kept so a reuse costs one multiplication.
    shift: int


class GzipCache:
    """Compresses pieces to gzip, reusing unchanged chunks' compressed bytes (module docstring)."""

    def __init__(self, level: int = 6, chunk_bytes: int = 64 * 1024) -> None:
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise ValueError(f"level must be an int from 0 to 9, got {level!r}")
        if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be an int >= 1, got {chunk_bytes!r}")
        self.level = level
        self.chunk_bytes = chunk_bytes
        self._lock = threading.Lock()
        self._slots: dict[Hashable, dict[tuple[int, ...], _Chunk]] = {}

    def render(self, registry: CollectorRegistry, representation: Representation) -> bytes:
        """The exposition of ``registry`` in ``representation``, gzip'd: what the server sends.

        The slot is the format alone (text or OpenMetrics): our pieces depend on nothing else,
        and the ``Accept`` header can vary the representation's content type freely."""
        pieces, keys = render_pieces(registry, representation)
        return self.compress(pieces, keys, representation.openmetrics)

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
                chunk = self._deflate(b"".join(pieces[start:end]))
            if 0 not in key:
                now[key] = chunk
            if chunk.length:
                out.append(chunk.deflated)
                crc = _multmodp(chunk.shift, crc) ^ chunk.crc
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

    def _deflate(self, data: bytes) -> _Chunk:
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, -15)
        deflated = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
        return _Chunk(deflated, zlib.crc32(data), len(data), crc32_shift(len(data)))

    def _cuts(self, pieces: Sequence[bytes], keys: Sequence[int]) -> list[tuple[int, int]]:
        """(start, end) of each chunk; see the module docstring for where chunks are cut."""
        cuts: list[tuple[int, int]] = []
        limit = self.chunk_bytes
        start = 0
        size = 0
        run = 0  # series per chunk in this family (0: not known yet)
        count = 0
        for i, (piece, key) in enumerate(zip(pieces, keys, strict=True)):
            if key <= 0:  # a family header, or bytes made afresh: never inside a run of series
                if i > start and (key == 0 or size >= limit or keys[start] == 0):
                    cuts.append((start, i))
                    start, size = i, 0
                run = count = 0
            else:
                if not run and piece:
                    run = 1 << max(0, (limit // len(piece)).bit_length() - 1)
                elif run and count >= run:
                    cuts.append((start, i))
                    start, size, count = i, 0, 0
                count += 1
            size += len(piece)
        if start < len(pieces):
            cuts.append((start, len(pieces)))
        return cuts
