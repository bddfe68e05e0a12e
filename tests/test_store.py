"""The prometheus-client backend's store: whatever the folds (small, large, at a scrape or on the
recording thread), the numbers equal prometheus_client's own metrics fed the same amounts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import Counter, Histogram, generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import CATALOG, PrometheusBackend
from inference_metrics.backends.store import FOLD_AT
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
