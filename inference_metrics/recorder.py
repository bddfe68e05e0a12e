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

Label values are untrusted (model names come from request bodies). Each group of metrics fed by
one kind of call (requests, errors, running requests, pools, endpoints, build info) holds at most
``max_series`` distinct label sets, counted over the labels its schemas expose; later new ones are
folded into one series whose every label is :data:`OVERFLOW_LABEL_VALUE`, so no count is lost
and memory stays bounded. ``fairness_id`` and ``priority`` (caller-controlled headers) have their
own bounds, ``max_fairness_ids`` and ``max_priorities`` distinct values: later new values are
recorded as :data:`OVERFLOW_LABEL_VALUE` (admitted values stay admitted). A pool or pod
that is gone is removed (:meth:`Recorder.remove_pool`, :meth:`Recorder.remove_pod`), which frees
its slot.

Each group is described by a :class:`GroupLayout`: a row class with one named field per recording
role (:class:`ModelRow`, :class:`PoolRow`, ...) and the specs each field records into. A label
set's row is bound once, and every call looks it up once (one dictionary lookup) and updates the
fields it needs.

Bad input raises ``TypeError``/``ValueError`` naming the argument, before anything is recorded.
Under N worker processes each process has its own Recorder and bounds (the backend's store
decides how their series merge).
"""

from __future__ import annotations

import logging
import math
import numbers
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from prometheus_client.registry import CollectorRegistry

from .backends.base import (
    DEFAULT_MAX_SERIES,
    OVERFLOW_LABEL_VALUE,
    Backend,
    Instrument,
    Series,
)
from .schemas import DEFAULT_SCHEMA, LABEL_INPUTS, Role, Schema, SchemaMetric, combine, resolve
from .spec import MetricSpec

if TYPE_CHECKING:
    from .genai import GenAIRecorder

__all__ = [
    "CATALOG_LAYOUTS",
    "DEFAULT_FAIRNESS_ID",
    "DEFAULT_MAX_FAIRNESS_IDS",
    "DEFAULT_MAX_LABEL_LENGTH",
    "DEFAULT_MAX_PRIORITIES",
    "DEFAULT_MAX_SERIES",
    "DEFAULT_PRIORITY",
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
    "layouts_for",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_LABEL_LENGTH = 1024
#: Distinct ``fairness_id`` / ``priority`` values kept before folding new ones into the overflow.
DEFAULT_MAX_FAIRNESS_IDS = 100
DEFAULT_MAX_PRIORITIES = 32
#: What a request without a fairness id or priority is recorded with (upstream's defaults).
DEFAULT_FAIRNESS_ID = "default-flow"
DEFAULT_PRIORITY = 0

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


def _check_operation(operation: object) -> None:
    if operation is not None and (not isinstance(operation, str) or not operation):
        raise TypeError(f"operation must be a non-empty string or None, got {operation!r}")


class _Noop:
    """A field no recorded schema has: every update does nothing."""

    __slots__ = ()

    def add(self, amount: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass

    def set(self, value: float) -> None:
        pass


_NOOP = _Noop()


class _Both:
    """One field fed into several schemas' series (a migration, or llm-d-router's twins)."""

    __slots__ = ("_series",)

    def __init__(self, series: tuple[Series, ...]) -> None:
        self._series = series

    def add(self, amount: float) -> None:
        for series in self._series:
            series.add(amount)

    def observe(self, value: float) -> None:
        for series in self._series:
            series.observe(value)

    def set(self, value: float) -> None:
        for series in self._series:
            series.set(value)


class _Row:
    """One label set's bound series in one group: a named field per quantity the group records.

    A field is one series, several (``_Both``: two schemas, or llm-d-router's twins) or none
    (``_Noop``: no recorded schema has that metric).
    """

    __slots__ = ()


class ModelRow(_Row):
    """The series of one request label set (model, target model, fairness id, priority)."""

    __slots__ = (
        "input_tokens",
        "inter_token_latency",
        "normalized_time_per_output_token",
        "output_tokens",
        "prompt_cached_tokens",
        "request_duration",
        "request_sizes",
        "request_total",
        "request_tpot",
        "request_ttft",
        "request_ttft_unstreamed",
        "response_sizes",
    )
    input_tokens: Series
    inter_token_latency: Series
    normalized_time_per_output_token: Series
    output_tokens: Series
    prompt_cached_tokens: Series
    request_duration: Series
    request_sizes: Series
    request_total: Series
    request_tpot: Series
    request_ttft: Series
    request_ttft_unstreamed: Series
    response_sizes: Series


class ErrorRow(_Row):
    """The series of one request label set and error code."""

    __slots__ = ("request_error_total",)
    request_error_total: Series


class RunningRow(_Row):
    """The running-request series of one request label set."""

    __slots__ = ("running_requests",)
    running_requests: Series


class PoolRow(_Row):
    """The series of one pool (label ``name``)."""

    __slots__ = (
        "average_kv_cache_utilization",
        "average_queue_size",
        "average_running_requests",
        "ready_pods",
        "std_dev_kv_cache_utilization",
        "std_dev_queue_size",
        "std_dev_running_requests",
    )
    average_kv_cache_utilization: Series
    average_queue_size: Series
    average_running_requests: Series
    ready_pods: Series
    std_dev_kv_cache_utilization: Series
    std_dev_queue_size: Series
    std_dev_running_requests: Series


class PodRow(_Row):
    """The series of one model server of a pool (``name``, ``model_server_pod``/``_endpoint``)."""

    __slots__ = ("per_pod_queue_size",)
    per_pod_queue_size: Series


class InfoRow(_Row):
    """The series of one build (``commit``, ``build_ref``)."""

    __slots__ = ("extension_info",)
    extension_info: Series


@dataclass(frozen=True)
class GroupLayout:
    """Which specs each field of a row holds: a group of metrics recorded from one kind of call.

    ``inputs`` are the call's arguments that make the group's key, in key order; every spec's
    labels must be among them (:data:`~inference_metrics.schemas.LABEL_INPUTS` maps a label to
    its input), or fixed per field by ``constants`` (TTFT's ``streaming``). A field may hold no
    spec, one, or several with different labels (a legacy twin drops labels its successor has):
    the Recorder looks the key up once per call and binds each spec with its own labels.
    """

    row: type[_Row]
    inputs: tuple[str, ...]
    fields: Mapping[str, tuple[MetricSpec, ...]]
    constants: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.fields) != set(self.row.__slots__):
            raise ValueError(
                f"{self.row.__name__} has the fields {sorted(self.row.__slots__)}, "
                f"got specs for {sorted(self.fields)}"
            )
        for name, specs in self.fields.items():
            fixed = self.constants.get(name, {})
            for spec in specs:
                unknown = [
                    label
                    for label in spec.labels
                    if label not in fixed and LABEL_INPUTS.get(label) not in self.inputs
                ]
                if unknown:
                    raise ValueError(
                        f"{spec.name} has labels {unknown} that the {self.row.__name__} "
                        f"inputs {self.inputs} cannot fill"
                    )

    def specs(self) -> tuple[MetricSpec, ...]:
        return tuple(dict.fromkeys(spec for specs in self.fields.values() for spec in specs))


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
        return tuple(dict.fromkeys(spec for group in self.groups() for spec in group.specs()))


_REQUEST_INPUTS = ("model_name", "target_model_name", "fairness_id", "priority")

#: Each row field and the role whose specs it holds (TTFT feeds two fields: streamed or not).
_FIELD_ROLES: dict[type[_Row], dict[str, Role]] = {
    ModelRow: {
        "request_total": Role.REQUEST_TOTAL,
        "request_duration": Role.REQUEST_DURATION,
        "request_sizes": Role.REQUEST_SIZE,
        "response_sizes": Role.RESPONSE_SIZE,
        "input_tokens": Role.INPUT_TOKENS,
        "output_tokens": Role.OUTPUT_TOKENS,
        "normalized_time_per_output_token": Role.NTPOT,
        "request_ttft": Role.TTFT,
        "request_ttft_unstreamed": Role.TTFT,
        "request_tpot": Role.TPOT,
        "prompt_cached_tokens": Role.CACHED_TOKENS,
        "inter_token_latency": Role.ITL,
    },
    ErrorRow: {"request_error_total": Role.REQUEST_ERROR_TOTAL},
    RunningRow: {"running_requests": Role.RUNNING_REQUESTS},
    PoolRow: {
        "average_kv_cache_utilization": Role.POOL_KV_CACHE,
        "average_queue_size": Role.POOL_QUEUE_SIZE,
        "ready_pods": Role.POOL_READY,
        "average_running_requests": Role.POOL_RUNNING_REQUESTS,
        "std_dev_kv_cache_utilization": Role.POOL_STD_DEV_KV_CACHE,
        "std_dev_queue_size": Role.POOL_STD_DEV_QUEUE_SIZE,
        "std_dev_running_requests": Role.POOL_STD_DEV_RUNNING_REQUESTS,
    },
    PodRow: {"per_pod_queue_size": Role.POOL_ENDPOINT_QUEUE_SIZE},
    InfoRow: {"extension_info": Role.INFO},
}
_STREAMED = {
    "request_ttft": {"streaming": "true"},
    "request_ttft_unstreamed": {"streaming": "false"},
}


def _layout(
    row: type[_Row], inputs: tuple[str, ...], metrics: Sequence[SchemaMetric]
) -> GroupLayout:
    fields: dict[str, tuple[MetricSpec, ...]] = {}
    for name, role in _FIELD_ROLES[row].items():
        specs = tuple(m.spec for m in metrics if m.role is role)
        if name == "request_ttft_unstreamed":
            # A non-streamed TTFT only where the schema labels it (llm-d-router: the duration).
            specs = tuple(spec for spec in specs if "streaming" in spec.labels)
        fields[name] = specs
    constants = {name: value for name, value in _STREAMED.items() if name in fields}
    return GroupLayout(row, inputs, fields, constants if row is ModelRow else {})


def layouts_for(schemas: Sequence[Schema]) -> Layouts:
    """The groups and fields through which the Recorder records ``schemas`` (combined)."""
    metrics = combine(schemas)
    return Layouts(
        models=_layout(ModelRow, _REQUEST_INPUTS, metrics),
        errors=_layout(ErrorRow, (*_REQUEST_INPUTS, "error_code"), metrics),
        running=_layout(RunningRow, _REQUEST_INPUTS, metrics),
        pools=_layout(PoolRow, ("pool_name",), metrics),
        pods=_layout(PodRow, ("pool_name", "pod_name"), metrics),
        info=_layout(InfoRow, ("commit", "build_ref"), metrics),
    )


#: The default schema's metrics (the catalogue), each in the group and field it is recorded by.
CATALOG_LAYOUTS = layouts_for((DEFAULT_SCHEMA,))


class _ValueCap:
    """At most ``limit`` distinct values of one input; later new ones become the overflow."""

    __slots__ = ("_admitted", "_limit")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._admitted: set[str] = set()

    def __call__(self, value: str) -> str:  # called under the group's lock
        if value in self._admitted:
            return value
        if len(self._admitted) >= self._limit:
            return OVERFLOW_LABEL_VALUE
        self._admitted.add(value)
        return value


_Binding = tuple[Instrument, tuple[int, ...], tuple[tuple[int, str], ...]]


class _SeriesGroup(Generic[_R]):
    """Bound rows of one group, one per exposed label set, at most ``max_series`` of them.

    ``cache`` maps a call's inputs (as given) to its row: the hot path is one lookup. A miss
    validates the inputs, applies the value caps, and finds or binds the row for the label values
    the group's specs expose; inputs no spec exposes do not count towards ``max_series``.
    """

    __slots__ = (
        "_bindings",
        "_by_exposed",
        "_caps",
        "_lock",
        "_max_label_length",
        "_max_series",
        "_overflow",
        "_row",
        "_used",
        "cache",
        "inputs",
        "specs",
    )

    def __init__(
        self,
        layout: GroupLayout,
        instruments: Mapping[str, Instrument],
        max_series: int,
        max_label_length: int,
        caps: Mapping[str, _ValueCap],
    ) -> None:
        self.inputs = layout.inputs
        self.specs = layout.specs()
        self._row = layout.row
        bindings: dict[str, tuple[_Binding, ...]] = {}
        used: set[int] = set()
        for name, specs in layout.fields.items():
            fixed = layout.constants.get(name, {})
            each: list[_Binding] = []
            for spec in specs:
                # Per label: the input it takes its value from, or the field's constant.
                positions = tuple(
                    -1 if label in fixed else self.inputs.index(LABEL_INPUTS[label])
                    for label in spec.labels
                )
                constants = tuple(
                    (i, fixed[label]) for i, label in enumerate(spec.labels) if label in fixed
                )
                used.update(p for p in positions if p >= 0)
                each.append((instruments[spec.name], positions, constants))
            bindings[name] = tuple(each)
        self._bindings = bindings
        self._used = tuple(sorted(used))
        self._caps = {
            self.inputs.index(name): cap
            for name, cap in caps.items()
            if name in self.inputs and self.inputs.index(name) in used
        }
        self._max_series = max_series
        self._max_label_length = max_label_length
        self._lock = threading.Lock()
        self._overflow: _R | None = None
        self._by_exposed: dict[tuple[str, ...], _R] = {}
        self.cache: dict[object, _R] = {}

    def bind(self, key: tuple[object, ...]) -> _R:
        """Slow path: validate a new key, then bind it (or fold it into the overflow)."""
        values = list(self._checked(key))
        with self._lock:
            found = self.cache.get(key)
            if found is not None:
                return found
            for index, cap in self._caps.items():
                values[index] = cap(values[index])
            exposed = tuple(values[i] for i in self._used)
            row = self._by_exposed.get(exposed)
            if row is None:
                if len(self._by_exposed) >= self._max_series:
                    if self._overflow is None:
                        self._overflow = self._new_row((OVERFLOW_LABEL_VALUE,) * len(values))
                    return self._overflow
                row = self._new_row(tuple(values))
                self._by_exposed[exposed] = row
            if len(self.cache) < 4 * self._max_series:
                self.cache[key] = row
            return row

    def remove(self, key: tuple[object, ...]) -> None:
        """Forget a label set: its series leave every backend and its slot is free again."""
        values = self._checked(key)
        exposed = tuple(values[i] for i in self._used)
        with self._lock:
            row = self._by_exposed.pop(exposed, None)
            if row is None:
                return
            for cached in [k for k, r in self.cache.items() if r is row]:
                del self.cache[cached]
            for bindings in self._bindings.values():
                for instrument, positions, constants in bindings:
                    instrument.remove(self._labels(values, positions, constants))

    @staticmethod
    def _labels(
        values: Sequence[str], positions: tuple[int, ...], constants: tuple[tuple[int, str], ...]
    ) -> tuple[str, ...]:
        labels = [values[p] if p >= 0 else "" for p in positions]
        for index, constant in constants:
            labels[index] = constant
        return tuple(labels)

    def _checked(self, key: tuple[object, ...]) -> tuple[str, ...]:
        return tuple(self._check(name, value) for name, value in zip(self.inputs, key, strict=True))

    def _new_row(self, values: tuple[str, ...]) -> _R:
        row = cast(_R, object.__new__(self._row))
        for name, bindings in self._bindings.items():
            series = [
                instrument.bind(self._labels(values, positions, constants))
                for instrument, positions, constants in bindings
            ]
            if not series:
                setattr(row, name, _NOOP)
            elif len(series) == 1:
                setattr(row, name, series[0])
            else:
                setattr(row, name, _Both(tuple(series)))
        return row

    def _check(self, name: str, value: object) -> str:
        if name == "priority" and not isinstance(value, str):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"priority must be an int or a string, got {value!r}")
            return str(int(value))  # upstream: strconv.Itoa(priority)
        return check_label_value(name, value, self._max_label_length)

    @property
    def size(self) -> int:
        """Distinct exposed label sets bound so far, the overflow series excluded."""
        return len(self._by_exposed)

    @property
    def overflowed(self) -> bool:
        return self._overflow is not None


def check_label_value(name: str, value: object, max_length: int) -> str:
    """``value`` as a plain str label value, or a TypeError/ValueError naming ``name``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    if len(value) > max_length:
        raise ValueError(f"{name} is {len(value)} characters long; at most {max_length} allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid Unicode text: {value!r}") from None
    return str.__str__(value)  # a plain str, even for str subclasses and str enums


SchemaArgument = str | Schema | Sequence[str | Schema]


class Recorder:
    """Records the endpoint picker's metrics into ``backend``, under one or several schemas.

    ``schema`` is a schema name (``"gie-v0.3"``, the default; ``"gie-v1.5"``; ``"llm-d-router"``;
    ``"llm-d-router-without-deprecated"``), a :class:`~inference_metrics.schemas.Schema`, or a
    sequence of them recorded together from the same calls. ``max_series`` bounds the distinct
    exposed label sets per kind of call; ``max_label_length`` bounds each label value
    (characters); ``max_fairness_ids`` and ``max_priorities`` bound the distinct values of those
    two inputs. ``genai``, an :class:`~inference_metrics.genai.GenAIRecorder`, also records the
    OpenTelemetry GenAI metrics from the whole-request events (``record_request_completed``, and
    ``record_request_failed`` when given ``received`` and ``completed``). One Recorder per
    backend registry.
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
        genai: GenAIRecorder | None = None,
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
        for argument, value in (
            ("max_series", max_series),
            ("max_label_length", max_label_length),
            ("max_fairness_ids", max_fairness_ids),
            ("max_priorities", max_priorities),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{argument} must be an int, got {value!r}")
            if value < 1:
                raise ValueError(f"{argument} must be >= 1, got {value!r}")
        if genai is not None and not hasattr(genai, "record_request_completed"):
            raise TypeError(f"genai must be a GenAIRecorder or None, got {genai!r}")
        self.genai = genai
        self.schemas: tuple[Schema, ...] = resolve(schema)
        #: Whether a recorded schema has the inter-token latency histogram (llm-d-router): the
        #: request lifecycle reads the clock per streamed chunk only then.
        self.records_inter_token_latency: bool = any(Role.ITL in s.roles for s in self.schemas)
        self.backend = backend
        self.max_series = max_series
        layouts = layouts_for(self.schemas)
        instruments = backend.register(layouts.specs())
        by_name = {i.spec.name: i for i in instruments}
        caps = {
            "fairness_id": _ValueCap(max_fairness_ids),
            "priority": _ValueCap(max_priorities),
        }

        def group(layout: GroupLayout) -> _SeriesGroup[Any]:
            return _SeriesGroup(layout, by_name, max_series, max_label_length, caps)

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
            spec.name: grp for grp in groups for spec in grp.specs
        }

    # --- lookups --------------------------------------------------------------------------------

    def _request(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
    ) -> ModelRow:
        key = (model_name, target_model_name, fairness_id, priority)
        try:
            return self._models.cache[key]
        except (KeyError, TypeError):
            return self._models.bind(key)

    def _pool(self, pool_name: str) -> PoolRow:
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
        """Forget one model server of a pool: its per-pod (per-endpoint) queue series leaves
        the exposition and its label set no longer counts against ``max_series``."""
        self._pods.remove((pool_name, pod_name))

    # --- requests (upstream parity) ---------------------------------------------------------------

    def record_request_counter(
        self,
        model_name: str,
        target_model_name: str,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """Count one request for ``(model_name, target_model_name)``."""
        self._request(model_name, target_model_name, fairness_id, priority).request_total.add(1)

    def record_request_error(
        self,
        model_name: str,
        target_model_name: str,
        error_code: str,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """Count one failed request; an empty ``error_code`` counts nothing (as upstream)."""
        if not isinstance(error_code, str):
            raise TypeError(f"error_code must be a string, got {error_code!r}")
        if not error_code:
            return
        self._error(model_name, target_model_name, fairness_id, priority, error_code)

    def _error(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        error_code: str,
    ) -> None:
        key = (model_name, target_model_name, fairness_id, priority, error_code)
        try:
            series = self._errors.cache[key]
        except (KeyError, TypeError):
            series = self._errors.bind(key)
        series.request_error_total.add(1)

    def record_request_latency(
        self,
        model_name: str,
        target_model_name: str,
        received: float,
        completed: float,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> bool:
        """Observe ``completed - received`` seconds; only when completed is after received."""
        if not (type(received) in _FAST_NUMBER and 0 <= received <= _MAX):
            received = _number("received", received)
        if not (type(completed) in _FAST_NUMBER and 0 <= completed <= _MAX):
            completed = _number("completed", completed)
        series = self._request(model_name, target_model_name, fairness_id, priority)
        if not completed > received:
            logger.error(
                "request latency not recorded: completed (%r) is not after received (%r)",
                completed,
                received,
            )
            return False
        series.request_duration.observe(completed - received)
        return True

    def record_request_size(
        self,
        model_name: str,
        target_model_name: str,
        size: float,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """Observe a request body size in bytes (0 included)."""
        if not (type(size) in _FAST_NUMBER and 0 <= size <= _MAX):
            size = _number("size", size)
        self._request(model_name, target_model_name, fairness_id, priority).request_sizes.observe(
            size
        )

    def record_response_size(
        self,
        model_name: str,
        target_model_name: str,
        size: float,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """Observe a response body size in bytes (0 included)."""
        if not (type(size) in _FAST_NUMBER and 0 <= size <= _MAX):
            size = _number("size", size)
        self._request(model_name, target_model_name, fairness_id, priority).response_sizes.observe(
            size
        )

    def record_input_tokens(
        self,
        model_name: str,
        target_model_name: str,
        tokens: float,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """Observe a prompt token count; 0 is not observed (as upstream)."""
        if not (type(tokens) in _FAST_NUMBER and 0 <= tokens <= _MAX):
            tokens = _number("tokens", tokens)
        series = self._request(model_name, target_model_name, fairness_id, priority)
        if tokens > 0:
            series.input_tokens.observe(tokens)

    def record_output_tokens(
        self,
        model_name: str,
        target_model_name: str,
        tokens: float,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """Observe a completion token count; 0 is not observed (as upstream)."""
        if not (type(tokens) in _FAST_NUMBER and 0 <= tokens <= _MAX):
            tokens = _number("tokens", tokens)
        series = self._request(model_name, target_model_name, fairness_id, priority)
        if tokens > 0:
            series.output_tokens.observe(tokens)

    def record_inter_token_latency(
        self,
        model_name: str,
        target_model_name: str,
        seconds: float,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """Observe the time between two consecutive streamed response chunks (llm-d-router's
        inter-token latency; schemas without it record nothing)."""
        if not (type(seconds) in _FAST_NUMBER and 0 <= seconds <= _MAX):
            seconds = _number("seconds", seconds)
        self._request(
            model_name, target_model_name, fairness_id, priority
        ).inter_token_latency.observe(seconds)

    def inter_token_latency_observer(
        self,
        model_name: str,
        target_model_name: str,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> Callable[[float], None]:
        """:meth:`record_inter_token_latency` bound to one label set, for the many chunks of one
        stream: the labels are checked and looked up once, here (raising as that method does);
        the returned callable takes the seconds and checks them as that method does."""
        series = self._request(model_name, target_model_name, fairness_id, priority)
        observe = series.inter_token_latency.observe

        def observe_seconds(seconds: float) -> None:
            if not (type(seconds) in _FAST_NUMBER and 0 <= seconds <= _MAX):
                seconds = _number("seconds", seconds)
            observe(seconds)

        return observe_seconds

    # --- pools -----------------------------------------------------------------------------------

    def _set_pool(self, pool_name: str, field: str, value: float) -> None:
        number = _number("value", value)
        getattr(self._pool(pool_name), field).set(number)

    def record_pool_kv_cache_utilization(self, pool_name: str, value: float) -> None:
        """Set the pool's average KV-cache utilization (a fraction, usually 0..1)."""
        self._set_pool(pool_name, "average_kv_cache_utilization", value)

    def record_pool_queue_size(self, pool_name: str, value: float) -> None:
        """Set the pool's average number of queued requests."""
        self._set_pool(pool_name, "average_queue_size", value)

    def record_pool_ready_pods(self, pool_name: str, value: float) -> None:
        """Set the number of ready pods (endpoints) in the pool."""
        self._set_pool(pool_name, "ready_pods", value)

    def record_pool_average_running_requests(self, pool_name: str, value: float) -> None:
        """Set the pool's average number of running requests per model server."""
        self._set_pool(pool_name, "average_running_requests", value)

    def record_pool_std_dev_kv_cache_utilization(self, pool_name: str, value: float) -> None:
        """Set the standard deviation of the pool's KV-cache utilization (llm-d-router)."""
        self._set_pool(pool_name, "std_dev_kv_cache_utilization", value)

    def record_pool_std_dev_queue_size(self, pool_name: str, value: float) -> None:
        """Set the standard deviation of the pool's queue sizes (llm-d-router)."""
        self._set_pool(pool_name, "std_dev_queue_size", value)

    def record_pool_std_dev_running_requests(self, pool_name: str, value: float) -> None:
        """Set the standard deviation of the pool's running requests (llm-d-router)."""
        self._set_pool(pool_name, "std_dev_running_requests", value)

    def record_pool_per_pod_queue_size(self, pool_name: str, pod_name: str, value: float) -> None:
        """Set one model server's queue size (``model_server_pod``/``model_server_endpoint``)."""
        number = _number("value", value)
        key = (pool_name, pod_name)
        try:
            series = self._pods.cache[key]
        except (KeyError, TypeError):
            series = self._pods.bind(key)
        series.per_pod_queue_size.set(number)

    def record_extension_info(self, commit: str, build_ref: str) -> None:
        """Expose the build-info gauge (``inference_extension_info{commit, build_ref} 1``)."""
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
        self,
        model_name: str,
        target_model_name: str,
        request_size: float,
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """A request is forwarded: count it and observe its body size (0 included)."""
        if not (type(request_size) in _FAST_NUMBER and 0 <= request_size <= _MAX):
            request_size = _number("request_size", request_size)
        series = self._request(model_name, target_model_name, fairness_id, priority)
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
        if cached_tokens is not None and not (
            type(cached_tokens) in _FAST_NUMBER and 0 <= cached_tokens <= _MAX
        ):
            cached_tokens = _number("cached_tokens", cached_tokens)
        if first_token is not None and not (
            type(first_token) in _FAST_NUMBER and 0 <= first_token <= _MAX
        ):
            first_token = _number("first_token", first_token)
        if streaming is None:
            streaming = first_token is not None
        elif type(streaming) is not bool:
            raise TypeError(f"streaming must be a bool or None, got {streaming!r}")
        _check_operation(operation)
        series = self._request(model_name, target_model_name, fairness_id, priority)
        if self.genai is not None:
            self.genai.record_request_completed(
                model_name,
                target_model_name,
                received=received,
                completed=completed,
                first_token=first_token,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                streaming=streaming,
                operation=operation,
            )

        if request_size is not None:
            series.request_total.add(1)
            series.request_sizes.observe(request_size)
        series.response_sizes.observe(response_size)
        if input_tokens > 0:
            series.input_tokens.observe(input_tokens)
        if output_tokens > 0:
            series.output_tokens.observe(output_tokens)
        if cached_tokens is not None:
            series.prompt_cached_tokens.observe(cached_tokens)
        if not completed > received:
            return False
        latency = completed - received
        series.request_duration.observe(latency)
        if output_tokens > 0:
            # A fractional token count near 0 (upstream's are integers) can make the quotient
            # infinite: such a value is not observed by any backend (OpenTelemetry drops it).
            ntpot = latency / output_tokens
            if ntpot <= _MAX:
                series.normalized_time_per_output_token.observe(ntpot)
        if not streaming:
            series.request_ttft_unstreamed.observe(latency)
        elif first_token is not None and received <= first_token <= completed:
            series.request_ttft.observe(first_token - received)
            if output_tokens > 1:
                tpot = (completed - first_token) / (output_tokens - 1)
                if tpot <= _MAX:
                    series.request_tpot.observe(tpot)
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

        With ``genai`` and both ``received`` and ``completed``, the GenAI request duration is
        recorded too, with ``error.type`` = the error code.
        """
        if not isinstance(error_code, str):
            raise TypeError(f"error_code must be a string, got {error_code!r}")
        if received is not None:
            received = _number("received", received)
        if completed is not None:
            completed = _number("completed", completed)
        _check_operation(operation)
        code = error_code or _UNKNOWN_ERROR
        self._error(model_name, target_model_name, fairness_id, priority, code)
        if self.genai is not None and received is not None and completed is not None:
            self.genai.record_request_failed(
                model_name,
                target_model_name,
                error_type=code,
                received=received,
                completed=completed,
                operation=operation,
            )

    def record_running_request_started(
        self,
        model_name: str,
        target_model_name: str = "",
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """One more request running for ``model_name``; an empty name records nothing."""
        self._running_request_add(model_name, target_model_name, fairness_id, priority, 1)

    def record_running_request_finished(
        self,
        model_name: str,
        target_model_name: str = "",
        *,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """One request fewer running for ``model_name``; an empty name records nothing."""
        self._running_request_add(model_name, target_model_name, fairness_id, priority, -1)

    def _running_request_add(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        amount: float,
    ) -> None:
        if model_name == "":
            return
        key = (model_name, target_model_name, fairness_id, priority)
        try:
            series = self._running.cache[key]
        except (KeyError, TypeError):
            series = self._running.bind(key)
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
