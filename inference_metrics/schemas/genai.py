"""The OpenTelemetry GenAI metrics (semantic conventions v1.41.0, status Development), as data.

From ``docs/gen-ai/gen-ai-metrics.md`` and ``model/gen-ai/metrics.yaml`` at semantic-conventions
v1.41.0, the last release that holds them (later ones point to the semantic-conventions-genai
repository): :data:`GENAI_METRICS` as the conventions define them, and :func:`genai_schema`, the
views that record them from the same quantities as every schema (request duration, failures
included; TTFT and TPOT of streamed responses; token usage by type). The names are the
conventions' own, with dots (:attr:`~inference_metrics.spec.Naming.OPENTELEMETRY`): only an
OpenTelemetry backend takes them. :class:`inference_metrics.genai.GenAIRecorder` records this
schema on a meter provider of its own beside any other schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import quantities as q
from ..spec import Kind, MetricSpec, Naming
from .base import Schema, View
from .gie_v03 import STREAMED

__all__ = ["GENAI_METRICS", "SEMCONV_VERSION", "GenAIMetric", "genai_schema"]

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


#: Each attribute and the recording input it takes its value from (the provider is a constant).
_INPUTS = {
    OPERATION: "operation",
    REQUEST_MODEL: "model_name",
    RESPONSE_MODEL: "target_model_name",
    ERROR_TYPE: "error_code",
    TOKEN_TYPE: "token_type",
}
#: The attributes a series carries only when known (the conventions' conditionally required and
#: recommended ones): left out when empty.
_OPTIONAL = (REQUEST_MODEL, RESPONSE_MODEL, ERROR_TYPE)
_BASE = (OPERATION, PROVIDER, REQUEST_MODEL, RESPONSE_MODEL)


def _view(
    metric: GenAIMetric,
    quantity: q.Quantity,
    extra: tuple[str, ...],
    provider_name: str,
    default_operation: str,
    where: Mapping[str, str] | None = None,
) -> View:
    labels = (*_BASE, *extra)
    spec = MetricSpec(
        metric.name,
        Kind.HISTOGRAM,
        metric.description,
        labels,
        buckets=metric.buckets,
        unit=metric.unit,
        naming=Naming.OPENTELEMETRY,
        optional_labels=tuple(label for label in labels if label in _OPTIONAL),
    )
    return View(
        quantity,
        spec,
        inputs={label: source for label, source in _INPUTS.items() if label in labels},
        constants={PROVIDER: provider_name},
        where=where or {},
        defaults={"operation": default_operation},
    )


def genai_schema(provider_name: str, default_operation: str = "chat") -> Schema:
    """The GenAI metrics as a schema: ``gen_ai.provider.name`` is ``provider_name`` on every
    series, ``gen_ai.operation.name`` the call's ``operation`` or ``default_operation``."""
    for argument, value in (
        ("provider_name", provider_name),
        ("default_operation", default_operation),
    ):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{argument} must be a non-empty string, got {value!r}")
    common = (provider_name, default_operation)
    return Schema(
        name="genai",
        title=f"OpenTelemetry GenAI (semantic conventions v{SEMCONV_VERSION})",
        description=(
            "The GenAI semantic conventions' server metrics and token usage, for an "
            "OpenTelemetry backend."
        ),
        metrics=(
            _view(REQUEST_DURATION, q.GENAI_REQUEST_DURATION, (ERROR_TYPE,), *common),
            _view(TIME_TO_FIRST_TOKEN, q.TTFT, (), *common, where=STREAMED),
            _view(TIME_PER_OUTPUT_TOKEN, q.TPOT, (), *common),
            _view(TOKEN_USAGE, q.GENAI_TOKEN_USAGE, (TOKEN_TYPE,), *common),
        ),
    )
