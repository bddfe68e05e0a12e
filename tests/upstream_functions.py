# ruff: noqa: E501
"""Every recording function of llm-d-router's ``pkg/epp/metrics/metrics.go``, as data.

Source: llm-d/llm-d-router at main ebab687927f5 (metrics.go blob 314b12bde67c,
llm_d_router_metrics.go blob a35e192a8add, cardinality.go blob 3aa3b4ccb21f); the v0.10.0 tag
(commit 71f4f0999f95) lacks six of these functions (``at_tag=False``) and differs in two metrics
(:data:`AT_TAG`); tests/data/upstream/README.md says why both are cited. GIE's names are from
kubernetes-sigs/gateway-api-inference-extension ``pkg/epp/metrics/metrics.go`` at v1.5.0 (blob
8ae599fea9c2). Nothing is imported from ``inference_metrics``.

Per function: the Go signature; the Python method and parameters by issue 21's rule (the Go
names in snake_case, in upstream's order; ``ctx`` dropped; ``time.Duration`` as float seconds;
``time.Time`` as float seconds on one clock, the zero ``time.Time{}`` as ``None``; ``err`` as an
exception or ``None``; ``*SchedulingResult`` as the primary profile's first target endpoint,
``(name, namespace, port)``, or ``None``); the checks it makes before writing, in order, and what
it returns then; the labels upstream bounds; and every metric it writes, with the operation, the
value and each label value as a Python expression of the parameters. The expressions are data
(they read as upstream's code does) and are evaluated by tests/test_upstream_facts.py, which
replays upstream's test calls through them and compares the result with upstream's golden files.

Bounding (cardinality.go): ``boundModels`` maps model_name and target_model_name, ``boundModel``
model_name only, through one shared limiter of 1000 distinct values (both labels' values count
against the same 1000); ``boundFairnessID`` maps fairness_id through its own limiter of 1000.
A value beyond the cap becomes ``"other"``; ``""`` is never bounded; model names pinned by
``PreAdmitModelLabels`` (InferenceModelRewrite sources and targets) always pass and use no slot.
A bounded value replaces the parameter for the checks and labels that follow (so ``other`` is what
an ``!= ""`` check and every label, twin labels included, see).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .schema_facts import GIE_V15, LLM_D_ROUTER, LLM_D_ROUTER_TWINS, Fact

# --- where the facts come from ------------------------------------------------------------------

REPO = "llm-d/llm-d-router"
COMMIT = "ebab687927f5331c1b39defcb579a07951bce56c"
TAG = "v0.10.0"
TAG_COMMIT = "71f4f0999f95b96c49a9d0c4afbd18dfdb943c26"
GIE_REPO = "kubernetes-sigs/gateway-api-inference-extension"
GIE_TAG = "v1.5.0"
GIE_COMMIT = "df9f8909fe06fe2dfd4a6fc0bd0c01a0acabf849"

#: The value a capped label takes beyond its limit (cardinality.go ``overflowValue``).
OVERFLOW = "other"
#: Distinct values each limiter admits (``maxModelLabelValues``, ``maxFairnessLabelValues``).
MAX_MODEL_LABEL_VALUES = 1000
MAX_FAIRNESS_LABEL_VALUES = 1000

# --- metrics not yet in tests/schema_facts.py ---------------------------------------------------

SCHEDULER_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
REQUEST_PROCESSING_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.04, 0.06, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip
RESPONSE_PROCESSING_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
)  # fmt: skip
QUEUE_DURATION_BUCKETS = (
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
REVOCATION_CONFIRMATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

FLOW = ("fairness_id", "priority", "inference_pool", "model_name", "target_model_name")
QUEUE_DURATION_LABELS = (
    "fairness_id",
    "priority",
    "outcome",
    "inference_pool",
    "model_name",
    "target_model_name",
)
ENQUEUE_LABELS = ("fairness_id", "priority", "outcome")
PLUGIN = ("extension_point", "plugin_type", "plugin_name")

_SATURATION = (
    "Pool saturation signal gating Flow Control dispatch. The stage label partitions by pipeline role: "
    "'prefill' and 'decode' are per-stage signals, 'effective' is max(prefill, decode) and is the value used "
    "for gating. 1.0 is the gating set point; values above 1.0 indicate the magnitude of oversubscription past "
    "it. An empty pool reads as 1.0. With the default utilization detector, endpoints with missing or stale "
    "metrics score as fully saturated (fail-closed; see {stale})."
)
_SATURATION_AT_TAG = (
    "Pool saturation signal gating Flow Control dispatch. 1.0 is the gating set point; values above 1.0 "
    "indicate the magnitude of oversubscription past it. An empty pool reads as 1.0. With the default "
    "utilization detector, endpoints with missing or stale metrics score as fully saturated (fail-closed; "
    "see {stale})."
)
_STALE_AT_TAG = (
    "Number of candidate endpoints whose metrics are missing or older than the staleness threshold, as of the "
    "most recent saturation evaluation. Recorded by the utilization saturation detector, which scores these "
    "endpoints as fully saturated in flow_control_pool_saturation (fail-closed): a nonzero value during a "
    "dispatch stall indicates a metrics collection problem rather than genuine overload."
)


def _deprecated(fact: Fact, name: str, help_: str | None = None) -> Fact:
    """The twin upstream also writes under ``name``: same type, labels and buckets unless told,
    HELP ``[ALPHA] [Deprecated: Use <fact.name>] <fact's text>``."""
    text = fact.help.removeprefix("[ALPHA] ") if help_ is None else help_
    return Fact(
        name, fact.type, fact.labels, f"[ALPHA] [Deprecated: Use {fact.name}] {text}", fact.buckets
    )


SCHEDULER_E2E = Fact(
    "llm_d_epp_scheduler_e2e_duration_seconds",
    "histogram",
    (),
    "[ALPHA] End-to-end scheduling latency distribution in seconds.",
    SCHEDULER_BUCKETS,
)
SCHEDULER_ATTEMPTS = Fact(
    "llm_d_epp_scheduler_attempts_total",
    "counter",
    ("status", "target_model_name", "endpoint_name", "namespace", "port"),
    "[ALPHA] Total number of scheduling attempts.",
)
PLUGIN_DURATION = Fact(
    "llm_d_epp_plugin_duration_seconds",
    "histogram",
    PLUGIN,
    "[ALPHA] Plugin processing latency distribution in seconds for each extension point, plugin type and plugin name.",
    SCHEDULER_BUCKETS,
)
PLUGIN_DATA_SCOPE_VIOLATIONS = Fact(
    "llm_d_epp_plugin_data_scope_violations_total",
    "counter",
    (*PLUGIN, "access"),
    "[ALPHA] Total number of endpoint attribute accesses rejected because the plugin did not declare the DataKey in "
    "Produces() or Consumes(), by extension point, plugin type, plugin name and access kind (read or write). A "
    "non-zero value means a plugin's implementation has drifted from its declaration; rejected reads resolve as "
    "absent and rejected writes are dropped.",
)
REQUEST_PROCESSING = Fact(
    "llm_d_epp_request_processing_duration_seconds",
    "histogram",
    (),
    "[ALPHA] EPP request processing latency distribution in seconds, from request receipt until the request body "
    "has been handled, including admission control.",
    REQUEST_PROCESSING_BUCKETS,
)
RESPONSE_PROCESSING = Fact(
    "llm_d_epp_response_processing_duration_seconds",
    "histogram",
    (),
    "[ALPHA] EPP response processing latency distribution in seconds: the sum of per-chunk handler time for a "
    "streamed response, or the interval from response headers to completion for a non-streaming response.",
    RESPONSE_PROCESSING_BUCKETS,
)
FC_QUEUE_DURATION = Fact(
    "llm_d_epp_flow_control_request_queue_duration_seconds",
    "histogram",
    QUEUE_DURATION_LABELS,
    "[ALPHA] Distribution of total time requests spend in the Flow Control layer (from enqueue to final outcome).",
    QUEUE_DURATION_BUCKETS,
)
FC_DISPATCH_CYCLE = Fact(
    "llm_d_epp_flow_control_dispatch_cycle_duration_seconds",
    "histogram",
    (),
    "[ALPHA] Distribution of time taken for each internal dispatch cycle in the Flow Control layer.",
    SCHEDULER_BUCKETS,
)
FC_ENQUEUE_DURATION = Fact(
    "llm_d_epp_flow_control_request_enqueue_duration_seconds",
    "histogram",
    ENQUEUE_LABELS,
    "[ALPHA] Distribution of time taken to enqueue requests into the Flow Control layer.",
    SCHEDULER_BUCKETS,
)
FC_QUEUE_SIZE = Fact(
    "llm_d_epp_flow_control_queue_size",
    "gauge",
    FLOW,
    "[ALPHA] Current number of requests actively held in the Flow Control queue.",
)
FC_QUEUE_BYTES = Fact(
    "llm_d_epp_flow_control_queue_bytes",
    "gauge",
    FLOW,
    "[ALPHA] Current total size in bytes of requests actively held in the Flow Control queue.",
)
FC_POOL_SATURATION = Fact(
    "llm_d_epp_flow_control_pool_saturation",
    "gauge",
    ("inference_pool", "stage"),
    "[ALPHA] " + _SATURATION.format(stale="flow_control_stale_endpoints"),
)
FC_STALE_ENDPOINTS = Fact(
    "llm_d_epp_flow_control_stale_endpoints",
    "gauge",
    ("detector",),
    "[ALPHA] "
    + _STALE_AT_TAG
    + " This gauge carries no stage label and is written on every detector call, so it "
    "reflects the most recently evaluated stage; a reading of 0 does not rule out stale metrics in another stage. "
    "Per-stage stale accounting is tracked in #2475.",
)
FC_CAPACITY_REQUESTS = Fact(
    "llm_d_epp_flow_control_capacity_utilization_requests",
    "gauge",
    ("priority", "inference_pool"),
    "[ALPHA] Fraction of a priority band's effective request-count capacity currently occupied, aggregated over "
    "every flow in the band (0.0-1.0). The denominator falls back to a default when the band does not configure "
    "one, so every configured band reports a series. The all-bands rollup is a separate metric, "
    "flow_control_global_capacity_utilization_requests.",
)
FC_CAPACITY_BYTES = Fact(
    "llm_d_epp_flow_control_capacity_utilization_bytes",
    "gauge",
    ("priority", "inference_pool"),
    "[ALPHA] Fraction of a priority band's effective byte-size capacity currently occupied, aggregated over every "
    "flow in the band (0.0-1.0). The denominator falls back to a default when the band does not configure one, so "
    "every configured band reports a series. The all-bands rollup is a separate metric, "
    "flow_control_global_capacity_utilization_bytes.",
)
FC_GLOBAL_CAPACITY_REQUESTS = Fact(
    "llm_d_epp_flow_control_global_capacity_utilization_requests",
    "gauge",
    ("inference_pool",),
    "[ALPHA] Fraction of the global request-count capacity currently occupied across all priority bands (0.0-1.0). "
    "Global capacity is optional and unset by default; this series is emitted only when it is configured. Kept "
    "separate from flow_control_capacity_utilization_requests so aggregations over the per-band family do not "
    "double count the rollup.",
)
FC_GLOBAL_CAPACITY_BYTES = Fact(
    "llm_d_epp_flow_control_global_capacity_utilization_bytes",
    "gauge",
    ("inference_pool",),
    "[ALPHA] Fraction of the global byte-size capacity currently occupied across all priority bands (0.0-1.0). "
    "Global capacity is optional and unset by default; this series is emitted only when it is configured. Kept "
    "separate from flow_control_capacity_utilization_bytes so aggregations over the per-band family do not double "
    "count the rollup.",
)
FC_REQUESTS = Fact(
    "llm_d_epp_flow_control_requests_total",
    "counter",
    ("outcome", "priority", "inference_pool"),
    "[ALPHA] Total number of requests processed by the Flow Control layer.",
)
FC_REVOCATIONS_ISSUED = Fact(
    "llm_d_epp_flow_control_revocations_issued_total",
    "counter",
    ("priority", "inference_pool"),
    "[ALPHA] Total number of in-flight eviction revocations issued, labeled by the demand band's priority.",
)
FC_REVOCATIONS = Fact(
    "llm_d_epp_flow_control_revocations_total",
    "counter",
    ("outcome", "inference_pool"),
    "[ALPHA] Total number of in-flight eviction revocations by terminal outcome (confirmed, timed_out). Every "
    "issued revocation eventually increments exactly one outcome.",
)
FC_RECLAIM_TARGET = Fact(
    "llm_d_epp_flow_control_reclaim_target",
    "gauge",
    ("inference_pool",),
    "[ALPHA] Last computed reclamation deficit, in saturation-gauge units.",
)
FC_PENDING_RECLAIM = Fact(
    "llm_d_epp_flow_control_pending_reclaim",
    "gauge",
    ("inference_pool",),
    "[ALPHA] Sum of outstanding and cooling pending-reclaim debits, in saturation-gauge units.",
)
FC_REVOCATION_CONFIRMATION = Fact(
    "llm_d_epp_flow_control_revocation_confirmation_seconds",
    "histogram",
    ("inference_pool",),
    "[ALPHA] Time from revocation issue to confirmed stream termination.",
    REVOCATION_CONFIRMATION_BUCKETS,
)
MODEL_REWRITE = Fact(
    "llm_d_epp_model_rewrite_decisions_total",
    "counter",
    ("model_rewrite_name", "model_name", "target_model"),
    "[ALPHA] Total number of inference model rewrite decisions.",
)
DATALAYER_POLL_ERRORS = Fact(
    "llm_d_epp_datalayer_poll_errors_total",
    "counter",
    ("source_type",),
    "[ALPHA] Data-source poll errors per source type.",
)
DATALAYER_EXTRACT_ERRORS = Fact(
    "llm_d_epp_datalayer_extract_errors_total",
    "counter",
    ("source_type", "extractor_type"),
    "[ALPHA] Extract errors per source/extractor type.",
)

# The deprecated twins (metrics.go). Two carry no "[Deprecated: ...]" note: the model-rewrite
# counter, and inference_extension_info (in schema_facts).
SCHEDULER_E2E_TWIN = _deprecated(
    SCHEDULER_E2E, "inference_extension_scheduler_e2e_duration_seconds"
)
SCHEDULER_ATTEMPTS_TWIN = Fact(
    "inference_extension_scheduler_attempts_total",
    "counter",
    ("status", "target_model_name", "pod_name", "namespace", "port"),
    "[ALPHA] [Deprecated: Use llm_d_epp_scheduler_attempts_total] Total number of scheduling attempts.",
)
PLUGIN_DURATION_TWIN = _deprecated(PLUGIN_DURATION, "inference_extension_plugin_duration_seconds")
FC_QUEUE_DURATION_TWIN = _deprecated(
    FC_QUEUE_DURATION, "inference_extension_flow_control_request_queue_duration_seconds"
)
FC_DISPATCH_CYCLE_TWIN = _deprecated(
    FC_DISPATCH_CYCLE, "inference_extension_flow_control_dispatch_cycle_duration_seconds"
)
FC_ENQUEUE_DURATION_TWIN = _deprecated(
    FC_ENQUEUE_DURATION, "inference_extension_flow_control_request_enqueue_duration_seconds"
)
FC_QUEUE_SIZE_TWIN = _deprecated(FC_QUEUE_SIZE, "inference_extension_flow_control_queue_size")
FC_QUEUE_BYTES_TWIN = _deprecated(FC_QUEUE_BYTES, "inference_extension_flow_control_queue_bytes")
FC_POOL_SATURATION_TWIN = _deprecated(
    FC_POOL_SATURATION,
    "inference_extension_flow_control_pool_saturation",
    _SATURATION.format(stale="llm_d_epp_flow_control_stale_endpoints"),
)
MODEL_REWRITE_TWIN = Fact(
    "inference_extension_model_rewrite_decisions_total",
    "counter",
    MODEL_REWRITE.labels,
    MODEL_REWRITE.help,
)
DATALAYER_POLL_ERRORS_TWIN = _deprecated(
    DATALAYER_POLL_ERRORS, "llm_d_inference_scheduler_datalayer_poll_errors_total"
)
DATALAYER_EXTRACT_ERRORS_TWIN = _deprecated(
    DATALAYER_EXTRACT_ERRORS, "llm_d_inference_scheduler_datalayer_extract_errors_total"
)

#: How the metrics that exist at the v0.10.0 tag differ there (the six functions' own metrics,
#: absent at the tag, are not listed: their functions say ``at_tag=False``).
AT_TAG: Mapping[str, Fact] = {
    f.name: f
    for f in (
        Fact(FC_POOL_SATURATION.name, "gauge", ("inference_pool",),
             "[ALPHA] " + _SATURATION_AT_TAG.format(stale="flow_control_stale_endpoints")),
        Fact(FC_POOL_SATURATION_TWIN.name, "gauge", ("inference_pool",),
             "[ALPHA] [Deprecated: Use llm_d_epp_flow_control_pool_saturation] "
             + _SATURATION_AT_TAG.format(stale="llm_d_epp_flow_control_stale_endpoints")),
        Fact(FC_STALE_ENDPOINTS.name, "gauge", ("detector",), "[ALPHA] " + _STALE_AT_TAG),
    )
}  # fmt: skip

# GIE v1.5.0's names for the functions it has (no twins there, no "Deprecated" notes).
GIE_SCHEDULER_E2E = Fact(
    "inference_extension_scheduler_e2e_duration_seconds",
    "histogram",
    (),
    "[ALPHA] End-to-end scheduling latency distribution in seconds.",
    SCHEDULER_BUCKETS,
)
GIE_SCHEDULER_ATTEMPTS = Fact(
    "inference_extension_scheduler_attempts_total",
    "counter",
    SCHEDULER_ATTEMPTS_TWIN.labels,
    "[ALPHA] Total number of scheduling attempts.",
)
GIE_PLUGIN_DURATION = Fact(
    "inference_extension_plugin_duration_seconds",
    "histogram",
    PLUGIN,
    PLUGIN_DURATION.help,
    SCHEDULER_BUCKETS,
)
GIE_FC_QUEUE_DURATION = Fact(
    FC_QUEUE_DURATION_TWIN.name,
    "histogram",
    QUEUE_DURATION_LABELS,
    FC_QUEUE_DURATION.help,
    QUEUE_DURATION_BUCKETS,
)
GIE_FC_DISPATCH_CYCLE = Fact(
    FC_DISPATCH_CYCLE_TWIN.name, "histogram", (), FC_DISPATCH_CYCLE.help, SCHEDULER_BUCKETS
)
GIE_FC_ENQUEUE_DURATION = Fact(
    FC_ENQUEUE_DURATION_TWIN.name,
    "histogram",
    ENQUEUE_LABELS,
    FC_ENQUEUE_DURATION.help,
    SCHEDULER_BUCKETS,
)
GIE_FC_QUEUE_SIZE = Fact(FC_QUEUE_SIZE_TWIN.name, "gauge", FLOW, FC_QUEUE_SIZE.help)
GIE_FC_QUEUE_BYTES = Fact(FC_QUEUE_BYTES_TWIN.name, "gauge", FLOW, FC_QUEUE_BYTES.help)
GIE_FC_POOL_SATURATION = Fact(
    FC_POOL_SATURATION_TWIN.name,
    "gauge",
    ("inference_pool",),
    "[ALPHA] Current saturation level of the inference pool (0.0 = empty, 1.0 = fully saturated).",
)
GIE_MODEL_REWRITE = Fact(
    MODEL_REWRITE_TWIN.name, "counter", MODEL_REWRITE.labels, MODEL_REWRITE.help
)
#: GIE v1.5.0's own metrics that its TTFT/TPOT functions write besides the histograms of
#: tests/schema_facts.py (``type`` is "ttft" or "tpot" there); no schema of ours has it.
GIE_INFERENCE_REQUEST_METRIC = Fact(
    "inference_objective_inference_request_metric",
    "gauge",
    ("model_name", "target_model_name", "type"),
    "[ALPHA] Consolidated gauge for various inference request metrics including TTFT, TPOT, SLOs, and prediction durations.",
)

# --- the functions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One parameter: Go name and type, Python name and type by issue 21's rule."""

    go: str
    go_type: str
    name: str
    type: str


@dataclass(frozen=True)
class Check:
    """Before writing: when ``condition`` (a Python expression of the parameters, after
    bounding) holds, the function writes nothing and returns ``returns``; ``logs`` says whether
    upstream logs an error then (controller-runtime's logger, at error level)."""

    condition: str
    returns: bool | None
    logs: bool = False


@dataclass(frozen=True)
class Write:
    """One metric a call writes. ``op``: inc, dec (by 1), add, sub, set, observe (``value``), delete
    (the series of exactly ``labels``), delete_matching (every series whose labels equal the
    non-None ``labels``). ``labels``: one Python expression per ``fact.labels`` entry. ``twin_of``:
    the metric this one is the deprecated copy of (written by the same call with the same value)."""

    fact: Fact
    op: str
    labels: tuple[str | None, ...]
    value: str | None = None
    twin_of: str | None = None


@dataclass(frozen=True)
class Function:
    """One exported recording function of metrics.go."""

    go: str
    signature: str  # as in metrics.go, on one line, without the body
    method: str
    params: tuple[Param, ...]
    writes: tuple[Write, ...]
    checks: tuple[Check, ...] = ()
    returns: bool | None = None  # what it returns after writing (None: it returns nothing)
    bounds: Mapping[str, str] = field(default_factory=dict)  # parameter -> bounding function
    notes: tuple[str, ...] = ()  # what the fields above cannot say
    at_tag: bool = True  # present, with this signature, at the v0.10.0 tag
    tag_signature: str | None = None  # its signature at the tag when it differs
    today: str | None = None  # today's Recorder method that records the same (other signature)
    today_otherwise: str | None = None  # how today's Recorder records it otherwise, if at all
    gie_signature: str | None = None  # GIE v1.5.0's function of the same name, if any
    gie: tuple[Fact, ...] = ()  # the metrics that GIE function writes


def _p(go: str, go_type: str, name: str, type_: str) -> Param:
    return Param(go, go_type, name, type_)


def _s(go: str, name: str) -> Param:
    return Param(go, "string", name, "str")


MODEL_NAME = _s("modelName", "model_name")
TARGET_MODEL_NAME = _s("targetModelName", "target_model_name")
FAIRNESS_ID = _s("fairnessID", "fairness_id")
PRIORITY = _s("priority", "priority")
REQUEST = (MODEL_NAME, TARGET_MODEL_NAME, FAIRNESS_ID, PRIORITY)
INFERENCE_POOL = _s("inferencePool", "inference_pool")
DURATION = _p("duration", "time.Duration", "duration", "float")
POOL_NAME = _s("name", "name")
BOUND_REQUEST = {
    "model_name": "boundModels",
    "target_model_name": "boundModels",
    "fairness_id": "boundFairnessID",
}

_BY_NAME: Mapping[str, Fact] = {f.name: f for f in (*LLM_D_ROUTER, *LLM_D_ROUTER_TWINS)}
_GIE_BY_NAME: Mapping[str, Fact] = {f.name: f for f in GIE_V15}


def _by_name(fact: Fact) -> tuple[str, ...]:
    """Label expressions for a metric whose every label is the parameter of the same name."""
    return fact.labels


def _request_writes(
    new: str, twin: str | None, op: str, value: str | None, **labels: str
) -> tuple[Write, ...]:
    """The llm_d_epp request metric ``new`` and its inference_objective twin, one operation."""
    main = _BY_NAME[new]
    writes = [Write(main, op, tuple(labels.get(n, n) for n in main.labels), value)]
    if twin is not None:
        old = _BY_NAME[twin]
        writes.append(
            Write(old, op, tuple(labels.get(n, n) for n in old.labels), value, twin_of=new)
        )
    return tuple(writes)


def _pair(new: Fact, twin: Fact, op: str, value: str | None, **labels: str) -> tuple[Write, ...]:
    return (
        Write(new, op, tuple(labels.get(n, n) for n in new.labels), value),
        Write(twin, op, tuple(labels.get(n, n) for n in twin.labels), value, twin_of=new.name),
    )


def _pool(new: str, twin: str | None, value: str) -> tuple[Write, ...]:
    return _request_writes(new, twin, "set", value)


_PRIORITY_INT = (
    MODEL_NAME,
    TARGET_MODEL_NAME,
    FAIRNESS_ID,
    _p("priority", "int", "priority", "int"),
)
_INVALID_TIMES = Check("not complete > received", False, logs=True)
_STATUS = "'failure' if err is not None else 'success'"
_ENDPOINT = "result[{}] if err is None and result is not None else ''"
_FLOW_PARAMS = (FAIRNESS_ID, PRIORITY, INFERENCE_POOL, MODEL_NAME, TARGET_MODEL_NAME)
_GIE_FLOW = "(fairnessID, priority, inferencePool, modelName, targetModelName string"

FUNCTIONS: tuple[Function, ...] = (
    # --- requests ------------------------------------------------------------------------------
    Function(
        "RecordRequestCounter",
        "func RecordRequestCounter(modelName, targetModelName, fairnessID string, priority int)",
        "record_request_counter", _PRIORITY_INT,
        _request_writes("llm_d_epp_request_total", "inference_objective_request_total", "inc", None,
                        priority="str(priority)"),
        bounds=BOUND_REQUEST, today="record_request_counter",
        notes=("priority is an int here and a string in every other request function; the label is strconv.Itoa(priority).",),
        gie_signature="func RecordRequestCounter(modelName, targetModelName string, priority int)",
        gie=(_GIE_BY_NAME["inference_objective_request_total"],),
    ),
    Function(
        "RecordRequestErrCounter",
        "func RecordRequestErrCounter(modelName, targetModelName, fairnessID, priority string, code string)",
        "record_request_err_counter", (*REQUEST, _s("code", "code")),
        _request_writes("llm_d_epp_request_error_total", "inference_objective_request_error_total", "inc", None,
                        error_code="code"),
        checks=(Check("code == ''", None),), bounds=BOUND_REQUEST, today="record_request_error",
        notes=("The labels are bounded even when code is empty (a limiter slot is used, nothing is written).",),
        gie_signature="func RecordRequestErrCounter(modelName, targetModelName string, code string)",
        gie=(_GIE_BY_NAME["inference_objective_request_error_total"],),
    ),
    Function(
        "RecordRequestSizes",
        "func RecordRequestSizes(modelName, targetModelName, fairnessID, priority string, reqSize int)",
        "record_request_sizes", (*REQUEST, _p("reqSize", "int", "req_size", "int")),
        _request_writes("llm_d_epp_request_size_bytes", "inference_objective_request_sizes", "observe", "req_size"),
        bounds=BOUND_REQUEST, today="record_request_size",
        notes=("No check: 0 and negative sizes are observed.",),
        gie_signature="func RecordRequestSizes(modelName, targetModelName string, reqSize int)",
        gie=(_GIE_BY_NAME["inference_objective_request_sizes"],),
    ),
    Function(
        "RecordRequestLatencies",
        "func RecordRequestLatencies(ctx context.Context, modelName, targetModelName, fairnessID, priority string, received time.Time, complete time.Time) bool",
        "record_request_latencies",
        (*REQUEST, _p("received", "time.Time", "received", "float"), _p("complete", "time.Time", "complete", "float")),
        _request_writes("llm_d_epp_request_duration_seconds", "inference_objective_request_duration_seconds",
                        "observe", "complete - received"),
        checks=(_INVALID_TIMES,), returns=True, bounds=BOUND_REQUEST, today="record_request_latency",
        gie_signature="func RecordRequestLatencies(ctx context.Context, modelName, targetModelName string, received time.Time, complete time.Time) bool",
        gie=(_GIE_BY_NAME["inference_objective_request_duration_seconds"],),
    ),
    Function(
        "RecordResponseSizes",
        "func RecordResponseSizes(modelName, targetModelName, fairnessID, priority string, size int)",
        "record_response_sizes", (*REQUEST, _p("size", "int", "size", "int")),
        _request_writes("llm_d_epp_response_size_bytes", "inference_objective_response_sizes", "observe", "size"),
        bounds=BOUND_REQUEST, today="record_response_size",
        notes=("No check: 0 and negative sizes are observed.",),
        gie_signature="func RecordResponseSizes(modelName, targetModelName string, size int)",
        gie=(_GIE_BY_NAME["inference_objective_response_sizes"],),
    ),
    Function(
        "RecordInputTokens",
        "func RecordInputTokens(modelName, targetModelName, fairnessID, priority string, size int)",
        "record_input_tokens", (*REQUEST, _p("size", "int", "size", "int")),
        _request_writes("llm_d_epp_request_input_tokens", "inference_objective_input_tokens", "observe", "size"),
        checks=(Check("size <= 0", None),), bounds=BOUND_REQUEST, today="record_input_tokens",
        gie_signature="func RecordInputTokens(modelName, targetModelName string, size int)",
        gie=(_GIE_BY_NAME["inference_objective_input_tokens"],),
    ),
    Function(
        "RecordOutputTokens",
        "func RecordOutputTokens(modelName, targetModelName, fairnessID, priority string, size int)",
        "record_output_tokens", (*REQUEST, _p("size", "int", "size", "int")),
        _request_writes("llm_d_epp_request_output_tokens", "inference_objective_output_tokens", "observe", "size"),
        checks=(Check("size <= 0", None),), bounds=BOUND_REQUEST, today="record_output_tokens",
        gie_signature="func RecordOutputTokens(modelName, targetModelName string, size int)",
        gie=(_GIE_BY_NAME["inference_objective_output_tokens"],),
    ),
    Function(
        "RecordPromptCachedTokens",
        "func RecordPromptCachedTokens(modelName, targetModelName, fairnessID, priority string, size int)",
        "record_prompt_cached_tokens", (*REQUEST, _p("size", "int", "size", "int")),
        _request_writes("llm_d_epp_request_cached_tokens", "inference_objective_prompt_cached_tokens", "observe", "size"),
        bounds=BOUND_REQUEST, today_otherwise="record_request_completed(cached_tokens=...), 0 included",
        notes=("No check: unlike input/output tokens, 0 is observed (the handler calls it whenever the usage has "
               "prompt_tokens_details). Today's record_request_completed observes cached_tokens=0 too; None (the "
               "default) is 'not reported' and observes nothing.",),
        gie_signature="func RecordPromptCachedTokens(modelName, targetModelName string, size int)",
        gie=(_GIE_BY_NAME["inference_objective_prompt_cached_tokens"],),
    ),
    Function(
        "RecordNormalizedTimePerOutputToken",
        "func RecordNormalizedTimePerOutputToken(ctx context.Context, modelName, targetModelName, fairnessID, priority string, received time.Time, complete time.Time, outputTokenCount int) bool",
        "record_normalized_time_per_output_token",
        (*REQUEST, _p("received", "time.Time", "received", "float"), _p("complete", "time.Time", "complete", "float"),
         _p("outputTokenCount", "int", "output_token_count", "int")),
        _request_writes("llm_d_epp_request_ntpot_seconds", "inference_objective_normalized_time_per_output_token_seconds",
                        "observe", "(complete - received) / output_token_count"),
        checks=(Check("output_token_count <= 0", False), _INVALID_TIMES), returns=True, bounds=BOUND_REQUEST,
        today_otherwise="record_request_completed(output_tokens=...), with the latency",
        gie_signature="func RecordNormalizedTimePerOutputToken(ctx context.Context, modelName, targetModelName string, received time.Time, complete time.Time, outputTokenCount int) bool",
        gie=(_GIE_BY_NAME["inference_objective_normalized_time_per_output_token_seconds"],),
    ),
    Function(
        "RecordRequestTTFT",
        "func RecordRequestTTFT(ctx context.Context, modelName, targetModelName, fairnessID, priority string, streaming bool, received time.Time, firstToken time.Time) bool",
        "record_request_ttft",
        (*REQUEST, _p("streaming", "bool", "streaming", "bool"), _p("received", "time.Time", "received", "float"),
         _p("firstToken", "time.Time", "first_token", "float | None")),
        _request_writes("llm_d_epp_request_ttft_seconds", None, "observe", "first_token - received",
                        streaming="'true' if streaming else 'false'"),
        checks=(Check("first_token is None", False), Check("not first_token > received", False, logs=True)),
        returns=True, bounds=BOUND_REQUEST,
        today_otherwise="record_request_completed(first_token=..., streaming=...)",
        notes=("first_token None is Go's zero time.Time{} (firstToken.IsZero()).",
               "The caller passes the response-complete time as first_token for a non-streamed response.",
               "No deprecated twin: GIE v1.5.0's RecordRequestTTFT (another signature, the TTFT in seconds) writes "
               "inference_objective_request_ttft_seconds and inference_objective_inference_request_metric{type=\"ttft\"}; "
               "negative: returns false, logs."),
        gie_signature="func RecordRequestTTFT(ctx context.Context, modelName, targetModelName string, ttft float64) bool",
        gie=(_GIE_BY_NAME["inference_objective_request_ttft_seconds"], GIE_INFERENCE_REQUEST_METRIC),
    ),
    Function(
        "RecordRequestTPOT",
        "func RecordRequestTPOT(ctx context.Context, modelName, targetModelName, fairnessID, priority string, streaming bool, received time.Time, firstToken time.Time, complete time.Time, outputTokenCount int) bool",
        "record_request_tpot",
        (*REQUEST, _p("streaming", "bool", "streaming", "bool"), _p("received", "time.Time", "received", "float"),
         _p("firstToken", "time.Time", "first_token", "float | None"), _p("complete", "time.Time", "complete", "float"),
         _p("outputTokenCount", "int", "output_token_count", "int")),
        _request_writes("llm_d_epp_request_streaming_tpot_seconds", None, "observe",
                        "((complete - received) - (first_token - received)) / (output_token_count - 1)"),
        checks=(Check("not streaming", False), Check("first_token is None or output_token_count <= 1", False),
                Check("not (first_token > received and complete > first_token)", False, logs=True)),
        returns=True, bounds=BOUND_REQUEST,
        today_otherwise="record_request_completed(first_token=..., output_tokens=...), streamed",
        notes=("Bounding happens after the streaming check: a non-streamed call uses no limiter slot.",
               "The value is (e2e - ttft) / (n - 1), each a Duration.Seconds(), as written.",
               "GIE v1.5.0's RecordRequestTPOT takes the TPOT in seconds (negative: false, logged) and writes "
               "inference_objective_request_tpot_seconds and inference_objective_inference_request_metric{type=\"tpot\"}."),
        gie_signature="func RecordRequestTPOT(ctx context.Context, modelName, targetModelName string, tpot float64) bool",
        gie=(_GIE_BY_NAME["inference_objective_request_tpot_seconds"], GIE_INFERENCE_REQUEST_METRIC),
    ),
    Function(
        "RecordInterTokenLatency",
        "func RecordInterTokenLatency(ctx context.Context, modelName, targetModelName, fairnessID, priority string, itlSeconds float64) bool",
        "record_inter_token_latency", (*REQUEST, _p("itlSeconds", "float64", "itl_seconds", "float")),
        _request_writes("llm_d_epp_request_streaming_itl_seconds", None, "observe", "itl_seconds"),
        checks=(Check("itl_seconds < 0", False, logs=True),), returns=True, bounds=BOUND_REQUEST,
        today_otherwise="record_inter_token_latency(model_name, target_model_name, seconds, *, fairness_id, priority)",
        notes=("0 is observed. Today's record_inter_token_latency (same name, fairness_id and priority keyword-only) "
               "returns None and raises ValueError for a negative value instead of returning False.",),
    ),
    Function(
        "IncRunningRequests",
        "func IncRunningRequests(modelName, targetModelName, fairnessID, priority string)",
        "inc_running_requests", REQUEST,
        _request_writes("llm_d_epp_request_running", "inference_objective_running_requests", "inc", None),
        checks=(Check("model_name == ''", None),), bounds=BOUND_REQUEST, today="record_running_request_started",
        notes=("The twin is labelled by model_name alone, so it sums every target, fairness ID and priority.",),
        gie_signature="func IncRunningRequests(modelName string)",
        gie=(_GIE_BY_NAME["inference_objective_running_requests"],),
    ),
    Function(
        "DecRunningRequests",
        "func DecRunningRequests(modelName, targetModelName, fairnessID, priority string)",
        "dec_running_requests", REQUEST,
        _request_writes("llm_d_epp_request_running", "inference_objective_running_requests", "dec", None),
        checks=(Check("model_name == ''", None),), bounds=BOUND_REQUEST, today="record_running_request_finished",
        notes=("A Dec without its Inc goes below zero; nothing clamps it.",),
        gie_signature="func DecRunningRequests(modelName string)",
        gie=(_GIE_BY_NAME["inference_objective_running_requests"],),
    ),
    # --- pools ---------------------------------------------------------------------------------
    Function(
        "RecordInferencePoolAvgKVCache", "func RecordInferencePoolAvgKVCache(name string, utilization float64)",
        "record_inference_pool_avg_kv_cache", (POOL_NAME, _p("utilization", "float64", "utilization", "float")),
        _pool("llm_d_epp_average_kv_cache_utilization", "inference_pool_average_kv_cache_utilization", "utilization"),
        today="record_pool_kv_cache_utilization",
        gie_signature="func RecordInferencePoolAvgKVCache(name string, utilization float64)",
        gie=(_GIE_BY_NAME["inference_pool_average_kv_cache_utilization"],),
    ),
    Function(
        "RecordInferencePoolAvgQueueSize", "func RecordInferencePoolAvgQueueSize(name string, queueSize float64)",
        "record_inference_pool_avg_queue_size", (POOL_NAME, _p("queueSize", "float64", "queue_size", "float")),
        _pool("llm_d_epp_average_queue_size", "inference_pool_average_queue_size", "queue_size"),
        today="record_pool_queue_size",
        gie_signature="func RecordInferencePoolAvgQueueSize(name string, queueSize float64)",
        gie=(_GIE_BY_NAME["inference_pool_average_queue_size"],),
    ),
    Function(
        "RecordInferencePoolAvgRunningRequests",
        "func RecordInferencePoolAvgRunningRequests(name string, runningRequests float64)",
        "record_inference_pool_avg_running_requests",
        (POOL_NAME, _p("runningRequests", "float64", "running_requests", "float")),
        _pool("llm_d_epp_average_running_requests", "inference_pool_average_running_requests", "running_requests"),
        today="record_pool_average_running_requests",
        gie_signature="func RecordInferencePoolAvgRunningRequests(name string, runningRequests float64)",
        gie=(_GIE_BY_NAME["inference_pool_average_running_requests"],),
    ),
    Function(
        "RecordInferencePoolStdDevKVCache", "func RecordInferencePoolStdDevKVCache(name string, utilization float64)",
        "record_inference_pool_std_dev_kv_cache", (POOL_NAME, _p("utilization", "float64", "utilization", "float")),
        _pool("llm_d_epp_std_dev_kv_cache_utilization", None, "utilization"),
        today="record_pool_std_dev_kv_cache_utilization",
    ),
    Function(
        "RecordInferencePoolStdDevQueueSize", "func RecordInferencePoolStdDevQueueSize(name string, queueSize float64)",
        "record_inference_pool_std_dev_queue_size", (POOL_NAME, _p("queueSize", "float64", "queue_size", "float")),
        _pool("llm_d_epp_std_dev_queue_size", None, "queue_size"),
        today="record_pool_std_dev_queue_size",
    ),
    Function(
        "RecordInferencePoolStdDevRunningRequests",
        "func RecordInferencePoolStdDevRunningRequests(name string, runningRequests float64)",
        "record_inference_pool_std_dev_running_requests",
        (POOL_NAME, _p("runningRequests", "float64", "running_requests", "float")),
        _pool("llm_d_epp_std_dev_running_requests", None, "running_requests"),
        today="record_pool_std_dev_running_requests",
    ),
    Function(
        "RecordInferencePoolReadyPods", "func RecordInferencePoolReadyPods(name string, runningPods float64)",
        "record_inference_pool_ready_pods", (POOL_NAME, _p("runningPods", "float64", "running_pods", "float")),
        _pool("llm_d_epp_ready_endpoints", "inference_pool_ready_pods", "running_pods"),
        today="record_pool_ready_pods",
        gie_signature="func RecordInferencePoolReadyPods(name string, runningPods float64)",
        gie=(_GIE_BY_NAME["inference_pool_ready_pods"],),
    ),
    # --- scheduling and plugins ----------------------------------------------------------------
    Function(
        "RecordSchedulerE2ELatency", "func RecordSchedulerE2ELatency(duration time.Duration)",
        "record_scheduler_e2e_latency", (DURATION,),
        _pair(SCHEDULER_E2E, SCHEDULER_E2E_TWIN, "observe", "duration"),
        notes=("No check: a negative duration is observed.",),
        gie_signature="func RecordSchedulerE2ELatency(duration time.Duration)", gie=(GIE_SCHEDULER_E2E,),
    ),
    Function(
        "RecordRequestProcessingLatency", "func RecordRequestProcessingLatency(duration time.Duration)",
        "record_request_processing_latency", (DURATION,),
        (Write(REQUEST_PROCESSING, "observe", (), "duration"),),
        notes=("From request receipt until the request body has been handled (server.go: time.Since(RequestReceivedTimestamp)).",),
    ),
    Function(
        "RecordResponseProcessingLatency", "func RecordResponseProcessingLatency(duration time.Duration)",
        "record_response_processing_latency", (DURATION,),
        (Write(RESPONSE_PROCESSING, "observe", (), "duration"),),
        notes=("Streamed: the sum of the per-chunk handler times; otherwise response headers to completion.",),
    ),
    Function(
        "RecordSchedulerAttempt",
        "func RecordSchedulerAttempt(err error, targetModelName string, result *fwksched.SchedulingResult)",
        "record_scheduler_attempt",
        (_p("err", "error", "err", "BaseException | None"), TARGET_MODEL_NAME,
         _p("result", "*fwksched.SchedulingResult", "result", "tuple[str, str, str] | None")),
        _pair(SCHEDULER_ATTEMPTS, SCHEDULER_ATTEMPTS_TWIN, "inc", None, status=_STATUS,
              endpoint_name=_ENDPOINT.format(0), pod_name=_ENDPOINT.format(0),
              namespace=_ENDPOINT.format(1), port=_ENDPOINT.format(2)),
        notes=("err non-nil: status failure, endpoint labels empty, result ignored.",
               "Success: the first TargetEndpoints entry of ProfileResults[PrimaryProfileName], its metadata Name, "
               "ID.Namespace and Port (a string); no result, no primary profile result, no endpoint or nil metadata: "
               "status success with empty endpoint labels. In Python the caller reduces the result to that tuple or None.",
               "target_model_name is not bounded here.",
               "GIE v1.5.0 uses metadata.PodName and NamespacedName.Namespace for the same labels."),
        gie_signature="func RecordSchedulerAttempt(err error, targetModelName string, result *schedulingframework.SchedulingResult)",
        gie=(GIE_SCHEDULER_ATTEMPTS,),
    ),
    Function(
        "RecordPluginProcessingLatency",
        "func RecordPluginProcessingLatency(extensionPoint, pluginType, pluginName string, duration time.Duration)",
        "record_plugin_processing_latency",
        (_s("extensionPoint", "extension_point"), _s("pluginType", "plugin_type"), _s("pluginName", "plugin_name"), DURATION),
        _pair(PLUGIN_DURATION, PLUGIN_DURATION_TWIN, "observe", "duration"),
        notes=("Extension points at ebab6879: ProfilePicker, Filter, Scorer, Picker, ProcessProfilesResults "
               "(scheduler); RequestHeader, Screener, Admission, DataProducer, PreRequest, ResponseReceived, "
               "ResponseStreaming (request control); RequestParsing, ResponseParsing (handlers).",),
        gie_signature="func RecordPluginProcessingLatency(extensionPoint, pluginType, pluginName string, duration time.Duration)",
        gie=(GIE_PLUGIN_DURATION,),
    ),
    Function(
        "RecordPluginDataScopeViolation",
        "func RecordPluginDataScopeViolation(extensionPoint, pluginType, pluginName, access string)",
        "record_plugin_data_scope_violation",
        (_s("extensionPoint", "extension_point"), _s("pluginType", "plugin_type"), _s("pluginName", "plugin_name"),
         _s("access", "access")),
        (Write(PLUGIN_DATA_SCOPE_VIOLATIONS, "inc", _by_name(PLUGIN_DATA_SCOPE_VIOLATIONS)),),
        notes=("access is DataScopeAccessRead (\"read\") or DataScopeAccessWrite (\"write\").",),
        at_tag=False,
    ),
    Function(
        "RecordInferenceExtensionInfo", "func RecordInferenceExtensionInfo(commitSha, buildRef string)",
        "record_inference_extension_info", (_s("commitSha", "commit_sha"), _s("buildRef", "build_ref")),
        (Write(_BY_NAME["inference_extension_info"], "set", ("commit_sha", "build_ref"), "1"),
         Write(_BY_NAME["llm_d_epp_info"], "set", ("commit_sha", "build_ref"), "1")),
        today="record_extension_info",
        notes=("Two names, neither marked deprecated: inference_extension_info and llm_d_epp_info, both set to 1.",),
        gie_signature="func RecordInferenceExtensionInfo(commitSha, buildRef string)",
        gie=(_GIE_BY_NAME["inference_extension_info"],),
    ),
    # --- flow control --------------------------------------------------------------------------
    Function(
        "RecordFlowControlRequestQueueDuration",
        "func RecordFlowControlRequestQueueDuration(fairnessID, priority, outcome, inferencePool, modelName, targetModelName string, duration time.Duration)",
        "record_flow_control_request_queue_duration",
        (FAIRNESS_ID, PRIORITY, _s("outcome", "outcome"), INFERENCE_POOL, MODEL_NAME, TARGET_MODEL_NAME, DURATION),
        _pair(FC_QUEUE_DURATION, FC_QUEUE_DURATION_TWIN, "observe", "duration"),
        bounds=BOUND_REQUEST,
        notes=("Outcomes (QueueOutcome.String()): NotYetFinalized, Dispatched, RejectedCapacity, RejectedNoEndpoints, "
               "RejectedOther, EvictedTTL, EvictedNoEndpoints, EvictedContextCancelled, EvictedOther.",),
        gie_signature="func RecordFlowControlRequestQueueDuration(fairnessID, priority, outcome, inferencePool, modelName, targetModelName string, duration time.Duration)",
        gie=(GIE_FC_QUEUE_DURATION,),
    ),
    Function(
        "RecordFlowControlDispatchCycleDuration",
        "func RecordFlowControlDispatchCycleDuration(duration time.Duration)",
        "record_flow_control_dispatch_cycle_duration", (DURATION,),
        _pair(FC_DISPATCH_CYCLE, FC_DISPATCH_CYCLE_TWIN, "observe", "duration"),
        gie_signature="func RecordFlowControlDispatchCycleDuration(duration time.Duration)", gie=(GIE_FC_DISPATCH_CYCLE,),
    ),
    Function(
        "RecordFlowControlRequestEnqueueDuration",
        "func RecordFlowControlRequestEnqueueDuration(fairnessID string, priority string, outcome string, duration time.Duration)",
        "record_flow_control_request_enqueue_duration", (FAIRNESS_ID, PRIORITY, _s("outcome", "outcome"), DURATION),
        _pair(FC_ENQUEUE_DURATION, FC_ENQUEUE_DURATION_TWIN, "observe", "duration"),
        bounds={"fairness_id": "boundFairnessID"},
        gie_signature="func RecordFlowControlRequestEnqueueDuration(fairnessID string, priority string, outcome string, duration time.Duration)",
        gie=(GIE_FC_ENQUEUE_DURATION,),
    ),
    Function(
        "IncFlowControlQueueSize",
        "func IncFlowControlQueueSize(fairnessID, priority, inferencePool, modelName, targetModelName string)",
        "inc_flow_control_queue_size", _FLOW_PARAMS,
        _pair(FC_QUEUE_SIZE, FC_QUEUE_SIZE_TWIN, "inc", None), bounds=BOUND_REQUEST,
        notes=("Paired with DecFlowControlQueueSize by a defer in the controller, once per request.",),
        gie_signature="func IncFlowControlQueueSize" + _GIE_FLOW + ")", gie=(GIE_FC_QUEUE_SIZE,),
    ),
    Function(
        "DecFlowControlQueueSize",
        "func DecFlowControlQueueSize(fairnessID, priority, inferencePool, modelName, targetModelName string)",
        "dec_flow_control_queue_size", _FLOW_PARAMS,
        _pair(FC_QUEUE_SIZE, FC_QUEUE_SIZE_TWIN, "dec", None), bounds=BOUND_REQUEST,
        gie_signature="func DecFlowControlQueueSize" + _GIE_FLOW + ")", gie=(GIE_FC_QUEUE_SIZE,),
    ),
    Function(
        "AddFlowControlQueueBytes",
        "func AddFlowControlQueueBytes(fairnessID, priority, inferencePool, modelName, targetModelName string, bytes uint64)",
        "add_flow_control_queue_bytes", (*_FLOW_PARAMS, _p("bytes", "uint64", "bytes", "int")),
        _pair(FC_QUEUE_BYTES, FC_QUEUE_BYTES_TWIN, "add", "bytes"), bounds=BOUND_REQUEST,
        notes=("bytes is unsigned in Go: never negative. The Python name shadows the builtin bytes.",),
        gie_signature="func AddFlowControlQueueBytes" + _GIE_FLOW + ", bytes uint64)", gie=(GIE_FC_QUEUE_BYTES,),
    ),
    Function(
        "SubFlowControlQueueBytes",
        "func SubFlowControlQueueBytes(fairnessID, priority, inferencePool, modelName, targetModelName string, bytes uint64)",
        "sub_flow_control_queue_bytes", (*_FLOW_PARAMS, _p("bytes", "uint64", "bytes", "int")),
        _pair(FC_QUEUE_BYTES, FC_QUEUE_BYTES_TWIN, "sub", "bytes"), bounds=BOUND_REQUEST,
        gie_signature="func SubFlowControlQueueBytes" + _GIE_FLOW + ", bytes uint64)", gie=(GIE_FC_QUEUE_BYTES,),
    ),
    Function(
        "RecordFlowControlPoolSaturation",
        "func RecordFlowControlPoolSaturation(inferencePool, stage string, saturation float64)",
        "record_flow_control_pool_saturation",
        (INFERENCE_POOL, _s("stage", "stage"), _p("saturation", "float64", "saturation", "float")),
        _pair(FC_POOL_SATURATION, FC_POOL_SATURATION_TWIN, "set", "saturation"),
        notes=("stage is prefill, decode or effective (max of the two, the gating value); not clamped: above 1.0 is "
               "oversubscription, an empty pool reads 1.0.",
               "At the tag there is no stage: both names have the one label inference_pool."),
        tag_signature="func RecordFlowControlPoolSaturation(inferencePool string, saturation float64)",
        gie_signature="func RecordFlowControlPoolSaturation(inferencePool string, saturation float64)",
        gie=(GIE_FC_POOL_SATURATION,),
    ),
    Function(
        "DeleteFlowControlPoolSaturation",
        "func DeleteFlowControlPoolSaturation(inferencePool, stage string)",
        "delete_flow_control_pool_saturation", (INFERENCE_POOL, _s("stage", "stage")),
        _pair(FC_POOL_SATURATION, FC_POOL_SATURATION_TWIN, "delete", None),
        notes=("The dispatch cycle deletes the prefill or decode series when that stage has no endpoints.",),
        at_tag=False,
    ),
    Function(
        "RecordFlowControlStaleEndpoints", "func RecordFlowControlStaleEndpoints(detector string, count int)",
        "record_flow_control_stale_endpoints", (_s("detector", "detector"), _p("count", "int", "count", "int")),
        (Write(FC_STALE_ENDPOINTS, "set", ("detector",), "count"),),
        notes=("detector is the saturation detector's plugin name; written on every evaluation (0 included).",),
    ),
    Function(
        "RecordFlowControlCapacityUtilizationRequests",
        "func RecordFlowControlCapacityUtilizationRequests(priority, inferencePool string, ratio float64)",
        "record_flow_control_capacity_utilization_requests",
        (PRIORITY, INFERENCE_POOL, _p("ratio", "float64", "ratio", "float")),
        (Write(FC_CAPACITY_REQUESTS, "set", _by_name(FC_CAPACITY_REQUESTS), "ratio"),), at_tag=False,
    ),
    Function(
        "RecordFlowControlCapacityUtilizationBytes",
        "func RecordFlowControlCapacityUtilizationBytes(priority, inferencePool string, ratio float64)",
        "record_flow_control_capacity_utilization_bytes",
        (PRIORITY, INFERENCE_POOL, _p("ratio", "float64", "ratio", "float")),
        (Write(FC_CAPACITY_BYTES, "set", _by_name(FC_CAPACITY_BYTES), "ratio"),), at_tag=False,
    ),
    Function(
        "RecordFlowControlGlobalCapacityUtilizationRequests",
        "func RecordFlowControlGlobalCapacityUtilizationRequests(inferencePool string, ratio float64)",
        "record_flow_control_global_capacity_utilization_requests",
        (INFERENCE_POOL, _p("ratio", "float64", "ratio", "float")),
        (Write(FC_GLOBAL_CAPACITY_REQUESTS, "set", ("inference_pool",), "ratio"),), at_tag=False,
        notes=("Called only when a global capacity is configured: otherwise the series does not exist.",),
    ),
    Function(
        "RecordFlowControlGlobalCapacityUtilizationBytes",
        "func RecordFlowControlGlobalCapacityUtilizationBytes(inferencePool string, ratio float64)",
        "record_flow_control_global_capacity_utilization_bytes",
        (INFERENCE_POOL, _p("ratio", "float64", "ratio", "float")),
        (Write(FC_GLOBAL_CAPACITY_BYTES, "set", ("inference_pool",), "ratio"),), at_tag=False,
        notes=("Called only when a global capacity is configured: otherwise the series does not exist.",),
    ),
    Function(
        "IncFlowControlRequestsTotal",
        "func IncFlowControlRequestsTotal(outcome, priority, inferencePool string)",
        "inc_flow_control_requests_total", (_s("outcome", "outcome"), PRIORITY, INFERENCE_POOL),
        (Write(FC_REQUESTS, "inc", _by_name(FC_REQUESTS)),),
    ),
    Function(
        "RecordFlowControlRevocationsIssued",
        "func RecordFlowControlRevocationsIssued(inferencePool, priority string, n int)",
        "record_flow_control_revocations_issued", (INFERENCE_POOL, PRIORITY, _p("n", "int", "n", "int")),
        (Write(FC_REVOCATIONS_ISSUED, "add", ("priority", "inference_pool"), "n"),),
        notes=("The label order (priority, inference_pool) is not the parameter order.",
               "Add(float64(n)) on a counter: a negative n panics in client_golang; n is len(evicted), never negative."),
    ),
    Function(
        "RecordFlowControlRevocations",
        "func RecordFlowControlRevocations(inferencePool, outcome string, n int)",
        "record_flow_control_revocations", (INFERENCE_POOL, _s("outcome", "outcome"), _p("n", "int", "n", "int")),
        (Write(FC_REVOCATIONS, "add", ("outcome", "inference_pool"), "n"),),
        notes=("outcome is RevocationOutcomeConfirmed (\"confirmed\") or RevocationOutcomeTimedOut (\"timed_out\").",
               "Add(float64(n)) on a counter: a negative n panics in client_golang."),
    ),
    Function(
        "RecordFlowControlReclaimTarget",
        "func RecordFlowControlReclaimTarget(inferencePool string, target float64)",
        "record_flow_control_reclaim_target", (INFERENCE_POOL, _p("target", "float64", "target", "float")),
        (Write(FC_RECLAIM_TARGET, "set", ("inference_pool",), "target"),),
    ),
    Function(
        "RecordFlowControlPendingReclaim",
        "func RecordFlowControlPendingReclaim(inferencePool string, pending float64)",
        "record_flow_control_pending_reclaim", (INFERENCE_POOL, _p("pending", "float64", "pending", "float")),
        (Write(FC_PENDING_RECLAIM, "set", ("inference_pool",), "pending"),),
    ),
    Function(
        "RecordFlowControlRevocationConfirmationDuration",
        "func RecordFlowControlRevocationConfirmationDuration(inferencePool string, duration time.Duration)",
        "record_flow_control_revocation_confirmation_duration", (INFERENCE_POOL, DURATION),
        (Write(FC_REVOCATION_CONFIRMATION, "observe", ("inference_pool",), "duration"),),
    ),
    Function(
        "DeleteFlowControlFlowSeries", "func DeleteFlowControlFlowSeries(fairnessID, priority string)",
        "delete_flow_control_flow_series", (FAIRNESS_ID, PRIORITY),
        tuple(
            Write(fact, "delete_matching",
                  tuple(n if n in ("fairness_id", "priority") else None for n in fact.labels), twin_of=twin_of)
            for fact, twin_of in (
                (FC_QUEUE_DURATION_TWIN, FC_QUEUE_DURATION.name), (FC_ENQUEUE_DURATION_TWIN, FC_ENQUEUE_DURATION.name),
                (FC_QUEUE_SIZE_TWIN, FC_QUEUE_SIZE.name), (FC_QUEUE_BYTES_TWIN, FC_QUEUE_BYTES.name),
                (FC_QUEUE_DURATION, None), (FC_ENQUEUE_DURATION, None), (FC_QUEUE_SIZE, None), (FC_QUEUE_BYTES, None),
            )
        ),
        checks=(Check("fairness_id == 'other'", None),),
        notes=("fairness_id is not bounded: the raw ID is matched, so the series of an ID that was folded into "
               "'other' are never deleted, and 'other' itself (shared by every folded ID) is never deleted.",
               "Not synchronized with recording: a queue increment deleted here whose decrement lands afterwards leaves "
               "the size/bytes gauges negative until the flow is collected again (upstream's comment).",
               "Called by the flow registry when it garbage-collects an idle flow."),
    ),
    # --- model rewrites and the data layer -----------------------------------------------------
    Function(
        "RecordInferenceModelRewriteDecision",
        "func RecordInferenceModelRewriteDecision(modelRewriteName, modelName, targetModel string)",
        "record_inference_model_rewrite_decision",
        (_s("modelRewriteName", "model_rewrite_name"), MODEL_NAME, _s("targetModel", "target_model")),
        _pair(MODEL_REWRITE, MODEL_REWRITE_TWIN, "inc", None),
        bounds={"model_name": "boundModel"},
        notes=("Only model_name (request-derived) is bounded; the rule name and target come from configuration.",),
        gie_signature="func RecordInferenceModelRewriteDecision(modelRewriteName, modelName, targetModel string)",
        gie=(GIE_MODEL_REWRITE,),
    ),
    Function(
        "RecordDataLayerPollError", "func RecordDataLayerPollError(sourceType string)",
        "record_data_layer_poll_error", (_s("sourceType", "source_type"),),
        _pair(DATALAYER_POLL_ERRORS, DATALAYER_POLL_ERRORS_TWIN, "inc", None),
        notes=("source_type is the data source plugin's type (collector.go: tn.Type).",),
    ),
    Function(
        "RecordDataLayerExtractError", "func RecordDataLayerExtractError(sourceType, extractorType string)",
        "record_data_layer_extract_error", (_s("sourceType", "source_type"), _s("extractorType", "extractor_type")),
        _pair(DATALAYER_EXTRACT_ERRORS, DATALAYER_EXTRACT_ERRORS_TWIN, "inc", None),
    ),
)  # fmt: skip

FUNCTION_BY_METHOD: Mapping[str, Function] = {f.method: f for f in FUNCTIONS}

#: Every metric a function writes, by name (twins included; the collector's per-endpoint queue
#: gauge is not a function's and is in tests/schema_facts.py).
METRICS: Mapping[str, Fact] = {w.fact.name: w.fact for f in FUNCTIONS for w in f.writes}

#: What the llm-d-router schema shows of upstream's: the request and pool metrics
#: (tests/schema_facts.py), the data layer's counters, and (issue 21) the metrics of the
#: scheduler, plugins, processing, model rewrites and flow control; canonical and deprecated twins.
PICKER: tuple[Fact, ...] = (
    SCHEDULER_E2E,
    SCHEDULER_ATTEMPTS,
    PLUGIN_DURATION,
    PLUGIN_DATA_SCOPE_VIOLATIONS,
    REQUEST_PROCESSING,
    RESPONSE_PROCESSING,
    MODEL_REWRITE,
    FC_QUEUE_DURATION,
    FC_DISPATCH_CYCLE,
    FC_ENQUEUE_DURATION,
    FC_QUEUE_SIZE,
    FC_QUEUE_BYTES,
    FC_POOL_SATURATION,
    FC_STALE_ENDPOINTS,
    FC_CAPACITY_REQUESTS,
    FC_CAPACITY_BYTES,
    FC_GLOBAL_CAPACITY_REQUESTS,
    FC_GLOBAL_CAPACITY_BYTES,
    FC_REQUESTS,
    FC_REVOCATIONS_ISSUED,
    FC_REVOCATIONS,
    FC_RECLAIM_TARGET,
    FC_PENDING_RECLAIM,
    FC_REVOCATION_CONFIRMATION,
)
PICKER_TWINS: tuple[Fact, ...] = (
    SCHEDULER_E2E_TWIN,
    SCHEDULER_ATTEMPTS_TWIN,
    PLUGIN_DURATION_TWIN,
    FC_QUEUE_DURATION_TWIN,
    FC_DISPATCH_CYCLE_TWIN,
    FC_ENQUEUE_DURATION_TWIN,
    FC_QUEUE_SIZE_TWIN,
    FC_QUEUE_BYTES_TWIN,
    FC_POOL_SATURATION_TWIN,
    MODEL_REWRITE_TWIN,
)
#: GIE v1.5.0's metrics of the same functions (the gie-v1.5 schema shows them).
GIE_PICKER: tuple[Fact, ...] = (
    GIE_SCHEDULER_E2E,
    GIE_SCHEDULER_ATTEMPTS,
    GIE_PLUGIN_DURATION,
    GIE_FC_QUEUE_DURATION,
    GIE_FC_DISPATCH_CYCLE,
    GIE_FC_ENQUEUE_DURATION,
    GIE_FC_QUEUE_SIZE,
    GIE_FC_QUEUE_BYTES,
    GIE_FC_POOL_SATURATION,
    GIE_MODEL_REWRITE,
)
SCHEMA_LLM_D_ROUTER: tuple[Fact, ...] = (
    *LLM_D_ROUTER,
    DATALAYER_POLL_ERRORS,
    DATALAYER_EXTRACT_ERRORS,
    *PICKER,
)
SCHEMA_LLM_D_ROUTER_TWINS: tuple[Fact, ...] = (
    *LLM_D_ROUTER_TWINS,
    DATALAYER_POLL_ERRORS_TWIN,
    DATALAYER_EXTRACT_ERRORS_TWIN,
    *PICKER_TWINS,
)
SCHEMA_GIE_V15: tuple[Fact, ...] = (*GIE_V15, *GIE_PICKER)
