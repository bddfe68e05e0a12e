"""Exemplars: an observation that links a histogram bucket to the trace that made it.

An :class:`Exemplar` is label pairs, the observed value and a Unix timestamp. OpenMetrics bounds
its labels: names plus values at most :data:`MAX_LABEL_CHARS` (128) characters. Ours carry the
current OpenTelemetry span (:func:`trace_exemplar`): ``trace_id`` as 32 lower-case hex digits and
``span_id`` as 16, as OpenTelemetry prints them and as llm-d-router's exemplars name them.

Which exemplar a bucket shows is the **latest** one: :class:`ExemplarSlots` keeps one per bucket
(the latest by timestamp; of two with the same timestamp, the one offered last), and
:func:`merge_latest` gives the latest per bucket across several processes' slots. A native
histogram shows one exemplar, its latest (:meth:`ExemplarSlots.latest`), on a ``+Inf`` bucket
entry of the protobuf exposition.

:func:`span_reader` is the only place that touches OpenTelemetry: it imports the API when called
(so nothing is imported, and nothing costs, while exemplars are off) and returns a function that
gives the current span's ``(trace_id, span_id)`` only when that span is sampled. The ids stay ints
on the record path; their hex text is made when an exemplar is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

from .textformat import escape_label_value, go_float

__all__ = [
    "MAX_LABEL_CHARS",
    "Exemplar",
    "ExemplarSlots",
    "SpanIds",
    "exemplar",
    "later",
    "merge_latest",
    "openmetrics_exemplar",
    "pack_ids",
    "span_reader",
    "trace_exemplar",
    "unpack_ids",
]

#: Label names plus values of one exemplar, at most (OpenMetrics: 128 UTF-8 code points).
MAX_LABEL_CHARS = 128
#: A sampled span's ids: (trace_id, span_id), as OpenTelemetry holds them (128-bit, 64-bit ints).
SpanIds = tuple[int, int]

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


class Exemplar(NamedTuple):
    """One exemplar: label pairs in the order given, the observed value, a Unix timestamp in
    seconds. Make one with :func:`exemplar` or :func:`trace_exemplar`, which check it."""

    labels: tuple[tuple[str, str], ...]
    value: float
    timestamp: float


def exemplar(
    labels: Mapping[str, str] | Iterable[tuple[str, str]], value: float, timestamp: float
) -> Exemplar:
    """A checked :class:`Exemplar`: label names valid and unique, every name and value a str,
    names plus values at most :data:`MAX_LABEL_CHARS` characters, ``value`` a number and
    ``timestamp`` a finite one."""
    pairs = tuple(labels.items() if isinstance(labels, Mapping) else labels)
    chars = 0
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"labels must be (name, value) pairs, got {pair!r}")
        name, text = pair
        if not isinstance(name, str) or not _LABEL_NAME.match(name):
            raise ValueError(f"exemplar label name must match [a-zA-Z_][a-zA-Z0-9_]*, got {name!r}")
        if not isinstance(text, str):
            raise TypeError(f"exemplar label {name!r} must have a str value, got {text!r}")
        chars += len(name) + len(text)
    if len({name for name, _ in pairs}) != len(pairs):
        raise ValueError(f"exemplar label names must be unique, got {[n for n, _ in pairs]}")
    if chars > MAX_LABEL_CHARS:
        raise ValueError(
            f"exemplar labels must be at most {MAX_LABEL_CHARS} characters (names plus values), "
            f"got {chars}"
        )
    _check_numbers(value, timestamp)
    return Exemplar(pairs, float(value), float(timestamp))


def _check_numbers(value: float, timestamp: float) -> None:
    for argument, number in (("value", value), ("timestamp", timestamp)):
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise TypeError(f"exemplar {argument} must be a number, got {number!r}")
    if not math.isfinite(timestamp):
        raise ValueError(f"exemplar timestamp must be finite, got {timestamp!r}")


def trace_exemplar(ids: SpanIds, value: float, timestamp: float) -> Exemplar:
    """The exemplar of an observation made in the span ``ids``: labels ``trace_id`` (32 hex
    digits) and ``span_id`` (16), 63 characters in all."""
    trace_id, span_id = ids
    if type(trace_id) is not int or not 0 < trace_id < 1 << 128:
        raise ValueError(f"trace_id must be an int in (0, 2**128), got {trace_id!r}")
    if type(span_id) is not int or not 0 < span_id < 1 << 64:
        raise ValueError(f"span_id must be an int in (0, 2**64), got {span_id!r}")
    _check_numbers(value, timestamp)
    return _span_exemplar(ids, value, timestamp)


def _span_exemplar(ids: SpanIds, value: float, timestamp: float) -> Exemplar:
    trace_id, span_id = ids
    labels = (("trace_id", f"{trace_id:032x}"), ("span_id", f"{span_id:016x}"))
    return Exemplar(labels, float(value), float(timestamp))


def span_reader() -> Callable[[], SpanIds | None]:
    """A function giving the current OpenTelemetry span's ``(trace_id, span_id)`` when that span
    is sampled (and valid), None otherwise (no span, a non-recording or unsampled one).

    Imports ``opentelemetry.trace`` now, not before: call it when exemplars are switched on.
    ImportError, naming the ``otel`` extra, when the OpenTelemetry API is not installed."""
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ImportError(
            "exemplars read the current span with the OpenTelemetry API: install "
            f"opentelemetry-api or the 'otel' extra (pip install 'inference-metrics[otel]') ({exc})"
        ) from exc
    get_current_span = trace.get_current_span
    # The last span asked about and its answer, swapped as one tuple (atomic under the GIL): a
    # span's context never changes, and a request observes several histograms in one span, so
    # all but the first of them skip the context. It keeps that one span object alive.
    last: list[tuple[object, SpanIds | None]] = [(None, None)]

    def current_span_ids() -> SpanIds | None:
        span = get_current_span()
        held = last[0]
        if held[0] is span:
            return held[1]
        context = span.get_span_context()
        ids = (
            (context.trace_id, context.span_id)
            if context.trace_flags & 1 and context.is_valid
            else None
        )
        last[0] = (span, ids)
        return ids

    return current_span_ids


def later(a: Exemplar | None, b: Exemplar | None) -> Exemplar | None:
    """The later of two exemplars by timestamp (``b`` on a tie; either when one is None)."""
    if a is None:
        return b
    if b is None or a.timestamp > b.timestamp:
        return a
    return b


# A slot: None, or (timestamp, what, value), ``what`` an Exemplar or the ids of a sampled span
# not made into one yet (that costs a microsecond or two; only a slot's last one is ever read).
_Held = tuple[float, "Exemplar | SpanIds", float]


class ExemplarSlots:
    """The latest exemplar of each bucket of one histogram series (None where none was offered).

    Not thread-safe: offered under the series' lock, as the store folds its counts."""

    __slots__ = ("_slots",)

    def __init__(self, buckets: int) -> None:
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
            raise ValueError(f"buckets must be an int >= 1, got {buckets!r}")
        self._slots: list[_Held | None] = [None] * buckets

    def offer(self, bucket: int, candidate: Exemplar) -> None:
        """Keep ``candidate`` for ``bucket`` unless the one held there is later."""
        self._keep(bucket, (candidate.timestamp, candidate, candidate.value))

    def offer_span(self, bucket: int, ids: SpanIds, value: float, timestamp: float) -> None:
        """:meth:`offer` the exemplar of an observation of ``value`` at ``timestamp`` in the span
        ``ids`` (as :func:`span_reader`'s function gives them: not checked again). The exemplar
        itself is made only when read (:func:`trace_exemplar`'s labels)."""
        self._keep(bucket, (timestamp, ids, value))

    def _keep(self, bucket: int, candidate: _Held) -> None:
        slots = self._slots
        held = slots[bucket]
        if held is None or candidate[0] >= held[0]:
            slots[bucket] = candidate

    def replace(self, exemplars: Sequence[Exemplar | None]) -> None:
        """Hold exactly ``exemplars``, one per bucket (merged elsewhere: the multiprocess
        collector's)."""
        if len(exemplars) != len(self._slots):
            raise ValueError(
                f"exemplars must be one per bucket ({len(self._slots)}), got {len(exemplars)}"
            )
        self._slots = [
            None if held is None else (held.timestamp, held, held.value) for held in exemplars
        ]

    def latest(self) -> Exemplar | None:
        """The latest exemplar of any bucket (what a native histogram shows); of several with
        the latest timestamp, the highest bucket's."""
        found: _Held | None = None
        where = -1
        for bucket, held in enumerate(self._slots):
            if held is not None and (found is None or held[0] >= found[0]):
                found, where = held, bucket
        return None if found is None else self[where]

    def __len__(self) -> int:
        return len(self._slots)

    def __getitem__(self, bucket: int) -> Exemplar | None:
        held = self._slots[bucket]
        if held is None:
            return None
        timestamp, what, value = held
        if isinstance(what, Exemplar):
            return what
        return _span_exemplar(what, value, timestamp)

    def snapshot(self) -> list[Exemplar | None]:
        """The exemplars, bucket by bucket (a new list)."""
        return [self[bucket] for bucket in range(len(self._slots))]


def merge_latest(parts: Iterable[Sequence[Exemplar | None]]) -> list[Exemplar | None]:
    """The latest exemplar per bucket across ``parts`` (one sequence of slots per process, each
    as long as the others): what a merged series shows. Of two with the same timestamp, the
    one from the later part."""
    merged: list[Exemplar | None] | None = None
    for part in parts:
        if merged is None:
            merged = list(part)
            continue
        if len(part) != len(merged):
            raise ValueError(f"parts differ in buckets: {len(part)} != {len(merged)}")
        merged = [later(mine, theirs) for mine, theirs in zip(merged, part, strict=True)]
    if merged is None:
        raise ValueError("parts must not be empty")
    return merged


def openmetrics_exemplar(held: Exemplar) -> str:
    """The exemplar as OpenMetrics appends it to a bucket line: `` # {labels} value timestamp``,
    labels escaped and sorted by name, as prometheus_client writes it."""
    labels = ",".join(f'{name}="{escape_label_value(text)}"' for name, text in sorted(held.labels))
    return f" # {{{labels}}} {go_float(held.value)} {held.timestamp}"


_CHUNK = 48  # bits per double: exact below 2 ** 53
_CHUNK_MASK = (1 << _CHUNK) - 1


def pack_ids(ids: SpanIds) -> tuple[float, float, float, float]:
    """A span's ids (128 + 64 bits) as four floats of 48 bits each, every one exact: how a
    memory-mapped file of floats (the multiprocess store's) holds them."""
    trace_id, span_id = ids
    both = (trace_id << 64) | span_id
    return (
        float(both >> 144),
        float((both >> 96) & _CHUNK_MASK),
        float((both >> 48) & _CHUNK_MASK),
        float(both & _CHUNK_MASK),
    )


def unpack_ids(chunks: Sequence[float]) -> SpanIds | None:
    """The inverse of :func:`pack_ids`; None for anything that is not four whole numbers of 48
    bits making two ids above 0 (an empty or damaged slot)."""
    if len(chunks) != 4:
        return None
    both = 0
    for chunk in chunks:
        if not (0 <= chunk <= _CHUNK_MASK) or chunk != int(chunk):
            return None
        both = (both << _CHUNK) | int(chunk)
    trace_id, span_id = both >> 64, both & ((1 << 64) - 1)
    if not (trace_id and span_id):
        return None
    return trace_id, span_id
