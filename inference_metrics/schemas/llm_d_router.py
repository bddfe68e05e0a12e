"""``llm-d-router``: llm-d-router's ``llm_d_epp_*`` request and pool metrics, and their twins.

From llm-d/llm-d-router ``pkg/epp/metrics/llm_d_router_metrics.go``, ``metrics.go`` and
``collectors/inference_pool.go`` (v0.10.0 / HEAD ebab6879), where the endpoint picker lives since
GIE v1.6.0. Request metrics carry ``fairness_id`` (the ``x-llm-d-inference-fairness-id`` header)
and ``priority``; TTFT has ``streaming`` (``"true"``/``"false"``; for a non-streamed response TTFT
equals the request duration); streaming TPOT and inter-token latency are recorded for streamed
responses only. The pool gains standard-deviation gauges.

llm-d-router still emits the GIE v1.5.0 names beside the new ones ("deprecated twins"), with
``[Deprecated: Use llm_d_epp_…]`` in their HELP (except ``inference_pool_per_pod_queue_size`` and
``inference_extension_info``, which it keeps without that note). They are part of this schema
and can be switched off (:meth:`Schema.without_deprecated_twins`). Upstream no longer records the
legacy TTFT/TPOT names outside its predicted-latency plugin, so they are not twins here.

The data layer's error counters are upstream's (``RecordDataLayerPollError`` /
``RecordDataLayerExtractError``: ``llm_d_epp_datalayer_*_errors_total`` and their twins
``llm_d_inference_scheduler_datalayer_*_errors_total``), with upstream's labels only: no pool name
(one picker, one pool). This library's response parse failures are here too (:mod:`.ours`).

The scheduler's, plugins', flow control's and model rewrites' metrics (``llm_d_epp_scheduler_*``,
``llm_d_epp_plugin_*``, ``llm_d_epp_flow_control_*``, ``llm_d_epp_model_rewrite_decisions_total``,
the processing latencies) and their ``inference_extension_*`` twins are in :mod:`.picker`: they
are upstream main ebab6879's, where ``flow_control_pool_saturation`` has a ``stage`` label, which
the v0.10.0 tag lacks with six of their calls (docs/schemas.md).
"""

from __future__ import annotations

import dataclasses

from .. import quantities as q
from ..catalog import (
    INPUT_TOKEN_BUCKETS,
    LATENCY_BUCKETS,
    NTPOT_BUCKETS,
    OUTPUT_TOKEN_BUCKETS,
    REQUEST_SIZE_BUCKETS,
    RESPONSE_SIZE_BUCKETS,
)
from ..quantities import Quantity
from ..spec import Kind, MetricSpec
from . import gie_v15, ours, picker
from .base import Schema, View, spec_exemplars

__all__ = ["ITL_BUCKETS", "SCHEMA", "STREAMING_TPOT_BUCKETS", "TTFT_BUCKETS"]

REQUEST = ("model_name", "target_model_name", "fairness_id", "priority")
POOL = ("name",)

TTFT_BUCKETS = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30,
    45, 60, 120,
)  # fmt: skip
STREAMING_TPOT_BUCKETS = (
    0.0005, 0.00205, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.6, 0.8, 1, 2,
)  # fmt: skip
ITL_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2,
)  # fmt: skip


def _histogram(
    quantity: Quantity, name: str, help: str, buckets: tuple[float, ...], unit: str
) -> View:
    labels = (*REQUEST, "streaming") if quantity is q.TTFT else REQUEST
    return View(
        quantity,
        MetricSpec(
            name,
            Kind.HISTOGRAM,
            help,
            labels,
            buckets=buckets,
            unit=unit,
            exemplars=spec_exemplars(quantity),
        ),
    )


def _pool(quantity: Quantity, name: str, help: str, unit: str) -> View:
    return View(quantity, MetricSpec(name, Kind.GAUGE, help, POOL, unit=unit))


_CANONICAL: tuple[View, ...] = (
    View(
        q.REQUEST_TOTAL,
        MetricSpec(
            "llm_d_epp_request_total",
            Kind.COUNTER,
            "Total number of processed requests.",
            REQUEST,
            unit="{request}",
        ),
    ),
    View(
        q.REQUEST_ERROR_TOTAL,
        MetricSpec(
            "llm_d_epp_request_error_total",
            Kind.COUNTER,
            "Total number of request errors.",
            (*REQUEST, "error_code"),
            unit="{request}",
        ),
    ),
    _histogram(
        q.REQUEST_DURATION,
        "llm_d_epp_request_duration_seconds",
        "End-to-end request latency distribution in seconds.",
        LATENCY_BUCKETS,
        "s",
    ),
    _histogram(
        q.REQUEST_SIZE,
        "llm_d_epp_request_size_bytes",
        "Incoming request body size distribution in bytes.",
        REQUEST_SIZE_BUCKETS,
        "By",
    ),
    _histogram(
        q.RESPONSE_SIZE,
        "llm_d_epp_response_size_bytes",
        "Outgoing response body size distribution in bytes.",
        RESPONSE_SIZE_BUCKETS,
        "By",
    ),
    _histogram(
        q.INPUT_TOKENS,
        "llm_d_epp_request_input_tokens",
        "Input token count distribution per request.",
        INPUT_TOKEN_BUCKETS,
        "{token}",
    ),
    _histogram(
        q.OUTPUT_TOKENS,
        "llm_d_epp_request_output_tokens",
        "Output token count distribution per request.",
        OUTPUT_TOKEN_BUCKETS,
        "{token}",
    ),
    _histogram(
        q.CACHED_TOKENS,
        "llm_d_epp_request_cached_tokens",
        "Distribution of prompt tokens read from cache per request, as reported by the model "
        "server in the response.",
        INPUT_TOKEN_BUCKETS,
        "{token}",
    ),
    View(
        q.RUNNING_REQUESTS,
        MetricSpec(
            "llm_d_epp_request_running",
            Kind.GAUGE,
            "Current number of active running requests.",
            REQUEST,
            unit="{request}",
        ),
    ),
    _histogram(
        q.NTPOT,
        "llm_d_epp_request_ntpot_seconds",
        "Normalized time per output token in seconds (end-to-end latency divided by output "
        "token count).",
        NTPOT_BUCKETS,
        "s",
    ),
    _histogram(
        q.TTFT,
        "llm_d_epp_request_ttft_seconds",
        "Time to first token in seconds, measured from request received to first response "
        "byte. For non-streaming requests, this equals total request duration.",
        TTFT_BUCKETS,
        "s",
    ),
    _histogram(
        q.TPOT,
        "llm_d_epp_request_streaming_tpot_seconds",
        "Average time per output token in seconds for streaming requests, computed as "
        "(e2e - TTFT) / (output_tokens - 1).",
        STREAMING_TPOT_BUCKETS,
        "s",
    ),
    _histogram(
        q.ITL,
        "llm_d_epp_request_streaming_itl_seconds",
        "Inter-token latency in seconds for streaming requests, measured as the time between "
        "consecutive response body chunks.",
        ITL_BUCKETS,
        "s",
    ),
    _pool(
        q.POOL_KV_CACHE,
        "llm_d_epp_average_kv_cache_utilization",
        "The average kv cache utilization for an inference server pool.",
        "1",
    ),
    _pool(
        q.POOL_QUEUE_SIZE,
        "llm_d_epp_average_queue_size",
        "The average number of requests pending in the model server queue.",
        "{request}",
    ),
    _pool(
        q.POOL_RUNNING_REQUESTS,
        "llm_d_epp_average_running_requests",
        "The average number of running requests across model servers in the pool.",
        "{request}",
    ),
    _pool(
        q.POOL_STD_DEV_KV_CACHE,
        "llm_d_epp_std_dev_kv_cache_utilization",
        "The standard deviation kv cache utilization for an inference server pool.",
        "1",
    ),
    _pool(
        q.POOL_STD_DEV_QUEUE_SIZE,
        "llm_d_epp_std_dev_queue_size",
        "The standard deviation number of requests pending in the model server queue.",
        "{request}",
    ),
    _pool(
        q.POOL_STD_DEV_RUNNING_REQUESTS,
        "llm_d_epp_std_dev_running_requests",
        "The standard deviation number of running requests across model servers in the pool.",
        "{request}",
    ),
    _pool(
        q.POOL_READY,
        "llm_d_epp_ready_endpoints",
        "The number of ready endpoints in the inference server pool.",
        "{endpoint}",
    ),
    View(
        q.POOL_ENDPOINT_QUEUE_SIZE,
        MetricSpec(
            "llm_d_epp_per_endpoint_queue_size",
            Kind.GAUGE,
            "The total number of requests pending in the model server queue for each "
            "underlying endpoint.",
            ("name", "model_server_endpoint"),
            unit="{request}",
        ),
    ),
    View(
        q.INFO,
        MetricSpec(
            "llm_d_epp_info",
            Kind.GAUGE,
            "General information of the current build of Inference Extension.",
            ("commit", "build_ref"),
            unit="1",
        ),
    ),
    View(
        q.DATA_LAYER_POLL_ERRORS,
        MetricSpec(
            "llm_d_epp_datalayer_poll_errors_total",
            Kind.COUNTER,
            "Data-source poll errors per source type.",
            ("source_type",),
            unit="{error}",
        ),
    ),
    View(
        q.DATA_LAYER_EXTRACT_ERRORS,
        MetricSpec(
            "llm_d_epp_datalayer_extract_errors_total",
            Kind.COUNTER,
            "Extract errors per source/extractor type.",
            ("source_type", "extractor_type"),
            unit="{error}",
        ),
    ),
    *picker.LLM_D_ROUTER,
    ours.RESPONSE_PARSE_FAILURES,
)

#: GIE v1.5.0 metrics llm-d-router keeps as twins: its own name for each, or None when it keeps
#: the legacy one without a deprecation note.
_TWINS: dict[str, str | None] = {
    "inference_objective_request_total": "llm_d_epp_request_total",
    "inference_objective_request_error_total": "llm_d_epp_request_error_total",
    "inference_objective_request_duration_seconds": "llm_d_epp_request_duration_seconds",
    "inference_objective_request_sizes": "llm_d_epp_request_size_bytes",
    "inference_objective_response_sizes": "llm_d_epp_response_size_bytes",
    "inference_objective_input_tokens": "llm_d_epp_request_input_tokens",
    "inference_objective_output_tokens": "llm_d_epp_request_output_tokens",
    "inference_objective_prompt_cached_tokens": "llm_d_epp_request_cached_tokens",
    "inference_objective_running_requests": "llm_d_epp_request_running",
    "inference_objective_normalized_time_per_output_token_seconds": (
        "llm_d_epp_request_ntpot_seconds"
    ),
    "inference_pool_average_kv_cache_utilization": "llm_d_epp_average_kv_cache_utilization",
    "inference_pool_average_queue_size": "llm_d_epp_average_queue_size",
    "inference_pool_average_running_requests": "llm_d_epp_average_running_requests",
    "inference_pool_ready_pods": "llm_d_epp_ready_endpoints",
    "inference_pool_per_pod_queue_size": None,
    "inference_extension_info": None,
}

_DEPRECATED_TWINS = (
    tuple(
        dataclasses.replace(
            view,
            spec=dataclasses.replace(view.spec, replaced_by=_TWINS[view.spec.name]),
            deprecated_twin=True,
        )
        for view in gie_v15.SCHEMA
        if view.spec.name in _TWINS
    )
    + tuple(
        # The data layer's counters under llm-d-inference-scheduler's former subsystem.
        dataclasses.replace(
            view,
            spec=dataclasses.replace(
                view.spec,
                name=view.spec.name.replace("llm_d_epp_", "llm_d_inference_scheduler_"),
                replaced_by=view.spec.name,
            ),
            deprecated_twin=True,
        )
        for view in _CANONICAL
        if view.quantity in (q.DATA_LAYER_POLL_ERRORS, q.DATA_LAYER_EXTRACT_ERRORS)
    )
    + picker.LLM_D_ROUTER_TWINS
)

SCHEMA = Schema(
    name="llm-d-router",
    title="llm-d-router (v0.10.0, main ebab6879)",
    description=(
        "llm-d-router's endpoint-picker metrics (`llm_d_epp_*`) with `fairness_id` and "
        "`priority` on every request metric, `streaming` on TTFT, streaming TPOT, inter-token "
        "latency and standard-deviation pool gauges, the scheduler's, plugins', flow control's "
        "and model rewrites' metrics, plus the GIE v1.5.0 names it still emits beside them as "
        "deprecated twins."
    ),
    metrics=_CANONICAL + _DEPRECATED_TWINS,
)
