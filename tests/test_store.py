"""The prometheus-client backend's store: whatever the folds (small, large, at a scrape or on the
recording thread), the numbers equal prometheus_client's own metrics fed the same amounts."""

from __future__ import annotations

from bisect import bisect_left

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import Counter, Histogram, generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import CATALOG, PrometheusBackend
from inference_metrics.backends.store import FOLD_AT, HistogramSnapshot, MetricStore
from inference_metrics.exposition import TEXT, render

from .expo import parse_text

SIZES = CATALOG["inference_model_request_sizes"]
TOTAL = CATALOG["inference_model_request_total"]
bounds = list(SIZES.buckets or ())
amounts = st.one_of(
    st.integers(min_value=0, max_value=2**31),
    st.floats(min_value=0, max_value=2e9, allow_nan=False),
    st.sampled_from(bounds),  # a value equal to a bound is in that bound's bucket
)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.lists(amounts, max_size=FOLD_AT * 2 + 3), min_size=1, max_size=4),
)
def test_histograms_and_counters_equal_prometheus_clients_after_any_folds(
    batches: list[list[float]],
) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    histogram, counter = PrometheusBackend(ours).register([SIZES, TOTAL])
    series, count = histogram.bind(("m", "t")), counter.bind(("m", "t"))
    reference = Histogram(
        SIZES.name, SIZES.documentation, SIZES.labels, buckets=bounds, registry=theirs
    ).labels("m", "t")
    reference_count = Counter(TOTAL.name, TOTAL.documentation, TOTAL.labels, registry=theirs)
    for batch in batches:  # a scrape between batches folds what is pending
        for amount in batch:
            series.observe(amount)
            reference.observe(amount)
            count.add(amount)
            reference_count.labels("m", "t").inc(amount)
        render(ours, TEXT)
    actual = {n: f.samples for n, f in parse_text(render(ours, TEXT).decode()).items()}
    if not any(batches):
        assert actual == {}  # nothing observed: nothing exposed (prometheus_client shows zeros)
        return
    expected = {
        name: family.samples
        for name, family in parse_text(generate_latest(theirs).decode()).items()
        if not name.endswith("_created")
    }
    assert actual == expected


def test_an_amount_that_is_not_a_number_is_dropped_at_the_fold_and_breaks_no_scrape() -> None:
    registry = CollectorRegistry()
    histogram, counter = PrometheusBackend(registry).register([SIZES, TOTAL])
    series, count = histogram.bind(("m", "t")), counter.bind(("m", "t"))
    series.observe(100)
    series.observe("a lot")  # type: ignore[arg-type]  # the Recorder never passes one
    count.add(None)  # type: ignore[arg-type]
    count.add(2)
    for _ in range(FOLD_AT):  # a fold on the recording thread as well as at the scrape
        series.observe(10)
    families = parse_text(render(registry, TEXT).decode())
    labels = {"model_name": "m", "target_model_name": "t"}
    sizes = families[SIZES.name]
    assert sizes.value(SIZES.name + "_count", **labels) == FOLD_AT + 1
    assert sizes.value(SIZES.name + "_sum", **labels) == 100 + 10 * FOLD_AT
    assert families[TOTAL.name].value(TOTAL.name, **labels) == 2
    assert render(registry, TEXT) == generate_latest(registry)


def test_a_series_given_only_non_numbers_stays_unexposed() -> None:
    registry = CollectorRegistry()
    (histogram,) = PrometheusBackend(registry).register([SIZES])
    histogram.bind(("m", "t")).observe("x")  # type: ignore[arg-type]
    assert render(registry, TEXT) == b""


# --- the snapshot API ----------------------------------------------------------------------------


def test_a_snapshot_holds_every_updated_series_in_bind_order() -> None:
    store = MetricStore(SIZES)
    first, store_only, second = (store.bind(("m", t)) for t in ("a", "never", "b"))
    second.observe(5000)
    first.observe(100)
    second.observe(5000)
    (a, a_numbers), (b, b_numbers) = store.snapshot()
    assert (a, b) == (("m", "a"), ("m", "b"))
    assert a_numbers == HistogramSnapshot((0, 1) + (0,) * (len(bounds) - 1), 100.0)
    assert isinstance(b_numbers, HistogramSnapshot)
    assert (b_numbers.count, b_numbers.sum) == (2, 10000.0)
    assert b_numbers.counts[bisect_left(bounds, 5000)] == 2
    assert len(b_numbers.counts) == len(bounds) + 1
    assert store_only.snapshot() is None


def test_numbers_loaded_from_a_snapshot_render_as_if_recorded() -> None:
    recorded, loaded = CollectorRegistry(), CollectorRegistry()
    sizes, total = PrometheusBackend(recorded).register([SIZES, TOTAL])
    for i in range(300):
        sizes.bind(("m", f"t{i % 7}")).observe(i * 37.5)
        total.bind(("m", f"t{i % 5}")).add(i)
    copies = PrometheusBackend(loaded).register([SIZES, TOTAL])
    for source, copy in zip((sizes, total), copies, strict=True):
        for label_values, snapshot in source.store.snapshot():  # type: ignore[attr-defined]
            copy.store.load(label_values, snapshot)  # type: ignore[attr-defined]
    assert render(loaded, TEXT) == render(recorded, TEXT)
    assert generate_latest(loaded) == generate_latest(recorded)


def test_loading_unchanged_numbers_keeps_the_rendered_lines() -> None:
    registry = CollectorRegistry()
    (instrument,) = PrometheusBackend(registry).register([SIZES])
    store: MetricStore = instrument.store  # type: ignore[attr-defined]
    numbers = HistogramSnapshot((1,) + (0,) * len(bounds), 50.0)
    series = store.load(("m", "t"), numbers)
    render(registry, TEXT)
    lines = series.rendered
    assert lines is not None
    store.load(("m", "t"), HistogramSnapshot((1,) + (0,) * len(bounds), 50.0))
    assert series.rendered is lines
    store.load(("m", "t"), HistogramSnapshot((2,) + (0,) * len(bounds), 51.0))
    assert series.rendered is None
    assert b'le="64.0",model_name="m",target_model_name="t"} 2.0' in render(registry, TEXT)


def test_a_snapshot_that_does_not_fit_the_metric_is_refused_and_changes_nothing() -> None:
    histograms, counters = MetricStore(SIZES), MetricStore(TOTAL)
    with pytest.raises(TypeError, match="snapshot of a histogram must be a HistogramSnapshot"):
        histograms.load(("m", "t"), 3.0)
    with pytest.raises(ValueError, match=r"snapshot must have 26 counts .*, got 2"):
        histograms.load(("m", "t"), HistogramSnapshot((1, 2), 3.0))
    with pytest.raises(TypeError, match="snapshot of a counter must be a number"):
        counters.load(("m", "t"), HistogramSnapshot((1,), 3.0))
    assert histograms.snapshot() == []
    assert counters.snapshot() == []
