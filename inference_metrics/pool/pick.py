"""Choose an endpoint from the monitor's snapshot, as upstream's default scorers do.

Upstream's default scheduling profile (GIE v1.x ``default-plugins``) scores every candidate with
the ``queue-scorer`` and the ``kv-cache-utilization-scorer`` (weight 1 each; the prefix-cache
scorer needs a prefix index this library does not keep) and the ``max-score-picker`` takes the
highest total, ties broken at random:

* queue score: ``(max_queue - queue) / (max_queue - min_queue)`` over the candidates; 1 for all
  when every queue is equal;
* KV-cache score: ``1 - kv_cache_utilization``.

Only fresh endpoints are candidates (a stale one's numbers are old news).

Each step is a function of its own, as upstream's plugins are (a filter, two scorers, a picker),
so a scheduler can time each one (``Recorder.record_plugin_processing_latency``: the example
ext_proc picker does); :func:`pick_endpoint` runs them in order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .monitor import EndpointMetrics

__all__ = [
    "fresh_endpoints",
    "kv_cache_scores",
    "max_score_pick",
    "pick_endpoint",
    "queue_scores",
    "score_endpoints",
]


def fresh_endpoints(endpoints: Sequence[EndpointMetrics]) -> list[EndpointMetrics]:
    """The filter: the endpoints whose numbers are fresh, in the order given."""
    return [m for m in endpoints if m.fresh]


def queue_scores(candidates: Sequence[EndpointMetrics]) -> list[float]:
    """The queue scorer: ``(max - queue) / (max - min)`` per candidate; 1 when all are equal."""
    queues = [m.queue or 0.0 for m in candidates]
    if not queues:
        return []
    low, high = min(queues), max(queues)
    return [1.0 if high == low else (high - queue) / (high - low) for queue in queues]


def kv_cache_scores(candidates: Sequence[EndpointMetrics]) -> list[float]:
    """The KV-cache utilization scorer: ``1 - utilization`` (clamped to 0..1) per candidate."""
    return [1.0 - min(max(m.kv_cache or 0.0, 0.0), 1.0) for m in candidates]


def max_score_pick(
    candidates: Sequence[EndpointMetrics],
    scores: Sequence[float],
    *,
    rng: random.Random | None = None,
) -> EndpointMetrics | None:
    """The picker: the candidate with the highest score (ties at random), None without any."""
    if not candidates:
        return None
    best = max(scores)
    top = [m for score, m in zip(scores, candidates, strict=True) if score == best]
    return top[0] if len(top) == 1 else (rng or random).choice(top)


def score_endpoints(
    endpoints: Sequence[EndpointMetrics],
) -> list[tuple[float, EndpointMetrics]]:
    """``(score, endpoint)`` for every fresh endpoint, in the order given."""
    fresh = fresh_endpoints(endpoints)
    totals = [q + kv for q, kv in zip(queue_scores(fresh), kv_cache_scores(fresh), strict=True)]
    return list(zip(totals, fresh, strict=True))


def pick_endpoint(
    endpoints: Sequence[EndpointMetrics], *, rng: random.Random | None = None
) -> EndpointMetrics | None:
    """The highest-scoring fresh endpoint (ties at random), or None when none is fresh."""
    scores = score_endpoints(endpoints)
    return max_score_pick([m for _, m in scores], [s for s, _ in scores], rng=rng)
