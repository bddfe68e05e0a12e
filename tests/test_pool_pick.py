"""The picker's steps (a filter, two scorers, a picker) and their composition, on snapshots."""

from __future__ import annotations

import random

import pytest

from inference_metrics.pool import (
    Endpoint,
    EndpointMetrics,
    fresh_endpoints,
    kv_cache_scores,
    max_score_pick,
    pick_endpoint,
    queue_scores,
)


def endpoint(
    name: str, *, queue: float | None, kv: float | None, fresh: bool = True
) -> EndpointMetrics:
    return EndpointMetrics(
        endpoint=Endpoint(name, f"http://{name}:8000/metrics"),
        queue=queue,
        kv_cache=kv,
        fresh=fresh,
    )


LIGHT = endpoint("light", queue=0, kv=0.1)
MEDIUM = endpoint("medium", queue=5, kv=0.5)
HEAVY = endpoint("heavy", queue=10, kv=0.9)
STALE = endpoint("stale", queue=0, kv=0.0, fresh=False)


def test_the_filter_keeps_the_fresh_endpoints_in_order() -> None:
    assert fresh_endpoints([HEAVY, STALE, LIGHT]) == [HEAVY, LIGHT]


def test_the_queue_scorer_spreads_queues_over_zero_to_one() -> None:
    assert queue_scores([LIGHT, MEDIUM, HEAVY]) == [1.0, 0.5, 0.0]
    assert queue_scores([MEDIUM, MEDIUM]) == [1.0, 1.0]  # all equal: 1 for all
    assert queue_scores([]) == []


def test_the_kv_cache_scorer_is_one_minus_the_utilization_clamped() -> None:
    over = endpoint("over", queue=0, kv=1.5)
    unknown = endpoint("unknown", queue=0, kv=None)
    assert kv_cache_scores([LIGHT, HEAVY, over, unknown]) == pytest.approx([0.9, 0.1, 0.0, 1.0])


def test_the_picker_takes_the_highest_score_and_breaks_ties_at_random() -> None:
    assert max_score_pick([LIGHT, MEDIUM], [0.2, 0.7]) is MEDIUM
    assert max_score_pick([], []) is None
    picked = {max_score_pick([LIGHT, MEDIUM], [1.0, 1.0], rng=random.Random(s)) for s in range(20)}
    assert picked == {LIGHT, MEDIUM}


def test_pick_endpoint_runs_the_steps_in_order() -> None:
    assert pick_endpoint([HEAVY, STALE, MEDIUM, LIGHT]) is LIGHT
    assert pick_endpoint([STALE]) is None
