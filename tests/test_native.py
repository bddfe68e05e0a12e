"""Native histograms: bucket keys as client_golang computes them, exact merges and reductions,
spans and deltas that decode back to the buckets."""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from inference_metrics.backends.exemplars import openmetrics_exemplar, trace_exemplar
from inference_metrics.backends.native import (
    _FRACTIONS,
    DEFAULT_MAX_BUCKETS,
    MIN_SCHEMA,
    SCHEMA,
    ZERO_THRESHOLD,
    BucketCounts,
    NativeHistogram,
    Span,
    bucket_counts,
    bucket_key,
    buckets_from_spans,
    keyer,
    merge,
    native_only_lines,
    reduce_keys,
    spans_and_deltas,
    upper_bound,
)
from inference_metrics.backends.store import Labels

MAX = sys.float_info.max
SCHEMAS = list(range(MIN_SCHEMA, SCHEMA + 1))

beyond_zero = st.floats(min_value=ZERO_THRESHOLD, allow_infinity=False, allow_nan=False).filter(
    lambda v: v > ZERO_THRESHOLD
)
observations = st.one_of(
    st.floats(),  # any float: NaN, infinities, subnormals, zeros
    st.floats(1e-3, 1e3),  # latencies: many values per bucket
    st.floats(-1e3, -1e-3),
    st.sampled_from([0.0, -0.0, ZERO_THRESHOLD, -ZERO_THRESHOLD, 1.0, 2.0, 0.5, MAX, -MAX]),
    # Where the batch fold's table of bounds ends (2 ** 64) and the frexp rule takes over.
    st.sampled_from([2.0**64, math.nextafter(2.0**64, 0), math.nextafter(2.0**64, math.inf)]),
    st.sampled_from([-(2.0**64), 2.0**63.9, 2.0**64.1, math.nextafter(ZERO_THRESHOLD, 1)]),
)
bucket_maps = st.dictionaries(st.integers(-300, 300), st.integers(1, 10**12), max_size=40)


def counted_one_by_one(values: list[float], schema: int) -> BucketCounts:
    positive: dict[int, int] = {}
    negative: dict[int, int] = {}
    zero = 0
    for value in values:
        if math.isnan(value):
            continue
        if abs(value) <= ZERO_THRESHOLD:
            zero += 1
            continue
        side = positive if value > 0 else negative
        key = bucket_key(value, schema)
        side[key] = side.get(key, 0) + 1
    return BucketCounts(positive, negative, zero)


def go_halving(key: int) -> int:
    """client_golang's doubleBucketWidth: ``if key > 0 { key++ }; key /= 2`` (Go truncates)."""
    if key > 0:
        key += 1
    return int(key / 2)


# --- the schema and the fractions it is made of


def test_schema_3_is_what_a_bucket_factor_of_1_1_picks() -> None:
    # client_golang's pickSchema: the largest schema whose factor 2^(2^-schema) is <= 1.1.
    assert 2 ** (2**-SCHEMA) <= 1.1 < 2 ** (2 ** -(SCHEMA - 1))


@pytest.mark.parametrize("index", range(8))
def test_each_tabulated_fraction_is_within_two_floats_of_the_true_bucket_bound(index: int) -> None:
    # The bound is 2^(index/8) / 2; exactly, fraction^8 against 2^(index - 8). client_golang's
    # table is not correctly rounded (its last two entries are 1.4 and 1.1 ulp low): keys must
    # come from the table itself, which is why it is copied rather than computed.
    fraction = _FRACTIONS[index]
    true_power = Fraction(2) ** (index - 8)
    slack = 2 * Fraction(math.ulp(fraction))
    assert (Fraction(fraction) - slack) ** 8 < true_power < (Fraction(fraction) + slack) ** 8


def test_every_other_fraction_is_a_bound_of_the_coarser_schemas_too() -> None:
    assert _FRACTIONS[::2] == (0.5, 0.5946035575013605, 0.7071067811865475, 0.8408964152537144)
    assert _FRACTIONS[::4] == (0.5, 0.7071067811865475)


# --- keys


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_power_of_two_falls_in_the_bucket_log2_puts_it_in_at_every_schema(schema: int) -> None:
    for exponent in range(-127, 1024):
        key = bucket_key(2.0**exponent, schema)
        assert key == math.ceil(Fraction(exponent) * Fraction(2) ** schema)
        if schema >= 0 or exponent % 2**-schema == 0:  # then it is a bucket bound
            assert upper_bound(key, schema) == 2.0**exponent


@settings(max_examples=500)
@given(value=beyond_zero, negative=st.booleans())
def test_a_key_is_the_ceiling_of_log2_times_eight_away_from_bucket_bounds(
    value: float, negative: bool
) -> None:
    exact = math.log2(value) * 8
    assume(abs(exact - round(exact)) > 1e-6)  # a bound itself: the float table decides
    assert bucket_key(-value if negative else value) == math.ceil(exact)


@settings(max_examples=1000)
@given(value=beyond_zero, schema=st.sampled_from(SCHEMAS))
def test_every_value_lies_within_the_bounds_of_its_bucket(value: float, schema: int) -> None:
    key = bucket_key(value, schema)
    assert upper_bound(key - 1, schema) < value <= upper_bound(key, schema)
    # Against the true bounds base^(k-1), base^k with base = 2^(2^-schema), exactly: value^(2^s)
    # in (2^(k-1), 2^k]. Only a value next to a bound may differ (the table's float bound is
    # within two ulps of the true one).
    exact = Fraction(value) ** (2**schema) if schema >= 0 else Fraction(value)
    low, high = (
        (Fraction(2) ** (key - 1), Fraction(2) ** key)
        if schema >= 0
        else (Fraction(2) ** ((key - 1) * 2**-schema), Fraction(2) ** (key * 2**-schema))
    )
    if not low < exact <= high:
        bounds = (upper_bound(key - 1, schema), upper_bound(key, schema))
        assert any(abs(value - bound) <= 2 * math.ulp(bound) for bound in bounds)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_coarser_schemas_key_is_the_finer_key_divided_and_rounded_up(schema: int) -> None:
    for value in (1e-30, 0.001, 0.3, 1.0, 1.05, 7.5, 1e3, 123456.789, MAX, math.inf):
        fine = bucket_key(value)
        assert bucket_key(value, schema) == math.ceil(Fraction(fine, 2 ** (SCHEMA - schema)))


def test_infinity_counts_one_bucket_above_the_largest_float() -> None:
    assert bucket_key(MAX) == 8192
    assert bucket_key(math.inf) == bucket_key(-math.inf) == 8193
    assert upper_bound(8192) == MAX
    assert upper_bound(8193) == math.inf
    # client_golang's getLe at the coarser schemas: the last finite bucket ends at MaxFloat64.
    assert upper_bound(1024, 0) == MAX
    assert upper_bound(1025, 0) == math.inf
    assert upper_bound(64, -4) == MAX
    assert bucket_key(math.inf, -4) == 65


def test_values_within_the_zero_threshold_count_in_the_zero_bucket_and_nan_nowhere() -> None:
    just_above = math.nextafter(ZERO_THRESHOLD, 1)
    values = [0.0, -0.0, ZERO_THRESHOLD, -ZERO_THRESHOLD, 5e-324, just_above, math.nan]
    assert bucket_counts(values) == BucketCounts({bucket_key(just_above): 1}, {}, 5)
    assert (
        ZERO_THRESHOLD == 2.938735877055719e-39
    )  # client_golang's DefNativeHistogramZeroThreshold


@pytest.mark.parametrize("value", [0.0, ZERO_THRESHOLD, -1e-40, math.nan])
def test_a_key_is_refused_for_a_value_without_one(value: float) -> None:
    with pytest.raises(ValueError, match="value must"):
        bucket_key(value)


@pytest.mark.parametrize("schema", [4, -5, 3.0, True])
def test_a_schema_without_key_computation_is_refused(schema: object) -> None:
    with pytest.raises(ValueError, match="schema must be an int from -4 to 3"):
        bucket_key(1.0, schema)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schema", "observed", "spans", "deltas"),
    [
        # client_golang's histogram tests (factor 1.1 -> 3, 1.2 -> 2, 4 -> -1, 17 -> -2).
        (3, [0, 1, 2, 3], [Span(0, 1), Span(7, 1), Span(4, 1)], [1, 0, 0]),
        (2, [0, 1, 1.2, 1.4, 1.8, 2], [Span(0, 5)], [1, -1, 2, -2, 2]),
        (
            -1,
            [0.0156251, 0.0625, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 3.5, 5, 6, 7, 33.33],
            [Span(-2, 6)],
            [2, 0, 0, 2, -1, -2],
        ),
        (
            -2,
            [0.0156251, 0.0625, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 3.5, 5, 6, 7, 33.33],
            [Span(-1, 4)],
            [2, 2, 3, -6],
        ),
        (2, [0, 1, 1.2, 1.4, 1.8, 2, math.inf], [Span(0, 5), Span(4092, 1)], [1, -1, 2, -2, 2, -1]),
    ],
)
def test_observations_give_the_buckets_client_golang_gives(
    schema: int, observed: list[float], spans: list[Span], deltas: list[int]
) -> None:
    histogram = NativeHistogram(schema)
    histogram.observe(observed)
    assert spans_and_deltas(histogram.positive) == (spans, deltas)
    assert histogram.count == len(observed)
    assert histogram.zero_count == observed.count(0)


def test_negative_infinity_counts_in_the_negative_buckets_last_one() -> None:
    histogram = NativeHistogram(2)
    histogram.observe([0, 1, 1.2, 1.4, 1.8, 2, -math.inf])
    assert spans_and_deltas(histogram.negative) == ([Span(4097, 1)], [1])
    assert histogram.sum == -math.inf


def test_nan_counts_in_count_and_sum_but_in_no_bucket() -> None:
    histogram = NativeHistogram()
    histogram.observe([1.0, math.nan])
    assert histogram.count == 2
    assert math.isnan(histogram.sum)
    assert histogram.positive == {0: 1}
    assert histogram.zero_count == 0


# --- the batch fold


@settings(max_examples=300, deadline=None)
@given(values=st.lists(observations, max_size=200), schema=st.sampled_from(SCHEMAS))
def test_a_batch_counts_each_value_where_its_own_key_puts_it(
    values: list[float], schema: int
) -> None:
    assert bucket_counts(values, schema) == counted_one_by_one(values, schema)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(observations, max_size=120), schema=st.sampled_from(SCHEMAS))
def test_counting_at_a_coarser_schema_equals_reducing_the_finer_counts(
    values: list[float], schema: int
) -> None:
    fine = bucket_counts(values)
    coarse = bucket_counts(values, schema)
    assert coarse.positive == reduce_keys(fine.positive, SCHEMA - schema)
    assert coarse.negative == reduce_keys(fine.negative, SCHEMA - schema)


def test_a_batch_leaves_its_list_as_it_was() -> None:
    values = [3.0, -1.0, 2.0, math.nan] * 10
    before = list(values)
    bucket_counts(values)
    assert values == before  # the same objects in the same order (NaN is itself)


# --- reduction and the bound on buckets


@settings(max_examples=300)
@given(key=st.integers(-(2**40), 2**40))
def test_halving_a_key_is_client_golangs_halving(key: int) -> None:
    assert reduce_keys({key: 1}, 1) == {go_halving(key): 1}


@settings(max_examples=200)
@given(buckets=bucket_maps, steps=st.integers(0, 12))
def test_reducing_by_several_steps_equals_halving_that_many_times_and_keeps_counts(
    buckets: dict[int, int], steps: int
) -> None:
    halved = dict(buckets)
    for _ in range(steps):
        halved = reduce_keys(halved, 1)
    reduced = reduce_keys(buckets, steps)
    assert reduced == halved
    assert sum(reduced.values()) == sum(buckets.values())


def test_too_many_buckets_halve_the_resolution_as_client_golang_does() -> None:
    # client_golang's "buckets limited by halving resolution" (factor 1.2, 4 buckets at most).
    histogram = NativeHistogram(2, max_buckets=4)
    histogram.observe([0, 1, 1.1, 1.2, 1.4, 1.8, 2, 3])
    assert histogram.schema == 1
    assert spans_and_deltas(histogram.positive) == ([Span(0, 5)], [1, 2, -1, -2, 1])


@settings(max_examples=150, deadline=None)
@given(
    batches=st.lists(st.lists(observations, max_size=80), min_size=1, max_size=4),
    max_buckets=st.integers(1, 30),
)
def test_a_histogram_keeps_the_finest_schema_within_its_bound(
    batches: list[list[float]], max_buckets: int
) -> None:
    histogram = NativeHistogram(max_buckets=max_buckets)
    for batch in batches:
        histogram.observe(batch)
    everything = [value for batch in batches for value in batch]
    counts = bucket_counts(everything, histogram.schema)
    assert (histogram.positive, histogram.negative) == (counts.positive, counts.negative)
    assert histogram.buckets <= max_buckets or histogram.schema == MIN_SCHEMA
    if histogram.schema < SCHEMA:  # one step finer would hold too many
        finer = bucket_counts(everything, histogram.schema + 1)
        assert len(finer.positive) + len(finer.negative) > max_buckets


def test_the_coarsest_schema_keeps_its_buckets_even_over_the_bound() -> None:
    histogram = NativeHistogram(max_buckets=1)
    histogram.observe([1e-30, 1.0, 1e30])
    assert histogram.schema == MIN_SCHEMA
    assert histogram.buckets == 3


def test_the_default_bound_is_160_buckets() -> None:
    assert NativeHistogram().max_buckets == DEFAULT_MAX_BUCKETS == 160


# --- merging


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(
        st.tuples(st.lists(observations, max_size=60), st.integers(1, 40)),
        min_size=1,
        max_size=4,
    )
)
def test_a_merge_equals_one_histogram_of_every_observation_at_the_coarsest_schema(
    parts: list[tuple[list[float], int]],
) -> None:
    histograms = []
    for values, max_buckets in parts:
        histogram = NativeHistogram(max_buckets=max_buckets)
        histogram.observe(values)
        histograms.append(histogram)
    merged = merge(histograms)
    everything = [value for values, _ in parts for value in values]
    counts = bucket_counts(everything, min(h.schema for h in histograms))
    assert merged.schema == min(h.schema for h in histograms)
    assert (merged.positive, merged.negative) == (counts.positive, counts.negative)
    assert merged.zero_count == counts.zero
    assert merged.count == len(everything)
    assert merged.max_buckets == min(max_buckets for _, max_buckets in parts)


def test_a_merge_changes_none_of_its_parts() -> None:
    a, b = NativeHistogram(), NativeHistogram(1)
    a.observe([1.0, 2.0, 3.0])
    b.observe([4.0])
    before = a.copy(), b.copy()
    merge([a, b])
    assert (a, b) == before


def test_histograms_with_different_zero_thresholds_are_not_merged() -> None:
    with pytest.raises(ValueError, match="must share one zero threshold"):
        merge([NativeHistogram(), NativeHistogram(zero_threshold=1e-9)])


def test_merging_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="histograms must not be empty"):
        merge([])


# --- spans and deltas


def test_gaps_of_one_or_two_buckets_are_filled_and_longer_ones_start_a_span() -> None:
    spans, deltas = spans_and_deltas({-3: 1, -2: 2, 0: 5, 3: 1, 7: 2, 8: 2})
    assert spans == [Span(-3, 7), Span(3, 2)]
    assert deltas == [1, 1, -2, 5, -5, 0, 1, 1, 0]


def test_no_buckets_encode_as_no_spans() -> None:
    assert spans_and_deltas({}) == ([], [])


@settings(max_examples=300)
@given(buckets=bucket_maps)
def test_spans_and_deltas_decode_back_to_the_buckets(buckets: dict[int, int]) -> None:
    spans, deltas = spans_and_deltas(buckets)
    assert buckets_from_spans(spans, deltas) == buckets
    assert sum(span.length for span in spans) == len(deltas)
    assert all(span.offset > 2 for span in spans[1:])


@pytest.mark.parametrize(
    ("spans", "deltas", "message"),
    [
        ([(0, 2)], [1], "spans hold more buckets than the 1 deltas"),
        ([(0, 1)], [1, 1], "spans hold 1 buckets but there are 2 deltas"),
        ([(0, 2)], [1, -2], "bucket 1 has a negative count: -1"),
        ([(0, -1)], [], "span 0 has a negative length"),
    ],
)
def test_spans_and_deltas_that_do_not_fit_are_refused(
    spans: list[tuple[int, int]], deltas: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        buckets_from_spans(spans, deltas)


# --- the histogram's arguments


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"schema": 9}, "schema must be an int from -4 to 8, got 9"),
        ({"max_buckets": 0}, "max_buckets must be an int >= 1, got 0"),
        ({"zero_threshold": 0.0}, "zero_threshold must be a number > 0, got 0.0"),
        ({"zero_threshold": math.nan}, "zero_threshold must be a number > 0, got nan"),
    ],
)
def test_bad_histogram_arguments_are_refused(arguments: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NativeHistogram(**arguments)  # type: ignore[arg-type]


def test_a_histogram_finer_than_schema_3_is_merged_but_not_observed_into() -> None:
    histogram = NativeHistogram(5)
    with pytest.raises(ValueError, match="observing needs a schema of at most 3, not 5"):
        histogram.observe([1.0])
    assert histogram.count == 0


# --- the text formats


def test_a_native_only_series_shows_its_inf_bucket_count_and_sum_in_text() -> None:
    labels = Labels(
        'model_name="m",', ',target_model_name="t"', 'model_name="m",target_model_name="t"'
    )
    assert native_only_lines("latency_seconds", labels, 3, 1.5) == (
        b'latency_seconds_bucket{model_name="m",le="+Inf",target_model_name="t"} 3.0\n'
        b'latency_seconds_count{model_name="m",target_model_name="t"} 3.0\n'
        b'latency_seconds_sum{model_name="m",target_model_name="t"} 1.5\n'
    )


def test_a_native_only_series_without_labels_has_no_braces_but_its_bucket() -> None:
    assert native_only_lines("x", Labels("", "", ""), 2_000_000, 0.0) == (
        b'x_bucket{le="+Inf"} 2e+06\nx_count 2e+06\nx_sum 0.0\n'
    )


def test_a_native_only_series_with_an_exemplar_parses_as_openmetrics() -> None:
    held = trace_exemplar((0xABC, 0xDEF), 0.25, 1700000000.5)
    lines = native_only_lines(
        "latency_seconds", Labels('m="a",', "", 'm="a"'), 4, 2.0, openmetrics_exemplar(held)
    )
    page = b"# HELP latency_seconds L.\n# TYPE latency_seconds histogram\n" + lines + b"# EOF\n"
    (family,) = openmetrics_families(page.decode())  # type: ignore[no-untyped-call]
    samples = {(sample.name, sample.labels.get("le")): sample for sample in family.samples}
    assert set(samples) == {
        ("latency_seconds_bucket", "+Inf"),
        ("latency_seconds_count", None),
        ("latency_seconds_sum", None),
    }
    bucket = samples["latency_seconds_bucket", "+Inf"]
    assert bucket.value == samples["latency_seconds_count", None].value == 4
    assert bucket.exemplar is not None
    assert bucket.exemplar.labels == {"trace_id": f"{0xABC:032x}", "span_id": f"{0xDEF:016x}"}
    assert (bucket.exemplar.value, float(bucket.exemplar.timestamp)) == (0.25, 1700000000.5)


@settings(max_examples=300, deadline=None)
@given(
    magnitude=st.one_of(
        st.floats(min_value=ZERO_THRESHOLD, allow_nan=False, exclude_min=True),
        st.just(math.inf),
        st.sampled_from([1.0, 2.0, 0.5, sys.float_info.max, 2.0**64, 2.0**-127]),
    ),
    schema=st.integers(min_value=-4, max_value=3),
)
def test_the_one_value_keyer_agrees_with_bucket_key(magnitude: float, schema: int) -> None:
    assert keyer(schema)(magnitude) == bucket_key(magnitude, schema)
