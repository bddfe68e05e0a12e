"""A request's counts, errors, sizes, tokens and running requests, one metric each.

Two sets of names for the same measures (:mod:`inference_metrics.measures`, the request group):

* this library's original calls (``record_request_counter``, ``record_request_error``,
  ``record_request_size``, ``record_response_size``, ``record_input_tokens``,
  ``record_output_tokens``), with the flow (``fairness_id``, ``priority``) as keywords;
* upstream's names by the rule of :mod:`inference_metrics.calls` (``record_request_err_counter``,
  ``record_request_sizes``, ``record_response_sizes``, ``record_prompt_cached_tokens``,
  ``inc_``/``dec_running_requests``), the flow positional after the model names, as upstream's Go
  takes it.

Three names are both: ``record_request_counter`` takes the flow as positional-or-keyword
parameters with defaults, so both forms are one signature; ``record_input_tokens`` and
``record_output_tokens`` take upstream's arguments and the original ones (:mod:`.forms`).
The latencies are :mod:`.latencies`.

Upstream checks nothing on sizes; here every number is checked (finite, ``>= 0``) and a bad one
raises ``TypeError``/``ValueError`` naming it, nothing recorded.
"""

from __future__ import annotations

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
    OUTPUT_TOKENS,
    REQUEST,
    REQUEST_SIZE,
    RESPONSE_SIZE,
    RecorderCalls,
)
from .forms import UNSET, both_forms, show_upstream_signature

__all__ = ["RequestCalls"]


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
        flow_id, band, value, upstream = both_forms(
            method, "size", "tokens", slots, fairness_id, priority, size, tokens
        )
        key = (*model, flow_id, band)
        self._observe(key, slot, "size" if upstream else "tokens", value, positive=True)

    def record_input_tokens(
        self,
        model_name: str,
        target_model_name: str,
        _arg3: Any = UNSET,
        _arg4: Any = UNSET,
        _arg5: Any = UNSET,
        fairness_id: str = UNSET,
        priority: int | str = UNSET,
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
        if _arg4 is UNSET and size is None and tokens is None and type(_arg3) in _FAST:
            flow_id = DEFAULT_FAIRNESS_ID if fairness_id is UNSET else fairness_id
            band = DEFAULT_PRIORITY if priority is UNSET else priority
            key, value, argument = (model_name, target_model_name, flow_id, band), _arg3, "tokens"
        elif (
            size is None
            and tokens is None
            and type(_arg5) in _FAST
            and fairness_id is UNSET
            and priority is UNSET
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
        _arg3: Any = UNSET,
        _arg4: Any = UNSET,
        _arg5: Any = UNSET,
        fairness_id: str = UNSET,
        priority: int | str = UNSET,
        size: float | None = None,
        tokens: float | None = None,
    ) -> None:
        """Observe a completion's token count; 0 is not observed (``RecordOutputTokens``); both
        forms as :meth:`record_input_tokens`."""
        # The two common forms inline (a shared helper costs 40 ns a call here): the original
        # one (the count third, the flow as keywords) and upstream's (all five positional).
        key: tuple[str, str, str, int | str]
        if _arg4 is UNSET and size is None and tokens is None and type(_arg3) in _FAST:
            flow_id = DEFAULT_FAIRNESS_ID if fairness_id is UNSET else fairness_id
            band = DEFAULT_PRIORITY if priority is UNSET else priority
            key, value, argument = (model_name, target_model_name, flow_id, band), _arg3, "tokens"
        elif (
            size is None
            and tokens is None
            and type(_arg5) in _FAST
            and fairness_id is UNSET
            and priority is UNSET
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


show_upstream_signature(RequestCalls, "record_input_tokens", "size", "tokens")
show_upstream_signature(RequestCalls, "record_output_tokens", "size", "tokens")
