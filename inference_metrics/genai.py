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

They are a schema (:func:`~inference_metrics.schemas.genai.genai_schema`): views of the same
quantities every schema reads, fed by the Recorder's calls through the same rows, with the
Recorder's derivations (TTFT, TPOT, durations) and cardinality guard. A
:class:`GenAIRecorder` says where they go (a meter provider) and how they are labelled (the
provider's name, the default operation); ``Recorder(backend, genai=GenAIRecorder(...))`` records
them beside a schema on another backend. With only an OpenTelemetry backend,
``Recorder(OpenTelemetryBackend(provider), schema=genai_schema("openai"))`` records them alone.

Label values are untrusted: at most ``max_series`` distinct attribute sets per kind of event
(the Recorder's bound), later new ones recorded with every varying attribute set to
``__overflow__``. Under N worker processes each process has its own instruments; the
OpenTelemetry pipeline (OTLP, the Collector) aggregates them as it aggregates any instrument.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence

try:
    from opentelemetry.metrics import MeterProvider
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "GenAIRecorder needs the OpenTelemetry API and SDK: install the 'otel' extra "
        f"(pip install 'inference-metrics[otel]') ({exc})"
    ) from exc

from .backends.base import Backend, Instrument
from .backends.noop import NoopBackend
from .backends.otel import OpenTelemetryBackend

# Here for the GenAI API; it lives with the payloads so that the middleware and the lifecycle,
# which pass it on, import no OpenTelemetry.
from .payloads import operation_for_path
from .recorder import Recorder
from .schemas.base import Schema
from .schemas.genai import GENAI_METRICS, SEMCONV_VERSION, GenAIMetric, genai_schema
from .spec import MetricSpec
from .validation import positive_int

__all__ = [
    "GENAI_METRICS",
    "SEMCONV_VERSION",
    "GenAIMetric",
    "GenAIRecorder",
    "genai_schema",
    "operation_for_path",
]

#: A schema of no metrics: the Recorder a GenAIRecorder makes for its own calls records only the
#: GenAI views.
_NOTHING_ELSE = Schema("none", "Nothing", "No metrics besides the GenAI views.", ())


class _RegisteredOnce:
    """A backend whose specs are registered once and shared: every Recorder recording the GenAI
    views of one :class:`GenAIRecorder` binds the same instruments (OpenTelemetry cannot have
    two instruments of one name on a meter provider)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._specs: tuple[MetricSpec, ...] | None = None
        self._instruments: tuple[Instrument, ...] = ()

    def register(self, specs: Sequence[MetricSpec]) -> Sequence[Instrument]:
        specs = tuple(specs)
        with self._lock:
            if self._specs is None:
                self._instruments = tuple(self._backend.register(specs))
                self._specs = specs
            elif specs != self._specs:
                raise ValueError("a GenAIRecorder registers its own schema's metrics only")
            return self._instruments

    def unregister(self, instruments: Sequence[Instrument]) -> None:
        """Nothing: the instruments are shared by every Recorder of this GenAIRecorder."""

    def close(self) -> None:
        self._backend.close()


class GenAIRecorder:
    """The GenAI metrics on ``meter_provider`` (default: the global one).

    ``provider_name`` (required, keyword-only: there is no default) is ``gen_ai.provider.name``
    (``openai``, ``aws.bedrock``, ... or your own); ``default_operation`` the
    ``gen_ai.operation.name`` of calls that give none.
    ``max_series`` and ``max_label_length`` bound the attribute sets and values of its own
    calls; with ``Recorder(backend, genai=...)`` that Recorder's bounds apply.

    Pass it to :class:`~inference_metrics.Recorder` (``genai=``): its :attr:`schema` is recorded
    into its :attr:`backend` from that Recorder's calls. Its own ``record_request_completed`` and
    ``record_request_failed`` still work, through a Recorder of its own, and are deprecated.
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
        self.max_series = positive_int("max_series", max_series)
        self.max_label_length = positive_int("max_label_length", max_label_length)
        if not isinstance(default_operation, str) or not default_operation:
            raise ValueError(
                f"default_operation must be a non-empty string, got {default_operation!r}"
            )
        self.provider_name = provider_name
        self.default_operation = default_operation
        #: The GenAI views, labelled with this recorder's provider name and default operation.
        self.schema: Schema = genai_schema(provider_name, default_operation)
        #: Where they go: the meter ``meter_name`` (no version) of ``meter_provider``.
        self.backend: Backend = _RegisteredOnce(
            OpenTelemetryBackend(meter_provider, meter_name=meter_name, meter_version=None)
        )
        self._lock = threading.Lock()
        self._recorder: Recorder | None = None

    def _own(self) -> Recorder:
        with self._lock:
            if self._recorder is None:
                self._recorder = Recorder(
                    NoopBackend(),
                    schema=_NOTHING_ELSE,
                    genai=self,
                    max_series=self.max_series,
                    max_label_length=self.max_label_length,
                )
            return self._recorder

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
        """Deprecated (record through a Recorder with ``genai=``): a successful request's
        duration, TTFT and TPOT when streamed, token usage."""
        _deprecated("record_request_completed")
        self._own().record_request_completed(
            model_name,
            target_model_name,
            received=received,
            completed=completed,
            response_size=0,
            first_token=first_token,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            streaming=streaming,
            operation=operation,
        )

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
        """Deprecated (record through a Recorder with ``genai=``): a failed request's duration
        with ``error.type`` (the error code)."""
        _deprecated("record_request_failed")
        if not isinstance(error_type, str) or not error_type:
            raise ValueError(f"error_type must be a non-empty string, got {error_type!r}")
        self._own().record_request_failed(
            model_name,
            target_model_name,
            error_type,
            received=received,
            completed=completed,
            operation=operation,
        )


def _deprecated(method: str) -> None:
    warnings.warn(
        f"GenAIRecorder.{method} is deprecated: pass the GenAIRecorder to a Recorder "
        f"(Recorder(backend, genai=genai)) and call Recorder.{method}",
        DeprecationWarning,
        stacklevel=3,
    )
