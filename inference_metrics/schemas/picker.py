"""Views of the endpoint picker's internals: scheduler, plugins, flow control, model rewrites.

Upstream's metrics of the recording functions in :mod:`inference_metrics.calls` (scheduling and
flow control), as llm-d-router defines them at main ebab6879 (``pkg/epp/metrics/metrics.go``,
``llm_d_router_metrics.go``) and as GIE v1.5.0 defines the ones it has
(``pkg/epp/metrics/metrics.go`` at tag v1.5.0):

* :data:`LLM_D_ROUTER`: the ``llm_d_epp_*`` names, and :data:`LLM_D_ROUTER_TWINS`: the
  ``inference_extension_*`` names llm-d-router still writes from the same calls, with
  ``[Deprecated: Use llm_d_epp_…]`` in their HELP (the model-rewrite counter's twin has no such
  note upstream, and the scheduler attempts' twin says ``pod_name`` for ``endpoint_name``);
* :data:`GIE_V15`: GIE v1.5.0's ``inference_extension_*`` names, without the note. Its pool
  saturation has no ``stage`` label and its own HELP: it shows the ``effective`` stage (the value
  that gates dispatch) and nothing of ``prefill``/``decode``. GIE v1.5.0 has no request and
  response processing, data-scope, capacity, stale-endpoint, request-total or revocation metrics.

Names, HELP texts, labels and buckets are upstream's, checked against tests/upstream_functions.py.
"""

from __future__ import annotations

import dataclasses

from .. import quantities as q
from ..quantities import Quantity
from ..spec import Kind, MetricSpec
from .base import View, spec_exemplars

__all__ = ["GIE_V15", "LLM_D_ROUTER", "LLM_D_ROUTER_TWINS"]

#: Scheduler, plugin, dispatch-cycle and enqueue buckets (seconds).
SCHEDULER_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
REQUEST_PROCESSING_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.04, 0.06, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip
RESPONSE_PROCESSING_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
)  # fmt: skip
QUEUE_DURATION_BUCKETS = (
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip
REVOCATION_CONFIRMATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

PLUGIN = ("extension_point", "plugin_type", "plugin_name")
FLOW = ("fairness_id", "priority", "inference_pool", "model_name", "target_model_name")
QUEUE_DURATION = (
    "fairness_id",
    "priority",
    "outcome",
    "inference_pool",
    "model_name",
    "target_model_name",
)
ENQUEUE = ("fairness_id", "priority", "outcome")
ATTEMPT = ("status", "target_model_name", "endpoint_name", "namespace", "port")

_SATURATION = (
    "Pool saturation signal gating Flow Control dispatch. The stage label partitions by "
    "pipeline role: 'prefill' and 'decode' are per-stage signals, 'effective' is max(prefill, "
    "decode) and is the value used for gating. 1.0 is the gating set point; values above 1.0 "
    "indicate the magnitude of oversubscription past it. An empty pool reads as 1.0. With the "
    "default utilization detector, endpoints with missing or stale metrics score as fully "
    "saturated (fail-closed; see {stale})."
)


def _histogram(
    quantity: Quantity,
    name: str,
    help: str,
    labels: tuple[str, ...],
    buckets: tuple[float, ...],
) -> View:
    spec = MetricSpec(
        name,
        Kind.HISTOGRAM,
        help,
        labels,
        buckets=buckets,
        unit="s",
        exemplars=spec_exemplars(quantity),
    )
    return View(quantity, spec)


def _metric(quantity: Quantity, name: str, help: str, labels: tuple[str, ...], unit: str) -> View:
    return View(quantity, MetricSpec(name, quantity.kind, help, labels, unit=unit))


_E2E = "End-to-end scheduling latency distribution in seconds."
_ATTEMPTS = "Total number of scheduling attempts."
_PLUGIN = (
    "Plugin processing latency distribution in seconds for each extension point, plugin type "
    "and plugin name."
)
_QUEUE_DURATION = (
    "Distribution of total time requests spend in the Flow Control layer (from enqueue to final "
    "outcome)."
)
_DISPATCH = "Distribution of time taken for each internal dispatch cycle in the Flow Control layer."
_ENQUEUE = "Distribution of time taken to enqueue requests into the Flow Control layer."
_QUEUE_SIZE = "Current number of requests actively held in the Flow Control queue."
_QUEUE_BYTES = "Current total size in bytes of requests actively held in the Flow Control queue."
_REWRITE = "Total number of inference model rewrite decisions."

#: llm-d-router's ``llm_d_epp_*`` views of the picker's internals.
LLM_D_ROUTER: tuple[View, ...] = (
    _histogram(q.SCHEDULER_E2E_DURATION, "llm_d_epp_scheduler_e2e_duration_seconds", _E2E, (),
               SCHEDULER_BUCKETS),
    _metric(q.SCHEDULER_ATTEMPTS, "llm_d_epp_scheduler_attempts_total", _ATTEMPTS, ATTEMPT,
            "{attempt}"),
    _histogram(q.PLUGIN_DURATION, "llm_d_epp_plugin_duration_seconds", _PLUGIN, PLUGIN,
               SCHEDULER_BUCKETS),
    _metric(
        q.PLUGIN_DATA_SCOPE_VIOLATIONS,
        "llm_d_epp_plugin_data_scope_violations_total",
        "Total number of endpoint attribute accesses rejected because the plugin did not "
        "declare the DataKey in Produces() or Consumes(), by extension point, plugin type, "
        "plugin name and access kind (read or write). A non-zero value means a plugin's "
        "implementation has drifted from its declaration; rejected reads resolve as absent and "
        "rejected writes are dropped.",
        (*PLUGIN, "access"),
        "{access}",
    ),
    _histogram(
        q.REQUEST_PROCESSING_DURATION,
        "llm_d_epp_request_processing_duration_seconds",
        "EPP request processing latency distribution in seconds, from request receipt until the "
        "request body has been handled, including admission control.",
        (),
        REQUEST_PROCESSING_BUCKETS,
    ),
    _histogram(
        q.RESPONSE_PROCESSING_DURATION,
        "llm_d_epp_response_processing_duration_seconds",
        "EPP response processing latency distribution in seconds: the sum of per-chunk handler "
        "time for a streamed response, or the interval from response headers to completion for "
        "a non-streaming response.",
        (),
        RESPONSE_PROCESSING_BUCKETS,
    ),
    _metric(
        q.MODEL_REWRITE_DECISIONS,
        "llm_d_epp_model_rewrite_decisions_total",
        _REWRITE,
        ("model_rewrite_name", "model_name", "target_model"),
        "{decision}",
    ),
    _histogram(q.FLOW_CONTROL_QUEUE_DURATION,
               "llm_d_epp_flow_control_request_queue_duration_seconds", _QUEUE_DURATION,
               QUEUE_DURATION, QUEUE_DURATION_BUCKETS),
    _histogram(q.FLOW_CONTROL_DISPATCH_CYCLE_DURATION,
               "llm_d_epp_flow_control_dispatch_cycle_duration_seconds", _DISPATCH, (),
               SCHEDULER_BUCKETS),
    _histogram(q.FLOW_CONTROL_ENQUEUE_DURATION,
               "llm_d_epp_flow_control_request_enqueue_duration_seconds", _ENQUEUE, ENQUEUE,
               SCHEDULER_BUCKETS),
    _metric(q.FLOW_CONTROL_QUEUE_SIZE, "llm_d_epp_flow_control_queue_size", _QUEUE_SIZE, FLOW,
            "{request}"),
    _metric(q.FLOW_CONTROL_QUEUE_BYTES, "llm_d_epp_flow_control_queue_bytes", _QUEUE_BYTES, FLOW,
            "By"),
    _metric(
        q.FLOW_CONTROL_POOL_SATURATION,
        "llm_d_epp_flow_control_pool_saturation",
        _SATURATION.format(stale="flow_control_stale_endpoints"),
        ("inference_pool", "stage"),
        "1",
    ),
    _metric(
        q.FLOW_CONTROL_STALE_ENDPOINTS,
        "llm_d_epp_flow_control_stale_endpoints",
        "Number of candidate endpoints whose metrics are missing or older than the staleness "
        "threshold, as of the most recent saturation evaluation. Recorded by the utilization "
        "saturation detector, which scores these endpoints as fully saturated in "
        "flow_control_pool_saturation (fail-closed): a nonzero value during a dispatch stall "
        "indicates a metrics collection problem rather than genuine overload. This gauge "
        "carries no stage label and is written on every detector call, so it reflects the most "
        "recently evaluated stage; a reading of 0 does not rule out stale metrics in another "
        "stage. Per-stage stale accounting is tracked in #2475.",
        ("detector",),
        "{endpoint}",
    ),
    _metric(
        q.FLOW_CONTROL_CAPACITY_REQUESTS,
        "llm_d_epp_flow_control_capacity_utilization_requests",
        "Fraction of a priority band's effective request-count capacity currently occupied, "
        "aggregated over every flow in the band (0.0-1.0). The denominator falls back to a "
        "default when the band does not configure one, so every configured band reports a "
        "series. The all-bands rollup is a separate metric, "
        "flow_control_global_capacity_utilization_requests.",
        ("priority", "inference_pool"),
        "1",
    ),
    _metric(
        q.FLOW_CONTROL_CAPACITY_BYTES,
        "llm_d_epp_flow_control_capacity_utilization_bytes",
        "Fraction of a priority band's effective byte-size capacity currently occupied, "
        "aggregated over every flow in the band (0.0-1.0). The denominator falls back to a "
        "default when the band does not configure one, so every configured band reports a "
        "series. The all-bands rollup is a separate metric, "
        "flow_control_global_capacity_utilization_bytes.",
        ("priority", "inference_pool"),
        "1",
    ),
    _metric(
        q.FLOW_CONTROL_GLOBAL_CAPACITY_REQUESTS,
        "llm_d_epp_flow_control_global_capacity_utilization_requests",
        "Fraction of the global request-count capacity currently occupied across all priority "
        "bands (0.0-1.0). Global capacity is optional and unset by default; this series is "
        "emitted only when it is configured. Kept separate from "
        "flow_control_capacity_utilization_requests so aggregations over the per-band family do "
        "not double count the rollup.",
        ("inference_pool",),
        "1",
    ),
    _metric(
        q.FLOW_CONTROL_GLOBAL_CAPACITY_BYTES,
        "llm_d_epp_flow_control_global_capacity_utilization_bytes",
        "Fraction of the global byte-size capacity currently occupied across all priority bands "
        "(0.0-1.0). Global capacity is optional and unset by default; this series is emitted "
        "only when it is configured. Kept separate from "
        "flow_control_capacity_utilization_bytes so aggregations over the per-band family do "
        "not double count the rollup.",
        ("inference_pool",),
        "1",
    ),
    _metric(
        q.FLOW_CONTROL_REQUESTS,
        "llm_d_epp_flow_control_requests_total",
        "Total number of requests processed by the Flow Control layer.",
        ("outcome", "priority", "inference_pool"),
        "{request}",
    ),
    _metric(
        q.FLOW_CONTROL_REVOCATIONS_ISSUED,
        "llm_d_epp_flow_control_revocations_issued_total",
        "Total number of in-flight eviction revocations issued, labeled by the demand band's "
        "priority.",
        ("priority", "inference_pool"),
        "{revocation}",
    ),
    _metric(
        q.FLOW_CONTROL_REVOCATIONS,
        "llm_d_epp_flow_control_revocations_total",
        "Total number of in-flight eviction revocations by terminal outcome (confirmed, "
        "timed_out). Every issued revocation eventually increments exactly one outcome.",
        ("outcome", "inference_pool"),
        "{revocation}",
    ),
    _metric(
        q.FLOW_CONTROL_RECLAIM_TARGET,
        "llm_d_epp_flow_control_reclaim_target",
        "Last computed reclamation deficit, in saturation-gauge units.",
        ("inference_pool",),
        "1",
    ),
    _metric(
        q.FLOW_CONTROL_PENDING_RECLAIM,
        "llm_d_epp_flow_control_pending_reclaim",
        "Sum of outstanding and cooling pending-reclaim debits, in saturation-gauge units.",
        ("inference_pool",),
        "1",
    ),
    _histogram(
        q.FLOW_CONTROL_REVOCATION_CONFIRMATION,
        "llm_d_epp_flow_control_revocation_confirmation_seconds",
        "Time from revocation issue to confirmed stream termination.",
        ("inference_pool",),
        REVOCATION_CONFIRMATION_BUCKETS,
    ),
)  # fmt: skip

_BY_NAME = {view.spec.name: view for view in LLM_D_ROUTER}


#: The metrics llm-d-router also writes under GIE's ``inference_extension_*`` names, in order.
_LEGACY = (
    "scheduler_e2e_duration_seconds",
    "scheduler_attempts_total",
    "plugin_duration_seconds",
    "flow_control_request_queue_duration_seconds",
    "flow_control_dispatch_cycle_duration_seconds",
    "flow_control_request_enqueue_duration_seconds",
    "flow_control_queue_size",
    "flow_control_queue_bytes",
    "flow_control_pool_saturation",
    "model_rewrite_decisions_total",
)
_ATTEMPT_LEGACY = ("status", "target_model_name", "pod_name", "namespace", "port")
_SATURATION_GIE = (
    "Current saturation level of the inference pool (0.0 = empty, 1.0 = fully saturated)."
)


def _legacy(name: str, *, twin: bool) -> View:
    """llm-d-router's ``llm_d_epp_<name>`` under the ``inference_extension_<name>`` name: its
    deprecated twin (``twin``: with upstream's ``[Deprecated: Use ...]`` note, but the rewrite
    counter's, which has none), or GIE v1.5.0's own metric (no note). Both say ``pod_name`` for the
    attempts' ``endpoint_name``; GIE's saturation has no ``stage`` and its own HELP, and shows the
    gating ``effective`` stage; the twin's HELP points at the new stale-endpoints name."""
    view = _BY_NAME[f"llm_d_epp_{name}"]
    spec = dataclasses.replace(
        view.spec,
        name=f"inference_extension_{name}",
        replaced_by=view.spec.name if twin and name != "model_rewrite_decisions_total" else None,
    )
    where: dict[str, str] = {}
    if name == "scheduler_attempts_total":
        spec = dataclasses.replace(spec, labels=_ATTEMPT_LEGACY)
    elif name == "flow_control_pool_saturation" and twin:
        stale = "llm_d_epp_flow_control_stale_endpoints"
        spec = dataclasses.replace(spec, help=_SATURATION.format(stale=stale))
    elif name == "flow_control_pool_saturation":
        spec = dataclasses.replace(spec, help=_SATURATION_GIE, labels=("inference_pool",))
        where = {"stage": "effective"}
    return dataclasses.replace(view, spec=spec, deprecated_twin=twin, where=where)


#: The ``inference_extension_*`` names llm-d-router also writes, from the same calls.
LLM_D_ROUTER_TWINS: tuple[View, ...] = tuple(_legacy(name, twin=True) for name in _LEGACY)

#: GIE v1.5.0's views of the calls it has (no deprecation notes there).
GIE_V15: tuple[View, ...] = tuple(_legacy(name, twin=False) for name in _LEGACY)
