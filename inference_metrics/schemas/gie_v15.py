"""``gie-v1.5``: upstream GIE v1.5.0's request and pool metrics.

From ``pkg/epp/metrics/metrics.go`` and ``pkg/epp/metrics/collectors/inference_pool.go`` at tag
v1.5.0, the last GIE release that holds the endpoint picker. v1.1.0 renamed ``inference_model_*``
to ``inference_objective_*``; v1.5.0 added ``priority`` to ``request_total`` (upstream writes the
integer priority as decimal text) and gave TPOT its own buckets. Every metric is ALPHA.

Upstream v1.5.0 records TTFT and TPOT only from its predicted-latency plugin; here they are fed
from the same request events as in every schema (streamed responses only). The scheduler's,
plugins', flow control's and model rewrites' ``inference_extension_*`` metrics are GIE v1.5.0's
(:mod:`.picker`; its pool saturation has no ``stage`` and shows the ``effective`` one).
Prediction and SLO metrics have no recording call here and are left out.
GIE v1.5.0 has no data-layer error counters: the pool monitor's errors show under this library's
own names, with this library's response parse failures (:mod:`.ours`).
"""

from __future__ import annotations

from .. import quantities as q
from ..catalog import (
    INPUT_TOKEN_BUCKETS,
    LATENCY_BUCKETS,
    NTPOT_BUCKETS,
    OUTPUT_TOKEN_BUCKETS,
    REQUEST_SIZE_BUCKETS,
    RESPONSE_SIZE_BUCKETS,
    TPOT_BUCKETS,
)
from ..quantities import Quantity
from ..spec import Kind, MetricSpec
from . import ours, picker
from .base import Schema, View, spec_exemplars
from .gie_v03 import STREAMED

__all__ = ["SCHEMA"]

MODEL = ("model_name", "target_model_name")
POOL = ("name",)


def _histogram(
    quantity: Quantity, name: str, help: str, buckets: tuple[float, ...], unit: str
) -> View:
    spec = MetricSpec(
        name,
        Kind.HISTOGRAM,
        help,
        MODEL,
        buckets=buckets,
        unit=unit,
        exemplars=spec_exemplars(quantity),
    )
    return View(quantity, spec, where=STREAMED if quantity is q.TTFT else {})


def _pool(quantity: Quantity, name: str, help: str, unit: str) -> View:
    return View(quantity, MetricSpec(name, Kind.GAUGE, help, POOL, unit=unit))


_OBJECTIVE = "Inference objective"

SCHEMA = Schema(
    name="gie-v1.5",
    title="Gateway API Inference Extension v1.5.0",
    description=(
        "Upstream GIE v1.5.0's request and pool metrics (`inference_objective_*`, "
        "`inference_pool_*`, `inference_extension_info`), with `priority` on `request_total`, "
        "and its scheduler, plugin, flow-control and model-rewrite metrics "
        "(`inference_extension_*`)."
    ),
    metrics=(
        View(
            q.REQUEST_TOTAL,
            MetricSpec(
                "inference_objective_request_total",
                Kind.COUNTER,
                "Counter of inference objective requests broken out for each model and target "
                "model.",
                (*MODEL, "priority"),
                unit="{request}",
            ),
        ),
        View(
            q.REQUEST_ERROR_TOTAL,
            MetricSpec(
                "inference_objective_request_error_total",
                Kind.COUNTER,
                "Counter of inference objective requests errors broken out for each model and "
                "target model.",
                (*MODEL, "error_code"),
                unit="{request}",
            ),
        ),
        _histogram(
            q.TTFT,
            "inference_objective_request_ttft_seconds",
            "Inference model TTFT distribution in seconds for each model and target model.",
            LATENCY_BUCKETS,
            "s",
        ),
        _histogram(
            q.TPOT,
            "inference_objective_request_tpot_seconds",
            "Inference model TPOT distribution in seconds for each model and target model.",
            TPOT_BUCKETS,
            "s",
        ),
        _histogram(
            q.REQUEST_DURATION,
            "inference_objective_request_duration_seconds",
            f"{_OBJECTIVE} response latency distribution in seconds for each model and "
            "target model.",
            LATENCY_BUCKETS,
            "s",
        ),
        _histogram(
            q.REQUEST_SIZE,
            "inference_objective_request_sizes",
            f"{_OBJECTIVE} requests size distribution in bytes for each model and target model.",
            REQUEST_SIZE_BUCKETS,
            "By",
        ),
        _histogram(
            q.RESPONSE_SIZE,
            "inference_objective_response_sizes",
            f"{_OBJECTIVE} responses size distribution in bytes for each model and target model.",
            RESPONSE_SIZE_BUCKETS,
            "By",
        ),
        _histogram(
            q.INPUT_TOKENS,
            "inference_objective_input_tokens",
            f"{_OBJECTIVE} input token count distribution for requests in each model.",
            INPUT_TOKEN_BUCKETS,
            "{token}",
        ),
        _histogram(
            q.OUTPUT_TOKENS,
            "inference_objective_output_tokens",
            f"{_OBJECTIVE} output token count distribution for requests in each model.",
            OUTPUT_TOKEN_BUCKETS,
            "{token}",
        ),
        _histogram(
            q.CACHED_TOKENS,
            "inference_objective_prompt_cached_tokens",
            f"{_OBJECTIVE} prompt cached token count distribution for requests in each model.",
            INPUT_TOKEN_BUCKETS,
            "{token}",
        ),
        View(
            q.RUNNING_REQUESTS,
            MetricSpec(
                "inference_objective_running_requests",
                Kind.GAUGE,
                f"{_OBJECTIVE} number of running requests in each model.",
                ("model_name",),
                unit="{request}",
            ),
        ),
        _histogram(
            q.NTPOT,
            "inference_objective_normalized_time_per_output_token_seconds",
            f"{_OBJECTIVE} latency divided by number of output tokens in seconds for each "
            "model and target model.",
            NTPOT_BUCKETS,
            "s",
        ),
        _pool(
            q.POOL_KV_CACHE,
            "inference_pool_average_kv_cache_utilization",
            "The average kv cache utilization for an inference server pool.",
            "1",
        ),
        _pool(
            q.POOL_QUEUE_SIZE,
            "inference_pool_average_queue_size",
            "The average number of requests pending in the model server queue.",
            "{request}",
        ),
        _pool(
            q.POOL_RUNNING_REQUESTS,
            "inference_pool_average_running_requests",
            "The average number of running requests across model servers in the pool.",
            "{request}",
        ),
        _pool(
            q.POOL_READY,
            "inference_pool_ready_pods",
            "The number of ready pods in the inference server pool.",
            "{pod}",
        ),
        View(
            q.POOL_ENDPOINT_QUEUE_SIZE,
            MetricSpec(
                "inference_pool_per_pod_queue_size",
                Kind.GAUGE,
                "The total number of requests pending in the model server queue for each "
                "underlying pod.",
                ("name", "model_server_pod"),
                unit="{request}",
            ),
        ),
        View(
            q.INFO,
            MetricSpec(
                "inference_extension_info",
                Kind.GAUGE,
                "General information of the current build of Inference Extension.",
                ("commit", "build_ref"),
                unit="1",
            ),
        ),
        *picker.GIE_V15,
        ours.RESPONSE_PARSE_FAILURES,
        ours.POOL_POLL_ERRORS,
        ours.POOL_EXTRACT_ERRORS,
    ),
)
