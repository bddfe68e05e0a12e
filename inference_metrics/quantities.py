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
    "GENAI_REQUEST_DURATION",
    "GENAI_TOKEN_USAGE",
    "INFO",
    "INPUT_TOKENS",
    "ITL",
    "NTPOT",
    "OUTPUT_TOKENS",
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
    "REQUEST_SIZE",
    "REQUEST_TOTAL",
    "RESPONSE_PARSE_FAILURES",
    "RESPONSE_SIZE",
    "RUNNING_REQUESTS",
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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a quantity's name must be an identifier, got {self.name!r}")
        if not isinstance(self.kind, Kind):
            raise TypeError(f"quantity {self.name}: kind must be a Kind, got {self.kind!r}")
        if not isinstance(self.panel, Panel):
            raise TypeError(f"quantity {self.name}: panel must be a Panel, got {self.panel!r}")
        if not isinstance(self.description, str) or not self.description:
            raise ValueError(f"quantity {self.name}: say what it is (description)")
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
    name: str, measures: tuple[Measure, ...], what: str, row: str, unit: str
) -> Quantity:
    return Quantity(name, Kind.HISTOGRAM, measures, what, Panel(row), unit)


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

REQUEST_DURATION = _histogram(
    "request_duration", (m.LATENCY,), "End-to-end request latency.", _LATENCY, "s"
)
TTFT = _histogram(
    "ttft",
    (m.TTFT, m.UNSTREAMED_TTFT),
    "Time to first token (to the first response chunk); for a response that was not streamed, "
    "its latency, in views that label it `streaming`.",
    _LATENCY,
    "s",
)
TPOT = _histogram(
    "tpot", (m.TPOT,), "Time per output token after the first, streamed.", _LATENCY, "s"
)
NTPOT = _histogram("ntpot", (m.NTPOT,), "Latency divided by the output tokens.", _LATENCY, "s")
ITL = _histogram(
    "itl",
    (m.INTER_TOKEN_LATENCY,),
    "Time between consecutive chunks of a streamed response.",
    _LATENCY,
    "s",
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

# --- build --------------------------------------------------------------------------------------

INFO = Quantity(
    "info", Kind.GAUGE, (m.BUILD,), "The build that runs.", Panel("Build", aggregate="max"), "1"
)
