"""The Recorder: upstream's recording calls, validated and bounded, over any backend.

The method names and guards are upstream's (``pkg/epp/metrics``):

* request and response sizes: every value is observed, 0 included;
* input and output tokens: observed only when > 0;
* latency: recorded only when ``completed`` is strictly after ``received`` (returns False and logs
  otherwise);
* the error counter: incremented only when the error code is not empty;
* pool gauges: set to the value given.

Which metrics a call feeds is the **schema** (:mod:`inference_metrics.schemas`): ``gie-v0.3``
(the default), ``gie-v1.5``, ``llm-d-router``, or several at once, all from the same calls. The
newer schemas label request metrics with ``fairness_id`` and ``priority`` (keyword arguments of
every request call; ``"default-flow"`` and ``0`` when not given, as upstream).

How it records: each call derives its measures once (:mod:`inference_metrics.measures`: a
request's latency, TTFT, TPOT, NTPOT, tokens, ...), finds the row of its label set in its group
with one dictionary lookup (:mod:`inference_metrics.rows`), and hands each measure to the row's
feed for it, which updates every view of every recorded schema that shows the measure (and the
GenAI views with ``genai``). The rows are bound from the views when a label set is first seen;
there is no table per metric here.

Label values are untrusted (model names come from request bodies). Each group of metrics fed by
one kind of call (requests, errors, running requests, pools, endpoints, build info, ...) holds at
most ``max_series`` distinct label sets, counted over the labels its views expose; later new ones
are folded into one series whose every label is :data:`OVERFLOW_LABEL_VALUE`, so no count is
lost and memory stays bounded. ``fairness_id`` and ``priority`` (caller-controlled headers) have
their own bounds, ``max_fairness_ids`` and ``max_priorities`` distinct values: later new values
are recorded as :data:`OVERFLOW_LABEL_VALUE` (admitted values stay admitted). A pool or pod that
is gone is removed (:meth:`Recorder.remove_pool`, :meth:`Recorder.remove_pod`), which frees its
slot.

Bad input raises ``TypeError``/``ValueError`` naming the argument, before anything is recorded.
Under N worker processes each process has its own Recorder and bounds (the backend's store
decides how their series merge). The Recorder knows nothing of prometheus_client or
OpenTelemetry: it sees backends through :mod:`inference_metrics.backends.base`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from . import measures as m
from .backends.base import (
    DEFAULT_MAX_SERIES,
    OVERFLOW_LABEL_VALUE,
    Backend,
    Instrument,
)
from .calls import FlowControlCalls, LatencyCalls, PoolCalls, RequestCalls, SchedulingCalls
from .calls import base as _s
from .calls.base import (
    CACHED_TOKENS,
    DEFAULT_FAIRNESS_ID,
    DEFAULT_PRIORITY,
    ERROR,
    FAILURE_LATENCY,
    INPUT_TOKENS,
    LATENCY,
    NTPOT,
    OUTPUT_TOKENS,
    REQUEST,
    REQUEST_SIZE,
    RESPONSE_SIZE,
    TPOT,
    TTFT,
    UNSTREAMED_TTFT,
    PickerGroups,
)
from .measures import GROUPS, Group
from .quantities import Quantity
from .rows import SeriesGroup, ValueCap, bindings
from .schemas import DEFAULT_SCHEMA, Schema, View, combine, resolve
from .spec import MetricSpec
from .validation import FAST_NUMBER as _FAST
from .validation import MAX_FLOAT as _MAX
from .validation import label_value, number, positive_int

__all__ = [
    "DEFAULT_FAIRNESS_ID",
    "DEFAULT_MAX_FAIRNESS_IDS",
    "DEFAULT_MAX_LABEL_LENGTH",
    "DEFAULT_MAX_PRIORITIES",
    "DEFAULT_MAX_SERIES",
    "DEFAULT_PRIORITY",
    "OVERFLOW_LABEL_VALUE",
    "Recorder",
    "ViewsElsewhere",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_LABEL_LENGTH = 1024
#: Distinct ``fairness_id`` / ``priority`` values kept before folding new ones into the overflow.
DEFAULT_MAX_FAIRNESS_IDS = 100
DEFAULT_MAX_PRIORITIES = 32

#: The error code a failure without one is counted with (upstream's rule).
_UNKNOWN_ERROR = "Unknown"


@runtime_checkable
class ViewsElsewhere(Protocol):
    """Views recorded into a backend of their own, beside the Recorder's (GenAI's, through
    :class:`~inference_metrics.genai.GenAIRecorder`): the same rows feed both."""

    @property
    def schema(self) -> Schema: ...

    @property
    def backend(self) -> Backend: ...


SchemaArgument = str | Schema | Sequence[str | Schema]


class Recorder(RequestCalls, LatencyCalls, PoolCalls, SchedulingCalls, FlowControlCalls):
    """Records the endpoint picker's metrics into ``backend``, under one or several schemas.

    ``schema`` is a schema name (``"gie-v0.3"``, the default; ``"gie-v1.5"``; ``"llm-d-router"``;
    ``"llm-d-router-without-deprecated"``), a :class:`~inference_metrics.schemas.Schema`, or a
    sequence of them recorded together from the same calls. ``max_series`` bounds the distinct
    exposed label sets per kind of call; ``max_label_length`` bounds each label value
    (characters); ``max_fairness_ids`` and ``max_priorities`` bound the distinct values of those
    two inputs. ``genai``, an :class:`~inference_metrics.genai.GenAIRecorder`, also records the
    OpenTelemetry GenAI metrics (its schema, into its meter provider) from the same calls, under
    this Recorder's bounds (``record_request_completed``; ``record_request_failed`` when given
    ``received`` and ``completed``). One Recorder per backend registry.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        schema: SchemaArgument = DEFAULT_SCHEMA,
        max_series: int = DEFAULT_MAX_SERIES,
        max_label_length: int = DEFAULT_MAX_LABEL_LENGTH,
        max_fairness_ids: int = DEFAULT_MAX_FAIRNESS_IDS,
        max_priorities: int = DEFAULT_MAX_PRIORITIES,
        genai: ViewsElsewhere | None = None,
    ) -> None:
        if type(backend).__module__.startswith("prometheus_client"):
            # A CollectorRegistry has a register() too: it would accept the specs as a
            # "collector" and then fail every later scrape of that registry.
            raise TypeError(
                f"backend must be a Backend, not a prometheus_client {type(backend).__name__}: "
                "use Recorder(PrometheusBackend(registry))"
            )
        if not isinstance(backend, Backend):
            raise TypeError(
                f"backend must implement Backend (register, unregister, close), got {backend!r}"
            )
        positive_int("max_series", max_series)
        positive_int("max_label_length", max_label_length)
        positive_int("max_fairness_ids", max_fairness_ids)
        positive_int("max_priorities", max_priorities)
        if genai is not None and not isinstance(genai, ViewsElsewhere):
            raise TypeError(f"genai must be a GenAIRecorder or None, got {genai!r}")
        self.genai = genai
        self.schemas: tuple[Schema, ...] = resolve(schema)
        self.backend = backend
        self.max_series = max_series
        self._max_label_length = max_label_length
        targets = [(backend, _registration_order(combine(self.schemas)))]
        if genai is not None:
            targets.append((genai.backend, _registration_order(genai.schema.views)))
        self._views = tuple(view for _, views in targets for view in views)
        defaults = {group: _defaults(group, self._views) for group in GROUPS}
        bound = _register(targets)
        caps = {"fairness_id": ValueCap(max_fairness_ids), "priority": ValueCap(max_priorities)}
        groups = {
            group: SeriesGroup(
                group,
                bindings(group, bound),
                max_series=max_series,
                max_label_length=max_label_length,
                caps=caps,
                defaults=defaults[group],
            )
            for group in GROUPS
        }
        self._groups = groups
        self._requests = groups[m.REQUESTS]
        self._requests_cache = self._requests.cache
        self._errors = groups[m.ERRORS]
        self._running = groups[m.RUNNING_REQUESTS]
        self._pools = groups[m.POOLS]
        self._endpoints = groups[m.ENDPOINTS]
        self._info = groups[m.INFO]
        self._parse_failures = groups[m.PARSE_FAILURES]
        self._poll_errors = groups[m.POLL_ERRORS]
        self._extract_errors = groups[m.EXTRACT_ERRORS]
        self._picker = PickerGroups(groups)
        #: Whether a recorded view shows the inter-token latency (llm-d-router's histogram): the
        #: request lifecycle reads the clock per streamed chunk only then.
        self.records_inter_token_latency: bool = self._requests.shows(_s.ITL)
        self._parse_failure_lock = threading.Lock()
        self._parse_failure_count = 0

    # --- what is recorded ------------------------------------------------------------------------

    def records(self, quantity: Quantity) -> bool:
        """Whether a view of a recorded schema (or of ``genai``) shows ``quantity``."""
        return any(view.quantity is quantity for view in self._views)

    def series_count(self, spec: MetricSpec) -> int:
        """Distinct label sets bound for ``spec``'s group(s) (the overflow series excluded)."""
        found = [
            group.size
            for group in self._groups.values()
            if any(instrument.spec == spec for instrument in group.instruments)
        ]
        if not isinstance(spec, MetricSpec) or not found:
            raise ValueError(f"spec must be one of this Recorder's metrics, got {spec!r}")
        return sum(found)

    def is_valid_label_value(self, value: object) -> bool:
        """Whether ``value`` can be a model label value: a string within ``max_label_length``
        characters that encodes as UTF-8."""
        try:
            label_value("model_name", value, self._max_label_length)
        except (TypeError, ValueError):
            return False
        return True

    # --- series removal ---------------------------------------------------------------------------

    def remove_pool(self, pool_name: str) -> None:
        """Forget a pool: its series of every pool metric (label ``name``) leave the exposition,
        and its label set no longer counts against ``max_series``. Its pods' per-pod series are
        removed by :meth:`remove_pod`. A pool never recorded, or folded into the overflow series,
        is nothing to remove."""
        self._pools.remove((pool_name,))

    def remove_pod(self, pool_name: str, pod_name: str) -> None:
        """Forget one model server of a pool: its per-pod (per-endpoint) queue series leaves
        the exposition and its label set no longer counts against ``max_series``."""
        self._endpoints.remove((pool_name, pod_name))

    # --- request events ---------------------------------------------------------------------------
    # Whole-request calls for lifecycles and handler wrappers (inference_metrics.lifecycle and
    # .instrument): each validates every argument first, so bad input records nothing, then looks
    # its label set up once for all the measures it derives. They do not log (hot path); the
    # stage rules (what is recorded when) live in the lifecycle, not here.

    def record_request_started(
        self,
        model_name: str,
        target_model_name: str,
        request_size: float,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """A request is forwarded: count it and observe its body size (0 included)."""
        if not (type(request_size) in _FAST and 0 <= request_size <= _MAX):
            request_size = number("request_size", request_size)
        key = (model_name, target_model_name, fairness_id, priority)
        try:
            row = self._requests_cache[key]
        except (KeyError, TypeError):
            row = self._requests.bind(key)
        row[REQUEST](1)
        row[REQUEST_SIZE](request_size)

    def record_request_completed(
        self,
        model_name: str,
        target_model_name: str,
        *,
        received: float,
        completed: float,
        response_size: float,
        request_size: float | None = None,
        input_tokens: float = 0,
        output_tokens: float = 0,
        cached_tokens: float | None = None,
        first_token: float | None = None,
        streaming: bool | None = None,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
        operation: str | None = None,
    ) -> bool:
        """A request completed successfully; records everything about it in one lookup.

        ``received``, ``completed`` and ``first_token`` are timestamps of one monotonic clock
        (seconds): request received, response ended, first response body chunk.
        ``request_size``, when given, also counts the request and observes its size (for callers
        that did not call :meth:`record_request_started`). ``streaming`` says whether the
        response was streamed (default: whether ``first_token`` is given).

        ``cached_tokens``: None when the response reported no cached-token count (no
        ``prompt_tokens_details``), else the count, observed 0 included (as llm-d-router:
        whenever the details are present).

        Recorded: response size (0 included); input and output tokens when > 0. When
        ``completed`` is strictly after ``received`` (else returns False and records no
        latencies): latency; NTPOT = latency / output tokens when output tokens > 0. Streamed,
        with ``first_token`` between them: TTFT = first_token - received and, when output tokens
        > 1, TPOT = (completed - first_token) / (output tokens - 1). Not streamed: TTFT = the
        latency, only into schemas whose TTFT has a ``streaming`` label (``"false"``).
        ``operation`` is the GenAI ``gen_ai.operation.name`` (only with ``genai``).
        """
        if not (type(received) in _FAST and 0 <= received <= _MAX):
            received = number("received", received)
        if not (type(completed) in _FAST and 0 <= completed <= _MAX):
            completed = number("completed", completed)
        if not (type(response_size) in _FAST and 0 <= response_size <= _MAX):
            response_size = number("response_size", response_size)
        if request_size is not None and not (
            type(request_size) in _FAST and 0 <= request_size <= _MAX
        ):
            request_size = number("request_size", request_size)
        if not (type(input_tokens) in _FAST and 0 <= input_tokens <= _MAX):
            input_tokens = number("input_tokens", input_tokens)
        if not (type(output_tokens) in _FAST and 0 <= output_tokens <= _MAX):
            output_tokens = number("output_tokens", output_tokens)
        if cached_tokens is not None and not (
            type(cached_tokens) in _FAST and 0 <= cached_tokens <= _MAX
        ):
            cached_tokens = number("cached_tokens", cached_tokens)
        if first_token is not None and not (
            type(first_token) in _FAST and 0 <= first_token <= _MAX
        ):
            first_token = number("first_token", first_token)
        if streaming is None:
            streaming = first_token is not None
        elif type(streaming) is not bool:
            raise TypeError(f"streaming must be a bool or None, got {streaming!r}")
        key: tuple[object, ...] = (model_name, target_model_name, fairness_id, priority)
        if operation is not None:
            key = (*key, operation)
        try:
            row = self._requests_cache[key]
        except (KeyError, TypeError):
            row = self._requests.bind(key)

        if request_size is not None:
            row[REQUEST](1)
            row[REQUEST_SIZE](request_size)
        row[RESPONSE_SIZE](response_size)
        if input_tokens > 0:
            row[INPUT_TOKENS](input_tokens)
        if output_tokens > 0:
            row[OUTPUT_TOKENS](output_tokens)
        if cached_tokens is not None:
            row[CACHED_TOKENS](cached_tokens)
        if not completed > received:
            return False
        latency = completed - received
        row[LATENCY](latency)
        if output_tokens > 0:
            # A fractional token count near 0 (upstream's are integers) can make the quotient
            # infinite: such a value is not observed by any backend (OpenTelemetry drops it).
            ntpot = latency / output_tokens
            if ntpot <= _MAX:
                row[NTPOT](ntpot)
        if not streaming:
            row[UNSTREAMED_TTFT](latency)
        elif first_token is not None and received <= first_token <= completed:
            row[TTFT](first_token - received)
            if output_tokens > 1:
                tpot = (completed - first_token) / (output_tokens - 1)
                if tpot <= _MAX:
                    row[TPOT](tpot)
        return True

    def record_request_failed(
        self,
        model_name: str,
        target_model_name: str,
        error_code: str = _UNKNOWN_ERROR,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
        received: float | None = None,
        completed: float | None = None,
        operation: str | None = None,
    ) -> None:
        """Count one failed request; an empty ``error_code`` counts as ``Unknown``.

        With both ``received`` and ``completed`` (completed after received), the failed request's
        duration is derived too: the GenAI request duration records it, with ``error.type`` =
        the error code (the endpoint picker's schemas time successful requests only).
        """
        if not isinstance(error_code, str):
            raise TypeError(f"error_code must be a string, got {error_code!r}")
        if received is not None:
            received = number("received", received)
        if completed is not None:
            completed = number("completed", completed)
        code = error_code or _UNKNOWN_ERROR
        key = (model_name, target_model_name, fairness_id, priority, code, operation)
        row = self._row(self._errors, key)
        row[ERROR](1)
        if received is not None and completed is not None and completed > received:
            row[FAILURE_LATENCY](completed - received)

    def record_running_request_started(
        self,
        model_name: str,
        target_model_name: str = "",
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """One more request running for ``model_name``; an empty name records nothing."""
        self._running_add(model_name, target_model_name, fairness_id, priority, 1)

    def record_running_request_finished(
        self,
        model_name: str,
        target_model_name: str = "",
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """One request fewer running for ``model_name``; an empty name records nothing."""
        self._running_add(model_name, target_model_name, fairness_id, priority, -1)

    def record_response_parse_failure(self) -> None:
        """Count a response body whose usage could not be parsed: the metric of the schema's
        :data:`~inference_metrics.quantities.RESPONSE_PARSE_FAILURES` view, and
        :attr:`response_parse_failures`."""
        with self._parse_failure_lock:
            self._parse_failure_count += 1
        self._row(self._parse_failures, ())[0](1)

    @property
    def response_parse_failures(self) -> int:
        """Response bodies whose usage could not be parsed since this Recorder was made."""
        return self._parse_failure_count


def _registration_order(views: Sequence[View]) -> list[View]:
    """``views`` group by group, measure by measure (as the exposition shows them), each once."""
    ordered: dict[int, View] = {}
    for group in GROUPS:
        for measure in group.measures:
            for view in views:
                if measure in view.measures:
                    ordered.setdefault(id(view), view)
    return list(ordered.values())


def _register(targets: Sequence[tuple[Backend, list[View]]]) -> list[tuple[View, Instrument]]:
    """Register each target's views on its backend; if one refuses, undo the ones before."""
    bound: list[tuple[View, Instrument]] = []
    done: list[tuple[Backend, Sequence[Instrument]]] = []
    try:
        for target, views in targets:
            instruments = target.register([view.spec for view in views])
            done.append((target, instruments))
            bound.extend(zip(views, instruments, strict=True))
    except BaseException:
        for target, instruments in done:
            target.unregister(instruments)
        raise
    return bound


def _defaults(group: Group, views: Sequence[View]) -> dict[str, str]:
    """The value each optional input of ``group`` takes when a call passes None, from the views
    that read it; two views defaulting one input differently are refused."""
    found: dict[str, str] = {}
    for view in views:
        if not any(measure in group.measures for measure in view.measures):
            continue
        for name, value in view.defaults.items():
            if name in group.optional and found.setdefault(name, value) != value:
                raise ValueError(
                    f"two recorded views default {name!r} differently ({found[name]!r}, "
                    f"{value!r}); record them with separate Recorders"
                )
    return found


def __getattr__(name: str) -> Any:
    # ModelRow, GroupLayout, layouts_for, CATALOG_LAYOUTS, ...: deprecated (with a warning).
    from . import _deprecated

    return _deprecated.recorder_attribute(__name__, name)
