"""What the metrics show, as data: one :class:`Quantity` per thing measured.

A quantity is a kind (counter, gauge, histogram), the measure(s) it reads
(:mod:`inference_metrics.measures`: what the Recorder derives from which call, with which label
inputs, derived how), a unit, what it means, and its panel on the generated dashboard. A schema
(:mod:`inference_metrics.schemas`) is a set of views of quantities: each
:class:`~inference_metrics.schemas.View` gives one quantity an exposed name, HELP, labels and
buckets, in one schema. The same quantity has a view in each schema that shows it (GIE v0.3's
``inference_model_request_duration_seconds``, llm-d-router's ``llm_d_epp_request_duration_seconds``
and its deprecated twin), and the Recorder derives its value once per call for all of them.

Adding a metric fed by an existing measure is a quantity here and one view per schema that shows
it; the Recorder, both backends, the multiprocess store, docs/metrics.md, the dashboards, the
rules and the demo follow (docs/schemas.md). A quantity cannot be made without a panel, so none is
left off the dashboard.

The names here follow the deprecated :class:`~inference_metrics.schemas.Role` members, one quantity
per role, plus the quantities no role had (response parse failures, the data layer's errors,
GenAI's request duration and token usage).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import measures as m
from .measures import Group, Measure, group_of, operation
from .spec import Kind

__all__ = [
    "CACHED_TOKENS",
    "DATA_LAYER_EXTRACT_ERRORS",
    "DATA_LAYER_POLL_ERRORS",
    "FLOW_CONTROL_CAPACITY_BYTES",
    "FLOW_CONTROL_CAPACITY_REQUESTS",
    "FLOW_CONTROL_DISPATCH_CYCLE_DURATION",
    "FLOW_CONTROL_ENQUEUE_DURATION",
    "FLOW_CONTROL_GLOBAL_CAPACITY_BYTES",
    "FLOW_CONTROL_GLOBAL_CAPACITY_REQUESTS",
    "FLOW_CONTROL_PENDING_RECLAIM",
    "FLOW_CONTROL_POOL_SATURATION",
    "FLOW_CONTROL_QUEUE_BYTES",
    "FLOW_CONTROL_QUEUE_DURATION",
    "FLOW_CONTROL_QUEUE_SIZE",
    "FLOW_CONTROL_RECLAIM_TARGET",
    "FLOW_CONTROL_REQUESTS",
    "FLOW_CONTROL_REVOCATIONS",
    "FLOW_CONTROL_REVOCATIONS_ISSUED",
    "FLOW_CONTROL_REVOCATION_CONFIRMATION",
    "FLOW_CONTROL_STALE_ENDPOINTS",
    "GENAI_REQUEST_DURATION",
    "GENAI_TOKEN_USAGE",
    "INFO",
    "INPUT_TOKENS",
    "ITL",
    "MODEL_REWRITE_DECISIONS",
    "NTPOT",
    "OUTPUT_TOKENS",
    "PLUGIN_DATA_SCOPE_VIOLATIONS",
    "PLUGIN_DURATION",
    "POOL_ENDPOINT_QUEUE_SIZE",
    "POOL_KV_CACHE",
    "POOL_QUEUE_SIZE",
    "POOL_READY",
    "POOL_RUNNING_REQUESTS",
    "POOL_STD_DEV_KV_CACHE",
    "POOL_STD_DEV_QUEUE_SIZE",
    "POOL_STD_DEV_RUNNING_REQUESTS",
    "REQUEST_DURATION",
    "REQUEST_ERROR_TOTAL",
    "REQUEST_PROCESSING_DURATION",
    "REQUEST_SIZE",
    "REQUEST_TOTAL",
    "RESPONSE_PARSE_FAILURES",
    "RESPONSE_PROCESSING_DURATION",
    "RESPONSE_SIZE",
    "RUNNING_REQUESTS",
    "SCHEDULER_ATTEMPTS",
    "SCHEDULER_E2E_DURATION",
    "TPOT",
    "TTFT",
    "Panel",
    "Quantity",
]


@dataclass(frozen=True, slots=True)
class Panel:
    """Where and how a quantity shows on the generated dashboard.

    ``row``: the dashboard row (rows appear in the order a schema first uses them). ``by``: the
    labels a counter's rate or a gauge is broken down by (those the view has); None: a counter by
    model and target model, a gauge by every label. ``aggregate``: ``sum``, or ``max`` (build
    info, where one series per worker process means the same build).
    """

    row: str
    by: tuple[str, ...] | None = None
    aggregate: str = "sum"

    def __post_init__(self) -> None:
        if not isinstance(self.row, str) or not self.row:
            raise ValueError(f"a panel needs a row title, got {self.row!r}")
        if self.by is not None:
            object.__setattr__(self, "by", tuple(self.by))
        if self.aggregate not in ("sum", "max"):
            raise ValueError(f"aggregate must be 'sum' or 'max', got {self.aggregate!r}")


@dataclass(frozen=True, slots=True, eq=False)
class Quantity:
    """What a metric shows (see the module docstring); compared by identity."""

    name: str
    kind: Kind
    measures: tuple[Measure, ...]
    description: str
    panel: Panel
    unit: str = ""
    #: Whether an observation of it links to the trace of the request it was made in: its
    #: histogram views carry exemplars when the backend's ``exemplars`` setting says so (their
    #: specs leave ``exemplars`` open); every other histogram's spec says ``exemplars=False``.
    exemplars: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a quantity's name must be an identifier, got {self.name!r}")
        if not isinstance(self.kind, Kind):
            raise TypeError(f"quantity {self.name}: kind must be a Kind, got {self.kind!r}")
        if not isinstance(self.panel, Panel):
            raise TypeError(f"quantity {self.name}: panel must be a Panel, got {self.panel!r}")
        if not isinstance(self.description, str) or not self.description:
            raise ValueError(f"quantity {self.name}: say what it is (description)")
        if not isinstance(self.exemplars, bool) or (
            self.exemplars and self.kind is not Kind.HISTOGRAM
        ):
            raise ValueError(
                f"quantity {self.name}: exemplars must be a bool, True only for a histogram, got "
                f"{self.exemplars!r}"
            )
        measures = tuple(self.measures)
        if not measures or not all(isinstance(each, Measure) for each in measures):
            raise TypeError(f"quantity {self.name}: measures must be one or more Measure")
        object.__setattr__(self, "measures", measures)
        for measure in measures:
            group_of(measure)  # a measure no group records is refused
            try:
                operation(measure.nature, self.kind)
            except ValueError as exc:
                raise ValueError(f"quantity {self.name} ({measure.name}): {exc}") from None

    @property
    def groups(self) -> tuple[Group, ...]:
        """The groups whose calls feed this quantity, in the order of its measures."""
        return tuple(dict.fromkeys(group_of(each) for each in self.measures))

    @property
    def calls(self) -> tuple[str, ...]:
        """The Recorder methods that feed this quantity."""
        return tuple(dict.fromkeys(call for each in self.measures for call in each.calls))

    def __repr__(self) -> str:
        return f"Quantity({self.name!r})"


_REQUESTS = "Requests"
_LATENCY = "Latency"
_SIZES = "Sizes and tokens"
_POOL = "Pool"


def _histogram(
    name: str,
    measures: tuple[Measure, ...],
    what: str,
    row: str,
    unit: str,
    exemplars: bool = False,
) -> Quantity:
    return Quantity(name, Kind.HISTOGRAM, measures, what, Panel(row), unit, exemplars)


def _pool(name: str, measure: Measure, what: str, unit: str) -> Quantity:
    return Quantity(name, Kind.GAUGE, (measure,), what, Panel(_POOL), unit)


# --- requests -----------------------------------------------------------------------------------

REQUEST_TOTAL = Quantity(
    "request_total",
    Kind.COUNTER,
    (m.REQUEST,),
    "Requests forwarded.",
    Panel(_REQUESTS),
    "{request}",
)
REQUEST_ERROR_TOTAL = Quantity(
    "request_error_total",
    Kind.COUNTER,
    (m.ERROR,),
    "Failed requests, by error code.",
    Panel(_REQUESTS, by=("error_code", "model_name")),
    "{request}",
)
RUNNING_REQUESTS = Quantity(
    "running_requests",
    Kind.GAUGE,
    (m.RUNNING,),
    "Requests running now.",
    Panel(_REQUESTS),
    "{request}",
)
RESPONSE_PARSE_FAILURES = Quantity(
    "response_parse_failures",
    Kind.COUNTER,
    (m.PARSE_FAILURE,),
    "Response bodies whose token usage could not be parsed.",
    Panel(_REQUESTS, by=()),
    "{response}",
)

# --- latency ------------------------------------------------------------------------------------

# The latencies llm-d-router links to traces (request duration), with TTFT, TPOT and ITL: a slow
# bucket on a dashboard leads to the request that made it (docs/native-histograms.md).
REQUEST_DURATION = _histogram(
    "request_duration", (m.LATENCY,), "End-to-end request latency.", _LATENCY, "s", exemplars=True
)
TTFT = _histogram(
    "ttft",
    (m.TTFT, m.UNSTREAMED_TTFT),
    "Time to first token (to the first response chunk); for a response that was not streamed, "
    "its latency, in views that label it `streaming`.",
    _LATENCY,
    "s",
    exemplars=True,
)
TPOT = _histogram(
    "tpot",
    (m.TPOT,),
    "Time per output token after the first, streamed.",
    _LATENCY,
    "s",
    exemplars=True,
)
NTPOT = _histogram("ntpot", (m.NTPOT,), "Latency divided by the output tokens.", _LATENCY, "s")
ITL = _histogram(
    "itl",
    (m.INTER_TOKEN_LATENCY,),
    "Time between consecutive chunks of a streamed response.",
    _LATENCY,
    "s",
    exemplars=True,
)
GENAI_REQUEST_DURATION = _histogram(
    "genai_request_duration",
    (m.LATENCY, m.FAILURE_LATENCY),
    "Every request's duration, failures included (by error type).",
    _LATENCY,
    "s",
)

# --- sizes and tokens ---------------------------------------------------------------------------

REQUEST_SIZE = _histogram("request_size", (m.REQUEST_SIZE,), "Request body sizes.", _SIZES, "By")
RESPONSE_SIZE = _histogram(
    "response_size", (m.RESPONSE_SIZE,), "Response body sizes.", _SIZES, "By"
)
INPUT_TOKENS = _histogram(
    "input_tokens", (m.INPUT_TOKENS,), "Prompt tokens per request.", _SIZES, "{token}"
)
OUTPUT_TOKENS = _histogram(
    "output_tokens", (m.OUTPUT_TOKENS,), "Completion tokens per request.", _SIZES, "{token}"
)
CACHED_TOKENS = _histogram(
    "cached_tokens",
    (m.CACHED_TOKENS,),
    "Prompt tokens read from cache per request.",
    _SIZES,
    "{token}",
)
GENAI_TOKEN_USAGE = _histogram(
    "genai_token_usage",
    (m.INPUT_TOKENS, m.OUTPUT_TOKENS),
    "Prompt and completion tokens per request, by token type.",
    _SIZES,
    "{token}",
)

# --- pool ---------------------------------------------------------------------------------------

POOL_KV_CACHE = _pool(
    "pool_kv_cache_utilization", m.POOL_KV_CACHE, "Average KV-cache utilization.", "1"
)
POOL_QUEUE_SIZE = _pool(
    "pool_queue_size", m.POOL_QUEUE_SIZE, "Average queued requests per server.", "{request}"
)
POOL_RUNNING_REQUESTS = _pool(
    "pool_running_requests",
    m.POOL_RUNNING_REQUESTS,
    "Average running requests per server.",
    "{request}",
)
POOL_READY = _pool("pool_ready", m.POOL_READY, "Ready model servers.", "{pod}")
POOL_STD_DEV_KV_CACHE = _pool(
    "pool_std_dev_kv_cache_utilization",
    m.POOL_STD_DEV_KV_CACHE,
    "Standard deviation of KV-cache utilization.",
    "1",
)
POOL_STD_DEV_QUEUE_SIZE = _pool(
    "pool_std_dev_queue_size",
    m.POOL_STD_DEV_QUEUE_SIZE,
    "Standard deviation of queued requests.",
    "{request}",
)
POOL_STD_DEV_RUNNING_REQUESTS = _pool(
    "pool_std_dev_running_requests",
    m.POOL_STD_DEV_RUNNING_REQUESTS,
    "Standard deviation of running requests.",
    "{request}",
)
POOL_ENDPOINT_QUEUE_SIZE = _pool(
    "pool_endpoint_queue_size",
    m.ENDPOINT_QUEUE_SIZE,
    "Queued requests per model server.",
    "{request}",
)
DATA_LAYER_POLL_ERRORS = Quantity(
    "data_layer_poll_errors",
    Kind.COUNTER,
    (m.POLL_ERROR,),
    "Failed polls of the pool's data sources (model servers' metrics pages).",
    Panel(_POOL, by=("name", "source_type")),
    "{error}",
)
DATA_LAYER_EXTRACT_ERRORS = Quantity(
    "data_layer_extract_errors",
    Kind.COUNTER,
    (m.EXTRACT_ERROR,),
    "Values the pool's extractors could not read from a polled page.",
    Panel(_POOL, by=("name", "source_type", "extractor_type")),
    "{error}",
)


# --- scheduler and plugins ----------------------------------------------------------------------

_SCHEDULER = "Scheduler and plugins"
_FLOW_CONTROL = "Flow control"

SCHEDULER_E2E_DURATION = _histogram(
    "scheduler_e2e_duration",
    (m.SCHEDULER_E2E,),
    "End-to-end scheduling latency.",
    _SCHEDULER,
    "s",
)
SCHEDULER_ATTEMPTS = Quantity(
    "scheduler_attempts",
    Kind.COUNTER,
    (m.SCHEDULER_ATTEMPT_SUCCESS, m.SCHEDULER_ATTEMPT_FAILURE),
    "Scheduling attempts, by status (success, failure) and chosen endpoint.",
    Panel(_SCHEDULER, by=("status", "target_model_name")),
    "{attempt}",
)
PLUGIN_DURATION = _histogram(
    "plugin_duration",
    (m.PLUGIN_DURATION,),
    "Plugin processing latency, by extension point, plugin type and name.",
    _SCHEDULER,
    "s",
)
PLUGIN_DATA_SCOPE_VIOLATIONS = Quantity(
    "plugin_data_scope_violations",
    Kind.COUNTER,
    (m.DATA_SCOPE_VIOLATION,),
    "Endpoint-attribute accesses rejected because the plugin did not declare them.",
    Panel(_SCHEDULER, by=("extension_point", "plugin_name", "access")),
    "{access}",
)
REQUEST_PROCESSING_DURATION = _histogram(
    "request_processing_duration",
    (m.REQUEST_PROCESSING,),
    "The picker's own request handling time (receipt until the body is handled).",
    _SCHEDULER,
    "s",
)
RESPONSE_PROCESSING_DURATION = _histogram(
    "response_processing_duration",
    (m.RESPONSE_PROCESSING,),
    "The picker's own response handling time.",
    _SCHEDULER,
    "s",
)
MODEL_REWRITE_DECISIONS = Quantity(
    "model_rewrite_decisions",
    Kind.COUNTER,
    (m.REWRITE_DECISION,),
    "Requests rewritten by an InferenceModelRewrite rule.",
    Panel(_SCHEDULER, by=("model_rewrite_name", "model_name", "target_model")),
    "{decision}",
)

# --- flow control -------------------------------------------------------------------------------

FLOW_CONTROL_QUEUE_DURATION = _histogram(
    "flow_control_queue_duration",
    (m.FLOW_QUEUE_DURATION,),
    "Time requests spend in the flow-control layer, enqueue to final outcome.",
    _FLOW_CONTROL,
    "s",
)
FLOW_CONTROL_DISPATCH_CYCLE_DURATION = _histogram(
    "flow_control_dispatch_cycle_duration",
    (m.DISPATCH_CYCLE,),
    "Duration of the flow-control layer's dispatch cycles.",
    _FLOW_CONTROL,
    "s",
)
FLOW_CONTROL_ENQUEUE_DURATION = _histogram(
    "flow_control_enqueue_duration",
    (m.ENQUEUE_DURATION,),
    "Time taken to enqueue requests into the flow-control layer.",
    _FLOW_CONTROL,
    "s",
)
_FLOWS = ("inference_pool", "priority", "fairness_id")
FLOW_CONTROL_QUEUE_SIZE = Quantity(
    "flow_control_queue_size",
    Kind.GAUGE,
    (m.FLOW_QUEUE_SIZE,),
    "Requests held in the flow-control queues now.",
    Panel(_FLOW_CONTROL, by=_FLOWS),
    "{request}",
)
FLOW_CONTROL_QUEUE_BYTES = Quantity(
    "flow_control_queue_bytes",
    Kind.GAUGE,
    (m.FLOW_QUEUE_BYTES,),
    "Bytes of the requests held in the flow-control queues now.",
    Panel(_FLOW_CONTROL, by=_FLOWS),
    "By",
)
FLOW_CONTROL_POOL_SATURATION = Quantity(
    "flow_control_pool_saturation",
    Kind.GAUGE,
    (m.POOL_SATURATION,),
    "Pool saturation gating dispatch, per stage (1.0 is the set point).",
    Panel(_FLOW_CONTROL, by=("inference_pool", "stage"), aggregate="max"),
    "1",
)
FLOW_CONTROL_STALE_ENDPOINTS = Quantity(
    "flow_control_stale_endpoints",
    Kind.GAUGE,
    (m.STALE_ENDPOINTS,),
    "Endpoints with missing or stale metrics at the last saturation evaluation.",
    Panel(_FLOW_CONTROL, aggregate="max"),
    "{endpoint}",
)
FLOW_CONTROL_CAPACITY_REQUESTS = Quantity(
    "flow_control_capacity_utilization_requests",
    Kind.GAUGE,
    (m.CAPACITY_REQUESTS,),
    "Fraction of each priority band's request-count capacity in use.",
    Panel(_FLOW_CONTROL, aggregate="max"),
    "1",
)
FLOW_CONTROL_CAPACITY_BYTES = Quantity(
    "flow_control_capacity_utilization_bytes",
    Kind.GAUGE,
    (m.CAPACITY_BYTES,),
    "Fraction of each priority band's byte capacity in use.",
    Panel(_FLOW_CONTROL, aggregate="max"),
    "1",
)
FLOW_CONTROL_GLOBAL_CAPACITY_REQUESTS = Quantity(
    "flow_control_global_capacity_utilization_requests",
    Kind.GAUGE,
    (m.GLOBAL_CAPACITY_REQUESTS,),
    "Fraction of the global request-count capacity in use (when configured).",
    Panel(_FLOW_CONTROL, aggregate="max"),
    "1",
)
FLOW_CONTROL_GLOBAL_CAPACITY_BYTES = Quantity(
    "flow_control_global_capacity_utilization_bytes",
    Kind.GAUGE,
    (m.GLOBAL_CAPACITY_BYTES,),
    "Fraction of the global byte capacity in use (when configured).",
    Panel(_FLOW_CONTROL, aggregate="max"),
    "1",
)
FLOW_CONTROL_REQUESTS = Quantity(
    "flow_control_requests",
    Kind.COUNTER,
    (m.FLOW_CONTROL_REQUEST,),
    "Requests the flow-control layer finished with, by outcome.",
    Panel(_FLOW_CONTROL, by=("outcome", "priority")),
    "{request}",
)
FLOW_CONTROL_REVOCATIONS_ISSUED = Quantity(
    "flow_control_revocations_issued",
    Kind.COUNTER,
    (m.REVOCATIONS_ISSUED,),
    "In-flight requests revoked to reclaim capacity, by the demand band's priority.",
    Panel(_FLOW_CONTROL, by=("inference_pool", "priority")),
    "{revocation}",
)
FLOW_CONTROL_REVOCATIONS = Quantity(
    "flow_control_revocations",
    Kind.COUNTER,
    (m.REVOCATION,),
    "Revocations by terminal outcome (confirmed, timed_out).",
    Panel(_FLOW_CONTROL, by=("inference_pool", "outcome")),
    "{revocation}",
)
FLOW_CONTROL_RECLAIM_TARGET = Quantity(
    "flow_control_reclaim_target",
    Kind.GAUGE,
    (m.RECLAIM_TARGET,),
    "The last computed reclamation deficit, in saturation units.",
    Panel(_FLOW_CONTROL, aggregate="max"),
    "1",
)
FLOW_CONTROL_PENDING_RECLAIM = Quantity(
    "flow_control_pending_reclaim",
    Kind.GAUGE,
    (m.PENDING_RECLAIM,),
    "Outstanding and cooling reclaim debits, in saturation units.",
    Panel(_FLOW_CONTROL, aggregate="max"),
    "1",
)
FLOW_CONTROL_REVOCATION_CONFIRMATION = _histogram(
    "flow_control_revocation_confirmation",
    (m.REVOCATION_CONFIRMATION,),
    "Time from a revocation's issue to its stream's confirmed end.",
    _FLOW_CONTROL,
    "s",
)

# --- build --------------------------------------------------------------------------------------

INFO = Quantity(
    "info", Kind.GAUGE, (m.BUILD,), "The build that runs.", Panel("Build", aggregate="max"), "1"
)
