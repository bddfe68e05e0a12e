"""Choose an endpoint from the monitor's snapshot, as upstream's default scorers do.

Upstream's default scheduling profile (GIE v1.x ``default-plugins``) scores every candidate with
the ``queue-scorer`` and the ``kv-cache-utilization-scorer`` (weight 1 each; the prefix-cache
scorer needs a prefix index this library does not keep) and the ``max-score-picker`` takes the
highest total, ties broken at random:

* queue score: ``(max_queue - queue) / (max_queue - min_queue)`` over the candidates; 1 for all
  when every queue is equal;
* KV-cache score: ``1 - kv_cache_utilization``.

Only fresh endpoints are candidates (a stale one's numbers are old news).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .monitor import EndpointMetrics

__all__ = ["pick_endpoint", "score_endpoints"]


def score_endpoints(
    endpoints: Sequence[EndpointMetrics],
) -> list[tuple[float, EndpointMetrics]]:
    """``(score, endpoint)`` for every fresh endpoint, in the order given."""
    fresh = [m for m in endpoints if m.fresh]
    if not fresh:
        return []
    queues = [m.queue or 0.0 for m in fresh]
    low, high = min(queues), max(queues)
    scores = []
    for metrics, queue in zip(fresh, queues, strict=True):
        queue_score = 1.0 if high == low else (high - queue) / (high - low)
        kv = min(max(metrics.kv_cache or 0.0, 0.0), 1.0)
        scores.append((queue_score + (1.0 - kv), metrics))
    return scores


def pick_endpoint(
    endpoints: Sequence[EndpointMetrics], *, rng: random.Random | None = None
) -> EndpointMetrics | None:
    """The highest-scoring fresh endpoint (ties at random), or None when none is fresh."""
    scores = score_endpoints(endpoints)
    if not scores:
        return None
    best = max(score for score, _ in scores)
    top = [m for score, m in scores if score == best]
    return top[0] if len(top) == 1 else (rng or random).choice(top)
