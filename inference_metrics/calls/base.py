"""What the call mixins share: the Recorder's groups of rows, the one-lookup row finders, the
request group's slots and the defaults of a request's flow."""

from __future__ import annotations

import logging

from .. import measures as m
from ..rows import Row, SeriesGroup
from ..validation import label_value

__all__ = ["DEFAULT_FAIRNESS_ID", "DEFAULT_PRIORITY", "RecorderCalls", "logger"]

#: The Recorder's logger: upstream's recording functions log an error where they refuse a value.
logger = logging.getLogger("inference_metrics.recorder")

#: What a request without a fairness id or priority is recorded with (upstream's defaults).
DEFAULT_FAIRNESS_ID = "default-flow"
DEFAULT_PRIORITY = 0

# Each request measure's slot in the request group's rows (the hot paths index rows with these).
REQUEST = m.REQUESTS.slot(m.REQUEST)
LATENCY = m.REQUESTS.slot(m.LATENCY)
REQUEST_SIZE = m.REQUESTS.slot(m.REQUEST_SIZE)
RESPONSE_SIZE = m.REQUESTS.slot(m.RESPONSE_SIZE)
INPUT_TOKENS = m.REQUESTS.slot(m.INPUT_TOKENS)
OUTPUT_TOKENS = m.REQUESTS.slot(m.OUTPUT_TOKENS)
NTPOT = m.REQUESTS.slot(m.NTPOT)
TTFT = m.REQUESTS.slot(m.TTFT)
UNSTREAMED_TTFT = m.REQUESTS.slot(m.UNSTREAMED_TTFT)
TPOT = m.REQUESTS.slot(m.TPOT)
CACHED_TOKENS = m.REQUESTS.slot(m.CACHED_TOKENS)
ITL = m.REQUESTS.slot(m.INTER_TOKEN_LATENCY)
ERROR = m.ERRORS.slot(m.ERROR)
FAILURE_LATENCY = m.ERRORS.slot(m.FAILURE_LATENCY)


class RecorderCalls:
    """The part of the Recorder every call mixin reads (the Recorder sets these up).

    Each ``SeriesGroup`` attribute holds the rows of one group of
    :mod:`inference_metrics.measures`, named after it.
    """

    _max_label_length: int
    _requests: SeriesGroup
    _requests_cache: dict[object, Row]
    _errors: SeriesGroup
    _running: SeriesGroup
    _pools: SeriesGroup
    _endpoints: SeriesGroup
    _info: SeriesGroup
    _poll_errors: SeriesGroup
    _extract_errors: SeriesGroup
    _scheduling: SeriesGroup
    _processing: SeriesGroup
    _scheduler_attempts: SeriesGroup
    _plugins: SeriesGroup
    _data_scope_violations: SeriesGroup
    _flow_outcomes: SeriesGroup
    _dispatch_cycles: SeriesGroup
    _flow_enqueues: SeriesGroup
    _flow_queues: SeriesGroup
    _pool_saturations: SeriesGroup
    _saturation_detectors: SeriesGroup
    _priority_bands: SeriesGroup
    _flow_control_pools: SeriesGroup
    _flow_control_outcomes: SeriesGroup
    _revocations: SeriesGroup
    _model_rewrites: SeriesGroup

    @staticmethod
    def _row(group: SeriesGroup, key: tuple[object, ...]) -> Row:
        """The row of ``key`` in ``group``: one dictionary lookup, or the slow path that checks
        and binds a new key (its errors name the input)."""
        try:
            return group.cache[key]
        except (KeyError, TypeError):
            return group.bind(key)

    def _request(
        self, model_name: str, target_model_name: str, fairness_id: str, priority: int | str
    ) -> Row:
        # Without the (optional, last) operation: a shorter key, hashed faster (rows.py).
        key = (model_name, target_model_name, fairness_id, priority)
        try:
            return self._requests_cache[key]
        except (KeyError, TypeError):
            return self._requests.bind(key)

    def _running_add(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        delta: float,
    ) -> None:
        """+1/-1 running requests; an empty model name records nothing (as upstream)."""
        if model_name != "":
            key = (model_name, target_model_name, fairness_id, priority)
            self._row(self._running, key)[0](delta)

    def _endpoint(self, result: object) -> tuple[str, str, str]:
        """A scheduling result as the chosen endpoint's ``(name, namespace, port)``."""
        if not isinstance(result, tuple) or len(result) != 3:
            raise TypeError(
                "result must be the chosen endpoint as a (name, namespace, port) tuple of str, "
                f"or None; got {result!r}"
            )
        limit = self._max_label_length
        name, namespace, port = result
        return (
            label_value("result name", name, limit),
            label_value("result namespace", namespace, limit),
            label_value("result port", port, limit),
        )
