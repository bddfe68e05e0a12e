# ruff: noqa: E501
"""GIE v1.5.0's and llm-d-router's request and pool metrics, written out by hand from upstream.

Sources: gateway-api-inference-extension ``pkg/epp/metrics/metrics.go`` and
``collectors/inference_pool.go`` at tag v1.5.0; llm-d-router ``pkg/epp/metrics/metrics.go``,
``llm_d_router_metrics.go`` and ``collectors/inference_pool.go`` at v0.10.0 / HEAD ebab6879. Nothing
is imported from ``inference_metrics``: each fact is (name, type, labels, full HELP line, buckets).
The library's own names (``OURS_*``) have no upstream source: they are written out here so a
change to them is a visible change to this file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fact:
    name: str
    type: str
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] | None = None


M = ("model_name", "target_model_name")
MFP = ("model_name", "target_model_name", "fairness_id", "priority")

GENERAL = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20,
    30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
)  # fmt: skip
TPOT = (
    0.0005, 0.00205, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.6, 0.8, 1, 1.5, 2, 3, 4.5, 6, 12, 18, 24, 30, 36, 48, 60, 90, 120, 180, 270, 360,
)  # fmt: skip
REQ_SIZE = (
    64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288,
    1048576, 2097152, 4194304, 8388608, 16777216, 33554432, 67108864, 134217728, 268435456,
    536870912, 1073741824,
)  # fmt: skip
RESP_SIZE = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536)
IN_TOKENS = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072,
    262144, 524288, 1048576,
)  # fmt: skip
OUT_TOKENS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
NTPOT = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
LLMD_TTFT = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20,
    30, 45, 60, 120,
)  # fmt: skip
LLMD_TPOT = (
    0.0005, 0.00205, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.6, 0.8, 1, 2,
)  # fmt: skip
LLMD_ITL = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2)

GIE_V15: tuple[Fact, ...] = (
    Fact("inference_objective_request_total", "counter", (*M, "priority"),
         "[ALPHA] Counter of inference objective requests broken out for each model and target model."),
    Fact("inference_objective_request_error_total", "counter", (*M, "error_code"),
         "[ALPHA] Counter of inference objective requests errors broken out for each model and target model."),
    Fact("inference_objective_request_ttft_seconds", "histogram", M,
         "[ALPHA] Inference model TTFT distribution in seconds for each model and target model.", GENERAL),
    Fact("inference_objective_request_tpot_seconds", "histogram", M,
         "[ALPHA] Inference model TPOT distribution in seconds for each model and target model.", TPOT),
    Fact("inference_objective_request_duration_seconds", "histogram", M,
         "[ALPHA] Inference objective response latency distribution in seconds for each model and target model.", GENERAL),
    Fact("inference_objective_request_sizes", "histogram", M,
         "[ALPHA] Inference objective requests size distribution in bytes for each model and target model.", REQ_SIZE),
    Fact("inference_objective_response_sizes", "histogram", M,
         "[ALPHA] Inference objective responses size distribution in bytes for each model and target model.", RESP_SIZE),
    Fact("inference_objective_input_tokens", "histogram", M,
         "[ALPHA] Inference objective input token count distribution for requests in each model.", IN_TOKENS),
    Fact("inference_objective_output_tokens", "histogram", M,
         "[ALPHA] Inference objective output token count distribution for requests in each model.", OUT_TOKENS),
    Fact("inference_objective_prompt_cached_tokens", "histogram", M,
         "[ALPHA] Inference objective prompt cached token count distribution for requests in each model.", IN_TOKENS),
    Fact("inference_objective_running_requests", "gauge", ("model_name",),
         "[ALPHA] Inference objective number of running requests in each model."),
    Fact("inference_objective_normalized_time_per_output_token_seconds", "histogram", M,
         "[ALPHA] Inference objective latency divided by number of output tokens in seconds for each model and target model.", NTPOT),
    Fact("inference_pool_average_kv_cache_utilization", "gauge", ("name",),
         "[ALPHA] The average kv cache utilization for an inference server pool."),
    Fact("inference_pool_average_queue_size", "gauge", ("name",),
         "[ALPHA] The average number of requests pending in the model server queue."),
    Fact("inference_pool_average_running_requests", "gauge", ("name",),
         "[ALPHA] The average number of running requests across model servers in the pool."),
    Fact("inference_pool_ready_pods", "gauge", ("name",),
         "[ALPHA] The number of ready pods in the inference server pool."),
    Fact("inference_pool_per_pod_queue_size", "gauge", ("name", "model_server_pod"),
         "[ALPHA] The total number of requests pending in the model server queue for each underlying pod."),
    Fact("inference_extension_info", "gauge", ("commit", "build_ref"),
         "[ALPHA] General information of the current build of Inference Extension."),
)  # fmt: skip

LLM_D_ROUTER: tuple[Fact, ...] = (
    Fact("llm_d_epp_request_total", "counter", MFP, "[ALPHA] Total number of processed requests."),
    Fact("llm_d_epp_request_error_total", "counter", (*MFP, "error_code"),
         "[ALPHA] Total number of request errors."),
    Fact("llm_d_epp_request_duration_seconds", "histogram", MFP,
         "[ALPHA] End-to-end request latency distribution in seconds.", GENERAL),
    Fact("llm_d_epp_request_size_bytes", "histogram", MFP,
         "[ALPHA] Incoming request body size distribution in bytes.", REQ_SIZE),
    Fact("llm_d_epp_response_size_bytes", "histogram", MFP,
         "[ALPHA] Outgoing response body size distribution in bytes.", RESP_SIZE),
    Fact("llm_d_epp_request_input_tokens", "histogram", MFP,
         "[ALPHA] Input token count distribution per request.", IN_TOKENS),
    Fact("llm_d_epp_request_output_tokens", "histogram", MFP,
         "[ALPHA] Output token count distribution per request.", OUT_TOKENS),
    Fact("llm_d_epp_request_cached_tokens", "histogram", MFP,
         "[ALPHA] Distribution of prompt tokens read from cache per request, as reported by the model server in the response.", IN_TOKENS),
    Fact("llm_d_epp_request_running", "gauge", MFP, "[ALPHA] Current number of active running requests."),
    Fact("llm_d_epp_request_ntpot_seconds", "histogram", MFP,
         "[ALPHA] Normalized time per output token in seconds (end-to-end latency divided by output token count).", NTPOT),
    Fact("llm_d_epp_request_ttft_seconds", "histogram", (*MFP, "streaming"),
         "[ALPHA] Time to first token in seconds, measured from request received to first response byte. For non-streaming requests, this equals total request duration.", LLMD_TTFT),
    Fact("llm_d_epp_request_streaming_tpot_seconds", "histogram", MFP,
         "[ALPHA] Average time per output token in seconds for streaming requests, computed as (e2e - TTFT) / (output_tokens - 1).", LLMD_TPOT),
    Fact("llm_d_epp_request_streaming_itl_seconds", "histogram", MFP,
         "[ALPHA] Inter-token latency in seconds for streaming requests, measured as the time between consecutive response body chunks.", LLMD_ITL),
    Fact("llm_d_epp_average_kv_cache_utilization", "gauge", ("name",),
         "[ALPHA] The average kv cache utilization for an inference server pool."),
    Fact("llm_d_epp_average_queue_size", "gauge", ("name",),
         "[ALPHA] The average number of requests pending in the model server queue."),
    Fact("llm_d_epp_average_running_requests", "gauge", ("name",),
         "[ALPHA] The average number of running requests across model servers in the pool."),
    Fact("llm_d_epp_std_dev_kv_cache_utilization", "gauge", ("name",),
         "[ALPHA] The standard deviation kv cache utilization for an inference server pool."),
    Fact("llm_d_epp_std_dev_queue_size", "gauge", ("name",),
         "[ALPHA] The standard deviation number of requests pending in the model server queue."),
    Fact("llm_d_epp_std_dev_running_requests", "gauge", ("name",),
         "[ALPHA] The standard deviation number of running requests across model servers in the pool."),
    Fact("llm_d_epp_ready_endpoints", "gauge", ("name",),
         "[ALPHA] The number of ready endpoints in the inference server pool."),
    Fact("llm_d_epp_per_endpoint_queue_size", "gauge", ("name", "model_server_endpoint"),
         "[ALPHA] The total number of requests pending in the model server queue for each underlying endpoint."),
    Fact("llm_d_epp_info", "gauge", ("commit", "build_ref"),
         "[ALPHA] General information of the current build of Inference Extension."),
)  # fmt: skip

LLM_D_ROUTER_TWINS: tuple[Fact, ...] = (
    Fact("inference_objective_request_total", "counter", (*M, "priority"),
         "[ALPHA] [Deprecated: Use llm_d_epp_request_total] Counter of inference objective requests broken out for each model and target model."),
    Fact("inference_objective_request_error_total", "counter", (*M, "error_code"),
         "[ALPHA] [Deprecated: Use llm_d_epp_request_error_total] Counter of inference objective requests errors broken out for each model and target model."),
    Fact("inference_objective_request_duration_seconds", "histogram", M,
         "[ALPHA] [Deprecated: Use llm_d_epp_request_duration_seconds] Inference objective response latency distribution in seconds for each model and target model.", GENERAL),
    Fact("inference_objective_request_sizes", "histogram", M,
         "[ALPHA] [Deprecated: Use llm_d_epp_request_size_bytes] Inference objective requests size distribution in bytes for each model and target model.", REQ_SIZE),
    Fact("inference_objective_response_sizes", "histogram", M,
         "[ALPHA] [Deprecated: Use llm_d_epp_response_size_bytes] Inference objective responses size distribution in bytes for each model and target model.", RESP_SIZE),
    Fact("inference_objective_input_tokens", "histogram", M,
         "[ALPHA] [Deprecated: Use llm_d_epp_request_input_tokens] Inference objective input token count distribution for requests in each model.", IN_TOKENS),
    Fact("inference_objective_output_tokens", "histogram", M,
         "[ALPHA] [Deprecated: Use llm_d_epp_request_output_tokens] Inference objective output token count distribution for requests in each model.", OUT_TOKENS),
    Fact("inference_objective_prompt_cached_tokens", "histogram", M,
         "[ALPHA] [Deprecated: Use llm_d_epp_request_cached_tokens] Inference objective prompt cached token count distribution for requests in each model.", IN_TOKENS),
    Fact("inference_objective_running_requests", "gauge", ("model_name",),
         "[ALPHA] [Deprecated: Use llm_d_epp_request_running] Inference objective number of running requests in each model."),
    Fact("inference_objective_normalized_time_per_output_token_seconds", "histogram", M,
         "[ALPHA] [Deprecated: Use llm_d_epp_request_ntpot_seconds] Inference objective latency divided by number of output tokens in seconds for each model and target model.", NTPOT),
    Fact("inference_pool_average_kv_cache_utilization", "gauge", ("name",),
         "[ALPHA] [Deprecated: Use llm_d_epp_average_kv_cache_utilization] The average kv cache utilization for an inference server pool."),
    Fact("inference_pool_average_queue_size", "gauge", ("name",),
         "[ALPHA] [Deprecated: Use llm_d_epp_average_queue_size] The average number of requests pending in the model server queue."),
    Fact("inference_pool_average_running_requests", "gauge", ("name",),
         "[ALPHA] [Deprecated: Use llm_d_epp_average_running_requests] The average number of running requests across model servers in the pool."),
    Fact("inference_pool_ready_pods", "gauge", ("name",),
         "[ALPHA] [Deprecated: Use llm_d_epp_ready_endpoints] The number of ready pods in the inference server pool."),
    Fact("inference_pool_per_pod_queue_size", "gauge", ("name", "model_server_pod"),
         "[ALPHA] The total number of requests pending in the model server queue for each underlying pod."),
    Fact("inference_extension_info", "gauge", ("commit", "build_ref"),
         "[ALPHA] General information of the current build of Inference Extension."),
)  # fmt: skip

# This library's own names (no upstream source): response parse failures in every schema; the
# pool monitor's errors with the pool's name in the GIE schemas (GIE v1.5.0 has none).
PARSE_FAILURES = Fact("inference_metrics_response_parse_failures_total", "counter", (),
    "[ALPHA] Response bodies whose token usage could not be parsed (the request is recorded without tokens).")  # fmt: skip
OURS_GIE: tuple[Fact, ...] = (
    PARSE_FAILURES,
    Fact("inference_pool_datalayer_poll_errors_total", "counter", ("name", "source_type"),
         "[ALPHA] Data-source poll errors per source type."),
    Fact("inference_pool_datalayer_extract_errors_total", "counter", ("name", "source_type", "extractor_type"),
         "[ALPHA] Extract errors per source/extractor type."),
)  # fmt: skip
OURS_LLM_D_ROUTER: tuple[Fact, ...] = (PARSE_FAILURES,)
