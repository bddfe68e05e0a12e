"""``gie-v0.3``: the seed's names (``inference_model_*``, ``inference_pool_*``), the default.

Exactly the catalogue of :mod:`inference_metrics.catalog`: upstream's v0.2.0 seed metrics and the
ones added later under the same names. Nothing here changes what the library exposed before
schemas existed.
"""

from __future__ import annotations

from .. import catalog as c
from .base import Role, Schema, SchemaMetric

__all__ = ["SCHEMA"]

_ROLES = {
    c.REQUEST_TOTAL: Role.REQUEST_TOTAL,
    c.REQUEST_ERROR_TOTAL: Role.REQUEST_ERROR_TOTAL,
    c.REQUEST_DURATION: Role.REQUEST_DURATION,
    c.REQUEST_SIZES: Role.REQUEST_SIZE,
    c.RESPONSE_SIZES: Role.RESPONSE_SIZE,
    c.INPUT_TOKENS: Role.INPUT_TOKENS,
    c.OUTPUT_TOKENS: Role.OUTPUT_TOKENS,
    c.POOL_AVERAGE_KV_CACHE_UTILIZATION: Role.POOL_KV_CACHE,
    c.POOL_AVERAGE_QUEUE_SIZE: Role.POOL_QUEUE_SIZE,
    c.RUNNING_REQUESTS: Role.RUNNING_REQUESTS,
    c.NORMALIZED_TIME_PER_OUTPUT_TOKEN: Role.NTPOT,
    c.REQUEST_TTFT: Role.TTFT,
    c.REQUEST_TPOT: Role.TPOT,
    c.PROMPT_CACHED_TOKENS: Role.CACHED_TOKENS,
    c.POOL_READY_PODS: Role.POOL_READY,
    c.POOL_AVERAGE_RUNNING_REQUESTS: Role.POOL_RUNNING_REQUESTS,
    c.POOL_PER_POD_QUEUE_SIZE: Role.POOL_ENDPOINT_QUEUE_SIZE,
    c.EXTENSION_INFO: Role.INFO,
}

SCHEMA = Schema(
    name="gie-v0.3",
    title="Gateway API Inference Extension v0.3 (the seed's names)",
    description=(
        "The endpoint picker's metrics under the names upstream used up to v1.0.2 "
        "(`inference_model_*`, `inference_pool_*`): the v0.2.0 seed metrics and the ones added "
        "later under the same names. The default."
    ),
    metrics=tuple(SchemaMetric(_ROLES[spec], spec) for spec in c.CATALOG),
)
