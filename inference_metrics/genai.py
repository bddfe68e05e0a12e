"""OpenTelemetry GenAI metrics (semantic conventions v1.41.0, status Development), opt-in.

What OpenTelemetry users (and the Envoy AI Gateway) expect from a generative-AI server, recorded
from the same request events as the endpoint picker's metrics:

* ``gen_ai.server.request.duration`` (``s``): every request; ``error.type`` on failures;
* ``gen_ai.server.time_to_first_token`` (``s``): streamed successful responses;
* ``gen_ai.server.time_per_output_token`` (``s``): streamed, more than one output token:
  (duration - TTFT) / (output tokens - 1);
* ``gen_ai.client.token.usage`` (``{token}``): input and output tokens when > 0, by
  ``gen_ai.token.type`` (``input``/``output``).

All four are histograms. Attributes: ``gen_ai.operation.name`` (required;
:func:`operation_for_path` derives it from the endpoint), ``gen_ai.provider.name`` (required;
configured per recorder), ``gen_ai.request.model`` (when known), ``gen_ai.response.model`` (the
target model the request was routed to, when known), ``error.type`` (failures only, on the
duration). Each histogram advises the conventions' bucket boundaries. The names are the
conventions' own (dots), so these are not Prometheus names: the OpenTelemetry Prometheus exporter
turns ``gen_ai.server.request.duration`` into ``gen_ai_server_request_duration_seconds``.

Label values are untrusted: at most ``max_series`` distinct attribute sets per kind of
event, later new ones recorded with every varying attribute set to ``__overflow__``. Under N
worker processes each process has its own instruments; the OpenTelemetry pipeline (OTLP, the
Collector) aggregates them as it aggregates any instrument.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping

try:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import Histogram, MeterProvider
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "GenAIRecorder needs the OpenTelemetry API and SDK: install the 'otel' extra "
        f"(pip install 'inference-metrics[otel]') ({exc})"
    ) from exc

# Here for the GenAI API; it lives with the payloads so that the middleware and the lifecycle,
# which pass it on, import no OpenTelemetry.
from .payloads import operation_for_path
from .recorder import _number, check_label_value
from .schemas.genai import (
    ERROR_TYPE,
    GENAI_METRICS,
    OPERATION,
    OVERFLOW,
    PROVIDER,
    REQUEST_DURATION,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    SEMCONV_VERSION,
    TIME_PER_OUTPUT_TOKEN,
    TIME_TO_FIRST_TOKEN,
    TOKEN_TYPE,
    TOKEN_USAGE,
    GenAIMetric,
)

__all__ = [
    "GENAI_METRICS",
    "SEMCONV_VERSION",
    "GenAIMetric",
    "GenAIRecorder",
    "operation_for_path",
]


class GenAIRecorder:
    """The GenAI metrics on ``meter_provider`` (default: the global one).

    ``provider_name`` (required, keyword-only: there is no default) is ``gen_ai.provider.name``
    (``openai``, ``aws.bedrock``, ... or your own); ``default_operation`` the
    ``gen_ai.operation.name`` of calls that give none.
    ``max_series`` and ``max_label_length`` bound the attribute sets and values.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        *,
        provider_name: str,
        meter_name: str = "inference_metrics.genai",
        default_operation: str = "chat",
        max_series: int = 1000,
        max_label_length: int = 1024,
    ) -> None:
        if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
            raise TypeError(
                f"meter_provider must be a MeterProvider or None, got {meter_provider!r}"
            )
        if not isinstance(provider_name, str) or not provider_name:
            raise ValueError(f"provider_name must be a non-empty string, got {provider_name!r}")
        for argument, value in (("max_series", max_series), ("max_label_length", max_label_length)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{argument} must be an int, got {value!r}")
            if value < 1:
                raise ValueError(f"{argument} must be >= 1, got {value!r}")
        provider = otel_metrics.get_meter_provider() if meter_provider is None else meter_provider
        meter = provider.get_meter(meter_name, schema_url=None)
        if not isinstance(default_operation, str) or not default_operation:
            raise ValueError(
                f"default_operation must be a non-empty string, got {default_operation!r}"
            )
        self.provider_name = provider_name
        self.default_operation = default_operation
        self._max_series = max_series
        self._max_label_length = max_label_length
        self._instruments: dict[str, Histogram] = {
            m.name: meter.create_histogram(
                m.name,
                unit=m.unit,
                description=m.description,
                explicit_bucket_boundaries_advisory=list(m.buckets),
            )
            for m in GENAI_METRICS
        }
        self._lock = threading.Lock()
        self._attributes: dict[tuple[str, str, str, str], dict[str, str]] = {}

    def _base(
        self, operation: str, model_name: str, target_model_name: str, error_type: str
    ) -> Mapping[str, str]:
        key = (operation, model_name, target_model_name, error_type)
        found = self._attributes.get(key)
        if found is not None:
            return found
        values = [
            check_label_value(name, value, self._max_label_length)
            for name, value in zip(
                ("operation", "model_name", "target_model_name", "error_type"), key, strict=True
            )
        ]
        if not values[0]:
            raise ValueError("operation must be a non-empty string (gen_ai.operation.name)")
        with self._lock:
            found = self._attributes.get(key)
            if found is not None:
                return found
            if len(self._attributes) >= self._max_series:
                values = [OVERFLOW, OVERFLOW, OVERFLOW, OVERFLOW if error_type else ""]
            attributes = {OPERATION: values[0], PROVIDER: self.provider_name}
            if values[1]:
                attributes[REQUEST_MODEL] = values[1]
            if values[2]:
                attributes[RESPONSE_MODEL] = values[2]
            if values[3]:
                attributes[ERROR_TYPE] = values[3]
            if len(self._attributes) < self._max_series:
                self._attributes[key] = attributes
            return attributes

    def record_request_completed(
        self,
        model_name: str,
        target_model_name: str,
        *,
        received: float,
        completed: float,
        first_token: float | None = None,
        input_tokens: float = 0,
        output_tokens: float = 0,
        streaming: bool | None = None,
        operation: str | None = None,
    ) -> None:
        """A successful request: duration, TTFT and TPOT when streamed, token usage."""
        received, completed = _number("received", received), _number("completed", completed)
        input_tokens = _number("input_tokens", input_tokens)
        output_tokens = _number("output_tokens", output_tokens)
        if first_token is not None:
            first_token = _number("first_token", first_token)
        attributes = self._base(
            self.default_operation if operation is None else operation,
            model_name,
            target_model_name,
            "",
        )
        if streaming is None:
            streaming = first_token is not None
        usage = self._instruments[TOKEN_USAGE.name]
        if input_tokens > 0:
            usage.record(input_tokens, {**attributes, TOKEN_TYPE: "input"})
        if output_tokens > 0:
            usage.record(output_tokens, {**attributes, TOKEN_TYPE: "output"})
        if not completed > received:
            return
        duration = completed - received
        self._instruments[REQUEST_DURATION.name].record(duration, attributes)
        if streaming and first_token is not None and received <= first_token <= completed:
            self._instruments[TIME_TO_FIRST_TOKEN.name].record(first_token - received, attributes)
            if output_tokens > 1:
                tpot = (completed - first_token) / (output_tokens - 1)
                if math.isfinite(tpot):
                    self._instruments[TIME_PER_OUTPUT_TOKEN.name].record(tpot, attributes)

    def record_request_failed(
        self,
        model_name: str,
        target_model_name: str,
        *,
        error_type: str,
        received: float,
        completed: float,
        operation: str | None = None,
    ) -> None:
        """A failed request: its duration with ``error.type`` (the error code)."""
        if not isinstance(error_type, str) or not error_type:
            raise ValueError(f"error_type must be a non-empty string, got {error_type!r}")
        received, completed = _number("received", received), _number("completed", completed)
        attributes = self._base(
            self.default_operation if operation is None else operation,
            model_name,
            target_model_name,
            error_type,
        )
        if completed > received:
            self._instruments[REQUEST_DURATION.name].record(completed - received, attributes)
