"""Views under this library's own names, for what upstream has no metric of (or no pool label).

* ``inference_metrics_response_parse_failures_total``: response bodies whose token usage could not
  be parsed (the request is still recorded, without tokens). Upstream has no such counter; every
  schema shows this one, so the parse failures a proxy counts instead of raising are visible.
* ``inference_pool_datalayer_poll_errors_total{name, source_type}`` and
  ``inference_pool_datalayer_extract_errors_total{name, source_type, extractor_type}``: the pool
  monitor's errors, in the shape of llm-d-router's ``llm_d_epp_datalayer_*_errors_total`` with
  the pool's ``name``, for the GIE schemas (GIE v1.5.0 has no data-layer error counters).
  llm-d-router's schema shows upstream's own names instead (an llm-d-router picker serves one
  pool, so they have no pool label: several pools recorded by one Recorder under that schema add
  up; docs/pool-monitor.md).

Each view is the same in every schema that shows it, so schemas recorded together share it.
"""

from __future__ import annotations

from .. import quantities as q
from ..spec import Kind, MetricSpec
from .base import View

__all__ = ["POOL_EXTRACT_ERRORS", "POOL_POLL_ERRORS", "RESPONSE_PARSE_FAILURES"]

RESPONSE_PARSE_FAILURES = View(
    q.RESPONSE_PARSE_FAILURES,
    MetricSpec(
        "inference_metrics_response_parse_failures_total",
        Kind.COUNTER,
        "Response bodies whose token usage could not be parsed (the request is recorded "
        "without tokens).",
        unit="{response}",
    ),
    ours=True,
)
POOL_POLL_ERRORS = View(
    q.DATA_LAYER_POLL_ERRORS,
    MetricSpec(
        "inference_pool_datalayer_poll_errors_total",
        Kind.COUNTER,
        "Data-source poll errors per source type.",
        ("name", "source_type"),
        unit="{error}",
    ),
    ours=True,
)
POOL_EXTRACT_ERRORS = View(
    q.DATA_LAYER_EXTRACT_ERRORS,
    MetricSpec(
        "inference_pool_datalayer_extract_errors_total",
        Kind.COUNTER,
        "Extract errors per source/extractor type.",
        ("name", "source_type", "extractor_type"),
        unit="{error}",
    ),
    ours=True,
)
