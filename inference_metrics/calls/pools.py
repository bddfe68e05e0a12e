"""A pool's gauges, its model servers' queues, the build, the data layer's errors.

This library's original calls (``record_pool_*``, ``record_extension_info``) and upstream's names
for them by the rule of :mod:`inference_metrics.calls` (``record_inference_pool_avg_kv_cache``,
..., ``record_inference_extension_info``), which set the same measures; the data layer's error
counters (``record_data_layer_poll_error``, ``record_data_layer_extract_error``) have upstream's
names already, with a keyword ``pool_name`` for the schemas that label them by pool. A level is a
finite number ``>= 0``; a bad one raises ``TypeError``/``ValueError`` naming the argument.
"""

from __future__ import annotations

from .. import measures as m
from ..rows import SeriesGroup
from ..validation import number
from .base import RecorderCalls

__all__ = ["PoolCalls"]

_KV_CACHE = m.POOLS.slot(m.POOL_KV_CACHE)
_QUEUE_SIZE = m.POOLS.slot(m.POOL_QUEUE_SIZE)
_READY = m.POOLS.slot(m.POOL_READY)
_RUNNING_REQUESTS = m.POOLS.slot(m.POOL_RUNNING_REQUESTS)
_STD_DEV_KV_CACHE = m.POOLS.slot(m.POOL_STD_DEV_KV_CACHE)
_STD_DEV_QUEUE_SIZE = m.POOLS.slot(m.POOL_STD_DEV_QUEUE_SIZE)
_STD_DEV_RUNNING_REQUESTS = m.POOLS.slot(m.POOL_STD_DEV_RUNNING_REQUESTS)


class PoolCalls(RecorderCalls):
    """Pool, endpoint, build and data-layer calls, under both sets of names (module docstring)."""

    def _set(
        self,
        group: SeriesGroup,
        key: tuple[object, ...],
        slot: int,
        value: float,
        argument: str = "value",
    ) -> None:
        level = number(argument, value)
        self._row(group, key)[slot](level)

    # --- this library's names ---------------------------------------------------------------------

    def record_pool_kv_cache_utilization(self, pool_name: str, value: float) -> None:
        """Set the pool's average KV-cache utilization (a fraction, usually 0..1)."""
        self._set(self._pools, (pool_name,), _KV_CACHE, value)

    def record_pool_queue_size(self, pool_name: str, value: float) -> None:
        """Set the pool's average number of queued requests."""
        self._set(self._pools, (pool_name,), _QUEUE_SIZE, value)

    def record_pool_ready_pods(self, pool_name: str, value: float) -> None:
        """Set the number of ready pods (endpoints) in the pool."""
        self._set(self._pools, (pool_name,), _READY, value)

    def record_pool_average_running_requests(self, pool_name: str, value: float) -> None:
        """Set the pool's average number of running requests per model server."""
        self._set(self._pools, (pool_name,), _RUNNING_REQUESTS, value)

    def record_pool_std_dev_kv_cache_utilization(self, pool_name: str, value: float) -> None:
        """Set the standard deviation of the pool's KV-cache utilization (llm-d-router)."""
        self._set(self._pools, (pool_name,), _STD_DEV_KV_CACHE, value)

    def record_pool_std_dev_queue_size(self, pool_name: str, value: float) -> None:
        """Set the standard deviation of the pool's queue sizes (llm-d-router)."""
        self._set(self._pools, (pool_name,), _STD_DEV_QUEUE_SIZE, value)

    def record_pool_std_dev_running_requests(self, pool_name: str, value: float) -> None:
        """Set the standard deviation of the pool's running requests (llm-d-router)."""
        self._set(self._pools, (pool_name,), _STD_DEV_RUNNING_REQUESTS, value)

    def record_pool_per_pod_queue_size(self, pool_name: str, pod_name: str, value: float) -> None:
        """Set one model server's queue size (``model_server_pod``/``model_server_endpoint``)."""
        self._set(self._endpoints, (pool_name, pod_name), 0, value)

    def record_extension_info(self, commit: str, build_ref: str) -> None:
        """Expose the build-info gauge (``inference_extension_info{commit, build_ref} 1``)."""
        self._row(self._info, (commit, build_ref))[0](1)

    # --- upstream's names -------------------------------------------------------------------------

    def record_inference_pool_avg_kv_cache(self, name: str, utilization: float) -> None:
        """Set the pool's average KV-cache utilization (``RecordInferencePoolAvgKVCache``)."""
        self._set(self._pools, (name,), _KV_CACHE, utilization, "utilization")

    def record_inference_pool_avg_queue_size(self, name: str, queue_size: float) -> None:
        """Set the pool's average queue size (``RecordInferencePoolAvgQueueSize``)."""
        self._set(self._pools, (name,), _QUEUE_SIZE, queue_size, "queue_size")

    def record_inference_pool_avg_running_requests(
        self, name: str, running_requests: float
    ) -> None:
        """Set the pool's average running requests
        (``RecordInferencePoolAvgRunningRequests``)."""
        self._set(self._pools, (name,), _RUNNING_REQUESTS, running_requests, "running_requests")

    def record_inference_pool_std_dev_kv_cache(self, name: str, utilization: float) -> None:
        """Set the standard deviation of KV-cache utilization
        (``RecordInferencePoolStdDevKVCache``)."""
        self._set(self._pools, (name,), _STD_DEV_KV_CACHE, utilization, "utilization")

    def record_inference_pool_std_dev_queue_size(self, name: str, queue_size: float) -> None:
        """Set the standard deviation of queue sizes (``RecordInferencePoolStdDevQueueSize``)."""
        self._set(self._pools, (name,), _STD_DEV_QUEUE_SIZE, queue_size, "queue_size")

    def record_inference_pool_std_dev_running_requests(
        self, name: str, running_requests: float
    ) -> None:
        """Set the standard deviation of running requests
        (``RecordInferencePoolStdDevRunningRequests``)."""
        self._set(
            self._pools, (name,), _STD_DEV_RUNNING_REQUESTS, running_requests, "running_requests"
        )

    def record_inference_pool_ready_pods(self, name: str, running_pods: float) -> None:
        """Set the number of ready endpoints (``RecordInferencePoolReadyPods``)."""
        self._set(self._pools, (name,), _READY, running_pods, "running_pods")

    def record_inference_extension_info(self, commit_sha: str, build_ref: str) -> None:
        """Expose the build-info gauge (``RecordInferenceExtensionInfo``)."""
        self._row(self._info, (commit_sha, build_ref))[0](1)

    # --- the data layer ---------------------------------------------------------------------------

    def record_data_layer_poll_error(self, source_type: str, *, pool_name: str = "") -> None:
        """Count one failed poll of a data source of type ``source_type`` (upstream's
        ``RecordDataLayerPollError``); ``pool_name``: the pool it serves, for the schemas that
        label the counter with the pool's ``name``."""
        self._row(self._poll_errors, (source_type, pool_name))[0](1)

    def record_data_layer_extract_error(
        self, source_type: str, extractor_type: str, *, pool_name: str = ""
    ) -> None:
        """Count one value the extractor ``extractor_type`` could not read from a source of type
        ``source_type`` (upstream's ``RecordDataLayerExtractError``); ``pool_name`` as for
        :meth:`record_data_layer_poll_error`."""
        self._row(self._extract_errors, (source_type, extractor_type, pool_name))[0](1)
