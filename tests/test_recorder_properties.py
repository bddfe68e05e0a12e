"""Property tests: random observations through the Recorder and the prometheus-client backend
come out of the text exposition exactly as an independent computation over upstream's bucket
bounds (tests/upstream_facts.py) says they must."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder

from . import upstream_facts as up
from .expo import parse_registry

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

LABEL_VALUES = ("m", "t", "", "llama-3", "ü", 'q"\\')
pairs = st.tuples(st.sampled_from(LABEL_VALUES), st.sampled_from(LABEL_VALUES))


def near_bounds(bounds: Sequence[float]) -> st.SearchStrategy[float]:
    """A bound itself or the floats just beside it: where an off-by-one shows."""
    return st.sampled_from(bounds).flatmap(
        lambda b: (
            st.sampled_from([float(b), math.nextafter(b, -math.inf), math.nextafter(b, 0)])
            | st.just(math.nextafter(b, math.inf))
        )
    )


def amounts(bounds: Sequence[float], *, integers_up_to: int) -> st.SearchStrategy[float]:
    return st.one_of(
        st.integers(min_value=0, max_value=integers_up_to),
        st.floats(min_value=0, max_value=bounds[-1] * 4, allow_nan=False),
        near_bounds(bounds).filter(lambda v: v >= 0),
        st.just(0),
    )


HISTOGRAMS: dict[str, tuple[str, tuple[float, ...], bool]] = {
    # method: (family, upstream buckets, whether 0 is observed)
    "record_request_size": (up.REQUEST_SIZES, up.REQUEST_SIZE_BUCKETS, True),
    "record_response_size": (up.RESPONSE_SIZES, up.RESPONSE_SIZE_BUCKETS, True),
    "record_input_tokens": (up.INPUT_TOKENS, up.INPUT_TOKEN_BUCKETS, False),
    "record_output_tokens": (up.OUTPUT_TOKENS, up.OUTPUT_TOKEN_BUCKETS, False),
}


def new_recorder() -> tuple[CollectorRegistry, Recorder]:
    registry = CollectorRegistry()
    return registry, Recorder(PrometheusBackend(registry))


def expected_series(
    family: str, buckets: Sequence[float], observations: list[tuple[tuple[str, str], float]]
) -> Samples:
    by_series: dict[tuple[str, str], list[float]] = {}
    for key, value in observations:
        by_series.setdefault(key, []).append(value)
    expected: Samples = {}
    for (m, t), values in by_series.items():
        expected.update(
            up.expected_histogram(family, buckets, values, model_name=m, target_model_name=t)
        )
    return expected


@pytest.mark.parametrize("method", sorted(HISTOGRAMS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_histograms_match_an_independent_computation(method: str, data: st.DataObject) -> None:
    family, buckets, zero_observed = HISTOGRAMS[method]
    calls = data.draw(
        st.lists(
            st.tuples(pairs, amounts(buckets, integers_up_to=int(buckets[-1]) * 2)), max_size=40
        )
    )
    registry, recorder = new_recorder()
    record: Callable[[str, str, float], None] = getattr(recorder, method)
    for (m, t), value in calls:
        record(m, t, value)

    observed = [(key, value) for key, value in calls if zero_observed or value > 0]
    families = parse_registry(registry)
    if not observed:
        assert family not in families
        return
    assert set(families) == {family}
    assert families[family].type == "histogram"
    assert families[family].samples == pytest.approx(
        expected_series(family, buckets, observed), rel=1e-12, abs=0
    )


@settings(max_examples=80, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            pairs,
            st.floats(min_value=0, max_value=1e6, allow_nan=False),
            st.one_of(
                st.floats(min_value=-5, max_value=4000, allow_nan=False),
                near_bounds(up.DURATION_BUCKETS),
                st.just(0.0),
            ),
        ),
        max_size=40,
    )
)
def test_latencies_match_an_independent_computation(
    calls: list[tuple[tuple[str, str], float, float]],
) -> None:
    registry, recorder = new_recorder()
    observed: list[tuple[tuple[str, str], float]] = []
    for (m, t), received, duration in calls:
        completed = max(0.0, received + duration)
        recorded = recorder.record_request_latency(m, t, received, completed)
        assert recorded is (completed > received)
        if completed > received:
            observed.append(((m, t), completed - received))
    families = parse_registry(registry)
    if not observed:
        assert families == {}
        return
    assert set(families) == {up.REQUEST_DURATION}
    assert families[up.REQUEST_DURATION].samples == pytest.approx(
        expected_series(up.REQUEST_DURATION, up.DURATION_BUCKETS, observed), rel=1e-12, abs=0
    )


@settings(max_examples=80, deadline=None)
@given(
    requests=st.lists(pairs, max_size=60),
    errors=st.lists(
        st.tuples(pairs, st.sampled_from(["", "Internal", "BadRequest", "ModelServerError"])),
        max_size=60,
    ),
)
def test_counters_count_calls_per_label_set(
    requests: list[tuple[str, str]], errors: list[tuple[tuple[str, str], str]]
) -> None:
    registry, recorder = new_recorder()
    for m, t in requests:
        recorder.record_request_counter(m, t)
    for (m, t), code in errors:
        recorder.record_request_error(m, t, code)

    expected_requests = Counter(requests)
    expected_errors = Counter((m, t, code) for (m, t), code in errors if code)
    families = parse_registry(registry)
    assert set(families) == {
        name
        for name, counts in (
            (up.REQUEST_TOTAL, expected_requests),
            (up.REQUEST_ERROR_TOTAL, expected_errors),
        )
        if counts
    }
    if expected_requests:
        assert families[up.REQUEST_TOTAL].samples == {
            (up.REQUEST_TOTAL, frozenset({("model_name", m), ("target_model_name", t)})): n
            for (m, t), n in expected_requests.items()
        }
    if expected_errors:
        assert families[up.REQUEST_ERROR_TOTAL].samples == {
            (
                up.REQUEST_ERROR_TOTAL,
                frozenset({("model_name", m), ("target_model_name", t), ("error_code", code)}),
            ): n
            for (m, t, code), n in expected_errors.items()
        }


@settings(max_examples=60, deadline=None)
@given(
    sets=st.lists(
        st.tuples(
            st.sampled_from(["p1", "p2", ""]),
            st.floats(min_value=0, max_value=1e9, allow_nan=False),
        ),
        max_size=30,
    )
)
def test_pool_gauges_hold_the_last_value_set(sets: list[tuple[str, float]]) -> None:
    registry, recorder = new_recorder()
    for pool, value in sets:
        recorder.record_pool_kv_cache_utilization(pool, value)
        recorder.record_pool_queue_size(pool, value * 2)
    last = dict(sets)
    families = parse_registry(registry)
    if not last:
        assert families == {}
        return
    for family, factor in ((up.POOL_KV_CACHE, 1), (up.POOL_QUEUE_SIZE, 2)):
        assert families[family].type == "gauge"
        assert families[family].samples == {
            (family, frozenset({("name", pool)})): value * factor for pool, value in last.items()
        }
