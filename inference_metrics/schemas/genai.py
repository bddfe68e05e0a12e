"""The OpenTelemetry GenAI metrics (semantic conventions v1.41.0, status Development), as data.

Recorded by :class:`inference_metrics.genai.GenAIRecorder` (OpenTelemetry only: the names are the
conventions' own, with dots). From ``docs/gen-ai/gen-ai-metrics.md`` and
``model/gen-ai/metrics.yaml`` at semantic-conventions v1.41.0, the last release that holds them
(later ones point to the semantic-conventions-genai repository).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GENAI_METRICS", "SEMCONV_VERSION", "GenAIMetric"]

SEMCONV_VERSION = "1.41.0"
OVERFLOW = "__overflow__"

DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKEN_BUCKETS = tuple(float(4**n) for n in range(14))  # 1, 4, 16, ... 67108864

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
TOKEN_TYPE = "gen_ai.token.type"  # noqa: S105 (an attribute name)
ERROR_TYPE = "error.type"


@dataclass(frozen=True, slots=True)
class GenAIMetric:
    """One GenAI metric as the conventions define it."""

    name: str
    unit: str
    description: str
    buckets: tuple[float, ...]
    required: tuple[str, ...]
    conditionally_required: tuple[str, ...]
    recommended: tuple[str, ...]


_COMMON_REQUIRED = (OPERATION, PROVIDER)
REQUEST_DURATION = GenAIMetric(
    "gen_ai.server.request.duration",
    "s",
    "Generative AI server request duration such as time-to-last byte or last output token.",
    DURATION_BUCKETS,
    _COMMON_REQUIRED,
    (REQUEST_MODEL, ERROR_TYPE),
    (RESPONSE_MODEL,),
)
TIME_TO_FIRST_TOKEN = GenAIMetric(
    "gen_ai.server.time_to_first_token",
    "s",
    "Time to generate first token for successful responses.",
    TTFT_BUCKETS,
    _COMMON_REQUIRED,
    (REQUEST_MODEL,),
    (RESPONSE_MODEL,),
)
TIME_PER_OUTPUT_TOKEN = GenAIMetric(
    "gen_ai.server.time_per_output_token",
    "s",
    "Time per output token generated after the first token for successful responses.",
    TPOT_BUCKETS,
    _COMMON_REQUIRED,
    (REQUEST_MODEL,),
    (RESPONSE_MODEL,),
)
TOKEN_USAGE = GenAIMetric(
    "gen_ai.client.token.usage",
    "{token}",
    "Number of input and output tokens used.",
    TOKEN_BUCKETS,
    (*_COMMON_REQUIRED, TOKEN_TYPE),
    (REQUEST_MODEL,),
    (RESPONSE_MODEL,),
)
GENAI_METRICS = (REQUEST_DURATION, TIME_TO_FIRST_TOKEN, TIME_PER_OUTPUT_TOKEN, TOKEN_USAGE)
