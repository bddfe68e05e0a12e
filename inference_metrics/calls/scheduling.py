"""The scheduler, its plugins, the picker's own processing time and model rewrites.

Upstream's ``RecordSchedulerE2ELatency``, ``RecordRequestProcessingLatency``,
``RecordResponseProcessingLatency``, ``RecordSchedulerAttempt``, ``RecordPluginProcessingLatency``,
``RecordPluginDataScopeViolation`` and ``RecordInferenceModelRewriteDecision``, as Recorder methods
(:mod:`inference_metrics.calls`). Durations are seconds (upstream's ``time.Duration``); a negative
or non-finite one is refused (upstream observes whatever it is given). Upstream bounds none of
these labels but the rewrite's ``model_name``; here ``max_series`` bounds every group.
"""

from __future__ import annotations

from .. import measures as m
from ..validation import FAST_NUMBER as _FAST
from ..validation import MAX_FLOAT as _MAX
from ..validation import number
from .base import RecorderCalls

__all__ = ["SchedulingCalls"]

_REQUEST_PROCESSING = m.PROCESSING.slot(m.REQUEST_PROCESSING)
_RESPONSE_PROCESSING = m.PROCESSING.slot(m.RESPONSE_PROCESSING)
_SUCCESS = m.SCHEDULER_ATTEMPTS.slot(m.SCHEDULER_ATTEMPT_SUCCESS)
_FAILURE = m.SCHEDULER_ATTEMPTS.slot(m.SCHEDULER_ATTEMPT_FAILURE)
_NO_ENDPOINT = ("", "", "")


class SchedulingCalls(RecorderCalls):
    """Upstream's scheduling, plugin, processing and rewrite calls (module docstring)."""

    def record_scheduler_e2e_latency(self, duration: float) -> None:
        """Observe one scheduling run's duration (seconds): ``RecordSchedulerE2ELatency``."""
        if not (type(duration) in _FAST and 0 <= duration <= _MAX):
            duration = number("duration", duration)
        self._row(self._picker.scheduling, ())[0](duration)

    def record_request_processing_latency(self, duration: float) -> None:
        """Observe the picker's time from request receipt until the request body was handled,
        admission control included (seconds): ``RecordRequestProcessingLatency``."""
        if not (type(duration) in _FAST and 0 <= duration <= _MAX):
            duration = number("duration", duration)
        self._row(self._picker.processing, ())[_REQUEST_PROCESSING](duration)

    def record_response_processing_latency(self, duration: float) -> None:
        """Observe the picker's time handling a response (seconds): the sum of its per-chunk
        handler times when streamed, else response headers to completion
        (``RecordResponseProcessingLatency``)."""
        if not (type(duration) in _FAST and 0 <= duration <= _MAX):
            duration = number("duration", duration)
        self._row(self._picker.processing, ())[_RESPONSE_PROCESSING](duration)

    def record_scheduler_attempt(
        self,
        err: BaseException | None,
        target_model_name: str,
        result: tuple[str, str, str] | None,
    ) -> None:
        """Count one scheduling attempt (``RecordSchedulerAttempt``).

        ``err``: the scheduler's error, or None. ``result``: the endpoint the primary profile
        chose first, as ``(name, namespace, port)`` strings, or None when there is no result.
        An error counts ``status="failure"`` with empty endpoint labels (``result`` ignored);
        otherwise ``status="success"`` with the endpoint's labels (empty without a result).
        """
        if err is not None and not isinstance(err, BaseException):
            raise TypeError(f"err must be an exception or None, got {err!r}")
        endpoint = _NO_ENDPOINT if result is None else self._endpoint(result)
        if err is not None:
            self._row(self._picker.scheduler_attempts, (target_model_name, *_NO_ENDPOINT))[
                _FAILURE
            ](1)
        else:
            self._row(self._picker.scheduler_attempts, (target_model_name, *endpoint))[_SUCCESS](1)

    def record_plugin_processing_latency(
        self, extension_point: str, plugin_type: str, plugin_name: str, duration: float
    ) -> None:
        """Observe one plugin run at one extension point (``Filter``, ``Scorer``, ``Picker``,
        ...), in seconds: ``RecordPluginProcessingLatency``."""
        if not (type(duration) in _FAST and 0 <= duration <= _MAX):
            duration = number("duration", duration)
        self._row(self._picker.plugins, (extension_point, plugin_type, plugin_name))[0](duration)

    def record_plugin_data_scope_violation(
        self, extension_point: str, plugin_type: str, plugin_name: str, access: str
    ) -> None:
        """Count one endpoint-attribute access (``access``: ``read`` or ``write``) rejected
        because the plugin did not declare it: ``RecordPluginDataScopeViolation``."""
        key = (extension_point, plugin_type, plugin_name, access)
        self._row(self._picker.data_scope_violations, key)[0](1)

    def record_inference_model_rewrite_decision(
        self, model_rewrite_name: str, model_name: str, target_model: str
    ) -> None:
        """Count one request the rewrite rule ``model_rewrite_name`` sent from ``model_name`` to
        ``target_model``: ``RecordInferenceModelRewriteDecision``."""
        self._row(self._picker.model_rewrites, (model_rewrite_name, model_name, target_model))[0](1)
