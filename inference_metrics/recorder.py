"""The Recorder: upstream's recording calls, validated and bounded, over any backend.

The method names and guards are upstream's (``pkg/epp/metrics``):

* request and response sizes: every value is observed, 0 included;
* input and output tokens: observed only when > 0;
* latency: recorded only when ``completed`` is strictly after ``received`` (returns False and logs
  otherwise);
* the error counter: incremented only when the error code is not empty;
* pool gauges: set to the value given.

Label values are untrusted (model names come from request bodies). Each group of metrics that
shares a label set (all ``(model_name, target_model_name)`` metrics, say) holds at most
``max_series`` distinct label sets; later new ones are folded into one series whose every label is
:data:`OVERFLOW_LABEL_VALUE`, so no count is lost and memory stays bounded.

Bad input raises ``TypeError``/``ValueError`` naming the argument, before anything is recorded.
"""

from __future__ import annotations

import logging
import math
import numbers
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

from prometheus_client.registry import CollectorRegistry

from . import catalog
from .backends.base import Backend, Instrument, Series
from .spec import MetricSpec

__all__ = [
    "CATALOG_LAYOUTS",
    "DEFAULT_MAX_LABEL_LENGTH",
    "DEFAULT_MAX_SERIES",
    "OVERFLOW_LABEL_VALUE",
    "ErrorRow",
    "GroupLayout",
    "InfoRow",
    "Layouts",
    "ModelRow",
    "PodRow",
    "PoolRow",
    "Recorder",
    "RunningRow",
]

logger = logging.getLogger(__name__)

#: The label value of the series that absorbs label sets beyond ``max_series``.
OVERFLOW_LABEL_VALUE = "__overflow__"
DEFAULT_MAX_SERIES = 1000
DEFAULT_MAX_LABEL_LENGTH = 1024

# The fast paths take ints and floats up to here without converting them; beyond it (inf, or an
# int too large for a float) they fall back to _number, which refuses it.
_MAX = sys.float_info.max
_FAST_NUMBER = frozenset((int, float))

#: The error code a failure without one is counted with (upstream's rule).
_UNKNOWN_ERROR = "Unknown"


def _number(argument: str, value: object, *, minimum: float | None = 0.0) -> float:
    """``value`` as a finite float, or a TypeError/ValueError naming ``argument``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a number (int or float), got {value!r}")
    try:
        result = float(value)
    except OverflowError:  # an int or Fraction beyond any float
        raise ValueError(f"{argument} must be finite, got a number too large for a float") from None
    if not math.isfinite(result):
        raise ValueError(f"{argument} must be finite, got {value!r}")
    if minimum is not None and result < minimum:
        raise ValueError(f"{argument} must be >= {minimum:g}, got {value!r}")
    return result


_R = TypeVar("_R", bound="_Row")

#: The Recorder argument carrying a label, where the names differ (errors name the argument).
_ARGUMENT_FOR_LABEL = {"name": "pool_name", "model_server_pod": "pod_name"}


class _Row:
    """One label set's bound series in one group: a named field per metric of the group."""

    __slots__ = ()


class ModelRow(_Row):
    """The series of one ``(model_name, target_model_name)``."""

    __slots__ = (
        "input_tokens",
        "normalized_time_per_output_token",
        "output_tokens",
        "prompt_cached_tokens",
        "request_duration",
        "request_sizes",
        "request_total",
        "request_tpot",
        "request_ttft",
        "response_sizes",
    )
    input_tokens: Series
    normalized_time_per_output_token: Series
    output_tokens: Series
    prompt_cached_tokens: Series
    request_duration: Series
    request_sizes: Series
    request_total: Series
    request_tpot: Series
    request_ttft: Series
    response_sizes: Series


class ErrorRow(_Row):
    """The series of one ``(model_name, target_model_name, error_code)``."""

    __slots__ = ("request_error_total",)
    request_error_total: Series


class RunningRow(_Row):
    """The series of one ``model_name``."""

    __slots__ = ("running_requests",)
    running_requests: Series


class PoolRow(_Row):
    """The series of one pool (label ``name``)."""

    __slots__ = (
        "average_kv_cache_utilization",
        "average_queue_size",
        "average_running_requests",
        "ready_pods",
    )
    average_kv_cache_utilization: Series
    average_queue_size: Series
    average_running_requests: Series
    ready_pods: Series


class PodRow(_Row):
    """The series of one model-server pod of a pool (``name``, ``model_server_pod``)."""

    __slots__ = ("per_pod_queue_size",)
    per_pod_queue_size: Series


class InfoRow(_Row):
    """The series of one build (``commit``, ``build_ref``)."""

    __slots__ = ("extension_info",)
    extension_info: Series


@dataclass(frozen=True)
class GroupLayout:
    """Which spec each field of a row holds: a group of metrics recorded for one label set.

    Every spec of a layout has the same label names; the Recorder looks a label set up once per
    call for all of them. A schema with other names or labels is another set of layouts with the
    same rows (the Recorder's calls fill the fields, whatever the specs are named).
    """

    row: type[_Row]
    fields: Mapping[str, MetricSpec]

    def __post_init__(self) -> None:
        if set(self.fields) != set(self.row.__slots__):
            raise ValueError(
                f"{self.row.__name__} has the fields {sorted(self.row.__slots__)}, "
                f"got specs for {sorted(self.fields)}"
            )
        labels = {spec.labels for spec in self.fields.values()}
        if len(labels) != 1:
            raise ValueError(
                f"the specs of one {self.row.__name__} must share labels, got {labels}"
            )

    @property
    def labels(self) -> tuple[str, ...]:
        return next(iter(self.fields.values())).labels


@dataclass(frozen=True)
class Layouts:
    """One layout per group of the Recorder: where each of its calls records."""

    models: GroupLayout
    errors: GroupLayout
    running: GroupLayout
    pools: GroupLayout
    pods: GroupLayout
    info: GroupLayout

    def groups(self) -> tuple[GroupLayout, ...]:
        return (self.models, self.errors, self.running, self.pools, self.pods, self.info)

    def specs(self) -> tuple[MetricSpec, ...]:
        return tuple(spec for group in self.groups() for spec in group.fields.values())


#: The catalogue's metrics, each in the one group and field the Recorder records it through.
CATALOG_LAYOUTS = Layouts(
    models=GroupLayout(
        ModelRow,
        {
            "request_total": catalog.REQUEST_TOTAL,
            "request_duration": catalog.REQUEST_DURATION,
            "request_sizes": catalog.REQUEST_SIZES,
            "response_sizes": catalog.RESPONSE_SIZES,
            "input_tokens": catalog.INPUT_TOKENS,
            "output_tokens": catalog.OUTPUT_TOKENS,
            "normalized_time_per_output_token": catalog.NORMALIZED_TIME_PER_OUTPUT_TOKEN,
            "request_ttft": catalog.REQUEST_TTFT,
            "request_tpot": catalog.REQUEST_TPOT,
            "prompt_cached_tokens": catalog.PROMPT_CACHED_TOKENS,
        },
    ),
    errors=GroupLayout(ErrorRow, {"request_error_total": catalog.REQUEST_ERROR_TOTAL}),
    running=GroupLayout(RunningRow, {"running_requests": catalog.RUNNING_REQUESTS}),
    pools=GroupLayout(
        PoolRow,
        {
            "average_kv_cache_utilization": catalog.POOL_AVERAGE_KV_CACHE_UTILIZATION,
            "average_queue_size": catalog.POOL_AVERAGE_QUEUE_SIZE,
            "ready_pods": catalog.POOL_READY_PODS,
            "average_running_requests": catalog.POOL_AVERAGE_RUNNING_REQUESTS,
        },
    ),
    pods=GroupLayout(PodRow, {"per_pod_queue_size": catalog.POOL_PER_POD_QUEUE_SIZE}),
    info=GroupLayout(InfoRow, {"extension_info": catalog.EXTENSION_INFO}),
)


class _SeriesGroup(Generic[_R]):
    """Bound rows of one group, one per label set, at most ``max_series`` label sets."""

    __slots__ = (
        "_fields",
        "_instruments",
        "_lock",
        "_max_label_length",
        "_max_series",
        "_overflow",
        "_row",
        "argument_names",
        "cache",
        "label_names",
    )

    def __init__(
        self,
        layout: GroupLayout,
        instruments: Mapping[str, Instrument],
        max_series: int,
        max_label_length: int,
    ) -> None:
        self.label_names = layout.labels
        self.argument_names = tuple(_ARGUMENT_FOR_LABEL.get(n, n) for n in self.label_names)
        self._row = layout.row
        self._fields = tuple(layout.fields)
        self._instruments = tuple(instruments[layout.fields[f].name] for f in self._fields)
        self._max_series = max_series
        self._max_label_length = max_label_length
        self._lock = threading.Lock()
        self._overflow: _R | None = None
        self.cache: dict[object, _R] = {}

    def bind(self, key: tuple[object, ...]) -> _R:
        """Slow path: validate a new label set, then bind it (or fold it into the overflow)."""
        values = self._checked(key)
        with self._lock:
            row = self.cache.get(key)
            if row is not None:
                return row
            if len(self.cache) >= self._max_series:
                if self._overflow is None:
                    self._overflow = self._new_row((OVERFLOW_LABEL_VALUE,) * len(values))
                return self._overflow
            row = self._new_row(values)
            self.cache[values] = row
            return row

    def remove(self, key: tuple[object, ...]) -> None:
        """Forget a label set: its series leave every backend and its slot is free again."""
        values = self._checked(key)
        with self._lock:
            if self.cache.pop(values, None) is None:
                return
            for instrument in self._instruments:
                instrument.remove(values)

    def _checked(self, key: tuple[object, ...]) -> tuple[str, ...]:
        return tuple(
            self._check(name, value) for name, value in zip(self.argument_names, key, strict=True)
        )

    def _new_row(self, values: tuple[str, ...]) -> _R:
        row = cast(_R, object.__new__(self._row))
        for field, instrument in zip(self._fields, self._instruments, strict=True):
            setattr(row, field, instrument.bind(values))
        return row

    def _check(self, name: str, value: object) -> str:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
        if len(value) > self._max_label_length:
            raise ValueError(
                f"{name} is {len(value)} characters long; at most {self._max_label_length} allowed"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{name} is not valid Unicode text: {value!r}") from None
        return str.__str__(value)  # a plain str, even for str subclasses and str enums

    @property
    def size(self) -> int:
        """Distinct label sets bound so far, the overflow series excluded."""
        return len(self.cache)

    @property
    def overflowed(self) -> bool:
        return self._overflow is not None


class Recorder:
    """Records the endpoint picker's metrics into ``backend``.

    ``max_series`` bounds the distinct label sets per group of metrics sharing labels;
    ``max_label_length`` bounds each label value (characters). One Recorder per backend registry.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        max_series: int = DEFAULT_MAX_SERIES,
        max_label_length: int = DEFAULT_MAX_LABEL_LENGTH,
    ) -> None:
        if isinstance(backend, CollectorRegistry):
            # It has a register() too: it would accept the specs as a "collector" and then fail
            # every later scrape of that registry.
            raise TypeError(
                "backend must be a Backend, not a prometheus_client CollectorRegistry: "
                "use Recorder(PrometheusBackend(registry))"
            )
        if not isinstance(backend, Backend):
            raise TypeError(
                f"backend must implement Backend (register, unregister, close), got {backend!r}"
            )
        for argument, value in (("max_series", max_series), ("max_label_length", max_label_length)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{argument} must be an int, got {value!r}")
            if value < 1:
                raise ValueError(f"{argument} must be >= 1, got {value!r}")
        self.backend = backend
        self.max_series = max_series
        layouts = CATALOG_LAYOUTS
        instruments = backend.register(layouts.specs())
        by_name = {i.spec.name: i for i in instruments}

        def group(layout: GroupLayout) -> _SeriesGroup[Any]:
            return _SeriesGroup(layout, by_name, max_series, max_label_length)

        self._models: _SeriesGroup[ModelRow] = group(layouts.models)
        self._errors: _SeriesGroup[ErrorRow] = group(layouts.errors)
        self._running: _SeriesGroup[RunningRow] = group(layouts.running)
        self._pools: _SeriesGroup[PoolRow] = group(layouts.pools)
        self._pods: _SeriesGroup[PodRow] = group(layouts.pods)
        self._info: _SeriesGroup[InfoRow] = group(layouts.info)
        groups: tuple[_SeriesGroup[Any], ...] = (
            self._models,
            self._errors,
            self._running,
            self._pools,
            self._pods,
            self._info,
        )
        self._group_of: dict[str, _SeriesGroup[Any]] = {
            spec.name: grp
            for layout, grp in zip(layouts.groups(), groups, strict=True)
            for spec in layout.fields.values()
        }

    # --- lookups --------------------------------------------------------------------------------

    def _model_series(self, model_name: str, target_model_name: str) -> ModelRow:
        key = (model_name, target_model_name)
        try:
            return self._models.cache[key]
        except (KeyError, TypeError):
            return self._models.bind(key)

    def _pool_series(self, pool_name: str) -> PoolRow:
        key = (pool_name,)
        try:
            return self._pools.cache[key]
        except (KeyError, TypeError):
            return self._pools.bind(key)

    def series_count(self, spec: MetricSpec) -> int:
        """Distinct label sets bound for ``spec``'s group (the overflow series excluded)."""
        try:
            return self._group_of[spec.name].size
        except (KeyError, AttributeError):
            raise ValueError(f"spec must be one of this Recorder's metrics, got {spec!r}") from None

    # --- series removal ---------------------------------------------------------------------------

    def remove_pool(self, pool_name: str) -> None:
        """Forget a pool: its series of every pool metric (label ``name``) leave the exposition,
        and its label set no longer counts against ``max_series``. Its pods' per-pod series are
        removed by :meth:`remove_pod`. A pool never recorded, or folded into the overflow series,
        is nothing to remove."""
        self._pools.remove((pool_name,))

    def remove_pod(self, pool_name: str, pod_name: str) -> None:
        """Forget one model-server pod of a pool: its ``inference_pool_per_pod_queue_size``
        series leaves the exposition and its label set no longer counts against ``max_series``."""
        self._pods.remove((pool_name, pod_name))

    # --- requests (upstream parity) ---------------------------------------------------------------

    def record_request_counter(self, model_name: str, target_model_name: str) -> None:
        """Count one request for ``(model_name, target_model_name)``."""
        self._model_series(model_name, target_model_name).request_total.add(1)

    def record_request_error(
        self, model_name: str, target_model_name: str, error_code: str
    ) -> None:
        """Count one failed request; an empty ``error_code`` counts nothing (as upstream)."""
        if not isinstance(error_code, str):
            raise TypeError(f"error_code must be a string, got {error_code!r}")
        if not error_code:
            return
        key = (model_name, target_model_name, error_code)
        try:
            series = self._errors.cache[key]
        except (KeyError, TypeError):
            series = self._errors.bind(key)
        series.request_error_total.add(1)

    def record_request_latency(
        self, model_name: str, target_model_name: str, received: float, completed: float
    ) -> bool:
        """Observe ``completed - received`` seconds; only when completed is after received."""
        if not (type(received) in _FAST_NUMBER and 0 <= received <= _MAX):
            received = _number("received", received)
        if not (type(completed) in _FAST_NUMBER and 0 <= completed <= _MAX):
            completed = _number("completed", completed)
        series = self._model_series(model_name, target_model_name)
        if not completed > received:
            logger.error(
                "request latency not recorded: completed (%r) is not after received (%r)",
                completed,
                received,
            )
            return False
        series.request_duration.observe(completed - received)
        return True

    def record_request_size(self, model_name: str, target_model_name: str, size: float) -> None:
        """Observe a request body size in bytes (0 included)."""
        if not (type(size) in _FAST_NUMBER and 0 <= size <= _MAX):
            size = _number("size", size)
        self._model_series(model_name, target_model_name).request_sizes.observe(size)

    def record_response_size(self, model_name: str, target_model_name: str, size: float) -> None:
        """Observe a response body size in bytes (0 included)."""
        if not (type(size) in _FAST_NUMBER and 0 <= size <= _MAX):
            size = _number("size", size)
        self._model_series(model_name, target_model_name).response_sizes.observe(size)

    def record_input_tokens(self, model_name: str, target_model_name: str, tokens: float) -> None:
        """Observe a prompt token count; 0 is not observed (as upstream)."""
        if not (type(tokens) in _FAST_NUMBER and 0 <= tokens <= _MAX):
            tokens = _number("tokens", tokens)
        series = self._model_series(model_name, target_model_name)
        if tokens > 0:
            series.input_tokens.observe(tokens)

    def record_output_tokens(self, model_name: str, target_model_name: str, tokens: float) -> None:
        """Observe a completion token count; 0 is not observed (as upstream)."""
        if not (type(tokens) in _FAST_NUMBER and 0 <= tokens <= _MAX):
            tokens = _number("tokens", tokens)
        series = self._model_series(model_name, target_model_name)
        if tokens > 0:
            series.output_tokens.observe(tokens)

    # --- pools -----------------------------------------------------------------------------------

    def record_pool_kv_cache_utilization(self, pool_name: str, value: float) -> None:
        """Set the pool's average KV-cache utilization (a fraction, usually 0..1)."""
        number = _number("value", value)
        self._pool_series(pool_name).average_kv_cache_utilization.set(number)

    def record_pool_queue_size(self, pool_name: str, value: float) -> None:
        """Set the pool's average number of queued requests."""
        number = _number("value", value)
        self._pool_series(pool_name).average_queue_size.set(number)

    def record_pool_ready_pods(self, pool_name: str, value: float) -> None:
        """Set the number of ready pods in the pool."""
        number = _number("value", value)
        self._pool_series(pool_name).ready_pods.set(number)

    def record_pool_average_running_requests(self, pool_name: str, value: float) -> None:
        """Set the pool's average number of running requests per model server."""
        number = _number("value", value)
        self._pool_series(pool_name).average_running_requests.set(number)

    def record_pool_per_pod_queue_size(self, pool_name: str, pod_name: str, value: float) -> None:
        """Set one model-server pod's queue size (label ``model_server_pod``)."""
        number = _number("value", value)
        key = (pool_name, pod_name)
        try:
            series = self._pods.cache[key]
        except (KeyError, TypeError):
            series = self._pods.bind(key)
        series.per_pod_queue_size.set(number)

    def record_extension_info(self, commit: str, build_ref: str) -> None:
        """Expose ``inference_extension_info{commit, build_ref} 1``."""
        key = (commit, build_ref)
        try:
            series = self._info.cache[key]
        except (KeyError, TypeError):
            series = self._info.bind(key)
        series.extension_info.set(1)

    # --- request events ---------------------------------------------------------------------------
    # Whole-request calls for lifecycles and handler wrappers (inference_metrics.lifecycle and
    # .instrument): each validates every argument first, so bad input records nothing, then looks
    # its label set up once for all the metrics it touches. They do not log (hot path); the
    # stage rules (what is recorded when) live in the lifecycle, not here.

    _parse_failure_lock: ClassVar[threading.Lock] = threading.Lock()
    _response_parse_failures: int = 0

    def is_valid_label_value(self, value: object) -> bool:
        """Whether ``value`` can be a model label value: a string within ``max_label_length``
        characters that encodes as UTF-8."""
        try:
            self._models._check("model_name", value)
        except (TypeError, ValueError):
            return False
        return True

    def record_request_started(
        self, model_name: str, target_model_name: str, request_size: float
    ) -> None:
        """A request is forwarded: count it and observe its body size (0 included)."""
        if not (type(request_size) in _FAST_NUMBER and 0 <= request_size <= _MAX):
            request_size = _number("request_size", request_size)
        series = self._model_series(model_name, target_model_name)
        series.request_total.add(1)
        series.request_sizes.observe(request_size)

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
        cached_tokens: float = 0,
        first_token: float | None = None,
    ) -> bool:
        """A request completed successfully; records everything about it in one lookup.

        ``received``, ``completed`` and ``first_token`` are timestamps of one monotonic clock
        (seconds): request received, response ended, first response body chunk.
        ``request_size``, when given, also counts the request and observes its size (for callers
        that did not call :meth:`record_request_started`).

        Recorded: response size (0 included); input, output and cached tokens when > 0. When
        ``completed`` is strictly after ``received`` (else returns False and records no
        latencies): latency; NTPOT = latency / output tokens when output tokens > 0; with
        ``first_token`` between them, TTFT = first_token - received and, when output tokens > 1,
        TPOT = (completed - first_token) / (output tokens - 1).
        """
        if not (type(received) in _FAST_NUMBER and 0 <= received <= _MAX):
            received = _number("received", received)
        if not (type(completed) in _FAST_NUMBER and 0 <= completed <= _MAX):
            completed = _number("completed", completed)
        if not (type(response_size) in _FAST_NUMBER and 0 <= response_size <= _MAX):
            response_size = _number("response_size", response_size)
        if request_size is not None and not (
            type(request_size) in _FAST_NUMBER and 0 <= request_size <= _MAX
        ):
            request_size = _number("request_size", request_size)
        if not (type(input_tokens) in _FAST_NUMBER and 0 <= input_tokens <= _MAX):
            input_tokens = _number("input_tokens", input_tokens)
        if not (type(output_tokens) in _FAST_NUMBER and 0 <= output_tokens <= _MAX):
            output_tokens = _number("output_tokens", output_tokens)
        if not (type(cached_tokens) in _FAST_NUMBER and 0 <= cached_tokens <= _MAX):
            cached_tokens = _number("cached_tokens", cached_tokens)
        if first_token is not None and not (
            type(first_token) in _FAST_NUMBER and 0 <= first_token <= _MAX
        ):
            first_token = _number("first_token", first_token)
        series = self._model_series(model_name, target_model_name)

        if request_size is not None:
            series.request_total.add(1)
            series.request_sizes.observe(request_size)
        series.response_sizes.observe(response_size)
        if input_tokens > 0:
            series.input_tokens.observe(input_tokens)
        if output_tokens > 0:
            series.output_tokens.observe(output_tokens)
        if cached_tokens > 0:
            series.prompt_cached_tokens.observe(cached_tokens)
        if not completed > received:
            return False
        latency = completed - received
        series.request_duration.observe(latency)
        if output_tokens > 0:
            series.normalized_time_per_output_token.observe(latency / output_tokens)
        if first_token is not None and received <= first_token <= completed:
            series.request_ttft.observe(first_token - received)
            if output_tokens > 1:
                series.request_tpot.observe((completed - first_token) / (output_tokens - 1))
        return True

    def record_request_failed(
        self, model_name: str, target_model_name: str, error_code: str = _UNKNOWN_ERROR
    ) -> None:
        """Count one failed request; an empty ``error_code`` counts as ``Unknown``."""
        if not isinstance(error_code, str):
            raise TypeError(f"error_code must be a string, got {error_code!r}")
        key = (model_name, target_model_name, error_code or _UNKNOWN_ERROR)
        try:
            series = self._errors.cache[key]
        except (KeyError, TypeError):
            series = self._errors.bind(key)
        series.request_error_total.add(1)

    def record_running_request_started(self, model_name: str) -> None:
        """One more request running for ``model_name``; an empty name records nothing."""
        self._running_request_add(model_name, 1)

    def record_running_request_finished(self, model_name: str) -> None:
        """One request fewer running for ``model_name``; an empty name records nothing."""
        self._running_request_add(model_name, -1)

    def _running_request_add(self, model_name: str, amount: float) -> None:
        if model_name == "":
            return
        group = self._running
        key = (model_name,)
        try:
            series = group.cache[key]
        except (KeyError, TypeError):
            series = group.bind(key)
        series.running_requests.add(amount)

    def record_response_parse_failure(self) -> None:
        """Count a response body whose usage could not be parsed (see
        :attr:`response_parse_failures`; not an exposed metric: upstream has none)."""
        with self._parse_failure_lock:
            self._response_parse_failures += 1

    @property
    def response_parse_failures(self) -> int:
        """Response bodies whose usage could not be parsed since this Recorder was made."""
        return self._response_parse_failures
