"""A request's latencies, one metric each: request latency, NTPOT, TTFT, TPOT, inter-token latency.

Under this library's original names (``record_request_latency``, ``record_inter_token_latency``
and its per-stream ``inter_token_latency_observer``) and upstream's, by the rule of
:mod:`inference_metrics.calls` (``record_request_latencies``,
``record_normalized_time_per_output_token``, ``record_request_ttft``, ``record_request_tpot``,
``record_inter_token_latency``), with upstream's checks, in upstream's order, and ``bool``
returns: where upstream returns False (a latency that does not move forward, no first token, an
inter-token latency below 0) so does the call, and it logs an error where upstream logs one.
``record_inter_token_latency`` takes both forms (:mod:`.forms`); its original one refuses a
negative gap with ValueError, as it always did. Timestamps are seconds on one clock; a value that
is not a finite number (or a negative timestamp) raises ``TypeError``/``ValueError`` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..validation import FAST_NUMBER as _FAST
from ..validation import MAX_FLOAT as _MAX
from ..validation import number
from .base import (
    DEFAULT_FAIRNESS_ID,
    DEFAULT_PRIORITY,
    ITL,
    LATENCY,
    NTPOT,
    TPOT,
    TTFT,
    UNSTREAMED_TTFT,
    RecorderCalls,
    logger,
)
from .forms import UNSET, both_forms, show_upstream_signature

__all__ = ["LatencyCalls"]


class LatencyCalls(RecorderCalls):
    """A request's latencies, under both sets of names (module docstring)."""

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
        complete = number("complete", complete)  # checked under upstream's name, then as ours
        return self.record_request_latency(
            model_name,
            target_model_name,
            received,
            complete,
            fairness_id=fairness_id,
            priority=priority,
        )

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

    # --- streaming -------------------------------------------------------------------------------

    def record_inter_token_latency(
        self,
        model_name: str,
        target_model_name: str,
        _arg3: Any = UNSET,
        _arg4: Any = UNSET,
        _arg5: Any = UNSET,
        fairness_id: str = UNSET,
        priority: int | str = UNSET,
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
        if _arg4 is UNSET and _arg3 is not UNSET and itl_seconds is None and seconds is None:
            flow_id = DEFAULT_FAIRNESS_ID if fairness_id is UNSET else fairness_id
            band = DEFAULT_PRIORITY if priority is UNSET else priority
            value, upstream = _arg3, False
        elif (
            itl_seconds is None
            and seconds is None
            and _arg5 is not UNSET
            and fairness_id is UNSET
            and priority is UNSET
        ):
            flow_id, band, value, upstream = _arg3, _arg4, _arg5, True
        else:
            flow_id, band, value, upstream = both_forms(
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


show_upstream_signature(LatencyCalls, "record_inter_token_latency", "itl_seconds", "seconds")
