"""The flow-control layer: queues, dispatch, saturation, capacity, revocations.

Upstream's ``RecordFlowControl*``, ``Inc``/``DecFlowControlQueueSize``,
``Add``/``SubFlowControlQueueBytes``, ``IncFlowControlRequestsTotal`` and the two deletions, as
Recorder methods (:mod:`inference_metrics.calls`). ``priority`` is the band's priority as text
(an int is written as its decimal text, as everywhere in the Recorder). As upstream, the
caller-controlled ``fairness_id`` is bounded (``max_fairness_ids``) on the per-flow metrics (queue
duration, enqueue duration, queue size and bytes); ``max_series`` bounds every group.

Values: durations are seconds, ``>= 0``; ``bytes``, ``n`` and ``count`` are ints ``>= 0``
(upstream's ``uint64``; a negative revocation count panics there); saturation and the capacity
ratios are numbers ``>= 0`` (not clamped: above 1.0 is oversubscription); the reclaim target and
pending reclaim are any finite number (differences of saturations).

Deleting: :meth:`FlowControlCalls.delete_flow_control_flow_series` forgets every series of one
flow (fairness id and priority) across the per-flow metrics, whatever their outcome, pool or
model, and frees their ``max_series`` slots; the overflow value is never deleted (upstream: its
``other``). :meth:`FlowControlCalls.delete_flow_control_pool_saturation` forgets one stage's
saturation series. What a deletion does under N worker processes is the backend's
(docs/multiprocess.md).
"""

from __future__ import annotations

from .. import measures as m
from ..backends.base import OVERFLOW_LABEL_VALUE
from ..validation import FAST_NUMBER as _FAST
from ..validation import MAX_FLOAT as _MAX
from ..validation import count, label_value, number
from .base import RecorderCalls

__all__ = ["FlowControlCalls"]

_SIZE = m.FLOW_QUEUES.slot(m.FLOW_QUEUE_SIZE)
_BYTES = m.FLOW_QUEUES.slot(m.FLOW_QUEUE_BYTES)
_CAPACITY_REQUESTS = m.PRIORITY_BANDS.slot(m.CAPACITY_REQUESTS)
_CAPACITY_BYTES = m.PRIORITY_BANDS.slot(m.CAPACITY_BYTES)
_REVOCATIONS_ISSUED = m.PRIORITY_BANDS.slot(m.REVOCATIONS_ISSUED)
_GLOBAL_REQUESTS = m.FLOW_CONTROL_POOLS.slot(m.GLOBAL_CAPACITY_REQUESTS)
_GLOBAL_BYTES = m.FLOW_CONTROL_POOLS.slot(m.GLOBAL_CAPACITY_BYTES)
_RECLAIM_TARGET = m.FLOW_CONTROL_POOLS.slot(m.RECLAIM_TARGET)
_PENDING_RECLAIM = m.FLOW_CONTROL_POOLS.slot(m.PENDING_RECLAIM)
_CONFIRMATION = m.FLOW_CONTROL_POOLS.slot(m.REVOCATION_CONFIRMATION)


def _count(argument: str, value: object) -> int:
    """``value`` as an int ``>= 0`` (an int passes without a call)."""
    if type(value) is int and value >= 0:
        return value
    return count(argument, value)


class FlowControlCalls(RecorderCalls):
    """Upstream's flow-control calls (module docstring)."""

    # --- per request -----------------------------------------------------------------------------

    def record_flow_control_request_queue_duration(
        self,
        fairness_id: str,
        priority: str,
        outcome: str,
        inference_pool: str,
        model_name: str,
        target_model_name: str,
        duration: float,
    ) -> None:
        """Observe a request's time in the flow-control layer, enqueue to final ``outcome``
        (``Dispatched``, ``RejectedCapacity``, ``EvictedTTL``, ...), in seconds
        (``RecordFlowControlRequestQueueDuration``)."""
        if not (type(duration) in _FAST and 0 <= duration <= _MAX):
            duration = number("duration", duration)
        key = (fairness_id, priority, outcome, inference_pool, model_name, target_model_name)
        self._row(self._picker.flow_outcomes, key)[0](duration)

    def record_flow_control_request_enqueue_duration(
        self, fairness_id: str, priority: str, outcome: str, duration: float
    ) -> None:
        """Observe the time taken to enqueue one request, by ``outcome``, in seconds
        (``RecordFlowControlRequestEnqueueDuration``)."""
        if not (type(duration) in _FAST and 0 <= duration <= _MAX):
            duration = number("duration", duration)
        self._row(self._picker.flow_enqueues, (fairness_id, priority, outcome))[0](duration)

    def inc_flow_control_queue_size(
        self,
        fairness_id: str,
        priority: str,
        inference_pool: str,
        model_name: str,
        target_model_name: str,
    ) -> None:
        """One more request in the flow's queue (``IncFlowControlQueueSize``)."""
        key = (fairness_id, priority, inference_pool, model_name, target_model_name)
        self._row(self._picker.flow_queues, key)[_SIZE](1)

    def dec_flow_control_queue_size(
        self,
        fairness_id: str,
        priority: str,
        inference_pool: str,
        model_name: str,
        target_model_name: str,
    ) -> None:
        """One request fewer in the flow's queue (``DecFlowControlQueueSize``)."""
        key = (fairness_id, priority, inference_pool, model_name, target_model_name)
        self._row(self._picker.flow_queues, key)[_SIZE](-1)

    def add_flow_control_queue_bytes(
        self,
        fairness_id: str,
        priority: str,
        inference_pool: str,
        model_name: str,
        target_model_name: str,
        bytes: int,  # upstream's parameter name, by the rule (it shadows the builtin)
    ) -> None:
        """``bytes`` more held in the flow's queue (``AddFlowControlQueueBytes``)."""
        amount = _count("bytes", bytes)
        key = (fairness_id, priority, inference_pool, model_name, target_model_name)
        self._row(self._picker.flow_queues, key)[_BYTES](amount)

    def sub_flow_control_queue_bytes(
        self,
        fairness_id: str,
        priority: str,
        inference_pool: str,
        model_name: str,
        target_model_name: str,
        bytes: int,  # upstream's parameter name, by the rule (it shadows the builtin)
    ) -> None:
        """``bytes`` fewer held in the flow's queue (``SubFlowControlQueueBytes``)."""
        amount = _count("bytes", bytes)
        key = (fairness_id, priority, inference_pool, model_name, target_model_name)
        self._row(self._picker.flow_queues, key)[_BYTES](-amount)

    def inc_flow_control_requests_total(
        self, outcome: str, priority: str, inference_pool: str
    ) -> None:
        """Count one request the flow-control layer finished with ``outcome``
        (``IncFlowControlRequestsTotal``)."""
        self._row(self._picker.flow_control_outcomes, (outcome, priority, inference_pool))[0](1)

    # --- per dispatch cycle, per pool ----------------------------------------------------------

    def record_flow_control_dispatch_cycle_duration(self, duration: float) -> None:
        """Observe one dispatch cycle's duration, in seconds
        (``RecordFlowControlDispatchCycleDuration``)."""
        if not (type(duration) in _FAST and 0 <= duration <= _MAX):
            duration = number("duration", duration)
        self._row(self._picker.dispatch_cycles, ())[0](duration)

    def record_flow_control_pool_saturation(
        self, inference_pool: str, stage: str, saturation: float
    ) -> None:
        """Set the pool's saturation for ``stage`` (``prefill``, ``decode``, or ``effective``:
        the larger of the two, which gates dispatch): ``RecordFlowControlPoolSaturation``."""
        level = number("saturation", saturation)
        self._row(self._picker.pool_saturations, (inference_pool, stage))[0](level)

    def delete_flow_control_pool_saturation(self, inference_pool: str, stage: str) -> None:
        """Forget the saturation series of ``stage`` (a stage left without endpoints):
        ``DeleteFlowControlPoolSaturation``. Nothing recorded: nothing happens."""
        self._picker.pool_saturations.remove((inference_pool, stage))

    def record_flow_control_stale_endpoints(self, detector: str, count: int) -> None:
        """Set how many endpoints the saturation detector ``detector`` found with missing or
        stale metrics at its last evaluation (``RecordFlowControlStaleEndpoints``)."""
        endpoints = _count("count", count)
        self._row(self._picker.saturation_detectors, (detector,))[0](endpoints)

    def record_flow_control_capacity_utilization_requests(
        self, priority: str, inference_pool: str, ratio: float
    ) -> None:
        """Set the fraction of the band's request-count capacity in use
        (``RecordFlowControlCapacityUtilizationRequests``)."""
        level = number("ratio", ratio)
        self._row(self._picker.priority_bands, (priority, inference_pool))[_CAPACITY_REQUESTS](
            level
        )

    def record_flow_control_capacity_utilization_bytes(
        self, priority: str, inference_pool: str, ratio: float
    ) -> None:
        """Set the fraction of the band's byte capacity in use
        (``RecordFlowControlCapacityUtilizationBytes``)."""
        level = number("ratio", ratio)
        self._row(self._picker.priority_bands, (priority, inference_pool))[_CAPACITY_BYTES](level)

    def record_flow_control_global_capacity_utilization_requests(
        self, inference_pool: str, ratio: float
    ) -> None:
        """Set the fraction of the global request-count capacity in use, when one is configured
        (``RecordFlowControlGlobalCapacityUtilizationRequests``)."""
        level = number("ratio", ratio)
        self._row(self._picker.flow_control_pools, (inference_pool,))[_GLOBAL_REQUESTS](level)

    def record_flow_control_global_capacity_utilization_bytes(
        self, inference_pool: str, ratio: float
    ) -> None:
        """Set the fraction of the global byte capacity in use, when one is configured
        (``RecordFlowControlGlobalCapacityUtilizationBytes``)."""
        level = number("ratio", ratio)
        self._row(self._picker.flow_control_pools, (inference_pool,))[_GLOBAL_BYTES](level)

    # --- reclamation -----------------------------------------------------------------------------

    def record_flow_control_revocations_issued(
        self, inference_pool: str, priority: str, n: int
    ) -> None:
        """Count ``n`` in-flight requests revoked for the demand band ``priority``
        (``RecordFlowControlRevocationsIssued``)."""
        issued = _count("n", n)
        self._row(self._picker.priority_bands, (priority, inference_pool))[_REVOCATIONS_ISSUED](
            issued
        )

    def record_flow_control_revocations(self, inference_pool: str, outcome: str, n: int) -> None:
        """Count ``n`` revocations that reached ``outcome`` (``confirmed``, ``timed_out``):
        ``RecordFlowControlRevocations``."""
        done = _count("n", n)
        self._row(self._picker.revocations, (outcome, inference_pool))[0](done)

    def record_flow_control_reclaim_target(self, inference_pool: str, target: float) -> None:
        """Set the last computed reclamation deficit (``RecordFlowControlReclaimTarget``)."""
        level = number("target", target, minimum=None)
        self._row(self._picker.flow_control_pools, (inference_pool,))[_RECLAIM_TARGET](level)

    def record_flow_control_pending_reclaim(self, inference_pool: str, pending: float) -> None:
        """Set the outstanding and cooling reclaim debits (``RecordFlowControlPendingReclaim``)."""
        level = number("pending", pending, minimum=None)
        self._row(self._picker.flow_control_pools, (inference_pool,))[_PENDING_RECLAIM](level)

    def record_flow_control_revocation_confirmation_duration(
        self, inference_pool: str, duration: float
    ) -> None:
        """Observe the time from a revocation's issue to its stream's confirmed end, in seconds
        (``RecordFlowControlRevocationConfirmationDuration``)."""
        if not (type(duration) in _FAST and 0 <= duration <= _MAX):
            duration = number("duration", duration)
        self._row(self._picker.flow_control_pools, (inference_pool,))[_CONFIRMATION](duration)

    # --- a flow collected ----------------------------------------------------------------------

    def delete_flow_control_flow_series(self, fairness_id: str, priority: str) -> None:
        """Forget every series of the flow ``(fairness_id, priority)``: its queue duration,
        enqueue duration, queue size and bytes, under every outcome, pool and model, and free
        their ``max_series`` slots (``DeleteFlowControlFlowSeries``, called when the flow
        registry collects an idle flow). The overflow value names no one flow: nothing happens
        for it, as upstream does nothing for its ``other``. A fairness id folded into the
        overflow has no series of its own to forget."""
        fairness_id = label_value("fairness_id", fairness_id, self._max_label_length)
        if fairness_id == OVERFLOW_LABEL_VALUE:
            return
        flow = {"fairness_id": fairness_id, "priority": priority}
        for group in (
            self._picker.flow_outcomes,
            self._picker.flow_enqueues,
            self._picker.flow_queues,
        ):
            group.remove_matching(flow)
