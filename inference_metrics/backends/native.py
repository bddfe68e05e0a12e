"""Native histograms: sparse exponential buckets, as client_golang makes them.

A native histogram counts observations in buckets whose bounds grow by a constant factor
``base = 2 ** (2 ** -schema)``: bucket ``k`` holds the values ``v`` with ``base**(k-1) < |v| <=
base**k``, positive values in one set of buckets, negative values (by their absolute value) in
another, and everything within the zero threshold (``|v| <= ZERO_THRESHOLD``) in the zero bucket.
Only buckets that hold something exist. Facts kept from client_golang (``prometheus/histogram.go``):

* **Schema 3** (:data:`SCHEMA`), what ``NativeHistogramBucketFactor=1.1`` picks: the largest
  schema whose factor ``2 ** (2 ** -schema)`` is at most 1.1 (2 ** (1/8) = 1.0905).
* **Bucket keys from** ``math.frexp``: ``frac, exp = frexp(|v|)``, then the first of the schema's
  eight tabulated fractions (client_golang's ``nativeHistogramBounds[3]``) that is ``>= frac``,
  plus ``(exp - 1) * 8``. A coarser schema's key is the schema-3 key divided by ``2 ** (3 -
  schema)`` and rounded up, which is what client_golang's own formula gives there (its tables
  nest: every other schema-3 bound is a schema-2 bound). ``+Inf`` counts one bucket above
  ``math.inf``'s neighbour ``sys.float_info.max``; NaN counts in ``count`` and ``sum`` only.
* **Zero threshold 2 ** -128** (:data:`ZERO_THRESHOLD`, client_golang's
  ``DefNativeHistogramZeroThreshold``): a bound at every schema, and never 0, because Prometheus
  2.42 takes a family for native only if its first series has buckets, a zero count or a zero
  threshold above 0 (an empty histogram must still look native).
* **A bound on bucket count** (:data:`DEFAULT_MAX_BUCKETS`, client_golang's
  ``NativeHistogramMaxBucketNumber``): past it, the resolution halves (the schema goes down by
  one and each pair of buckets merges: key ``k`` becomes ``ceil(k / 2)``, Go's ``if k > 0 { k++
  }; k /= 2``) until the count is within the bound or the schema is -4. client_golang halves once
  per observation that finds the bound exceeded; a batch here halves until within the bound, which
  lands on the same schema whenever client_golang's result keeps the bound (the buckets a schema
  has depend only on the values seen, not their order). client_golang's other two strategies
  (reset after ``NativeHistogramMinResetDuration``, widening the zero bucket up to
  ``NativeHistogramMaxZeroThreshold``) are off by default there and not done here.
* **Spans and deltas** (:func:`spans_and_deltas`): buckets as runs of consecutive keys (a gap of
  one or two keys is filled with empty buckets rather than starting a new run), each count given
  as its difference from the previous one, as client_golang's ``makeBuckets``.

In the text formats a native-only histogram shows what client_golang's text encoder shows of it:
its ``+Inf`` bucket (the count), ``_count`` and ``_sum`` (:func:`native_only_lines`).

Merging (:func:`merge`, for several worker processes) is exact: at one schema, counts add; a
finer histogram is first reduced to the coarser schema. Observing is a batch fold
(:func:`bucket_counts`): the store hands over a list of pending values, as for classic buckets.
"""

from __future__ import annotations

import functools
import math
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from .textformat import go_float

if TYPE_CHECKING:
    from .store import Labels

__all__ = [
    "DEFAULT_MAX_BUCKETS",
    "MAX_SCHEMA",
    "MIN_SCHEMA",
    "SCHEMA",
    "ZERO_THRESHOLD",
    "BucketCounts",
    "NativeHistogram",
    "Span",
    "bucket_counts",
    "bucket_key",
    "buckets_from_spans",
    "keyer",
    "merge",
    "native_only_lines",
    "reduce_keys",
    "spans_and_deltas",
    "upper_bound",
]

#: The schema observations are counted at: client_golang's pick for a bucket factor of 1.1.
SCHEMA = 3
#: The coarsest schema (factor 2 ** 16 from one bucket to the next); reduction stops there.
MIN_SCHEMA = -4
#: The finest schema Prometheus accepts (histograms decoded or merged may carry 4 to 8).
MAX_SCHEMA = 8
#: |v| at most this counts in the zero bucket: 2 ** -128, client_golang's default.
ZERO_THRESHOLD = 2.0**-128
#: Buckets (positive and negative together) a histogram keeps before its resolution halves.
DEFAULT_MAX_BUCKETS = 160

# client_golang's nativeHistogramBounds[3]: the fractions (of frexp) bounding schema 3's eight
# buckets per power of two, as Go prints them (the same float64 values).
_FRACTIONS = (
    0.5,
    0.5452538663326288,
    0.5946035575013605,
    0.6484197773255048,
    0.7071067811865475,
    0.7711054127039704,
    0.8408964152537144,
    0.9170040432046711,
)
# Schema 3's key of sys.float_info.max, the last finite bucket; +/-Inf count in the one above.
_LAST_KEY = 8 + (1024 - 1) * 8
# From this many values on, bucket_counts sorts them and walks bucket by bucket.
_SORT_AT = 24
# The keys bucket_counts finds by table (beyond: by frexp): from the zero threshold's (2 ** -128
# is key -1024's bound) to 2 ** 64's.
_TABLE_LOW = -128 * 8
_TABLE_HIGH = 64 * 8


class Span(NamedTuple):
    """A run of consecutive buckets: ``offset`` from the end of the previous run (from key 0 for
    the first run), and ``length`` buckets (``BucketSpan`` in client_model)."""

    offset: int
    length: int


class BucketCounts(NamedTuple):
    """Counts of a batch of observations by bucket: keys to counts (no zero counts), and the
    zero bucket's count. NaN counts nowhere here."""

    positive: dict[int, int]
    negative: dict[int, int]
    zero: int


def _check_schema(schema: int, lowest: int = MIN_SCHEMA, highest: int = MAX_SCHEMA) -> None:
    if isinstance(schema, bool) or not isinstance(schema, int) or not lowest <= schema <= highest:
        raise ValueError(f"schema must be an int from {lowest} to {highest}, got {schema!r}")


def bucket_key(value: float, schema: int = SCHEMA) -> int:
    """The key of the bucket ``|value|`` falls in at ``schema`` (-4 to 3), as client_golang
    computes it. For a value beyond the zero threshold; ``+/-Inf`` get the key above the last
    finite bucket's."""
    _check_schema(schema, highest=SCHEMA)
    magnitude = abs(value)
    if magnitude != magnitude:
        raise ValueError(f"value must not be NaN, got {value!r}")
    if magnitude <= ZERO_THRESHOLD:
        raise ValueError(f"value must be beyond the zero threshold, got {value!r}")
    return _reduce_key(_key3(magnitude), SCHEMA - schema)


def _key3(magnitude: float) -> int:
    """Schema 3's key of ``magnitude`` (> 0, not NaN)."""
    if magnitude == math.inf:
        return _LAST_KEY + 1
    frac, exp = math.frexp(magnitude)
    return bisect_left(_FRACTIONS, frac) + (exp - 1) * 8


def keyer(schema: int = SCHEMA) -> Callable[[float], int]:
    """A function giving the key of the bucket a magnitude (> the zero threshold, not NaN) falls
    in at ``schema`` (-4 to 3): :func:`bucket_key` without its checks, by the table
    :func:`bucket_counts` uses, for a caller that keys one observation at a time (the
    multiprocess store)."""
    _check_schema(schema, highest=SCHEMA)
    steps = SCHEMA - schema
    offset = (1 << steps) - 1
    bounds, index = _table()
    top = bounds[-1]

    def key(magnitude: float) -> int:
        key3 = _TABLE_LOW + index(magnitude) if magnitude <= top else _key3(magnitude)
        return (key3 + offset) >> steps

    return key


def _reduce_key(key: int, steps: int) -> int:
    """``key`` after ``steps`` halvings: divided by ``2 ** steps``, rounded up."""
    return (key + (1 << steps) - 1) >> steps


def upper_bound(key: int, schema: int = SCHEMA) -> float:
    """The inclusive upper bound of bucket ``key`` at ``schema`` (-4 to 8 for powers of two,
    otherwise -4 to 3), as client_golang's ``getLe``: the last finite bucket's is
    ``sys.float_info.max`` and the one above it ``+Inf``."""
    _check_schema(schema)
    if isinstance(key, bool) or not isinstance(key, int):
        raise ValueError(f"key must be an int, got {key!r}")
    if schema <= 0:
        exp = key << -schema
    elif key & ((1 << schema) - 1) == 0:
        exp = key >> schema
    else:
        _check_schema(schema, highest=SCHEMA)
        key3 = key << (SCHEMA - schema)
        exp = (key3 >> 3) + 1
        return _ldexp(_FRACTIONS[key3 & 7], exp)
    if exp == 1024:
        return sys.float_info.max
    return _ldexp(1.0, exp)


def _ldexp(frac: float, exp: int) -> float:
    try:
        return math.ldexp(frac, exp)
    except OverflowError:
        return math.inf


def _bound3(key: int) -> float:
    """Schema 3's upper bound of a finite bucket ``key`` (fast path of :func:`upper_bound`)."""
    if key >= _LAST_KEY:
        return sys.float_info.max
    return math.ldexp(_FRACTIONS[key & 7], (key >> 3) + 1)


@functools.cache
def _table() -> tuple[list[float], Callable[[float], int]]:
    """Schema 3's upper bounds from the zero threshold's key to 2 ** 64's (1537 floats, made on
    first use) and the bisection that finds a value's place among them: ``bounds[i]`` is the
    bound of key ``_TABLE_LOW + i``, and a value's key is ``_TABLE_LOW + index(value)``, the
    frexp rule's key (the bounds are the very floats it compares fractions with, scaled)."""
    bounds = [_bound3(key) for key in range(_TABLE_LOW, _TABLE_HIGH + 1)]
    return bounds, functools.partial(bisect_left, bounds)


def bucket_counts(values: Sequence[float], schema: int = SCHEMA) -> BucketCounts:
    """The counts of ``values`` by bucket at ``schema`` (-4 to 3): the store's fold of a batch.

    A small batch looks each value up in a table of bounds. A larger one is sorted once (in C),
    then walked one bucket at a time: the first value's key and that bucket's upper bound, then a
    bisection finds how many of the sorted values the bucket holds. The cost is per bucket
    touched, not per value (benchmarks/bench_native.py)."""
    _check_schema(schema, highest=SCHEMA)
    positive: dict[int, int] = {}
    negative: dict[int, int] = {}
    zero = _count_into(values, SCHEMA - schema, positive, negative)
    return BucketCounts(positive, negative, zero)


def _count_into(
    values: Sequence[float], steps: int, positive: dict[int, int], negative: dict[int, int]
) -> int:
    """Add ``values``' counts at schema ``3 - steps`` to ``positive`` and ``negative``; return
    the zero bucket's count (see :func:`bucket_counts`)."""
    offset = (1 << steps) - 1
    bounds, index = _table()
    top = bounds[-1]
    zero = 0
    if len(values) < _SORT_AT:
        for value in values:
            if value > ZERO_THRESHOLD:
                key3 = _TABLE_LOW + index(value) if value <= top else _key3(value)
                key = (key3 + offset) >> steps
                positive[key] = positive.get(key, 0) + 1
            elif value < -ZERO_THRESHOLD:
                key3 = _TABLE_LOW + index(-value) if value >= -top else _key3(-value)
                key = (key3 + offset) >> steps
                negative[key] = negative.get(key, 0) + 1
            elif value == value:  # not NaN
                zero += 1
        return zero
    ordered = sorted(values)
    total = sum(ordered)
    if total != total:  # a NaN (or both infinities): a NaN sorts anywhere, so drop it first
        ordered = [value for value in ordered if value == value]
        ordered.sort()
    n = len(ordered)
    below = bisect_left(ordered, -ZERO_THRESHOLD)  # ordered[:below] are negative buckets'
    above = bisect_right(ordered, ZERO_THRESHOLD, below)  # ordered[above:] positive buckets'
    zero = above - below
    i = above
    while i < n:
        value = ordered[i]
        if value == math.inf:
            key = _reduce_key(_LAST_KEY + 1, steps)
            positive[key] = positive.get(key, 0) + n - i
            break
        key = ((_TABLE_LOW + index(value) if value <= top else _key3(value)) + offset) >> steps
        last = key << steps  # the schema-3 key of this bucket's top
        bound = bounds[last - _TABLE_LOW] if last <= _TABLE_HIGH else _bound3(last)
        end = bisect_right(ordered, bound, i, n)
        positive[key] = positive.get(key, 0) + end - i
        i = end
    i = below  # ordered[:i] still to count, nearest to zero last
    while i > 0:
        value = -ordered[i - 1]
        if value == math.inf:
            key = _reduce_key(_LAST_KEY + 1, steps)
            negative[key] = negative.get(key, 0) + i
            break
        key = ((_TABLE_LOW + index(value) if value <= top else _key3(value)) + offset) >> steps
        last = key << steps
        bound = bounds[last - _TABLE_LOW] if last <= _TABLE_HIGH else _bound3(last)
        start = bisect_left(ordered, -bound, 0, i)
        negative[key] = negative.get(key, 0) + i - start
        i = start
    return zero


def reduce_keys(buckets: Mapping[int, int], steps: int) -> dict[int, int]:
    """``buckets`` at a schema ``steps`` coarser: each key divided by ``2 ** steps`` rounded up
    (client_golang's halving, ``steps`` times), the counts of keys that meet added."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if not steps:
        return dict(buckets)
    reduced: dict[int, int] = {}
    offset = (1 << steps) - 1
    for key, count in buckets.items():
        key = (key + offset) >> steps
        reduced[key] = reduced.get(key, 0) + count
    return reduced


def _add(into: dict[int, int], counts: Mapping[int, int]) -> None:
    for key, count in counts.items():
        into[key] = into.get(key, 0) + count


class NativeHistogram:
    """One native histogram's numbers: what a series holds and what the protobuf encoder writes.

    Not thread-safe: the store folds into it under the series' lock, as it does classic counts.
    """

    __slots__ = (
        "count",
        "max_buckets",
        "negative",
        "positive",
        "schema",
        "sum",
        "zero_count",
        "zero_threshold",
    )

    def __init__(
        self,
        schema: int = SCHEMA,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
        zero_threshold: float = ZERO_THRESHOLD,
    ) -> None:
        _check_schema(schema)
        if isinstance(max_buckets, bool) or not isinstance(max_buckets, int) or max_buckets < 1:
            raise ValueError(f"max_buckets must be an int >= 1, got {max_buckets!r}")
        if (
            isinstance(zero_threshold, bool)
            or not isinstance(zero_threshold, int | float)
            or not 0 < zero_threshold < math.inf
        ):
            raise ValueError(f"zero_threshold must be a number > 0, got {zero_threshold!r}")
        self.schema = schema
        self.max_buckets = max_buckets
        self.zero_threshold = float(zero_threshold)
        #: Observations, NaN included (client_golang's ``sample_count``).
        self.count = 0
        self.sum = 0.0
        self.zero_count = 0
        #: Bucket key -> observations, for positive values and for negative ones (no zeros kept).
        self.positive: dict[int, int] = {}
        self.negative: dict[int, int] = {}

    def __repr__(self) -> str:
        return (
            f"NativeHistogram(schema={self.schema}, count={self.count}, sum={self.sum!r}, "
            f"zero_count={self.zero_count}, positive={self.positive}, negative={self.negative})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NativeHistogram):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def buckets(self) -> int:
        """Buckets held, positive and negative (what :attr:`max_buckets` bounds)."""
        return len(self.positive) + len(self.negative)

    def observe(self, values: Sequence[float], total: float | None = None) -> None:
        """Count a batch of observations; ``total``, when the caller summed them already (the
        store does), saves summing again. Then halve the resolution while over the bound."""
        if self.schema > SCHEMA:
            raise ValueError(f"observing needs a schema of at most {SCHEMA}, not {self.schema}")
        self.zero_count += _count_into(values, SCHEMA - self.schema, self.positive, self.negative)
        self.count += len(values)
        self.sum += sum(values) if total is None else total
        if len(self.positive) + len(self.negative) > self.max_buckets:
            self.limit()

    def limit(self) -> None:
        """Halve the resolution until at most :attr:`max_buckets` buckets are held (or the
        schema is :data:`MIN_SCHEMA`)."""
        while self.buckets > self.max_buckets and self.schema > MIN_SCHEMA:
            self.reduce(self.schema - 1)

    def reduce(self, schema: int) -> None:
        """Go down to ``schema`` (at most the current one), merging buckets; counts are kept."""
        _check_schema(schema, highest=self.schema)
        steps = self.schema - schema
        self.positive = reduce_keys(self.positive, steps)
        self.negative = reduce_keys(self.negative, steps)
        self.schema = schema

    def copy(self) -> NativeHistogram:
        other = NativeHistogram(self.schema, self.max_buckets, self.zero_threshold)
        other.count, other.sum, other.zero_count = self.count, self.sum, self.zero_count
        other.positive, other.negative = dict(self.positive), dict(self.negative)
        return other


def merge(histograms: Iterable[NativeHistogram]) -> NativeHistogram:
    """The exact sum of ``histograms`` (one per process): at the coarsest schema among them, with
    the finer ones reduced to it first; counts, sums and zero counts added. The result keeps the
    smallest ``max_buckets`` among them but is not limited by it (a merge loses nothing; call
    :meth:`NativeHistogram.limit` to apply it). All must share one zero threshold."""
    parts = list(histograms)
    if not parts:
        raise ValueError("histograms must not be empty")
    thresholds = {part.zero_threshold for part in parts}
    if len(thresholds) > 1:
        raise ValueError(f"histograms must share one zero threshold, got {sorted(thresholds)}")
    schema = min(part.schema for part in parts)
    merged = NativeHistogram(schema, min(part.max_buckets for part in parts), thresholds.pop())
    for part in parts:
        steps = part.schema - schema
        merged.count += part.count
        merged.sum += part.sum
        merged.zero_count += part.zero_count
        _add(merged.positive, reduce_keys(part.positive, steps))
        _add(merged.negative, reduce_keys(part.negative, steps))
    return merged


def spans_and_deltas(buckets: Mapping[int, int]) -> tuple[list[Span], list[int]]:
    """``buckets`` (key -> count) as client_golang's ``makeBuckets`` encodes them: spans of
    consecutive keys (gaps of one or two keys filled with empty buckets) and, per bucket in key
    order, its count minus the previous bucket's (the first's minus 0)."""
    spans: list[list[int]] = []
    deltas: list[int] = []
    previous = 0
    following = 0  # the key after the last bucket written (0 before the first: key 0's offset)
    for key in sorted(buckets):
        gap = key - following
        if not spans or gap > 2:
            spans.append([gap, 0])
        elif gap:
            deltas.append(-previous)  # one or two empty buckets fill the gap
            deltas.extend([0] * (gap - 1))
            spans[-1][1] += gap
            previous = 0
        count = buckets[key]
        deltas.append(count - previous)
        spans[-1][1] += 1
        previous = count
        following = key + 1
    return [Span(offset, length) for offset, length in spans], deltas


def buckets_from_spans(spans: Iterable[tuple[int, int]], deltas: Sequence[int]) -> dict[int, int]:
    """The inverse of :func:`spans_and_deltas`: key -> count of every non-empty bucket."""
    buckets: dict[int, int] = {}
    deltas = list(deltas)
    position = 0
    key = 0
    count = 0
    for n, (offset, length) in enumerate(spans):
        if length < 0:
            raise ValueError(f"span {n} has a negative length: {length}")
        key += offset
        for _ in range(length):
            if position >= len(deltas):
                raise ValueError(f"spans hold more buckets than the {len(deltas)} deltas")
            count += deltas[position]
            position += 1
            if count < 0:
                raise ValueError(f"bucket {key} has a negative count: {count}")
            if count:
                buckets[key] = count
            key += 1
    if position != len(deltas):
        raise ValueError(f"spans hold {position} buckets but there are {len(deltas)} deltas")
    return buckets


def native_only_lines(
    name: str, labels: Labels, count: int, total: float, exemplar: str = ""
) -> bytes:
    """A native-only histogram series in the text and OpenMetrics formats: the ``+Inf`` bucket,
    ``_count`` and ``_sum``, as client_golang's text encoder shows a histogram without classic
    buckets, in our writer's order and number format (``_bucket`` lines, ``_count``, ``_sum``).
    ``exemplar``: OpenMetrics only, the ``+Inf`` bucket's exemplar as
    :func:`~.exemplars.openmetrics_exemplar` renders it."""
    plain = f"{{{labels.plain}}}" if labels.plain else ""
    number = go_float(count)
    return (
        f'{name}_bucket{{{labels.before}le="+Inf"{labels.after}}} {number}{exemplar}\n'
        f"{name}_count{plain} {number}\n"
        f"{name}_sum{plain} {go_float(total)}\n"
    ).encode()
