"""What the call mixins share: the Recorder's groups of rows, the one-lookup row finders, the
request group's slots and the defaults of a request's flow."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .. import measures as m
from ..measures import Group
from ..rows import Row, SeriesGroup
from ..validation import label_value

__all__ = ["DEFAULT_FAIRNESS_ID", "DEFAULT_PRIORITY", "PickerGroups", "RecorderCalls", "logger"]

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


class PickerGroups:
    """The rows of the picker's internals (scheduler, plugins, flow control, rewrites), one
    attribute per group of :mod:`inference_metrics.measures`.

    They hang off one attribute of the Recorder rather than sixteen: CPython 3.11 keeps an
    instance's attributes inline (the fast attribute access of the request calls) only while it has
    at most 30 of them.
    """

    __slots__ = (
        "data_scope_violations",
        "dispatch_cycles",
        "flow_control_outcomes",
        "flow_control_pools",
        "flow_enqueues",
        "flow_outcomes",
        "flow_queues",
        "model_rewrites",
        "plugins",
        "pool_saturations",
        "priority_bands",
        "processing",
        "revocations",
        "saturation_detectors",
        "scheduler_attempts",
        "scheduling",
    )

    def __init__(self, groups: Mapping[Group, SeriesGroup]) -> None:
        self.scheduling = groups[m.SCHEDULING]
        self.processing = groups[m.PROCESSING]
        self.scheduler_attempts = groups[m.SCHEDULER_ATTEMPTS]
        self.plugins = groups[m.PLUGINS]
        self.data_scope_violations = groups[m.DATA_SCOPE_VIOLATIONS]
        self.flow_outcomes = groups[m.FLOW_OUTCOMES]
        self.dispatch_cycles = groups[m.DISPATCH_CYCLES]
        self.flow_enqueues = groups[m.FLOW_ENQUEUES]
        self.flow_queues = groups[m.FLOW_QUEUES]
        self.pool_saturations = groups[m.POOL_SATURATIONS]
        self.saturation_detectors = groups[m.SATURATION_DETECTORS]
        self.priority_bands = groups[m.PRIORITY_BANDS]
        self.flow_control_pools = groups[m.FLOW_CONTROL_POOLS]
        self.flow_control_outcomes = groups[m.FLOW_CONTROL_OUTCOMES]
        self.revocations = groups[m.REVOCATIONS]
        self.model_rewrites = groups[m.MODEL_REWRITES]


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
    _picker: PickerGroups

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
