"""One request's metrics across its stages: the place where upstream's request-flow rules live.

A :class:`RequestContext` follows a request through an Envoy ext_proc stream (or any proxy or
handler) and records the endpoint picker's metrics at the stages upstream records them:

================================  ==========================================================
stage                             recorded
================================  ==========================================================
``on_request_headers``            nothing (the received timestamp is taken)
``on_request_body`` (end)         nothing when the body is an OpenAI-style JSON object with
                                  a string ``model``; otherwise the request fails as
                                  ``BadRequest`` (empty model labels), False is returned
``route``                         ``request_total``, ``request_sizes``;
                                  ``running_requests`` +1
``admit`` (target not known yet)  ``running_requests`` +1 (empty target); ``route`` when
                                  the target is known (or a stream's first event names the
                                  model: the gauge moves there), else at the end: to the
                                  model the response names (``response_model``), else the
                                  model itself
``on_response_headers``           nothing; a non-2xx ``:status`` makes the request end as
                                  ``ModelServerError``
``on_response_body``              nothing until the stream's end marker (``data: [DONE]``,
                                  a Responses API ``response.completed``...) or the end of
                                  stream, then as ``finish``; a streamed response's later
                                  non-empty chunks: the inter-token latency (time since the
                                  previous chunk)
``finish`` (success)              latency, response size, input/output/cached tokens,
                                  NTPOT; TTFT and TPOT for streamed (SSE) responses;
                                  ``running_requests`` -1
``fail``, a failed ``finish``     the error counter once (labels: model and target when the
                                  request was routed, else empty) and, with GenAI, its
                                  duration with ``error.type``; ``running_requests`` -1;
                                  no latency, sizes or tokens
``cancel``                        ``running_requests`` -1 only (the client went away:
                                  neither a success nor an error, as upstream)
================================  ==========================================================

A stream is complete at its end marker, whoever closes first: the client (the OpenAI client
closes the response as soon as it read ``data: [DONE]``), the proxy or the server (which may end
the body much later). Latency is taken when the chunk holding the marker went by; the response
size counts the body's bytes up to and including the marker's event (its blank line), none
after it. A cancel, failure or end of stream after the marker changes nothing; before it, a
cancel is a cancellation.

Every method is safe to call in any order and more than once: the first end (``finish``,
``fail``, ``cancel``, or the end marker) wins and nothing is recorded twice, even when two
threads end the request at once (the decorator's thread-pool streams: a cancel from the event
loop while the item being produced holds the marker). No method raises on any payload; a
response body whose usage cannot be parsed is counted in
:attr:`Recorder.response_parse_failures <inference_metrics.Recorder.response_parse_failures>`
and the request still completes. Nothing is logged; bodies are never kept beyond the request.

A context is otherwise used by one task or thread at a time (one ext_proc stream, one handler
call).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal

from . import payloads
from .errors import ErrorCode
from .payloads import SSEUsageParser, Usage
from .recorder import DEFAULT_FAIRNESS_ID, DEFAULT_PRIORITY, Recorder
from .validation import positive_int

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "FAIRNESS_ID_HEADERS",
    "MAX_HELD_GAPS",
    "OBJECTIVE_HEADERS",
    "RequestContext",
    "Usage",
    "parse_priority",
]

#: The largest request body (and buffered JSON response body) parsed, in bytes.
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024
#: The most inter-token gaps a stream holds (8 bytes each) while its target is not known yet
#: (admitted, its events name no model); later ones are not observed.
MAX_HELD_GAPS = 4096

Bytes = bytes | bytearray | memoryview
_BYTES = (bytes, bytearray, memoryview)
_NO_USAGE = Usage()

_Mode = Literal["sse", "json", "other", "skip"] | None

#: Where llm-d-router reads a request's fairness id (``pkg/epp/metadata/consts.go``
#: ``FlowFairnessIDKey``, then its deprecated alias ``OldFlowFairnessIDKey``).
FAIRNESS_ID_HEADERS = ("x-llm-d-inference-fairness-id", "x-gateway-inference-fairness-id")
#: The header naming a request's InferenceObjective (``ObjectiveKey`` and its alias): upstream
#: takes the priority from that objective's ``spec.priority``, not from a header of its own.
OBJECTIVE_HEADERS = ("x-llm-d-inference-objective", "x-gateway-inference-objective")

# Go's int is 64 bits: the range of an InferenceObjective's priority.
_MIN_PRIORITY, _MAX_PRIORITY = -(2**63), 2**63 - 1

# Decides which call ends a request (finish, fail, cancel, the end marker) when threads race:
# held for two attribute operations, once per request, so one lock serves every context.
_ENDING = threading.Lock()


def _timestamp(value: object) -> bool:
    """Whether ``value`` is a clock reading the recorder accepts (a finite number >= 0)."""
    return type(value) in (int, float) and 0 <= value < math.inf  # type: ignore[operator]


def parse_priority(value: object) -> int | None:
    """A priority from an int or its decimal text (an optional sign and ASCII digits, surrounding
    spaces allowed, within a 64-bit int); None for anything else (bytes that are not UTF-8,
    ``"1.5"``, ``"high"``, a bool, a number out of range). Never raises."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in ("+", "-") else text
        if not digits or len(digits) > 19 or not (digits.isascii() and digits.isdigit()):
            return None
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return int(value) if _MIN_PRIORITY <= value <= _MAX_PRIORITY else None


def _header_items(headers: object) -> Iterable[tuple[object, object]]:
    """(name, value) pairs from a mapping, pairs, Envoy ``HeaderValue``s or a ``HeaderMap``."""
    if isinstance(headers, Mapping):
        return headers.items()
    inner = getattr(headers, "headers", None)
    if inner is not None and not isinstance(headers, (str, bytes)):
        headers = inner  # an Envoy HeaderMap: its repeated HeaderValue field
    if not isinstance(headers, Iterable) or isinstance(headers, (str, bytes)):
        return ()
    items: list[tuple[object, object]] = []
    for header in headers:
        if isinstance(header, (tuple, list)):
            if len(header) == 2:
                items.append((header[0], header[1]))
            continue
        key = getattr(header, "key", None)
        raw = getattr(header, "raw_value", None)
        value = raw if raw else getattr(header, "value", None)
        items.append((key, value))
    return items


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return None


class RequestContext:
    """The metrics of one request, recorded into ``recorder`` stage by stage.

    ``clock`` gives the timestamps (seconds, monotonic); inject a fake one in tests.
    ``max_body_size`` bounds the request body parsed (beyond it the request fails as
    ``BadRequest``) and a JSON response body buffered for its usage (beyond it the usage is not
    parsed and a parse failure is counted). ``max_sse_line`` bounds one line of a streamed
    response (see :class:`~inference_metrics.payloads.SSEUsageParser`).

    ``priority_header``: a request header holding the priority as decimal text (upstream has
    none: llm-d-router takes it from the InferenceObjective named by
    ``x-llm-d-inference-objective``; a gateway that maps objectives to priorities can put the
    number in a header of its choice).
    The fairness id is read from ``x-llm-d-inference-fairness-id`` (or its deprecated alias
    ``x-gateway-inference-fairness-id``), as llm-d-router. Both are passed to every Recorder call
    of the request (:meth:`set_flow` sets them directly).

    Usable as a context manager (``with`` or ``async with``): leaving the block finishes the
    request; an exception fails it as ``Internal`` (re-raised unchanged); cancellation
    (``asyncio.CancelledError``, ``GeneratorExit``, ``KeyboardInterrupt``) cancels it.
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_clock",
        "_content_type",
        "_first_chunk",
        "_held_gaps",
        "_itl",
        "_last_chunk",
        "_max_body",
        "_max_sse_line",
        "_mode",
        "_observe_itl",
        "_pending",
        "_priority_header",
        "_response",
        "_response_model",
        "_running",
        "_sse",
        "_usage",
        "error_code",
        "fairness_id",
        "finished",
        "model_name",
        "operation",
        "priority",
        "received",
        "recorder",
        "request",
        "request_size",
        "response_parse_failed",
        "response_size",
        "routed",
        "streamed",
        "target_model_name",
    )

    def __init__(
        self,
        recorder: Recorder,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_sse_line: int = payloads.DEFAULT_MAX_LINE_BYTES,
        priority_header: str | None = None,
    ) -> None:
        if not isinstance(recorder, Recorder):
            raise TypeError(f"recorder must be a Recorder, got {recorder!r}")
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {clock!r}")
        positive_int("max_body_size", max_body_size)
        positive_int("max_sse_line", max_sse_line)
        if priority_header is not None and (
            not isinstance(priority_header, str)
            or not priority_header
            or not priority_header.isascii()
        ):
            raise TypeError(
                f"priority_header must be a non-empty ASCII header name or None, "
                f"got {priority_header!r}"
            )
        self.recorder = recorder
        self._priority_header = priority_header.lower() if priority_header else None
        #: The request's fairness id and priority (labels of every request metric).
        self.fairness_id: str = DEFAULT_FAIRNESS_ID
        self.priority: int = DEFAULT_PRIORITY
        # While the running gauge counts this request: the labels it was raised under (target,
        # fairness id, priority), to lower exactly that series. None (false) otherwise.
        self._running: tuple[str, str, int] | None = None
        self._clock = clock
        self._max_body = max_body_size
        self._max_sse_line = max_sse_line
        #: When the request was received (``clock()``): at ``on_request_headers``, or creation.
        self.received: float = clock()
        self.model_name: str | None = None
        self.target_model_name: str | None = None
        #: The request body's length in bytes.
        self.request_size = 0
        #: The parsed request body (a JSON object), once the body was accepted.
        self.request: dict[str, Any] | None = None
        #: Response body bytes so far.
        self.response_size = 0
        #: Whether :meth:`route` recorded the request (request_total, request_sizes).
        self.routed = False
        #: Whether the response is an event stream (TTFT and TPOT are recorded for these).
        self.streamed = False
        #: Whether the response's usage could not be parsed (counted once per request).
        self.response_parse_failed = False
        #: Whether the request has ended (finished, failed or cancelled).
        self.finished = False
        #: The failure code, once the request failed or will end as failed.
        self.error_code: ErrorCode | str | None = None
        #: The GenAI ``gen_ai.operation.name`` (``chat``, ``text_completion``...), from the
        #: request's ``:path`` header (:func:`~inference_metrics.payloads.operation_for_path`);
        #: None: the GenAI recorder's default. Settable.
        self.operation: str | None = None
        self._body: list[bytes] | None = []
        self._body_size = 0
        self._content_type: str | None = None
        self._mode: _Mode = None
        self._pending = bytearray()
        self._response: bytearray | None = None
        self._sse: SSEUsageParser | None = None
        self._usage: Usage | None = None
        self._first_chunk: float | None = None
        self._last_chunk: float | None = None
        self._itl = recorder.records_inter_token_latency
        self._observe_itl: Callable[[float], None] | None = None
        self._held_gaps: array[float] | None = None
        self._response_model: str | None = None

    # --- request ----------------------------------------------------------------------------------

    def on_request_headers(self, headers: object = None) -> None:
        """The request's headers arrived: take the received timestamp, read the fairness id
        and priority headers (see :meth:`read_flow_headers`), and the GenAI operation from the
        ``:path`` pseudo-header (Envoy's; unknown paths leave :attr:`operation` as is)."""
        if not self.finished and not self.routed:
            self.received = self._clock()
            self.read_flow_headers(headers)
            if self.operation is None:
                for name, value in _header_items(headers):
                    if _text(name) == ":path":
                        path = _text(value)
                        if path is not None:
                            self.operation = payloads.operation_for_path(path)
                        break

    def read_flow_headers(self, headers: object) -> None:
        """Take the fairness id and priority from request headers (a mapping, (name, value)
        pairs, Envoy ``HeaderValue``s or a ``HeaderMap``; names in any case, values text or
        bytes). A missing, empty or unusable value (not UTF-8, longer than the recorder's
        ``max_label_length``, a priority that is not an integer) leaves the default. Never
        raises; does nothing once the request is running (its labels are fixed)."""
        if self._running or self.routed or self.finished:
            return
        fairness: object = None
        fairness_rank = len(FAIRNESS_ID_HEADERS)
        priority: object = None
        for name, value in _header_items(headers):
            key = _text(name)
            if key is None:
                continue
            key = key.lower()
            if key in FAIRNESS_ID_HEADERS:
                rank = FAIRNESS_ID_HEADERS.index(key)
                if rank < fairness_rank:
                    fairness, fairness_rank = value, rank
            elif key == self._priority_header:
                priority = value
        if fairness is not None or priority is not None:
            self.set_flow(fairness_id=fairness, priority=priority)

    def set_flow(self, *, fairness_id: object = None, priority: object = None) -> bool:
        """Set the request's fairness id and/or priority (None: leave as is). An unusable value
        (see :meth:`read_flow_headers`) sets the default (``"default-flow"``, ``0``) instead.
        Returns False, changing nothing, once the request is running or ended. Never raises."""
        if self._running or self.routed or self.finished:
            return False
        if fairness_id is not None:
            if isinstance(fairness_id, (bytes, bytearray, memoryview)):
                try:
                    fairness_id = bytes(fairness_id).decode("utf-8")
                except UnicodeDecodeError:
                    fairness_id = None
            if (
                isinstance(fairness_id, str)
                and fairness_id
                and self.recorder.is_valid_label_value(fairness_id)
            ):
                self.fairness_id = str.__str__(fairness_id)
            else:
                self.fairness_id = DEFAULT_FAIRNESS_ID
        if priority is not None:
            parsed = parse_priority(priority)
            self.priority = DEFAULT_PRIORITY if parsed is None else parsed
        return True

    def on_request_body(self, chunk: Bytes, *, end_of_stream: bool) -> bool:
        """Add a request body chunk; at the end, parse the body.

        Returns False when the request failed (the body is not a JSON object with a non-empty
        string ``model`` that is a valid label value, or is larger than ``max_body_size``): the
        failure is already recorded as ``BadRequest`` and the caller answers 400
        (``ErrorCode.BAD_REQUEST.http_status``). Never raises.
        """
        if self.finished or self._body is None:
            return False
        size = len(chunk) if isinstance(chunk, _BYTES) else 0
        if size:
            self._body_size += size
            if self._body_size > self._max_body:
                self._body = None
                self.request_size = self._body_size
                self.fail(ErrorCode.BAD_REQUEST)
                return False
            self._body.append(bytes(chunk))
        if not end_of_stream:
            return True
        body = b"".join(self._body)
        self._body = None
        self.request_size = len(body)
        info = payloads.parse_request(body)
        if info is None:
            self.fail(ErrorCode.BAD_REQUEST)
            return False
        return self.on_request(info.model, request_size=len(body), request=info.body)

    def on_request(
        self,
        model_name: object,
        *,
        request_size: int = 0,
        request: dict[str, Any] | None = None,
    ) -> bool:
        """The request's model, for callers that parsed the request themselves.

        Returns False (and records ``BadRequest``) when ``model_name`` is not a non-empty string
        usable as a label value. Once the request is routed its model is fixed: a later call
        changes nothing (the running gauge and the completion stay under the routed model) and
        returns False. Never raises.
        """
        if self.finished or self.routed or self._running:
            return False
        self._body = None
        if (
            not isinstance(model_name, str)
            or not model_name
            or not self.recorder.is_valid_label_value(model_name)
        ):
            self.fail(ErrorCode.BAD_REQUEST)
            return False
        self.model_name = str.__str__(model_name)
        if isinstance(request_size, int) and not isinstance(request_size, bool):
            self.request_size = max(request_size, 0)
        self.request = request
        return True

    def route(self, target_model_name: str | None = None) -> None:
        """The request is forwarded to ``target_model_name`` (default: the model itself).

        Records ``request_total`` and ``request_sizes``, and ``running_requests`` +1. Does
        nothing unless the model is known (an accepted body or :meth:`on_request`) and the
        request is still open, or when it was routed already. An invalid target name is replaced
        by the model name. Never raises.
        """
        if self.finished or self.routed or self.model_name is None:
            return
        self._route(target_model_name)

    def admit(self) -> None:
        """The request is in flight but its target is not known yet (a server that learns it
        from its own response): ``running_requests`` +1 now; ``request_total`` and
        ``request_sizes`` when :meth:`route` names the target, or at the end (finished, failed
        or cancelled) under the model the response named (:attr:`response_model`), else the
        model itself. Does nothing unless the model is known and the request is still open and
        neither admitted nor routed. Never raises.
        """
        if self.finished or self.routed or self._running or self.model_name is None:
            return
        self._run("")  # the target is not known yet: the running gauge's target is empty

    def _route(self, target_model_name: object, *, ending: bool = False) -> None:
        """Route to the target; ``ending``: the request ends now, so the running gauge is
        lowered where it was raised rather than moved to the target first."""
        assert self.model_name is not None
        model = self.model_name
        target = model
        if (
            isinstance(target_model_name, str)
            and target_model_name
            and self.recorder.is_valid_label_value(target_model_name)
        ):
            target = str.__str__(target_model_name)
        self.target_model_name = target
        self.routed = True
        self.recorder.record_request_started(
            model, target, self.request_size, fairness_id=self.fairness_id, priority=self.priority
        )
        if self._held_gaps is not None:
            self._observe_held(model, target)
        if not ending:
            self._run(target)

    def _run(self, target: str) -> None:
        """The running gauge counts this request under ``target``: raised once, or moved from
        the series it was raised under (an admitted request whose target became known)."""
        assert self.model_name is not None
        flow = (target, self.fairness_id, self.priority)
        if self._running == flow:
            return
        self._release()
        self.recorder.record_running_request_started(
            self.model_name, target, fairness_id=self.fairness_id, priority=self.priority
        )
        self._running = flow

    def _route_admitted(self) -> None:
        """An admitted request ends before it was routed: route it now (see :meth:`admit`)."""
        if self._running and not self.routed:
            self._route(self.response_model, ending=True)

    # --- response ---------------------------------------------------------------------------------

    def on_response_headers(self, headers: object, *, end_of_stream: bool = False) -> None:
        """The response's headers arrived.

        ``headers``: a mapping, (name, value) pairs, or Envoy ``HeaderValue`` objects (``key``
        and ``raw_value``/``value``) or a ``HeaderMap`` holding them. A ``:status`` (or
        ``status``) outside 2xx makes the request end as ``ModelServerError``. The content type
        says how the body's usage is parsed. ``end_of_stream``: a response without a body; the
        request finishes now. Never raises.
        """
        if self.finished:
            return
        for name, value in _header_items(headers):
            key = _text(name)
            if key is None:
                continue
            key = key.lower()
            if key in (":status", "status"):
                status = _text(value)
                if status is not None and status.strip().isdigit():
                    code = int(status.strip())
                    if not 200 <= code < 300 and self.error_code is None:
                        self.error_code = ErrorCode.MODEL_SERVER_ERROR
            elif key == "content-type":
                self._content_type = _text(value)
        if self._mode is None and "text/event-stream" in (self._content_type or "").lower():
            self._start_mode("sse")
        if end_of_stream:
            self.finish()

    def on_response_body(self, chunk: Bytes, *, end_of_stream: bool) -> None:
        """Add a response body chunk; at the stream's end marker or at the end of stream,
        :meth:`finish`.

        The first non-empty chunk is the TTFT timestamp. In a streamed response (:attr:`streamed`)
        each later non-empty chunk records the time since the previous one as an inter-token
        latency (llm-d-router's ``pkg/epp/handlers/response.go`` ``HandleResponseBody``) while
        the request has not failed; an admitted request's gaps are held until its target is
        known. Usage is parsed from a JSON body at
        the end, or from an event stream chunk by chunk (``text/event-stream``, or a body that
        starts with an event-stream field such as ``data:``); which of the two a body is, is
        told by its first bytes unless the content type says ``text/event-stream``. An event
        stream's end marker (``data: [DONE]``; a Responses API ``response.completed``,
        ``response.incomplete`` or ``response.failed`` event: see
        :class:`~inference_metrics.payloads.SSEUsageParser`) finishes the request at once, with
        the bytes up to and including the marker's event. Never raises.
        """
        if self.finished:
            return
        size = len(chunk) if isinstance(chunk, _BYTES) else 0
        if size:
            now: float | None = None
            if self._first_chunk is None:
                self._first_chunk = self._last_chunk = self._clock()
            elif self._itl and (self.streamed or self._mode is None):
                now = self._clock()  # before parsing, as upstream; kept if it is a stream
            self.response_size += size
            if self.error_code is None:
                self._parse(bytes(chunk))
                sse = self._sse
                if sse is not None and sse.model is not None and self._running and not self.routed:
                    # An admitted request's stream named the model that serves it: routed now,
                    # so the running gauge carries the real target while the stream runs.
                    self._route(sse.model)
                if now is not None and self.streamed:
                    self._inter_token(now)
                if sse is not None and sse.ended_at is not None:
                    self.finish()  # the end marker went by: the stream is complete
                    return
        if end_of_stream:
            self.finish()

    def on_response_part(self, *, size: int = 0, usage: Usage | None = None) -> None:
        """One part of a response produced by a handler (an item of a stream, or the whole
        result): ``size`` bytes, and the usage it reports if any. The first part is the TTFT
        timestamp; a second part makes the response a stream (:attr:`streamed`: TTFT and TPOT
        are recorded) and each part after the first records the time since the previous one as
        an inter-token latency (see :meth:`on_response_body`). For byte chunks use
        :meth:`on_response_body`. Never raises."""
        if self.finished:
            return
        if self._first_chunk is None:
            self._first_chunk = self._last_chunk = self._clock()
        else:
            self.streamed = True  # a second part: the response is a stream
            if self._itl and self.error_code is None:
                self._inter_token(self._clock())
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            self.response_size += size
        if isinstance(usage, Usage):
            self._usage = usage

    def _inter_token(self, now: float) -> None:
        """A later chunk of a stream arrived at ``now``: observe the time since the previous one
        (the first chunk only starts the count, as upstream). Admitted but not routed yet: the
        gap is held (up to :data:`MAX_HELD_GAPS`) and observed once the target is known."""
        last, self._last_chunk = self._last_chunk, now
        if last is None:
            return
        # A clock that returned no usable timestamp (or went backwards): nothing is recorded.
        # (try, not contextlib.suppress: nothing is made per chunk.)
        try:
            observe = self._observe_itl
            if observe is None:  # the labels are fixed once routed: looked up once a stream
                model, target = self.model_name, self.target_model_name
                if not self.routed or model is None or target is None:
                    if self._running:
                        self._hold(now - last)
                    return
                observe = self._observe_itl = self.recorder.inter_token_latency_observer(
                    model, target, fairness_id=self.fairness_id, priority=self.priority
                )
            observe(now - last)
        except (TypeError, ValueError):
            return

    def _hold(self, gap: float) -> None:
        held = self._held_gaps
        if held is None:
            held = self._held_gaps = array("d")
        if len(held) < MAX_HELD_GAPS:
            held.append(gap)

    def _observe_held(self, model: str, target: str) -> None:
        """Routed now: observe the gaps held while the target was not known."""
        held, self._held_gaps = self._held_gaps, None
        for gap in held or ():
            with contextlib.suppress(ValueError):  # a gap of a clock that went backwards
                self.recorder.record_inter_token_latency(
                    model, target, gap, fairness_id=self.fairness_id, priority=self.priority
                )

    def set_streamed(self, streamed: bool = True) -> None:
        """Say whether the response is streamed (TTFT and TPOT are recorded for streams)."""
        self.streamed = bool(streamed)

    @property
    def response_model(self) -> str | None:
        """The model the response names (OpenAI responses carry ``model``; Responses API
        events ``response.model``): from the first stream event that names one, or the JSON
        body once it ended. None when it names none."""
        if self._response_model is None and self._sse is not None:
            return self._sse.model
        return self._response_model

    @property
    def usage(self) -> Usage | None:
        """The response's usage so far (the last usage object seen), or None."""
        if self._sse is not None and self._sse.usage is not None:
            return self._sse.usage
        return self._usage

    def _start_mode(self, mode: Literal["sse", "json", "other"]) -> None:
        self._mode = mode
        if mode == "sse":
            self.streamed = True
            self._sse = SSEUsageParser(max_line_bytes=self._max_sse_line)
        elif mode == "json":
            self._response = bytearray()

    def _parse(self, chunk: bytes) -> None:
        # Buffers are read into locals: an end from another thread (see the module) may drop
        # them meanwhile; this chunk then goes into a buffer nobody reads.
        mode = self._mode
        if mode is None:
            self._pending += chunk
            kind = payloads.sniff_body(self._pending)
            if kind is None:
                return
            if kind == "other" and "json" in (self._content_type or "").lower():
                kind = "json"  # declared JSON but is not: parsed at the end, counted as failed
            self._start_mode(kind)
            chunk = bytes(self._pending)
            self._pending = bytearray()
            mode = self._mode
        if mode == "sse":
            sse = self._sse
            if sse is not None:
                sse.feed(chunk)
        elif mode == "json":
            response = self._response
            if response is None:
                return
            if len(response) + len(chunk) > self._max_body:
                self._response = None
                self._parse_failed()
            else:
                response += chunk

    def _parse_failed(self) -> None:
        if not self.response_parse_failed:
            self.response_parse_failed = True
            self.recorder.record_response_parse_failure()

    def _parse_end(self) -> None:
        """End of the response body: the last event of a stream, or the buffered JSON body."""
        if self.error_code is not None:
            return
        if self._mode is None and self._pending:
            self._start_mode("other")  # too short to tell what it is: nothing to parse
        if self._sse is not None:
            self._sse.close()
            if self._sse.failed:
                self._parse_failed()
        elif self._response is not None:
            body, self._response = self._response, None
            if body.strip():
                try:
                    obj = payloads.decode_json(body)
                except ValueError:
                    self._parse_failed()
                else:
                    usage = payloads.usage_from_object(obj)
                    if usage is not None:
                        self._usage = usage
                    self._response_model = payloads.model_from_object(obj)

    # --- end --------------------------------------------------------------------------------------

    def _claim(self) -> bool:
        """Whether this call ends the request: True exactly once, whichever thread asks first
        (:attr:`finished` is then True for every other)."""
        with _ENDING:
            if self.finished:
                return False
            self.finished = True
            return True

    def fail(self, code: ErrorCode | str = ErrorCode.UNKNOWN) -> None:
        """End the request now as failed with ``code`` (a response status error already set
        wins: the first failure's code is counted). An empty or unusable code counts as
        ``Unknown``. The error counter is incremented once. Never raises."""
        if self.finished or not self._claim():
            return
        if self.error_code is None:
            if isinstance(code, ErrorCode):
                self.error_code = code
            elif isinstance(code, str) and code and self.recorder.is_valid_label_value(code):
                self.error_code = str.__str__(code)
            else:
                self.error_code = ErrorCode.UNKNOWN
        self._end()

    def finish(self) -> None:
        """End of stream (or its end marker): record the completed request (or, when a failure
        code was set, the failure). Idempotent; after the first end, nothing more is recorded.
        """
        if self.finished or not self._claim():
            return
        if self.error_code is not None:
            self._end()
            return
        completed = self._clock()
        self._parse_end()
        self._route_admitted()
        self._pending = bytearray()
        self._release()
        model, target = self.model_name, self.target_model_name
        if not self.routed or model is None or target is None:
            return  # never forwarded: no labels to record a completion under
        sse = self._sse
        if sse is not None and sse.ended_at is not None and sse.ended_at < self.response_size:
            self.response_size = sse.ended_at  # bytes after the end marker are not counted
        usage = self.usage or _NO_USAGE
        # A clock that returned no usable timestamp: nothing is recorded.
        with contextlib.suppress(TypeError, ValueError):
            self.recorder.record_request_completed(
                model,
                target,
                received=self.received,
                completed=completed,
                response_size=self.response_size,
                input_tokens=usage.prompt_tokens,
                output_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                first_token=self._first_chunk if self.streamed else None,
                streaming=self.streamed,
                fairness_id=self.fairness_id,
                priority=self.priority,
                operation=self.operation,
            )

    def cancel(self) -> None:
        """End the request without an outcome (the client went away, the stream was cancelled):
        only ``running_requests`` goes back down, unless a failure code was already set, which
        is then counted. Idempotent; does nothing after another end."""
        if self.finished or not self._claim():
            return
        if self.error_code is not None:
            self._end()
            return
        self._route_admitted()
        self._discard()
        self._release()

    def _end(self) -> None:
        """Record the failure (the caller claimed the end): the error counter and, with GenAI,
        the duration from received to now with ``error.type``."""
        completed = self._clock()
        self._route_admitted()
        self._discard()
        self._release()
        code = self.error_code or ErrorCode.UNKNOWN
        model, target = self.model_name, self.target_model_name
        fairness_id, priority = self.fairness_id, self.priority
        if not self.routed or model is None or target is None:
            # Failed before it was scheduled: upstream has no labels for it yet, the flow's
            # included ("default-flow", 0: extractFairnessAndPriority without a request).
            model = target = ""
            fairness_id, priority = DEFAULT_FAIRNESS_ID, DEFAULT_PRIORITY
        received: float | None = self.received
        ended: float | None = completed
        if not (_timestamp(received) and _timestamp(completed)):
            received = ended = None  # a clock without usable readings: the count only
        # An error code longer than the recorder's max_label_length is not counted.
        with contextlib.suppress(ValueError):
            self.recorder.record_request_failed(
                model,
                target,
                code,
                fairness_id=fairness_id,
                priority=priority,
                received=received,
                completed=ended,
                operation=self.operation,
            )

    def _discard(self) -> None:
        self._body = None
        self._response = None
        self._pending = bytearray()

    def _release(self) -> None:
        """Lower the running gauge under exactly the labels it was raised under."""
        if self._running is not None:
            assert self.model_name is not None
            target, fairness_id, priority = self._running
            self._running = None
            self.recorder.record_running_request_finished(
                self.model_name, target, fairness_id=fairness_id, priority=priority
            )

    # --- context manager --------------------------------------------------------------------------

    def _exit(self, exc_type: type[BaseException] | None) -> None:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, Exception):
            self.fail(ErrorCode.INTERNAL)
        else:  # CancelledError, GeneratorExit, KeyboardInterrupt, SystemExit
            self.cancel()

    def __enter__(self) -> RequestContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> Literal[False]:
        self._exit(exc_type)
        return False

    async def __aenter__(self) -> RequestContext:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> Literal[False]:
        self._exit(exc_type)
        return False

    def __repr__(self) -> str:
        state = "finished" if self.finished else "routed" if self.routed else "open"
        return (
            f"<RequestContext {state} model={self.model_name!r} "
            f"target={self.target_model_name!r} error_code={self.error_code!r}>"
        )
