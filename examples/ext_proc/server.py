"""An example endpoint picker: an Envoy ext_proc server that records the EPP's metrics.

    python examples/ext_proc/server.py --grpc-port 9002 --metrics-port 9090
    envoy -c examples/ext_proc/envoy.yaml

Serves the ext_proc gRPC service on ``--host:--grpc-port`` and ``/metrics`` (plus ``/healthz``,
``/readyz``) on ``--host:--metrics-port`` with :class:`inference_metrics.server.MetricsServer`,
guarded as ``inference-metrics serve`` guards it, with the same flags (``--auth
none|token|kubernetes``, none by default on a loopback address, ``--token-file``, the Kubernetes
and TLS flags: ``inference_metrics.options``). Envoy opens one gRPC stream per HTTP request;
each stream follows its request with one :class:`~inference_metrics.RequestContext`:

* request headers: the received timestamp;
* request body: the model is read from the JSON body; a body that is not a JSON object with a
  ``"model"`` gets an immediate 400 (counted as ``BadRequest``). The target model is the model
  itself unless ``--model-rewrite MODEL=TARGET`` says otherwise; a rewrite replaces the body's
  ``"model"`` (and, in BUFFERED mode, ``content-length``), as a real picker does. Then the
  request is counted (``inference_model_request_total``, ``..._request_sizes``, running +1);
* response headers: a non-2xx ``:status`` makes the request end as ``ModelServerError``;
* response body: sizes, usage (JSON body or SSE stream), time to first chunk; at an event
  stream's end marker (``data: [DONE]``...) or else at the end of stream the request's latency,
  sizes and tokens are recorded (a client that closes at ``[DONE]`` changes nothing).

Body modes: request body BUFFERED (or FULL_DUPLEX_STREAMED: the body is held until it is
complete, then sent on whole; or STREAMED: the body goes on as it comes, so it is never
rewritten); response body BUFFERED, STREAMED or FULL_DUPLEX_STREAMED (the
mode is read from the ``protocol_config`` Envoy sends on each stream's first message; in
FULL_DUPLEX_STREAMED every chunk is echoed back as a ``streamed_response``, which Envoy requires).

Picking (``--pool-endpoint``, or ``--dns`` / ``--kube-service`` / ``--kube-selector`` as in
``inference-metrics serve``): a :class:`~inference_metrics.pool.PoolMonitor` polls the model
servers; each accepted request goes to the fresh endpoint upstream's default scorers rank first
(queue, then KV cache), named in ``x-gateway-destination-endpoint`` for Envoy's ORIGINAL_DST
cluster (a client-sent one is removed); none fresh: 503 ``ServiceUnavailable``.

Scheduling is recorded as upstream's scheduler and director record it (under the schemas that
show it, ``--schema llm-d-router`` or ``gie-v1.5``): each step's latency (a filter, the queue and
KV-cache scorers, the max-score picker: ``record_plugin_processing_latency``), the run's
end-to-end latency (``record_scheduler_e2e_latency``) and the attempt with the chosen endpoint's
name, namespace (``--kube-namespace``, else empty) and port, or a failure when no endpoint is
fresh (``record_scheduler_attempt``). A rewrite counts a decision
(``record_inference_model_rewrite_decision``, named ``MODEL=TARGET``); the picker's own time per
request (receipt until the request body is handled, ``record_request_processing_latency``) and
per response (the sum of its handlers' times, ``record_response_processing_latency``) too.

The handler never raises into Envoy: an exception is counted as ``Internal``; before the request
was forwarded it is answered with a 500, afterwards the response passes through untouched.
Nothing logged carries a body or a header value.

Needs the ``extproc`` extra: ``pip install 'inference-metrics[extproc]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.type.v3 import http_status_pb2
from prometheus_client import CollectorRegistry

from inference_metrics import (
    ErrorCode,
    NoopBackend,
    PrometheusBackend,
    Recorder,
    RequestContext,
)
from inference_metrics.options import (
    CommandParser,
    OptionError,
    PoolOptions,
    SchemaOptions,
    ServerOptions,
)
from inference_metrics.pool import (
    PoolMonitor,
    fresh_endpoints,
    kv_cache_scores,
    max_score_pick,
    queue_scores,
)
from inference_metrics.server import MetricsServer

logger = logging.getLogger("examples.ext_proc")
_T = TypeVar("_T")

_Mode = processing_mode_pb2.ProcessingMode
NONE: int = _Mode.NONE
STREAMED: int = _Mode.STREAMED
BUFFERED: int = _Mode.BUFFERED
BUFFERED_PARTIAL: int = _Mode.BUFFERED_PARTIAL
FULL_DUPLEX_STREAMED: int = _Mode.FULL_DUPLEX_STREAMED
_OVERWRITE: int = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD

#: Largest body chunk sent back in one streamed_response (Envoy recommends at most 64 KiB).
STREAMED_CHUNK_BYTES = 64 * 1024

#: Chooses the target model of an accepted request (``ctx.model_name`` and ``ctx.request`` are
#: set); None keeps the model itself.
Picker = Callable[[RequestContext], str | None]

#: Chooses the model server (``host:port``) of an accepted request; None: none is ready (503).
EndpointPicker = Callable[[RequestContext], str | None]

#: Upstream's header telling Envoy's ORIGINAL_DST cluster where to send the request.
DESTINATION_HEADER = "x-gateway-destination-endpoint"


#: The scheduler's plugins as upstream names a plugin: (extension point, type, name).
FILTER = ("Filter", "fresh-endpoints-filter", "fresh-endpoints-filter")
QUEUE_SCORER = ("Scorer", "queue-scorer", "queue-scorer")
KV_CACHE_SCORER = ("Scorer", "kv-cache-utilization-scorer", "kv-cache-utilization-scorer")
PICKER = ("Picker", "max-score-picker", "max-score-picker")


class NoReadyEndpoint(Exception):
    """The scheduling attempt's error: no endpoint passed the filter."""


def _port(address: str) -> str:
    """The port of ``host:port`` (``[v6]:port`` included)."""
    return address.rpartition(":")[2]


def pool_picker(monitor: PoolMonitor, *, namespace: str = "") -> EndpointPicker:
    """Picks from ``monitor``'s snapshot as upstream's default scorers do (queue, then KV cache;
    fresh endpoints only, see :mod:`inference_metrics.pool.pick`), recording the run as
    upstream's scheduler does through the request's recorder: each plugin's latency, the run's,
    and the attempt (the chosen endpoint's name, ``namespace`` and port; a failure when none is
    fresh)."""

    def pick(ctx: RequestContext) -> str | None:
        recorder = ctx.recorder
        start = time.perf_counter()
        error: NoReadyEndpoint | None = None
        result: tuple[str, str, str] | None = None
        try:
            candidates = _timed(recorder, FILTER, lambda: fresh_endpoints(monitor.snapshot()))
            if not candidates:
                error = NoReadyEndpoint("no endpoint has fresh metrics")
                return None
            queue = _timed(recorder, QUEUE_SCORER, lambda: queue_scores(candidates))
            kv = _timed(recorder, KV_CACHE_SCORER, lambda: kv_cache_scores(candidates))
            totals = [a + b for a, b in zip(queue, kv, strict=True)]
            chosen = _timed(recorder, PICKER, lambda: max_score_pick(candidates, totals))
            assert chosen is not None  # candidates is not empty
            endpoint = chosen.endpoint
            result = (endpoint.name, namespace, _port(endpoint.address))
            return endpoint.address
        finally:
            recorder.record_scheduler_e2e_latency(time.perf_counter() - start)
            recorder.record_scheduler_attempt(error, ctx.target_model_name or "", result)

    return pick


def _timed(
    recorder: Recorder,
    plugin: tuple[str, str, str],
    run: Callable[[], _T],
) -> _T:
    """Run one plugin and record its latency under its (extension point, type, name)."""
    before = time.perf_counter()
    try:
        return run()
    finally:
        recorder.record_plugin_processing_latency(*plugin, time.perf_counter() - before)


def rewrite_picker(rewrites: Mapping[str, str]) -> Picker:
    """A picker that sends ``model`` to ``rewrites[model]`` and every other model to itself,
    counting each rewrite as upstream's director does (the rule is named ``MODEL=TARGET``)."""
    table = dict(rewrites)

    def pick(ctx: RequestContext) -> str | None:
        model = ctx.model_name or ""
        target = table.get(model)
        if target is not None and target != model:
            ctx.recorder.record_inference_model_rewrite_decision(f"{model}={target}", model, target)
        return target

    return pick


# --- ProcessingResponse builders -----------------------------------------------------------------


def _continue() -> pb.CommonResponse:
    return pb.CommonResponse(status=pb.CommonResponse.CONTINUE)


def _headers_response(phase: str) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(**{phase: pb.HeadersResponse(response=_continue())})


def _has_header(headers: base_pb2.HeaderMap, name: str) -> bool:
    return any(h.key.lower() == name for h in headers.headers)


def _without_destination() -> pb.ProcessingResponse:
    """Continue, dropping a destination header the client sent: only the picker chooses."""
    common = pb.CommonResponse(
        status=pb.CommonResponse.CONTINUE,
        header_mutation=pb.HeaderMutation(remove_headers=[DESTINATION_HEADER]),
        clear_route_cache=True,
    )
    return pb.ProcessingResponse(request_headers=pb.HeadersResponse(response=common))


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, raw_value=value.encode()),
        append_action=_OVERWRITE,
    )


def _trailers_response(phase: str) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(**{phase: pb.TrailersResponse()})


def _body_response(phase: str, common: pb.CommonResponse | None = None) -> pb.ProcessingResponse:
    return pb.ProcessingResponse(**{phase: pb.BodyResponse(response=common or _continue())})


def _streamed_body(phase: str, body: bytes, *, end_of_stream: bool) -> pb.ProcessingResponse:
    """A FULL_DUPLEX_STREAMED body reply: the chunk Envoy passes on."""
    mutation = pb.BodyMutation(
        streamed_response=pb.StreamedBodyResponse(body=body, end_of_stream=end_of_stream)
    )
    return _body_response(phase, pb.CommonResponse(body_mutation=mutation))


def _streamed_bodies(phase: str, body: bytes) -> list[pb.ProcessingResponse]:
    """A whole body as FULL_DUPLEX_STREAMED replies of at most STREAMED_CHUNK_BYTES each."""
    pieces = [body[i : i + STREAMED_CHUNK_BYTES] for i in range(0, len(body), STREAMED_CHUNK_BYTES)]
    pieces = pieces or [b""]
    return [
        _streamed_body(phase, piece, end_of_stream=i == len(pieces) - 1)
        for i, piece in enumerate(pieces)
    ]


def _bad_request() -> pb.ProcessingResponse:
    return _immediate(ErrorCode.BAD_REQUEST, 'the body must be a JSON object with a "model"')


def _immediate(code: ErrorCode, message: str) -> pb.ProcessingResponse:
    """End the request now with ``code``'s HTTP status and an OpenAI-style JSON error body."""
    status = code.http_status
    body = json.dumps({"error": {"message": message, "type": str(code), "code": status}})
    headers = pb.HeaderMutation(
        set_headers=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key="content-type", raw_value=b"application/json"),
                append_action=_OVERWRITE,
            )
        ]
    )
    return pb.ProcessingResponse(
        immediate_response=pb.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=headers,
            body=body.encode(),
            details=f"endpoint_picker_{code}",
        )
    )


# --- one HTTP request ----------------------------------------------------------------------------


class RequestStream:
    """One ext_proc stream (one HTTP request): ProcessingRequests in, ProcessingResponses out.

    :meth:`handle` never raises. ``closed`` turns True once an immediate response was sent (Envoy
    ignores anything after it, so the stream can end).
    """

    def __init__(
        self,
        recorder: Recorder,
        pick: Picker,
        pick_endpoint: EndpointPicker | None = None,
        priority_header: str | None = None,
    ) -> None:
        # The request headers give the fairness id (x-llm-d-inference-fairness-id) and, when
        # named, the priority header: labels of every metric of the request.
        self.ctx = RequestContext(recorder, priority_header=priority_header)
        self._pick = pick
        self._pick_endpoint = pick_endpoint
        self.request_body_mode = BUFFERED
        self.response_body_mode = STREAMED
        self._first = True
        self._held: list[bytes] = []  # request body chunks held back (FULL_DUPLEX_STREAMED)
        self._request_done = False  # request body complete (accepted, or answered)
        self.response_started = False
        self.failed_internally = False
        self.closed = False
        self._response_processing = 0.0  # the picker's own time on the response (seconds)

    def handle(self, message: pb.ProcessingRequest) -> list[pb.ProcessingResponse]:
        if self._first:
            self._first = False
            if message.HasField("protocol_config"):
                self.request_body_mode = message.protocol_config.request_body_mode
                self.response_body_mode = message.protocol_config.response_body_mode
        kind = message.WhichOneof("request")
        if kind is None:
            return []
        began = time.perf_counter()
        if self.failed_internally:
            responses = self._passthrough(kind, message)
        else:
            try:
                responses = self._dispatch(kind, message)
            except Exception as exc:
                responses = self._internal_error(kind, message, exc)
        if kind.startswith("response_"):
            self._response_processing += time.perf_counter() - began
        if message.observability_mode:
            return []  # Envoy ignores replies in observability mode
        if any(r.HasField("immediate_response") for r in responses):
            self.closed = True
        return responses

    def end(self, *, cancelled: bool) -> None:
        """The gRPC stream ended. When Envoy sends no response body (response_body_mode NONE),
        a clean end after the response headers is the request's end. Anything else still open
        went away unfinished (the client left; Envoy may then end the stream cleanly or cancel
        it): cancelled, neither a success nor an error, as upstream."""
        if not cancelled and self.response_started and self.response_body_mode == NONE:
            self.ctx.finish()
        else:
            self.ctx.cancel()
        if self._response_processing > 0:  # as upstream: only requests that got a response
            self.ctx.recorder.record_response_processing_latency(self._response_processing)

    # --- dispatch -----------------------------------------------------------------------------

    def _dispatch(self, kind: str, message: pb.ProcessingRequest) -> list[pb.ProcessingResponse]:
        ctx = self.ctx
        if kind == "request_headers":
            headers = message.request_headers
            ctx.on_request_headers(headers.headers)
            if headers.end_of_stream:  # no body, so no model: the picker cannot route it
                ctx.on_request_body(b"", end_of_stream=True)
                return [_bad_request()]
            if _has_header(headers.headers, DESTINATION_HEADER):
                return [_without_destination()]
            return [_headers_response(kind)]
        if kind == "request_body":
            if self._request_done:  # nothing more to read (a BUFFERED_PARTIAL remainder)
                return self._passthrough(kind, message)
            body = message.request_body
            mode = self.request_body_mode
            if mode == FULL_DUPLEX_STREAMED:
                self._held.append(body.body)  # sent on once the body is complete
            if mode in (BUFFERED, BUFFERED_PARTIAL) or body.end_of_stream:
                return self._complete_request_body(body.body)
            if not ctx.on_request_body(body.body, end_of_stream=False):  # too large
                return [_bad_request()]
            # FULL_DUPLEX_STREAMED: answered once complete; STREAMED: the chunk goes on as is
            return [] if mode == FULL_DUPLEX_STREAMED else [_body_response(kind)]
        if kind == "request_trailers":
            # Trailers end a body whose last chunk had no end_of_stream.
            responses = (
                [] if self._request_done else self._complete_request_body(b"", body_message=False)
            )
            if any(r.HasField("immediate_response") for r in responses):
                return responses
            return [*responses, _trailers_response(kind)]
        if kind == "response_headers":
            self.response_started = True
            headers = message.response_headers
            ctx.on_response_headers(headers.headers, end_of_stream=headers.end_of_stream)
            return [_headers_response(kind)]
        if kind == "response_body":
            self.response_started = True
            body = message.response_body
            ctx.on_response_body(body.body, end_of_stream=body.end_of_stream)
            return self._passthrough(kind, message)
        if kind == "response_trailers":
            self.response_started = True
            ctx.finish()  # trailers end the response: no body chunk had end_of_stream
            return [_trailers_response(kind)]
        return []

    def _complete_request_body(
        self, last: bytes, *, body_message: bool = True
    ) -> list[pb.ProcessingResponse]:
        """The whole request body is here: accept it (or answer 400), pick, route, forward.

        ``body_message``: called for a request_body message (else for trailers, whose caller
        adds the trailers reply). Returns the body replies.
        """
        self._request_done = True
        try:
            return self._route(last, body_message)
        finally:  # accepted or refused: the picker's time on the request, as upstream's
            elapsed = max(0.0, time.monotonic() - self.ctx.received)
            self.ctx.recorder.record_request_processing_latency(elapsed)

    def _route(self, last: bytes, body_message: bool) -> list[pb.ProcessingResponse]:
        ctx = self.ctx
        mode = self.request_body_mode
        held, self._held = self._held, []
        if not ctx.on_request_body(last, end_of_stream=True):
            return [_bad_request()]
        # A body that already went on (STREAMED mode) cannot be rewritten.
        can_rewrite = mode == FULL_DUPLEX_STREAMED or (body_message and mode != STREAMED)
        target = self._pick(ctx) if can_rewrite else None
        ctx.route(target)
        # The endpoint goes in a header, so only while the headers are held (BUFFERED modes).
        destination = None
        if (
            self._pick_endpoint is not None
            and body_message
            and mode in (BUFFERED, BUFFERED_PARTIAL)
        ):
            destination = self._pick_endpoint(ctx)
            if destination is None:
                ctx.fail(ErrorCode.SERVICE_UNAVAILABLE)
                return [_immediate(ErrorCode.SERVICE_UNAVAILABLE, "no model server is ready")]
        rewritten = ctx.target_model_name is not None and ctx.target_model_name != ctx.model_name
        body = b""
        if rewritten:
            request = dict(ctx.request or {})
            request["model"] = ctx.target_model_name
            body = json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode()

        phase = "request_body"
        if mode == FULL_DUPLEX_STREAMED:
            # Envoy removed content-length at the headers in this mode: any length may follow.
            return _streamed_bodies(phase, body if rewritten else b"".join(held))
        if not body_message:
            return []
        # BUFFERED: the headers are still held, so the new length goes with the new body, and
        # the chosen endpoint with them (Envoy then routes again: clear_route_cache).
        headers = [_header(DESTINATION_HEADER, destination)] if destination else []
        if rewritten:
            headers.append(_header("content-length", str(len(body))))
        if not headers:
            return [_body_response(phase)]
        common = pb.CommonResponse(
            header_mutation=pb.HeaderMutation(set_headers=headers),
            body_mutation=pb.BodyMutation(body=body) if rewritten else None,
            clear_route_cache=destination is not None,
        )
        return [_body_response(phase, common)]

    def _passthrough(self, kind: str, message: pb.ProcessingRequest) -> list[pb.ProcessingResponse]:
        """Let the message through unchanged."""
        if kind in ("request_headers", "response_headers"):
            return [_headers_response(kind)]
        if kind in ("request_trailers", "response_trailers"):
            return [_trailers_response(kind)]
        body = message.request_body if kind == "request_body" else message.response_body
        mode = self.request_body_mode if kind == "request_body" else self.response_body_mode
        if mode == FULL_DUPLEX_STREAMED:
            return [_streamed_body(kind, body.body, end_of_stream=body.end_of_stream)]
        return [_body_response(kind)]

    def _internal_error(
        self, kind: str, message: pb.ProcessingRequest, exc: Exception
    ) -> list[pb.ProcessingResponse]:
        """Count the request as Internal; answer 500 before it was forwarded, else pass through."""
        frame = traceback.extract_tb(exc.__traceback__)[-1:] or None
        where = f"{frame[0].filename}:{frame[0].lineno}" if frame else "?"
        # The exception's type and place only: its message might quote the request.
        logger.error("ext_proc handler failed with %s at %s", type(exc).__name__, where)
        self.failed_internally = True
        self.ctx.fail(ErrorCode.INTERNAL)
        if kind.startswith("request_"):
            return [_immediate(ErrorCode.INTERNAL, "the endpoint picker failed")]
        return self._passthrough(kind, message)


class ExtProcServicer(pb_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """The ext_proc service: one :class:`RequestStream` per gRPC stream."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        pick: Picker | None = None,
        pick_endpoint: EndpointPicker | None = None,
        priority_header: str | None = None,
    ) -> None:
        self.recorder = recorder
        self.pick: Picker = pick or rewrite_picker({})
        self.pick_endpoint = pick_endpoint
        self.priority_header = priority_header

    async def Process(  # the gRPC method's name
        self,
        request_iterator: AsyncIterator[pb.ProcessingRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.ProcessingResponse]:
        stream = RequestStream(
            self.recorder, self.pick, self.pick_endpoint, priority_header=self.priority_header
        )
        cancelled = True
        try:
            async for message in request_iterator:
                for response in stream.handle(message):
                    yield response
                if stream.closed:
                    break
            cancelled = False
        finally:
            stream.end(cancelled=cancelled)


# --- serving -------------------------------------------------------------------------------------


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_rewrites(values: Iterable[str]) -> dict[str, str]:
    """``MODEL=TARGET`` strings as a dict; ValueError names a malformed one."""
    rewrites: dict[str, str] = {}
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or not source or not target:
            raise ValueError(f"--model-rewrite takes MODEL=TARGET, got {value!r}")
        rewrites[source] = target
    return rewrites


async def serve(
    *,
    metrics: MetricsServer,
    recorder: Recorder,
    grpc_port: int,
    rewrites: Mapping[str, str],
    monitor: PoolMonitor | None = None,
    priority_header: str | None = None,
    namespace: str = "",
) -> None:
    """Serve ext_proc on ``metrics.host:grpc_port`` and ``metrics`` (the /metrics server) until
    SIGINT or SIGTERM, recording through ``recorder``.

    With a ``monitor`` (recording its gauges and errors through ``recorder``) every request
    is routed to the endpoint upstream's default scorers choose among the monitor's (its
    scheduling attempts labelled with ``namespace``, the pool's).
    ``priority_header``: a request header holding each request's priority (upstream has none;
    default: priority 0)."""
    host = metrics.host or "0.0.0.0"
    server = grpc.aio.server()
    pb_grpc.add_ExternalProcessorServicer_to_server(
        ExtProcServicer(
            recorder,
            pick=rewrite_picker(rewrites),
            pick_endpoint=(
                pool_picker(monitor, namespace=namespace) if monitor is not None else None
            ),
            priority_header=priority_header,
        ),
        server,
    )
    bound = server.add_insecure_port(_address(host, grpc_port))
    async with metrics, contextlib.AsyncExitStack() as stack:
        if monitor is not None:
            await stack.enter_async_context(monitor)
        await server.start()
        try:
            logger.info("ext_proc on %s, metrics on %s/metrics", _address(host, bound), metrics.url)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()
        finally:
            await server.stop(grace=2)


#: The /metrics server's flags (``--host`` is the gRPC server's too), the pool's and the schema's,
#: as ``inference-metrics serve`` has them (``inference_metrics.options``).
SERVER_OPTIONS = ServerOptions(default_host="127.0.0.1", port_flag="--metrics-port")
POOL_OPTIONS = PoolOptions(endpoint_flag="--pool-endpoint", default_pool_name="default-pool")
SCHEMA_OPTIONS = SchemaOptions(several=True)


def build_parser() -> CommandParser:
    parser = CommandParser(description=__doc__.split("\n\n")[0])
    SERVER_OPTIONS.add_to(parser)
    parser.add_argument("--grpc-port", type=int, default=9002, help="ext_proc port (9002)")
    parser.add_argument(
        "--model-rewrite",
        action="append",
        default=[],
        metavar="MODEL=TARGET",
        help="send requests for MODEL to TARGET (repeatable)",
    )
    parser.add_argument(
        "--metrics-token-file",
        metavar="PATH",
        help="the same as --auth token --token-file PATH (this example's earlier spelling)",
    )
    parser.add_argument(
        "--metrics-backend",
        choices=("prometheus", "noop"),
        default="prometheus",
        help="where metrics go (prometheus); noop records nothing (/metrics serves an empty "
        "page), to measure what metrics cost (benchmarks/bench_gateway.py)",
    )
    SCHEMA_OPTIONS.add_to(parser)
    parser.add_argument(
        "--priority-header",
        metavar="NAME",
        help="a request header holding the priority as an integer (default: none, priority 0; "
        "the fairness id is always read from x-llm-d-inference-fairness-id)",
    )
    POOL_OPTIONS.add_to(parser)
    parser.add_argument("--log-level", default="INFO", help="logging level (INFO)")
    return parser


def parse_args(parser: CommandParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.metrics_token_file:
        if args.auth not in (None, "token") or args.token_file:
            parser.error(
                "--metrics-token-file is short for --auth token --token-file PATH: "
                "give one or the other"
            )
        args.auth, args.token_file = "token", args.metrics_token_file
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        if not 0 <= args.grpc_port <= 65535:
            raise OptionError(f"--grpc-port must be in 0..65535, got {args.grpc_port}")
        rewrites = parse_rewrites(args.model_rewrite)
        registry = CollectorRegistry()
        metrics = SERVER_OPTIONS.server(args, registry)
        monitor = POOL_OPTIONS.monitor(args)
        schemas = SCHEMA_OPTIONS.schemas(args)
    except (OptionError, ValueError) as exc:
        parser.error(str(exc))
    backend = NoopBackend() if args.metrics_backend == "noop" else PrometheusBackend(registry)
    recorder = Recorder(backend, schema=schemas)
    if monitor is not None:
        monitor.recorder = recorder  # its errors too: recorded through the Recorder
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                metrics=metrics,
                recorder=recorder,
                grpc_port=args.grpc_port,
                rewrites=rewrites,
                monitor=monitor,
                priority_header=args.priority_header,
                namespace=args.kube_namespace or "",
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
