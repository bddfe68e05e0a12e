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
from collections.abc import Sequence
from typing import ClassVar

from prometheus_client.registry import CollectorRegistry

from . import catalog
from .backends.base import Backend, Instrument, Series
from .catalog import CATALOG
from .spec import MetricSpec

__all__ = ["DEFAULT_MAX_LABEL_LENGTH", "DEFAULT_MAX_SERIES", "OVERFLOW_LABEL_VALUE", "Recorder"]

logger = logging.getLogger(__name__)

#: The label value of the series that absorbs label sets beyond ``max_series``.
OVERFLOW_LABEL_VALUE = "__overflow__"
DEFAULT_MAX_SERIES = 1000
DEFAULT_MAX_LABEL_LENGTH = 1024

# The fast paths take ints and floats up to here without converting them; beyond it (inf, or an
# int too large for a float) they fall back to _number, which refuses it.
_MAX = sys.float_info.max
_FAST_NUMBER = frozenset((int, float))

# Metrics grouped by their label names, in catalogue order: one cache of bound series per group,
# so a request's (model, target) is looked up once for all its metrics.
_GROUP_LABELS: tuple[tuple[str, ...], ...] = tuple(dict.fromkeys(s.labels for s in CATALOG))
_GROUP_SPECS: tuple[tuple[MetricSpec, ...], ...] = tuple(
    tuple(s for s in CATALOG if s.labels == labels) for labels in _GROUP_LABELS
)


def _slot(spec: MetricSpec) -> tuple[int, int]:
    group = _GROUP_LABELS.index(spec.labels)
    return group, _GROUP_SPECS[group].index(spec)


_MODEL_GROUP, _REQUEST_TOTAL = _slot(catalog.REQUEST_TOTAL)
_, _REQUEST_DURATION = _slot(catalog.REQUEST_DURATION)
_, _REQUEST_SIZES = _slot(catalog.REQUEST_SIZES)
_, _RESPONSE_SIZES = _slot(catalog.RESPONSE_SIZES)
_, _INPUT_TOKENS = _slot(catalog.INPUT_TOKENS)
_, _OUTPUT_TOKENS = _slot(catalog.OUTPUT_TOKENS)
_ERROR_GROUP, _REQUEST_ERROR_TOTAL = _slot(catalog.REQUEST_ERROR_TOTAL)
_POOL_GROUP, _POOL_KV_CACHE = _slot(catalog.POOL_AVERAGE_KV_CACHE_UTILIZATION)
_, _POOL_QUEUE_SIZE = _slot(catalog.POOL_AVERAGE_QUEUE_SIZE)
_, _POOL_READY_PODS = _slot(catalog.POOL_READY_PODS)
_, _POOL_RUNNING_REQUESTS = _slot(catalog.POOL_AVERAGE_RUNNING_REQUESTS)
_POD_GROUP, _POOL_PER_POD_QUEUE_SIZE = _slot(catalog.POOL_PER_POD_QUEUE_SIZE)
_INFO_GROUP, _EXTENSION_INFO = _slot(catalog.EXTENSION_INFO)

# Event API (see "request events" in Recorder): the streaming metrics share the model group.
_, _NTPOT = _slot(catalog.NORMALIZED_TIME_PER_OUTPUT_TOKEN)
_, _REQUEST_TTFT = _slot(catalog.REQUEST_TTFT)
_, _REQUEST_TPOT = _slot(catalog.REQUEST_TPOT)
_, _PROMPT_CACHED_TOKENS = _slot(catalog.PROMPT_CACHED_TOKENS)
_RUNNING_GROUP, _RUNNING_REQUESTS = _slot(catalog.RUNNING_REQUESTS)
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


#: The Recorder argument carrying a label, where the names differ (errors name the argument).
_ARGUMENT_FOR_LABEL = {"name": "pool_name", "model_server_pod": "pod_name"}


class _SeriesGroup:
    """Bound series for every metric sharing one label-name tuple, at most ``max_series`` sets."""

    __slots__ = (
        "_instruments",
        "_lock",
        "_max_label_length",
        "_max_series",
        "_overflow",
        "argument_names",
        "cache",
        "label_names",
    )

    def __init__(
        self,
        label_names: tuple[str, ...],
        instruments: Sequence[Instrument],
        max_series: int,
        max_label_length: int,
    ) -> None:
        self.label_names = label_names
        self.argument_names = tuple(_ARGUMENT_FOR_LABEL.get(n, n) for n in label_names)
        self._instruments = tuple(instruments)
        self._max_series = max_series
        self._max_label_length = max_label_length
        self._lock = threading.Lock()
        self._overflow: tuple[Series, ...] | None = None
        self.cache: dict[object, tuple[Series, ...]] = {}

    def bind(self, key: tuple[object, ...]) -> tuple[Series, ...]:
        """Slow path: validate a new label set, then bind it (or fold it into the overflow)."""
        values = tuple(
            self._check(name, value) for name, value in zip(self.argument_names, key, strict=True)
        )
        with self._lock:
            series = self.cache.get(key)
            if series is not None:
                return series
            if len(self.cache) >= self._max_series:
                if self._overflow is None:
                    marker = (OVERFLOW_LABEL_VALUE,) * len(self.label_names)
                    self._overflow = tuple(i.bind(marker) for i in self._instruments)
                return self._overflow
            series = tuple(i.bind(values) for i in self._instruments)
            self.cache[key] = series
            return series

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
            raise TypeError(f"backend must implement Backend.register(), got {backend!r}")
        for argument, value in (("max_series", max_series), ("max_label_length", max_label_length)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{argument} must be an int, got {value!r}")
            if value < 1:
                raise ValueError(f"{argument} must be >= 1, got {value!r}")
        self.backend = backend
        self.max_series = max_series
        instruments = backend.register(tuple(CATALOG))
        by_name = {i.spec.name: i for i in instruments}
        self._groups = tuple(
            _SeriesGroup(labels, [by_name[s.name] for s in specs], max_series, max_label_length)
            for labels, specs in zip(_GROUP_LABELS, _GROUP_SPECS, strict=True)
        )
        self._models = self._groups[_MODEL_GROUP]
        self._errors = self._groups[_ERROR_GROUP]
        self._pools = self._groups[_POOL_GROUP]
        self._pods = self._groups[_POD_GROUP]
        self._info = self._groups[_INFO_GROUP]

    # --- lookups --------------------------------------------------------------------------------

    def _model_series(self, model_name: str, target_model_name: str) -> tuple[Series, ...]:
        key = (model_name, target_model_name)
        try:
            return self._models.cache[key]
        except (KeyError, TypeError):
            return self._models.bind(key)

    def _pool_series(self, pool_name: str) -> tuple[Series, ...]:
        key = (pool_name,)
        try:
            return self._pools.cache[key]
        except (KeyError, TypeError):
            return self._pools.bind(key)

    def series_count(self, spec: MetricSpec) -> int:
        """Distinct label sets bound for ``spec``'s group (the overflow series excluded)."""
        return self._groups[_GROUP_LABELS.index(spec.labels)].size

    # --- requests (upstream parity) ---------------------------------------------------------------

    def record_request_counter(self, model_name: str, target_model_name: str) -> None:
        """Count one request for ``(model_name, target_model_name)``."""
        self._model_series(model_name, target_model_name)[_REQUEST_TOTAL].add(1)

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
        series[_REQUEST_ERROR_TOTAL].add(1)

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
        series[_REQUEST_DURATION].observe(completed - received)
        return True

    def record_request_size(self, model_name: str, target_model_name: str, size: float) -> None:
        """Observe a request body size in bytes (0 included)."""
        if not (type(size) in _FAST_NUMBER and 0 <= size <= _MAX):
            size = _number("size", size)
        self._model_series(model_name, target_model_name)[_REQUEST_SIZES].observe(size)

    def record_response_size(self, model_name: str, target_model_name: str, size: float) -> None:
        """Observe a response body size in bytes (0 included)."""
        if not (type(size) in _FAST_NUMBER and 0 <= size <= _MAX):
            size = _number("size", size)
        self._model_series(model_name, target_model_name)[_RESPONSE_SIZES].observe(size)

    def record_input_tokens(self, model_name: str, target_model_name: str, tokens: float) -> None:
        """Observe a prompt token count; 0 is not observed (as upstream)."""
        if not (type(tokens) in _FAST_NUMBER and 0 <= tokens <= _MAX):
            tokens = _number("tokens", tokens)
        series = self._model_series(model_name, target_model_name)
        if tokens > 0:
            series[_INPUT_TOKENS].observe(tokens)

    def record_output_tokens(self, model_name: str, target_model_name: str, tokens: float) -> None:
        """Observe a completion token count; 0 is not observed (as upstream)."""
        if not (type(tokens) in _FAST_NUMBER and 0 <= tokens <= _MAX):
            tokens = _number("tokens", tokens)
        series = self._model_series(model_name, target_model_name)
        if tokens > 0:
            series[_OUTPUT_TOKENS].observe(tokens)

    # --- pools -----------------------------------------------------------------------------------

    def record_pool_kv_cache_utilization(self, pool_name: str, value: float) -> None:
        """Set the pool's average KV-cache utilization (a fraction, usually 0..1)."""
        number = _number("value", value)
        self._pool_series(pool_name)[_POOL_KV_CACHE].set(number)

    def record_pool_queue_size(self, pool_name: str, value: float) -> None:
        """Set the pool's average number of queued requests."""
        number = _number("value", value)
        self._pool_series(pool_name)[_POOL_QUEUE_SIZE].set(number)

    def record_pool_ready_pods(self, pool_name: str, value: float) -> None:
        """Set the number of ready pods in the pool."""
        number = _number("value", value)
        self._pool_series(pool_name)[_POOL_READY_PODS].set(number)

    def record_pool_average_running_requests(self, pool_name: str, value: float) -> None:
        """Set the pool's average number of running requests per model server."""
        number = _number("value", value)
        self._pool_series(pool_name)[_POOL_RUNNING_REQUESTS].set(number)

    def record_pool_per_pod_queue_size(self, pool_name: str, pod_name: str, value: float) -> None:
        """Set one model-server pod's queue size (label ``model_server_pod``)."""
        number = _number("value", value)
        key = (pool_name, pod_name)
        try:
            series = self._pods.cache[key]
        except (KeyError, TypeError):
            series = self._pods.bind(key)
        series[_POOL_PER_POD_QUEUE_SIZE].set(number)

    def record_extension_info(self, commit: str, build_ref: str) -> None:
        """Expose ``inference_extension_info{commit, build_ref} 1``."""
        key = (commit, build_ref)
        try:
            series = self._info.cache[key]
        except (KeyError, TypeError):
            series = self._info.bind(key)
        series[_EXTENSION_INFO].set(1)

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
        series[_REQUEST_TOTAL].add(1)
        series[_REQUEST_SIZES].observe(request_size)

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
            series[_REQUEST_TOTAL].add(1)
            series[_REQUEST_SIZES].observe(request_size)
        series[_RESPONSE_SIZES].observe(response_size)
        if input_tokens > 0:
            series[_INPUT_TOKENS].observe(input_tokens)
        if output_tokens > 0:
            series[_OUTPUT_TOKENS].observe(output_tokens)
        if cached_tokens > 0:
            series[_PROMPT_CACHED_TOKENS].observe(cached_tokens)
        if not completed > received:
            return False
        latency = completed - received
        series[_REQUEST_DURATION].observe(latency)
        if output_tokens > 0:
            series[_NTPOT].observe(latency / output_tokens)
        if first_token is not None and received <= first_token <= completed:
            series[_REQUEST_TTFT].observe(first_token - received)
            if output_tokens > 1:
                series[_REQUEST_TPOT].observe((completed - first_token) / (output_tokens - 1))
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
        series[_REQUEST_ERROR_TOTAL].add(1)

    def record_running_request_started(self, model_name: str) -> None:
        """One more request running for ``model_name``; an empty name records nothing."""
        self._running_request_add(model_name, 1)

    def record_running_request_finished(self, model_name: str) -> None:
        """One request fewer running for ``model_name``; an empty name records nothing."""
        self._running_request_add(model_name, -1)

    def _running_request_add(self, model_name: str, amount: float) -> None:
        if model_name == "":
            return
        group = self._groups[_RUNNING_GROUP]
        key = (model_name,)
        try:
            series = group.cache[key]
        except (KeyError, TypeError):
            series = group.bind(key)
        series[_RUNNING_REQUESTS].add(amount)

    def record_response_parse_failure(self) -> None:
        """Count a response body whose usage could not be parsed (see
        :attr:`response_parse_failures`; not an exposed metric: upstream has none)."""
        with self._parse_failure_lock:
            self._response_parse_failures += 1

    @property
    def response_parse_failures(self) -> int:
        """Response bodies whose usage could not be parsed since this Recorder was made."""
        return self._response_parse_failures
