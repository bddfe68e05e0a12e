"""``gie-v0.3``: the seed's names (``inference_model_*``, ``inference_pool_*``), the default.

The specs of :mod:`inference_metrics.catalog` (upstream's v0.2.0 seed metrics and the ones added
later under the same names), and this library's own counters (:mod:`.ours`): response parse
failures and the pool monitor's errors with the pool's ``name``.
"""

from __future__ import annotations

from .. import catalog as c
from .. import quantities as q
from . import ours
from .base import Schema, View

__all__ = ["SCHEMA"]

#: TTFT without a ``streaming`` label: streamed responses only (upstream records no other).
STREAMED = {"streaming": "true"}

SCHEMA = Schema(
    name="gie-v0.3",
    title="Gateway API Inference Extension v0.3 (the seed's names)",
    description=(
        "The endpoint picker's metrics under the names upstream used up to v1.0.2 "
        "(`inference_model_*`, `inference_pool_*`): the v0.2.0 seed metrics and the ones added "
        "later under the same names. The default."
    ),
    metrics=(
        View(q.REQUEST_TOTAL, c.REQUEST_TOTAL),
        View(q.REQUEST_ERROR_TOTAL, c.REQUEST_ERROR_TOTAL),
        View(q.REQUEST_DURATION, c.REQUEST_DURATION),
        View(q.REQUEST_SIZE, c.REQUEST_SIZES),
        View(q.RESPONSE_SIZE, c.RESPONSE_SIZES),
        View(q.INPUT_TOKENS, c.INPUT_TOKENS),
        View(q.OUTPUT_TOKENS, c.OUTPUT_TOKENS),
        View(q.POOL_KV_CACHE, c.POOL_AVERAGE_KV_CACHE_UTILIZATION),
        View(q.POOL_QUEUE_SIZE, c.POOL_AVERAGE_QUEUE_SIZE),
        View(q.RUNNING_REQUESTS, c.RUNNING_REQUESTS),
        View(q.NTPOT, c.NORMALIZED_TIME_PER_OUTPUT_TOKEN),
        View(q.TTFT, c.REQUEST_TTFT, where=STREAMED),
        View(q.TPOT, c.REQUEST_TPOT),
        View(q.CACHED_TOKENS, c.PROMPT_CACHED_TOKENS),
        View(q.POOL_READY, c.POOL_READY_PODS),
        View(q.POOL_RUNNING_REQUESTS, c.POOL_AVERAGE_RUNNING_REQUESTS),
        View(q.POOL_ENDPOINT_QUEUE_SIZE, c.POOL_PER_POD_QUEUE_SIZE),
        View(q.INFO, c.EXTENSION_INFO),
        ours.RESPONSE_PARSE_FAILURES,
        ours.POOL_POLL_ERRORS,
        ours.POOL_EXTRACT_ERRORS,
    ),
)
