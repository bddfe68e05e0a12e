"""ASGI: a middleware that measures OpenAI-style requests from the messages that go over the wire.

``MetricsMiddleware(app, recorder=...)`` wraps any ASGI application (FastAPI, Starlette, vLLM's
or LiteLLM's servers, a plain ASGI callable) under any ASGI server. For a ``POST`` to one of its
``paths`` it drives a :class:`~inference_metrics.lifecycle.RequestContext` from the ASGI
messages themselves:

* the request body's bytes as the app receives them (the app still gets every message
  unchanged, as it arrives); at its end the model from the JSON body: the request is admitted
  (``running_requests`` +1), or it fails as ``BadRequest`` (not JSON, no string ``model``,
  larger than ``max_body_size``);
* the response status through :meth:`ErrorCode.from_http_status` (404 ``NotFound``, 429
  ``ResourceExhausted``, 500 ``Internal``...); an exception out of the app is ``Internal``
  and is re-raised unchanged;
* every response body byte as it is sent; usage from a JSON body or an event stream; TTFT and
  TPOT for ``text/event-stream`` responses; an event stream is complete when its end marker
  (``data: [DONE]``, a Responses API ``response.completed``...) is sent, whatever the app does
  after it (an app that awaits after its last event, a client that closes at the marker, as the
  OpenAI client does);
* ``http.disconnect`` from the client (or a ``send`` that fails because the client left, or the
  app's task being cancelled) before that as a cancel: ``running_requests`` goes back down at
  once.
* the GenAI operation (with a recorder that records GenAI) from the path:
  ``/v1/completions`` is ``text_completion``, ``/v1/chat/completions`` and ``/v1/responses``
  are ``chat`` (:func:`~inference_metrics.payloads.operation_for_path`); a failure's duration
  is recorded with its ``error.type``.

The target model is the model the response names (OpenAI responses carry ``model``), else the
requested model; a ``target_model`` callable, given the ASGI scope and the parsed request body,
overrides it when it returns a string. The fairness id comes from the
``x-llm-d-inference-fairness-id`` header (as llm-d-router), the priority from the
``priority_header`` when one is named (upstream has none: it takes the priority from the
InferenceObjective), and ``fairness_id`` / ``priority`` callables override both; an unusable
value is recorded as the default (``"default-flow"``, ``0``), never raised into the app. Other
paths, other methods, websockets and lifespan messages go straight to the app.

Nothing of a web framework is imported; nothing raises into the app on a malformed payload.

``metrics_app`` (from :mod:`inference_metrics.server.asgi`, re-exported here) is the other half:
the guarded exposition as an ASGI app, for ``app.mount("/metrics", metrics_app(...))``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import payloads
from .errors import ErrorCode
from .lifecycle import DEFAULT_MAX_BODY_SIZE, FAIRNESS_ID_HEADERS, RequestContext
from .recorder import Recorder
from .server.asgi import ASGIApp, Message, Receive, Scope, Send, metrics_app

__all__ = [
    "DEFAULT_PATHS",
    "ASGIApp",
    "FlowValue",
    "MetricsMiddleware",
    "Receive",
    "Scope",
    "Send",
    "TargetModel",
    "metrics_app",
]
#: Given the ASGI scope and the parsed request body, the target model (None: not decided here).
TargetModel = Callable[[Scope, dict[str, Any]], str | None]

#: Given the ASGI scope and the parsed request body, a fairness id or priority (None: keep the
#: header's value, or the default).
FlowValue = Callable[[Scope, dict[str, Any]], object]

#: The OpenAI endpoints measured by default.
DEFAULT_PATHS: frozenset[str] = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/responses"}
)
_BYTES = (bytes, bytearray, memoryview)


def _content_type(headers: object) -> bytes | None:
    if not isinstance(headers, Iterable):
        return None
    for header in headers:
        if (
            isinstance(header, (tuple, list))
            and len(header) == 2
            and isinstance(header[0], bytes)
            and header[0].lower() == b"content-type"
        ):
            value = header[1]
            return value if isinstance(value, bytes) else None
    return None


class MetricsMiddleware:
    """Measures each ``POST`` to ``paths`` as one request of the endpoint picker's metrics.

    ``recorder``: where the metrics go. ``paths``: the exact request paths measured (default
    :data:`DEFAULT_PATHS`). ``target_model``: called once the request body is accepted with
    the scope and the parsed body; a string it returns is the target model (default: the model
    the response names, else the requested one); an exception from it is ignored.
    ``priority_header``: a request header holding the priority (decimal text); ``fairness_id``
    and ``priority``: called like ``target_model``; a value they return (not None) replaces the
    header's; an exception from them is ignored. Unusable values are recorded as the defaults.
    ``max_body_size`` and ``max_sse_line``: the lifecycle's bounds (see
    :class:`~inference_metrics.lifecycle.RequestContext`); ``clock``: its timestamps.

    Under several server worker processes (gunicorn, ``uvicorn --workers``), give each worker a
    recorder over the multiprocess store: every worker's requests are then served from one
    ``/metrics`` (see docs/multiprocess.md).
    """

    __slots__ = (
        "_fairness_id",
        "_flow_headers",
        "_new_context",
        "_operations",
        "_paths",
        "_priority",
        "_target",
        "app",
        "recorder",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        recorder: Recorder,
        paths: Iterable[str] = DEFAULT_PATHS,
        target_model: TargetModel | None = None,
        priority_header: str | None = None,
        fairness_id: FlowValue | None = None,
        priority: FlowValue | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_sse_line: int = payloads.DEFAULT_MAX_LINE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be an ASGI application (callable), got {app!r}")
        if not isinstance(recorder, Recorder):
            raise TypeError(f"recorder must be a Recorder, got {recorder!r}")
        if isinstance(paths, str) or not isinstance(paths, Iterable):
            raise TypeError(f"paths must be an iterable of path strings, got {paths!r}")
        path_set = frozenset(paths)
        for path in path_set:
            if not isinstance(path, str):
                raise TypeError(f"paths must hold strings, got {path!r}")
            if not path.startswith("/"):
                raise ValueError(f"paths must hold paths starting with '/', got {path!r}")
        for argument, function in (
            ("target_model", target_model),
            ("fairness_id", fairness_id),
            ("priority", priority),
        ):
            if function is not None and not callable(function):
                raise TypeError(f"{argument} must be callable or None, got {function!r}")
        #: A new request's context, with this middleware's bounds and clock.
        self._new_context = functools.partial(
            RequestContext,
            recorder,
            clock=clock,
            max_body_size=max_body_size,
            max_sse_line=max_sse_line,
            priority_header=priority_header,
        )
        # Checks the bounds, clock and priority header as the lifecycle does, once.
        self._new_context()
        self.app = app
        self.recorder = recorder
        self._paths = path_set
        self._operations = {path: payloads.operation_for_path(path) for path in path_set}
        self._target = target_model
        # ASGI header names are lower-case bytes: the ones that carry the flow, for a quick scan.
        names = [*FAIRNESS_ID_HEADERS, *([priority_header.lower()] if priority_header else [])]
        self._flow_headers = frozenset(name.encode("latin-1") for name in names)
        self._fairness_id = fairness_id
        self._priority = priority

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or scope.get("path") not in self._paths
        ):
            await self.app(scope, receive, send)
            return
        await _Exchange(self, scope).run(receive, send)

    def _admit(self, ctx: RequestContext, scope: Scope) -> None:
        """The request body was accepted: route it now when the target is known, else admit it
        (routed at the end to the model the response names). The one place where what the
        request says about itself (scope and parsed body) becomes the request's labels."""
        try:
            flow = [pair for pair in scope["headers"] if pair[0] in self._flow_headers]
        except Exception:  # no headers, or not as ASGI shapes them
            flow = []
        if flow:
            ctx.read_flow_headers(flow)
        ctx.set_flow(
            fairness_id=self._ask(self._fairness_id, ctx, scope),
            priority=self._ask(self._priority, ctx, scope),
        )
        target = self._ask(self._target, ctx, scope)
        if isinstance(target, str):
            ctx.route(target)
        else:
            ctx.admit()

    @staticmethod
    def _ask(function: FlowValue | None, ctx: RequestContext, scope: Scope) -> object:
        """What a user callable says about the request; None when there is none or it raised."""
        if function is None or ctx.request is None:
            return None
        try:
            return function(scope, ctx.request)
        except Exception:
            return None


class _Exchange:
    """One measured request: the ASGI receive and send of the app, watched."""

    __slots__ = ("ctx", "middleware", "reading", "responded", "scope")

    def __init__(self, middleware: MetricsMiddleware, scope: Scope) -> None:
        self.middleware = middleware
        self.scope = scope
        self.ctx = middleware._new_context()
        self.ctx.operation = middleware._operations.get(scope.get("path", ""))
        self.reading = True
        self.responded = False

    async def run(self, receive: Receive, send: Send) -> None:
        ctx = self.ctx

        async def watched_receive() -> Message:
            message = await receive()
            self.on_receive(message)
            return message

        async def watched_send(message: Message) -> None:
            self.on_send(message)
            try:
                await send(message)
            except OSError:
                ctx.cancel()  # the client went away (ASGI 2.4 servers raise OSError)
                raise

        try:
            await self.middleware.app(self.scope, watched_receive, watched_send)
        except Exception:
            ctx.fail(ErrorCode.INTERNAL)
            raise
        except BaseException:  # asyncio.CancelledError, KeyboardInterrupt...
            ctx.cancel()
            raise
        if not ctx.finished:
            # The app returned without ending its response.
            if self.responded:
                ctx.cancel()
            else:
                ctx.fail(ErrorCode.INTERNAL)

    def on_receive(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.request":
            if not self.reading:
                return
            body = message.get("body", b"")
            end = not message.get("more_body", False)
            accepted = self.ctx.on_request_body(
                body if isinstance(body, _BYTES) else b"", end_of_stream=end
            )
            if end or not accepted:
                self.reading = False
                if accepted:
                    self.middleware._admit(self.ctx, self.scope)
        elif kind == "http.disconnect":
            self.ctx.cancel()

    def on_send(self, message: Message) -> None:
        ctx = self.ctx
        kind = message.get("type")
        if kind == "http.response.start":
            self.responded = True
            status = message.get("status")
            code = (
                ErrorCode.from_http_status(status)
                if isinstance(status, int) and not isinstance(status, bool)
                else ErrorCode.INTERNAL
            )
            if code is not None:
                ctx.fail(code)
                return
            content_type = _content_type(message.get("headers"))
            if content_type is not None:
                ctx.on_response_headers(((b"content-type", content_type),))
        elif kind == "http.response.body":
            body = message.get("body", b"")
            ctx.on_response_body(
                body if isinstance(body, _BYTES) else b"",
                end_of_stream=not message.get("more_body", False),
            )
