"""A request's calls, one metric each: counts, errors, sizes, latencies, tokens, running requests.

Two sets of names for the same measures (:mod:`inference_metrics.measures`, the request group):

* this library's original calls (``record_request_counter``, ``record_request_error``,
  ``record_request_latency``, ``record_request_size``, ``record_response_size``,
  ``record_input_tokens``, ``record_output_tokens``, ``record_inter_token_latency``), with the
  flow (``fairness_id``, ``priority``) as keywords;
* upstream's names by the rule of :mod:`inference_metrics.calls` (``record_request_err_counter``,
  ``record_request_sizes``, ``record_request_latencies``, ``record_response_sizes``,
  ``record_prompt_cached_tokens``, ``record_normalized_time_per_output_token``,
  ``record_request_ttft``, ``record_request_tpot``, ``inc_``/``dec_running_requests``), the flow
  positional after the model names, as upstream's Go takes it, with upstream's checks and
  ``bool`` returns.

Three names are both: ``record_request_counter`` takes the flow as positional-or-keyword
parameters with defaults, so both forms are one signature; ``record_input_tokens``,
``record_output_tokens`` and ``record_inter_token_latency`` take upstream's
``(model_name, target_model_name, fairness_id, priority, value)`` and still take the original
``(model_name, target_model_name, value, *, fairness_id=..., priority=...)`` (a third positional
argument alone is the value; the value as a keyword: ``size=``/``itl_seconds=`` in upstream's
form, ``tokens=``/``seconds=`` in the original one).

Upstream checks nothing on sizes; here every number is checked (finite, ``>= 0``) and a bad one
raises ``TypeError``/``ValueError`` naming it, nothing recorded. Where upstream returns False
(a latency that does not move forward, an inter-token latency below 0), so does the call, and it
logs an error as upstream does (the original ``record_inter_token_latency`` form raises instead,
as it always did).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..validation import FAST_NUMBER as _FAST
from ..validation import MAX_FLOAT as _MAX
from ..validation import number
from .base import (
    CACHED_TOKENS,
    DEFAULT_FAIRNESS_ID,
    DEFAULT_PRIORITY,
    ERROR,
    INPUT_TOKENS,
    ITL,
    LATENCY,
    NTPOT,
    OUTPUT_TOKENS,
    REQUEST,
    REQUEST_SIZE,
    RESPONSE_SIZE,
    TPOT,
    TTFT,
    UNSTREAMED_TTFT,
    RecorderCalls,
    logger,
)

__all__ = ["RequestCalls"]


class _Default:
    """The default of a flow argument not given (told apart from a value given twice)."""

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT: Any = _Default()
_FLOW = ("fairness_id", "priority")


def _both_forms(
    method: str,
    value_name: str,
    original_name: str,
    slots: tuple[object, object, object],
    fairness_id: object,
    priority: object,
    value: object,
    original: object,
) -> tuple[Any, Any, Any, bool]:
    """The flow and the value of a call of ``method`` in either form (module docstring), and
    whether it was upstream's form. ``slots`` are the third to fifth positional arguments
    (``_DEFAULT`` where not given); ``value``/``original`` the value given by keyword under either
    name (None: not given)."""
    args = tuple(arg for arg in slots if arg is not _DEFAULT)
    if args != slots[: len(args)]:
        raise TypeError(f"{method}() takes its arguments in order, without gaps")
    if original is not None or (len(args) == 1 and value is None):
        if len(args) > 1 or (original is not None and (args or value is not None)):
            raise TypeError(
                f"{method}() takes ({value_name}) as its fifth argument or ({original_name}) as "
                f"its third, not both; got positional {args!r}, {value_name}={value!r}, "
                f"{original_name}={original!r}"
            )
        value = original if original is not None else args[0]
        upstream = False
    else:
        given: dict[str, object] = {"fairness_id": fairness_id, "priority": priority}
        given[value_name] = value
        for name, positional in zip((*_FLOW, value_name), args, strict=False):
            if given[name] is not (None if name == value_name else _DEFAULT):
                raise TypeError(f"{method}() got multiple values for argument {name!r}")
            given[name] = positional
        fairness_id, priority, value = given.values()
        if value is None:
            raise TypeError(f"{method}() missing its value, {value_name} (the fifth argument)")
        upstream = True
    if fairness_id is _DEFAULT:
        fairness_id = DEFAULT_FAIRNESS_ID
    if priority is _DEFAULT:
        priority = DEFAULT_PRIORITY
    return fairness_id, priority, value, upstream


def _signature(value_name: str, original_name: str) -> inspect.Signature:
    """The signature ``inspect`` shows for a method with both forms: upstream's parameters, then
    the original form's value as a keyword (the positional original form is in the docs)."""
    p = inspect.Parameter
    return inspect.Signature(
        [
            p("self", p.POSITIONAL_OR_KEYWORD),
            p("model_name", p.POSITIONAL_OR_KEYWORD, annotation=str),
            p("target_model_name", p.POSITIONAL_OR_KEYWORD, annotation=str),
            p("fairness_id", p.POSITIONAL_OR_KEYWORD, default=DEFAULT_FAIRNESS_ID, annotation=str),
            p("priority", p.POSITIONAL_OR_KEYWORD, default=DEFAULT_PRIORITY, annotation=int | str),
            p(value_name, p.POSITIONAL_OR_KEYWORD, default=None, annotation=float),
            p(original_name, p.KEYWORD_ONLY, default=None, annotation=float | None),
        ]
    )


class RequestCalls(RecorderCalls):
    """A request's per-metric calls, under both sets of names (module docstring)."""

    # --- counts and errors ----------------------------------------------------------------------

    def record_request_counter(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str = DEFAULT_FAIRNESS_ID,
        priority: int | str = DEFAULT_PRIORITY,
    ) -> None:
        """Count one request for ``(model_name, target_model_name)`` (``RecordRequestCounter``)."""
        self._request(model_name, target_model_name, fairness_id, priority)[REQUEST](1)

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
        key = (model_name, target_model_name, fairness_id, priority, error_code)
        self._row(self._errors, key)[ERROR](1)

    def record_request_err_counter(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        code: str,
    ) -> None:
        """Count one failed request with error ``code``; an empty one counts nothing
        (``RecordRequestErrCounter``)."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a string, got {code!r}")
        if code:
            key = (model_name, target_model_name, fairness_id, priority, code)
            self._row(self._errors, key)[ERROR](1)

    # --- latency ---------------------------------------------------------------------------------

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
        if not (type(received) in _FAST and 0 <= received <= _MAX):
            received = number("received", received)
        if not (type(completed) in _FAST and 0 <= completed <= _MAX):
            completed = number("completed", completed)
        row = self._request(model_name, target_model_name, fairness_id, priority)
        if not completed > received:
            logger.error(
                "request latency not recorded: completed (%r) is not after received (%r)",
                completed,
                received,
            )
            return False
        row[LATENCY](completed - received)
        return True

    def record_request_latencies(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        received: float,
        complete: float,
    ) -> bool:
        """Observe ``complete - received`` seconds, timestamps of one clock; only when complete
        is after received, else log and return False (``RecordRequestLatencies``)."""
        received = number("received", received)
        complete = number("complete", complete)
        row = self._request(model_name, target_model_name, fairness_id, priority)
        if not complete > received:
            logger.error(
                "request latency not recorded: complete (%r) is not after received (%r)",
                complete,
                received,
            )
            return False
        row[LATENCY](complete - received)
        return True

    def record_normalized_time_per_output_token(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        received: float,
        complete: float,
        output_token_count: int,
    ) -> bool:
        """Observe ``(complete - received) / output_token_count`` seconds
        (``RecordNormalizedTimePerOutputToken``): False without output tokens, and False (logged)
        when complete is not after received."""
        received = number("received", received)
        complete = number("complete", complete)
        tokens = number("output_token_count", output_token_count)
        row = self._request(model_name, target_model_name, fairness_id, priority)
        if tokens <= 0:
            return False
        if not complete > received:
            logger.error(
                "NTPOT not recorded: complete (%r) is not after received (%r)", complete, received
            )
            return False
        ntpot = (complete - received) / tokens
        if ntpot > _MAX:  # a fractional count near 0 (upstream's are integers): not observable
            return False
        row[NTPOT](ntpot)
        return True

    def record_request_ttft(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        streaming: bool,
        received: float,
        first_token: float | None,
    ) -> bool:
        """Observe ``first_token - received`` seconds as TTFT, labelled ``streaming``
        (``RecordRequestTTFT``; a non-streamed response passes its completion as
        ``first_token``). False when ``first_token`` is None (upstream's zero time), and False
        (logged) when it is not after ``received``."""
        if type(streaming) is not bool:
            raise TypeError(f"streaming must be a bool, got {streaming!r}")
        received = number("received", received)
        first = None if first_token is None else number("first_token", first_token)
        row = self._request(model_name, target_model_name, fairness_id, priority)
        if first is None:
            return False
        if not first > received:
            logger.error(
                "TTFT not recorded: first_token (%r) is not after received (%r)", first, received
            )
            return False
        row[TTFT if streaming else UNSTREAMED_TTFT](first - received)
        return True

    def record_request_tpot(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        streaming: bool,
        received: float,
        first_token: float | None,
        complete: float,
        output_token_count: int,
    ) -> bool:
        """Observe a streamed response's ``(e2e - ttft) / (output_token_count - 1)`` seconds
        (``RecordRequestTPOT``). False when not streamed, without ``first_token`` or with fewer
        than two output tokens; False (logged) unless received < first_token < complete."""
        if type(streaming) is not bool:
            raise TypeError(f"streaming must be a bool, got {streaming!r}")
        received = number("received", received)
        first = None if first_token is None else number("first_token", first_token)
        complete = number("complete", complete)
        tokens = number("output_token_count", output_token_count)
        row = self._request(model_name, target_model_name, fairness_id, priority)
        if not streaming:
            return False
        if first is None or tokens <= 1:
            return False
        if not (first > received and complete > first):
            logger.error(
                "TPOT not recorded: want received (%r) < first_token (%r) < complete (%r)",
                received,
                first,
                complete,
            )
            return False
        tpot = ((complete - received) - (first - received)) / (tokens - 1)
        if tpot > _MAX:
            return False
        row[TPOT](tpot)
        return True

    # --- sizes and tokens ------------------------------------------------------------------------

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
        if not (type(size) in _FAST and 0 <= size <= _MAX):
            size = number("size", size)
        self._request(model_name, target_model_name, fairness_id, priority)[REQUEST_SIZE](size)

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
        if not (type(size) in _FAST and 0 <= size <= _MAX):
            size = number("size", size)
        self._request(model_name, target_model_name, fairness_id, priority)[RESPONSE_SIZE](size)

    def _observe(
        self,
        key: tuple[str, str, str, int | str],
        slot: int,
        argument: str,
        value: float,
        *,
        positive: bool = False,
    ) -> None:
        """Check ``value`` (named ``argument``) and observe it in ``slot`` of the request row of
        ``key`` (only when > 0 with ``positive``); the labels are checked either way."""
        if not (type(value) in _FAST and 0 <= value <= _MAX):
            value = number(argument, value)
        row = self._request(*key)
        if value > 0 or not positive:
            row[slot](value)

    def record_request_sizes(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        req_size: int,
    ) -> None:
        """Observe a request body size in bytes, 0 included (``RecordRequestSizes``)."""
        key = (model_name, target_model_name, fairness_id, priority)
        self._observe(key, REQUEST_SIZE, "req_size", req_size)

    def record_response_sizes(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        size: int,
    ) -> None:
        """Observe a response body size in bytes, 0 included (``RecordResponseSizes``)."""
        key = (model_name, target_model_name, fairness_id, priority)
        self._observe(key, RESPONSE_SIZE, "size", size)

    def record_prompt_cached_tokens(
        self,
        model_name: str,
        target_model_name: str,
        fairness_id: str,
        priority: int | str,
        size: int,
    ) -> None:
        """Observe the prompt tokens read from cache, 0 included: upstream calls it whenever the
        usage reports them (``RecordPromptCachedTokens``)."""
        key = (model_name, target_model_name, fairness_id, priority)
        self._observe(key, CACHED_TOKENS, "size", size)

    def _tokens(
        self,
        slot: int,
        method: str,
        model: tuple[str, str],
        slots: tuple[Any, Any, Any],
        fairness_id: str,
        priority: int | str,
        size: float | None,
        tokens: float | None,
    ) -> None:
        """A token count in either form (module docstring), observed when > 0."""
        flow_id, band, value, upstream = _both_forms(
            method, "size", "tokens", slots, fairness_id, priority, size, tokens
        )
        key = (*model, flow_id, band)
        self._observe(key, slot, "size" if upstream else "tokens", value, positive=True)

    def record_input_tokens(
        self,
        model_name: str,
        target_model_name: str,
        _arg3: Any = _DEFAULT,
        _arg4: Any = _DEFAULT,
        _arg5: Any = _DEFAULT,
        fairness_id: str = _DEFAULT,
        priority: int | str = _DEFAULT,
        size: float | None = None,
        tokens: float | None = None,
    ) -> None:
        """Observe a prompt's token count; 0 is not observed (``RecordInputTokens``).

        ``(model_name, target_model_name, fairness_id, priority, size)`` as upstream, or the
        original ``(model_name, target_model_name, tokens, *, fairness_id=..., priority=...)``.
        """
        # The two common forms inline (a shared helper costs 40 ns a call here): the original
        # one (the count third, the flow as keywords) and upstream's (all five positional).
        key: tuple[str, str, str, int | str]
        if _arg4 is _DEFAULT and size is None and tokens is None and type(_arg3) in _FAST:
            flow_id = DEFAULT_FAIRNESS_ID if fairness_id is _DEFAULT else fairness_id
            band = DEFAULT_PRIORITY if priority is _DEFAULT else priority
            key, value, argument = (model_name, target_model_name, flow_id, band), _arg3, "tokens"
        elif (
            size is None
            and tokens is None
            and type(_arg5) in _FAST
            and fairness_id is _DEFAULT
            and priority is _DEFAULT
        ):
            key, value, argument = (model_name, target_model_name, _arg3, _arg4), _arg5, "size"
        else:  # another form: sorted out, and checked, on the general path
            model, slots = (model_name, target_model_name), (_arg3, _arg4, _arg5)
            self._tokens(
                INPUT_TOKENS,
                "record_input_tokens",
                model,
                slots,
                fairness_id,
                priority,
                size,
                tokens,
            )
            return
        if not 0 <= value <= _MAX:
            value = number(argument, value)
        try:
            row = self._requests_cache[key]
        except (KeyError, TypeError):
            row = self._requests.bind(key)
        if value > 0:
            row[INPUT_TOKENS](value)

    def record_output_tokens(
        self,
        model_name: str,
        target_model_name: str,
        _arg3: Any = _DEFAULT,
        _arg4: Any = _DEFAULT,
        _arg5: Any = _DEFAULT,
        fairness_id: str = _DEFAULT,
        priority: int | str = _DEFAULT,
        size: float | None = None,
        tokens: float | None = None,
    ) -> None:
        """Observe a completion's token count; 0 is not observed (``RecordOutputTokens``); both
        forms as :meth:`record_input_tokens`."""
        # The two common forms inline (a shared helper costs 40 ns a call here): the original
        # one (the count third, the flow as keywords) and upstream's (all five positional).
        key: tuple[str, str, str, int | str]
        if _arg4 is _DEFAULT and size is None and tokens is None and type(_arg3) in _FAST:
            flow_id = DEFAULT_FAIRNESS_ID if fairness_id is _DEFAULT else fairness_id
            band = DEFAULT_PRIORITY if priority is _DEFAULT else priority
            key, value, argument = (model_name, target_model_name, flow_id, band), _arg3, "tokens"
        elif (
            size is None
            and tokens is None
            and type(_arg5) in _FAST
            and fairness_id is _DEFAULT
            and priority is _DEFAULT
        ):
            key, value, argument = (model_name, target_model_name, _arg3, _arg4), _arg5, "size"
        else:  # another form: sorted out, and checked, on the general path
            model, slots = (model_name, target_model_name), (_arg3, _arg4, _arg5)
            self._tokens(
                OUTPUT_TOKENS,
                "record_output_tokens",
                model,
                slots,
                fairness_id,
                priority,
                size,
                tokens,
            )
            return
        if not 0 <= value <= _MAX:
            value = number(argument, value)
        try:
            row = self._requests_cache[key]
        except (KeyError, TypeError):
            row = self._requests.bind(key)
        if value > 0:
            row[OUTPUT_TOKENS](value)

    # --- streaming -------------------------------------------------------------------------------

    def record_inter_token_latency(
        self,
        model_name: str,
        target_model_name: str,
        _arg3: Any = _DEFAULT,
        _arg4: Any = _DEFAULT,
        _arg5: Any = _DEFAULT,
        fairness_id: str = _DEFAULT,
        priority: int | str = _DEFAULT,
        itl_seconds: float | None = None,
        seconds: float | None = None,
    ) -> bool:
        """Observe the time between two consecutive streamed response chunks (llm-d-router's
        inter-token latency; schemas without it record nothing).

        Upstream's ``(model_name, target_model_name, fairness_id, priority, itl_seconds)``
        (``RecordInterTokenLatency``): 0 is observed, a negative value is logged and returns
        False. The original ``(model_name, target_model_name, seconds, *, fairness_id=...,
        priority=...)`` refuses a negative value with ValueError. True when observed.
        """
        # The two common forms take no detour (one of them is called per streamed chunk).
        if _arg4 is _DEFAULT and _arg3 is not _DEFAULT and itl_seconds is None and seconds is None:
            flow_id = DEFAULT_FAIRNESS_ID if fairness_id is _DEFAULT else fairness_id
            band = DEFAULT_PRIORITY if priority is _DEFAULT else priority
            value, upstream = _arg3, False
        elif (
            itl_seconds is None
            and seconds is None
            and _arg5 is not _DEFAULT
            and fairness_id is _DEFAULT
            and priority is _DEFAULT
        ):
            flow_id, band, value, upstream = _arg3, _arg4, _arg5, True
        else:
            flow_id, band, value, upstream = _both_forms(
                "record_inter_token_latency",
                "itl_seconds",
                "seconds",
                (_arg3, _arg4, _arg5),
                fairness_id,
                priority,
                itl_seconds,
                seconds,
            )
        if not upstream:
            if not (type(value) in _FAST and 0 <= value <= _MAX):
                value = number("seconds", value)
            self._request(model_name, target_model_name, flow_id, band)[ITL](value)
            return True
        if not (type(value) in _FAST and -_MAX <= value <= _MAX):
            value = number("itl_seconds", value, minimum=None)
        row = self._request(model_name, target_model_name, flow_id, band)
        if value < 0:
            logger.error("inter-token latency not recorded: itl_seconds (%r) is negative", value)
            return False
        row[ITL](value)
        return True

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
        the returned callable takes the seconds and checks them as its original form does (a
        negative value: ValueError)."""
        observe = self._request(model_name, target_model_name, fairness_id, priority)[ITL]

        def observe_seconds(seconds: float) -> None:
            if not (type(seconds) in _FAST and 0 <= seconds <= _MAX):
                seconds = number("seconds", seconds)
            observe(seconds)

        return observe_seconds

    # --- running requests -------------------------------------------------------------------------

    def inc_running_requests(
        self, model_name: str, target_model_name: str, fairness_id: str, priority: int | str
    ) -> None:
        """One more request running; an empty ``model_name`` records nothing
        (``IncRunningRequests``)."""
        self._running_add(model_name, target_model_name, fairness_id, priority, 1)

    def dec_running_requests(
        self, model_name: str, target_model_name: str, fairness_id: str, priority: int | str
    ) -> None:
        """One request fewer running; an empty ``model_name`` records nothing
        (``DecRunningRequests``)."""
        self._running_add(model_name, target_model_name, fairness_id, priority, -1)


# ``inspect.signature`` of the methods with both forms: upstream's parameters.
for _name, _value, _original in (
    ("record_input_tokens", "size", "tokens"),
    ("record_output_tokens", "size", "tokens"),
    ("record_inter_token_latency", "itl_seconds", "seconds"),
):
    vars(RequestCalls)[_name].__signature__ = _signature(_value, _original)
