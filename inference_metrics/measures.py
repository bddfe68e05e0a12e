"""What the Recorder derives from its calls, as data: measures and the groups that record them.

* a :class:`Measure` is one value the Recorder derives from its calls, once per call: a request's
  latency (``completed - received``), its TTFT, a pool's average queue size, "1" for a counted
  event. It says how it is derived (for the docs) and which calls produce it. A measure may fix
  inputs of its own (``streaming="true"`` for a streamed response's TTFT, ``token_type="input"``
  for prompt tokens) that views can expose as labels.
* a :class:`Group` is the measures recorded under one label key: the inputs a kind of call gives
  (a request's model, target model, fairness id, priority, operation; a pool's name). The
  Recorder finds a key's row with one dictionary lookup per call and updates every measure of
  the call through it; ``max_series`` bounds the distinct label sets of a group.

What a metric shows of a measure is a :class:`~inference_metrics.quantities.Quantity`; how a kind
uses a measure's value follows from the measure's :class:`Nature`: a histogram observes a sample,
a counter adds it; a gauge adds a delta and is set to a level. A new measure is a record here
and the line of the Recorder call that derives it (docs/schemas.md).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .spec import Kind

__all__ = [
    "GROUPS",
    "Group",
    "Measure",
    "Nature",
    "group_of",
    "measures",
    "operation",
]


class Nature(enum.Enum):
    """What a measure's value is, which decides what each metric kind does with it."""

    #: One value per call: a latency, a size, a token count, or 1 for "it happened".
    SAMPLE = "sample"
    #: A change of a level: +1 / -1 running requests.
    DELTA = "delta"
    #: The value of a level: a pool's average queue size.
    LEVEL = "level"


#: The series operation for each (nature, kind) a quantity may pair; any other pair is refused.
_OPERATIONS: dict[tuple[Nature, Kind], str] = {
    (Nature.SAMPLE, Kind.HISTOGRAM): "observe",
    (Nature.SAMPLE, Kind.COUNTER): "add",
    (Nature.SAMPLE, Kind.GAUGE): "set",
    (Nature.DELTA, Kind.GAUGE): "add",
    (Nature.LEVEL, Kind.GAUGE): "set",
}


def operation(nature: Nature, kind: Kind) -> str:
    """The series method (``add``/``observe``/``set``) a metric of ``kind`` feeds a measure of
    ``nature`` to; ValueError for a pair that means nothing (a histogram of a gauge's deltas)."""
    try:
        return _OPERATIONS[(nature, kind)]
    except KeyError:
        raise ValueError(f"a {kind.value} cannot record a {nature.value} measure") from None


def _frozen(pairs: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(pairs))


@dataclass(frozen=True, slots=True, eq=False)
class Measure:
    """One value derived by the Recorder's calls (see the module docstring).

    ``calls`` are the Recorder methods that produce it (the first: the one that records it
    alone); ``constants`` the inputs it fixes; ``typical`` a plausible ``(low, high)`` for a level
    a call sets directly: the demo (:mod:`inference_metrics.simulate`) draws from it, integers
    when both bounds are ``int``.
    """

    name: str
    nature: Nature
    definition: str
    calls: tuple[str, ...]
    constants: Mapping[str, str] = field(default_factory=dict)
    typical: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a measure's name must be an identifier, got {self.name!r}")
        if not isinstance(self.nature, Nature):
            raise TypeError(f"measure {self.name}: nature must be a Nature, got {self.nature!r}")
        if not self.calls or not all(isinstance(c, str) and c for c in self.calls):
            raise ValueError(f"measure {self.name}: calls must name the Recorder methods")
        object.__setattr__(self, "calls", tuple(self.calls))
        object.__setattr__(self, "constants", _frozen(self.constants))

    def __repr__(self) -> str:
        return f"Measure({self.name!r})"


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """Measures recorded under one key (see the module docstring).

    ``inputs`` are the key's parts in key order, named as the calls' arguments; ``aliases`` map
    a label name that is not an input's name to its input (``name`` -> ``pool_name``);
    ``capped`` inputs have a bound of their own on distinct values (caller-controlled headers);
    ``optional`` inputs may be None in a call (then a view's default, or ``""``); they come last
    in ``inputs``, and a key may leave them out (a call without them builds a shorter key).
    ``measures`` are the row's slots, in order: the Recorder registers metrics group by group and
    measure by measure, which is the order families appear in the exposition.
    """

    name: str
    inputs: tuple[str, ...]
    measures: tuple[Measure, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)
    capped: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "measures", tuple(self.measures))
        object.__setattr__(self, "aliases", _frozen(self.aliases))
        object.__setattr__(self, "capped", tuple(self.capped))
        object.__setattr__(self, "optional", tuple(self.optional))
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"group {self.name}: an input appears twice in {self.inputs}")
        if len({id(m) for m in self.measures}) != len(self.measures):
            raise ValueError(f"group {self.name}: a measure appears twice")
        for label, source in self.aliases.items():
            if source not in self.inputs:
                raise ValueError(f"group {self.name}: alias {label!r} names no input ({source!r})")
        for name in (*self.capped, *self.optional):
            if name not in self.inputs:
                raise ValueError(f"group {self.name}: {name!r} is not an input")
        if self.optional and self.inputs[-len(self.optional) :] != self.optional:
            raise ValueError(f"group {self.name}: optional inputs come last, in order")
        for measure in self.measures:
            clash = set(measure.constants) & set(self.inputs)
            if clash:
                raise ValueError(f"measure {measure.name} fixes inputs of the key: {clash}")

    def slot(self, measure: Measure) -> int:
        """The index of ``measure`` in this group's rows."""
        for index, mine in enumerate(self.measures):
            if mine is measure:
                return index
        raise ValueError(f"measure {measure.name} is not in group {self.name}")

    def input_of(self, label: str) -> str:
        """The input a label named ``label`` takes its value from by default."""
        return self.aliases.get(label, label)

    def __repr__(self) -> str:
        return f"Group({self.name!r})"


# --- measures and groups ------------------------------------------------------------------------

_COMPLETED = "record_request_completed"

REQUEST = Measure(
    "request",
    Nature.SAMPLE,
    "1 per request forwarded to a model server.",
    ("record_request_counter", "record_request_started", f"{_COMPLETED}(request_size=...)"),
)
LATENCY = Measure(
    "latency",
    Nature.SAMPLE,
    "`completed - received` (seconds), when completed is strictly after received.",
    ("record_request_latency", _COMPLETED),
)
REQUEST_SIZE = Measure(
    "request_size",
    Nature.SAMPLE,
    "The request body's size in bytes, 0 included.",
    ("record_request_size", "record_request_started", f"{_COMPLETED}(request_size=...)"),
)
RESPONSE_SIZE = Measure(
    "response_size",
    Nature.SAMPLE,
    "The response body's size in bytes, 0 included.",
    ("record_response_size", _COMPLETED),
)
INPUT_TOKENS = Measure(
    "input_tokens",
    Nature.SAMPLE,
    "The prompt's token count from the response's usage, when > 0.",
    ("record_input_tokens", _COMPLETED),
    constants={"token_type": "input"},
)
OUTPUT_TOKENS = Measure(
    "output_tokens",
    Nature.SAMPLE,
    "The completion's token count from the response's usage, when > 0.",
    ("record_output_tokens", _COMPLETED),
    constants={"token_type": "output"},
)
NTPOT = Measure(
    "ntpot",
    Nature.SAMPLE,
    "The latency divided by the output tokens, when both are recorded.",
    (_COMPLETED,),
)
TTFT = Measure(
    "ttft",
    Nature.SAMPLE,
    "A streamed response's `first_token - received`, when the first token is between received "
    "and completed and the latency is recorded.",
    (_COMPLETED,),
    constants={"streaming": "true"},
)
UNSTREAMED_TTFT = Measure(
    "unstreamed_ttft",
    Nature.SAMPLE,
    "A response that was not streamed: its latency (the whole body came at once).",
    (_COMPLETED,),
    constants={"streaming": "false"},
)
TPOT = Measure(
    "tpot",
    Nature.SAMPLE,
    "A streamed response's `(completed - first_token) / (output tokens - 1)`, when its TTFT is "
    "recorded and output tokens > 1.",
    (_COMPLETED,),
)
CACHED_TOKENS = Measure(
    "cached_tokens",
    Nature.SAMPLE,
    "The prompt tokens read from cache, from the response's usage, whenever it reports them "
    "(`prompt_tokens_details`), 0 included.",
    (_COMPLETED,),
)
INTER_TOKEN_LATENCY = Measure(
    "inter_token_latency",
    Nature.SAMPLE,
    "The time between two consecutive non-empty chunks of a streamed response body.",
    ("record_inter_token_latency", "inter_token_latency_observer"),
)
ERROR = Measure(
    "error",
    Nature.SAMPLE,
    "1 per failed request (`record_request_error`: only with a non-empty error code; "
    "`record_request_failed`: an empty code counts as `Unknown`).",
    ("record_request_error", "record_request_failed"),
)
FAILURE_LATENCY = Measure(
    "failure_latency",
    Nature.SAMPLE,
    "A failed request's `completed - received`, when both are given and completed is after "
    "received.",
    ("record_request_failed(received=..., completed=...)",),
)
RUNNING = Measure(
    "running",
    Nature.DELTA,
    "+1 when a request starts running, -1 when it ends (no model name: nothing).",
    ("record_running_request_started", "record_running_request_finished"),
)
POOL_KV_CACHE = Measure(
    "pool_kv_cache",
    Nature.LEVEL,
    "The pool's average KV-cache utilization (a fraction).",
    ("record_pool_kv_cache_utilization",),
    typical=(0.2, 0.95),
)
POOL_QUEUE_SIZE = Measure(
    "pool_queue_size",
    Nature.LEVEL,
    "The pool's average number of queued requests per model server.",
    ("record_pool_queue_size",),
    typical=(0.0, 12.0),
)
POOL_READY = Measure(
    "pool_ready",
    Nature.LEVEL,
    "The number of ready model servers (endpoints) in the pool.",
    ("record_pool_ready_pods",),
    typical=(3, 3),
)
POOL_RUNNING_REQUESTS = Measure(
    "pool_running_requests",
    Nature.LEVEL,
    "The pool's average number of running requests per model server.",
    ("record_pool_average_running_requests",),
    typical=(1.0, 30.0),
)
POOL_STD_DEV_KV_CACHE = Measure(
    "pool_std_dev_kv_cache",
    Nature.LEVEL,
    "The standard deviation of the pool's KV-cache utilization.",
    ("record_pool_std_dev_kv_cache_utilization",),
    typical=(0.0, 0.2),
)
POOL_STD_DEV_QUEUE_SIZE = Measure(
    "pool_std_dev_queue_size",
    Nature.LEVEL,
    "The standard deviation of the pool's queue sizes.",
    ("record_pool_std_dev_queue_size",),
    typical=(0.0, 4.0),
)
POOL_STD_DEV_RUNNING_REQUESTS = Measure(
    "pool_std_dev_running_requests",
    Nature.LEVEL,
    "The standard deviation of the pool's running requests.",
    ("record_pool_std_dev_running_requests",),
    typical=(0.0, 6.0),
)
ENDPOINT_QUEUE_SIZE = Measure(
    "endpoint_queue_size",
    Nature.LEVEL,
    "One model server's number of queued requests.",
    ("record_pool_per_pod_queue_size",),
    typical=(0, 20),
)
BUILD = Measure(
    "build",
    Nature.LEVEL,
    "1 for the build that runs.",
    ("record_extension_info",),
)
PARSE_FAILURE = Measure(
    "parse_failure",
    Nature.SAMPLE,
    "1 per response body whose token usage could not be parsed (the request is recorded "
    "without tokens).",
    ("record_response_parse_failure",),
)
POLL_ERROR = Measure(
    "poll_error",
    Nature.SAMPLE,
    "1 per failed poll of a data source (a model server's metrics page that could not be fetched).",
    ("record_data_layer_poll_error",),
)
EXTRACT_ERROR = Measure(
    "extract_error",
    Nature.SAMPLE,
    "1 per value an extractor could not read from a polled page.",
    ("record_data_layer_extract_error",),
)

# --- the picker's internals: scheduling, plugins, flow control, model rewrites ------------------
# Each is recorded by one of upstream's recording functions of the same name (metrics.go), as a
# Recorder method named by upstream's Go function (docs/schemas.md); durations are seconds.

SCHEDULER_E2E = Measure(
    "scheduler_e2e",
    Nature.SAMPLE,
    "One scheduling run's duration, candidates in to result out.",
    ("record_scheduler_e2e_latency",),
)
REQUEST_PROCESSING = Measure(
    "request_processing",
    Nature.SAMPLE,
    "The picker's time from request receipt until the request body has been handled, "
    "admission control included.",
    ("record_request_processing_latency",),
)
RESPONSE_PROCESSING = Measure(
    "response_processing",
    Nature.SAMPLE,
    "The picker's time handling a response: the sum of its per-chunk handler times when "
    "streamed, else response headers to completion.",
    ("record_response_processing_latency",),
)
SCHEDULER_ATTEMPT_SUCCESS = Measure(
    "scheduler_attempt_success",
    Nature.SAMPLE,
    "1 per scheduling attempt without an error; the endpoint is the primary profile's first "
    "target (empty when there is no result).",
    ("record_scheduler_attempt(err=None)",),
    constants={"status": "success"},
)
SCHEDULER_ATTEMPT_FAILURE = Measure(
    "scheduler_attempt_failure",
    Nature.SAMPLE,
    "1 per scheduling attempt that ended in an error (endpoint labels empty).",
    ("record_scheduler_attempt(err=...)",),
    constants={"status": "failure"},
)
PLUGIN_DURATION = Measure(
    "plugin_duration",
    Nature.SAMPLE,
    "One plugin run's duration at one extension point (filter, scorer, picker, ...).",
    ("record_plugin_processing_latency",),
)
DATA_SCOPE_VIOLATION = Measure(
    "data_scope_violation",
    Nature.SAMPLE,
    "1 per endpoint-attribute read or write rejected because the plugin did not declare it.",
    ("record_plugin_data_scope_violation",),
)
FLOW_QUEUE_DURATION = Measure(
    "flow_queue_duration",
    Nature.SAMPLE,
    "A request's time in the flow-control layer, enqueue to final outcome (dispatched, "
    "rejected, evicted).",
    ("record_flow_control_request_queue_duration",),
)
DISPATCH_CYCLE = Measure(
    "dispatch_cycle",
    Nature.SAMPLE,
    "One dispatch cycle's duration in the flow-control layer.",
    ("record_flow_control_dispatch_cycle_duration",),
)
ENQUEUE_DURATION = Measure(
    "enqueue_duration",
    Nature.SAMPLE,
    "The time taken to enqueue one request into the flow-control layer, by outcome.",
    ("record_flow_control_request_enqueue_duration",),
)
FLOW_QUEUE_SIZE = Measure(
    "flow_queue_size",
    Nature.DELTA,
    "+1 when a request enters a flow's queue, -1 when it leaves.",
    ("inc_flow_control_queue_size", "dec_flow_control_queue_size"),
)
FLOW_QUEUE_BYTES = Measure(
    "flow_queue_bytes",
    Nature.DELTA,
    "+size when a request enters a flow's queue, -size when it leaves (bytes).",
    ("add_flow_control_queue_bytes", "sub_flow_control_queue_bytes"),
)
POOL_SATURATION = Measure(
    "pool_saturation",
    Nature.LEVEL,
    "The pool's saturation per stage (prefill, decode; effective: the larger, which gates "
    "dispatch); 1.0 is the set point.",
    ("record_flow_control_pool_saturation",),
    typical=(0.3, 1.2),
)
STALE_ENDPOINTS = Measure(
    "stale_endpoints",
    Nature.LEVEL,
    "Endpoints whose metrics were missing or stale at a saturation detector's last evaluation.",
    ("record_flow_control_stale_endpoints",),
    typical=(0, 1),
)
CAPACITY_REQUESTS = Measure(
    "capacity_requests",
    Nature.LEVEL,
    "The fraction of a priority band's request-count capacity its queued requests occupy.",
    ("record_flow_control_capacity_utilization_requests",),
    typical=(0.0, 0.8),
)
CAPACITY_BYTES = Measure(
    "capacity_bytes",
    Nature.LEVEL,
    "The fraction of a priority band's byte capacity its queued requests occupy.",
    ("record_flow_control_capacity_utilization_bytes",),
    typical=(0.0, 0.8),
)
REVOCATIONS_ISSUED = Measure(
    "revocations_issued",
    Nature.SAMPLE,
    "The number of in-flight requests a reclamation decision revoked, by the demand band.",
    ("record_flow_control_revocations_issued",),
)
GLOBAL_CAPACITY_REQUESTS = Measure(
    "global_capacity_requests",
    Nature.LEVEL,
    "The fraction of the global request-count capacity all bands occupy (when configured).",
    ("record_flow_control_global_capacity_utilization_requests",),
    typical=(0.0, 0.8),
)
GLOBAL_CAPACITY_BYTES = Measure(
    "global_capacity_bytes",
    Nature.LEVEL,
    "The fraction of the global byte capacity all bands occupy (when configured).",
    ("record_flow_control_global_capacity_utilization_bytes",),
    typical=(0.0, 0.8),
)
RECLAIM_TARGET = Measure(
    "reclaim_target",
    Nature.LEVEL,
    "The last computed reclamation deficit (saturation minus the blocked band's ceiling).",
    ("record_flow_control_reclaim_target",),
    typical=(0.0, 0.3),
)
PENDING_RECLAIM = Measure(
    "pending_reclaim",
    Nature.LEVEL,
    "The outstanding and cooling reclaim debits, in saturation units.",
    ("record_flow_control_pending_reclaim",),
    typical=(0.0, 0.2),
)
REVOCATION_CONFIRMATION = Measure(
    "revocation_confirmation",
    Nature.SAMPLE,
    "The time from a revocation's issue to its stream's confirmed end.",
    ("record_flow_control_revocation_confirmation_duration",),
)
FLOW_CONTROL_REQUEST = Measure(
    "flow_control_request",
    Nature.SAMPLE,
    "1 per request the flow-control layer finished with, by outcome.",
    ("inc_flow_control_requests_total",),
)
REVOCATION = Measure(
    "revocation",
    Nature.SAMPLE,
    "The number of revocations that reached an outcome (confirmed, timed_out).",
    ("record_flow_control_revocations",),
)
REWRITE_DECISION = Measure(
    "rewrite_decision",
    Nature.SAMPLE,
    "1 per request an InferenceModelRewrite rule rewrote.",
    ("record_inference_model_rewrite_decision",),
)

_REQUEST_KEY = ("model_name", "target_model_name", "fairness_id", "priority")
_CAPPED = ("fairness_id", "priority")

#: Requests: every request call. ``operation`` is GenAI's ``gen_ai.operation.name``.
REQUESTS = Group(
    "requests",
    (*_REQUEST_KEY, "operation"),
    (
        REQUEST,
        LATENCY,
        REQUEST_SIZE,
        RESPONSE_SIZE,
        INPUT_TOKENS,
        OUTPUT_TOKENS,
        NTPOT,
        TTFT,
        UNSTREAMED_TTFT,
        TPOT,
        CACHED_TOKENS,
        INTER_TOKEN_LATENCY,
    ),
    capped=_CAPPED,
    optional=("operation",),
)
#: Failed requests, by error code.
ERRORS = Group(
    "errors",
    (*_REQUEST_KEY, "error_code", "operation"),
    (ERROR, FAILURE_LATENCY),
    capped=_CAPPED,
    optional=("operation",),
)
#: Running requests (a group of its own: an admitted request runs before its target is known).
RUNNING_REQUESTS = Group("running", _REQUEST_KEY, (RUNNING,), capped=_CAPPED)
#: A pool's summary gauges.
POOLS = Group(
    "pools",
    ("pool_name",),
    (
        POOL_KV_CACHE,
        POOL_QUEUE_SIZE,
        POOL_READY,
        POOL_RUNNING_REQUESTS,
        POOL_STD_DEV_KV_CACHE,
        POOL_STD_DEV_QUEUE_SIZE,
        POOL_STD_DEV_RUNNING_REQUESTS,
    ),
    aliases={"name": "pool_name"},
)
#: One model server of a pool.
ENDPOINTS = Group(
    "endpoints",
    ("pool_name", "pod_name"),
    (ENDPOINT_QUEUE_SIZE,),
    aliases={
        "name": "pool_name",
        "model_server_pod": "pod_name",
        "model_server_endpoint": "pod_name",
    },
)
#: The build.
INFO = Group("info", ("commit", "build_ref"), (BUILD,))
#: Response bodies the request path could not read usage from.
PARSE_FAILURES = Group("parse_failures", (), (PARSE_FAILURE,))
#: The pool monitor's data sources (upstream's data layer): failed polls, failed extractions.
POLL_ERRORS = Group(
    "poll_errors", ("source_type", "pool_name"), (POLL_ERROR,), aliases={"name": "pool_name"}
)
EXTRACT_ERRORS = Group(
    "extract_errors",
    ("source_type", "extractor_type", "pool_name"),
    (EXTRACT_ERROR,),
    aliases={"name": "pool_name"},
)

#: One scheduling run (no labels).
SCHEDULING = Group("scheduling", (), (SCHEDULER_E2E,))
#: The picker's own request and response handling (no labels).
PROCESSING = Group("processing", (), (REQUEST_PROCESSING, RESPONSE_PROCESSING))
#: Scheduling attempts: the target model and the chosen endpoint (``status`` is the measure's).
SCHEDULER_ATTEMPTS = Group(
    "scheduler_attempts",
    ("target_model_name", "endpoint_name", "namespace", "port"),
    (SCHEDULER_ATTEMPT_SUCCESS, SCHEDULER_ATTEMPT_FAILURE),
    aliases={"pod_name": "endpoint_name"},
)
_PLUGIN_KEY = ("extension_point", "plugin_type", "plugin_name")
#: One plugin at one extension point.
PLUGINS = Group("plugins", _PLUGIN_KEY, (PLUGIN_DURATION,))
#: One plugin's rejected endpoint-attribute accesses, by ``access`` (read, write).
DATA_SCOPE_VIOLATIONS = Group(
    "data_scope_violations", (*_PLUGIN_KEY, "access"), (DATA_SCOPE_VIOLATION,)
)
_FLOW = ("fairness_id", "priority")
_TARGET = ("inference_pool", "model_name", "target_model_name")
#: A flow's requests by how they left the flow-control layer (upstream bounds ``fairness_id``).
FLOW_OUTCOMES = Group(
    "flow_outcomes", (*_FLOW, "outcome", *_TARGET), (FLOW_QUEUE_DURATION,), capped=("fairness_id",)
)
#: A flow's enqueue attempts, by outcome.
FLOW_ENQUEUES = Group(
    "flow_enqueues", (*_FLOW, "outcome"), (ENQUEUE_DURATION,), capped=("fairness_id",)
)
#: A flow's queue towards one pool and model (size and bytes held).
FLOW_QUEUES = Group(
    "flow_queues", (*_FLOW, *_TARGET), (FLOW_QUEUE_SIZE, FLOW_QUEUE_BYTES), capped=("fairness_id",)
)
#: The flow-control layer's dispatch loop (no labels).
DISPATCH_CYCLES = Group("dispatch_cycles", (), (DISPATCH_CYCLE,))
#: A pool's saturation per stage.
POOL_SATURATIONS = Group("pool_saturations", ("inference_pool", "stage"), (POOL_SATURATION,))
#: A saturation detector (its plugin name).
SATURATION_DETECTORS = Group("saturation_detectors", ("detector",), (STALE_ENDPOINTS,))
#: One priority band of a pool's flow-control layer.
PRIORITY_BANDS = Group(
    "priority_bands",
    ("priority", "inference_pool"),
    (CAPACITY_REQUESTS, CAPACITY_BYTES, REVOCATIONS_ISSUED),
)
#: A pool's flow-control layer as a whole: global capacity, reclamation.
FLOW_CONTROL_POOLS = Group(
    "flow_control_pools",
    ("inference_pool",),
    (
        GLOBAL_CAPACITY_REQUESTS,
        GLOBAL_CAPACITY_BYTES,
        RECLAIM_TARGET,
        PENDING_RECLAIM,
        REVOCATION_CONFIRMATION,
    ),
)
#: Requests the flow-control layer finished with, by outcome and band.
FLOW_CONTROL_OUTCOMES = Group(
    "flow_control_outcomes", ("outcome", "priority", "inference_pool"), (FLOW_CONTROL_REQUEST,)
)
#: Revocations that reached an outcome.
REVOCATIONS = Group("revocations", ("outcome", "inference_pool"), (REVOCATION,))
#: Model rewrite decisions.
MODEL_REWRITES = Group(
    "model_rewrites", ("model_rewrite_name", "model_name", "target_model"), (REWRITE_DECISION,)
)

#: Every group, in the order the Recorder registers (and the exposition shows) their metrics.
GROUPS: tuple[Group, ...] = (
    REQUESTS,
    ERRORS,
    RUNNING_REQUESTS,
    POOLS,
    ENDPOINTS,
    INFO,
    PARSE_FAILURES,
    POLL_ERRORS,
    EXTRACT_ERRORS,
    SCHEDULING,
    PROCESSING,
    SCHEDULER_ATTEMPTS,
    PLUGINS,
    DATA_SCOPE_VIOLATIONS,
    FLOW_OUTCOMES,
    DISPATCH_CYCLES,
    FLOW_ENQUEUES,
    FLOW_QUEUES,
    POOL_SATURATIONS,
    SATURATION_DETECTORS,
    PRIORITY_BANDS,
    FLOW_CONTROL_POOLS,
    FLOW_CONTROL_OUTCOMES,
    REVOCATIONS,
    MODEL_REWRITES,
)
_GROUP_OF: dict[int, Group] = {id(m): g for g in GROUPS for m in g.measures}
if len(_GROUP_OF) != sum(len(g.measures) for g in GROUPS):  # pragma: no cover - a typo above
    raise AssertionError("a measure belongs to two groups")


def group_of(measure: Measure) -> Group:
    """The group whose calls derive ``measure``."""
    try:
        return _GROUP_OF[id(measure)]
    except KeyError:
        raise ValueError(
            f"measure {measure.name} belongs to no group: a new measure is derived by a "
            "Recorder call and listed in that call's group (inference_metrics.quantities)"
        ) from None


def measures() -> Iterator[Measure]:
    """Every measure of every group, in registration order."""
    for group in GROUPS:
        yield from group.measures
