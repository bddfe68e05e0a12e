"""A stream is complete at its end marker (``data: [DONE]``, a Responses API end event), whoever
closes first: the lifecycle, the ASGI middleware and the decorator, in every order of marker, end
of stream, disconnect and failure, and under threads."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.registry import CollectorRegistry

from inference_metrics import (
    ErrorCode,
    PrometheusBackend,
    Recorder,
    RequestContext,
    Usage,
    instrument_handler,
)
from inference_metrics.asgi import MetricsMiddleware

from .clocks import FakeClock
from .expo import Family, parse_registry

M = {"model_name": "m", "target_model_name": "m"}


def event(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


HEAD = event({"model": "m", "choices": [{"delta": {"content": "a"}}], "usage": None}) + event(
    {"model": "m", "choices": [{"delta": {"content": "b"}}], "usage": None}
)
USAGE = event(
    {
        "model": "m",
        "choices": [],
        "usage": {
            "prompt_tokens": 4,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
    }
)
MARKER = b"data: [DONE]\n\n"
STREAM = HEAD + USAGE + MARKER  # what the client reads before it closes
TAIL = b": the server says goodbye\n\n"  # sent after the marker (rare)


@dataclass
class Request:
    registry: CollectorRegistry
    clock: FakeClock
    ctx: RequestContext

    def families(self) -> dict[str, Family]:
        return parse_registry(self.registry)

    def snapshot(self) -> dict[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
        """Every sample, by family."""
        return {name: family.samples for name, family in self.families().items()}

    def value(self, family: str, suffix: str = "") -> float | None:
        found = self.families().get(family)
        if found is None:
            return None
        return found.samples.get((family + suffix, frozenset(M.items())))

    def running(self) -> float:
        return running(self.registry)

    def completions(self) -> float:
        return self.value("inference_model_request_duration_seconds", "_count") or 0.0

    def errors(self) -> float:
        found = self.families().get("inference_model_request_error_total")
        return 0.0 if found is None else sum(found.samples.values())


def total(registry: CollectorRegistry, family: str, suffix: str = "_sum") -> float:
    """A histogram's ``_sum`` (or ``suffix``) for model m."""
    return parse_registry(registry)[family].value(family + suffix, **M)


def running(registry: CollectorRegistry) -> float:
    family = parse_registry(registry)["inference_model_running_requests"]
    return family.value("inference_model_running_requests", model_name="m")


def streaming_request(clock: Callable[[], float] | None = None) -> Request:
    """A routed request of model m whose response is an event stream; the clock at 100 s."""
    registry = CollectorRegistry()
    fake = FakeClock(100.0)
    ctx = RequestContext(Recorder(PrometheusBackend(registry)), clock=clock or fake)
    ctx.on_request_headers({":path": "/v1/chat/completions"})
    assert ctx.on_request_body(b'{"model": "m", "stream": true}', end_of_stream=True)
    ctx.route()
    ctx.on_response_headers({":status": "200", "content-type": "text/event-stream"})
    return Request(registry, fake, ctx)


@pytest.fixture
def request_() -> Request:
    return streaming_request()


# --- the lifecycle --------------------------------------------------------------------------------


def test_the_marker_completes_the_stream_when_it_goes_by(request_: Request) -> None:
    ctx, clock = request_.ctx, request_.clock
    clock.advance(0.5)
    ctx.on_response_body(HEAD, end_of_stream=False)  # first token at 100.5
    clock.advance(1.5)
    ctx.on_response_body(USAGE + MARKER, end_of_stream=False)  # the marker at 102.0
    assert ctx.finished
    assert request_.value("inference_model_request_duration_seconds", "_sum") == 2.0
    assert request_.value("inference_model_request_ttft_seconds", "_sum") == 0.5
    assert request_.value("inference_model_request_tpot_seconds", "_sum") == 1.5 / 2
    assert request_.value("inference_model_input_tokens", "_sum") == 4
    assert request_.value("inference_model_output_tokens", "_sum") == 3
    assert request_.value("inference_model_prompt_cached_tokens", "_sum") == 2
    assert request_.value("inference_model_response_sizes", "_sum") == len(STREAM)
    assert request_.running() == 0


@pytest.mark.parametrize("after", ["end_of_stream", "cancel", "fail", "finish", "more_bytes"])
def test_nothing_after_the_marker_changes_the_completed_request(
    request_: Request, after: str
) -> None:
    ctx = request_.ctx
    ctx.on_response_body(STREAM, end_of_stream=False)
    before = request_.snapshot()
    request_.clock.advance(0.3)  # a model server finishing up after [DONE]
    if after == "end_of_stream":
        ctx.on_response_body(b"", end_of_stream=True)
    elif after == "cancel":
        ctx.cancel()  # the client closed at the marker, Envoy cancels the ext_proc stream
    elif after == "fail":
        ctx.fail(ErrorCode.INTERNAL)
    elif after == "finish":
        ctx.finish()
    else:
        ctx.on_response_body(TAIL, end_of_stream=True)
    assert request_.snapshot() == before
    assert ctx.error_code is None


def test_bytes_after_the_marker_in_its_chunk_are_not_counted(request_: Request) -> None:
    request_.ctx.on_response_body(STREAM + TAIL, end_of_stream=False)
    assert request_.value("inference_model_response_sizes", "_sum") == len(STREAM)


def test_a_buffered_body_is_counted_up_to_its_marker(request_: Request) -> None:
    request_.clock.advance(1.0)
    request_.ctx.on_response_body(STREAM + TAIL, end_of_stream=True)  # Envoy BUFFERED
    assert request_.value("inference_model_response_sizes", "_sum") == len(STREAM)
    assert request_.completions() == 1


def test_a_cancel_before_the_marker_stays_a_cancellation(request_: Request) -> None:
    ctx = request_.ctx
    ctx.on_response_body(HEAD + USAGE, end_of_stream=False)
    ctx.cancel()
    ctx.on_response_body(MARKER, end_of_stream=True)
    assert request_.running() == 0
    assert request_.completions() == 0
    assert request_.errors() == 0


def test_an_error_response_is_not_completed_by_a_marker_in_its_body(request_: Request) -> None:
    ctx = RequestContext(request_.ctx.recorder, clock=request_.clock)
    assert ctx.on_request_body(b'{"model": "m"}', end_of_stream=True)
    ctx.route()
    ctx.on_response_headers({":status": "500", "content-type": "text/event-stream"})
    ctx.on_response_body(event({"error": {"message": "overloaded"}}) + MARKER, end_of_stream=False)
    assert not ctx.finished
    ctx.on_response_body(b"", end_of_stream=True)
    assert request_.errors() == 1
    assert request_.completions() == 0


def test_a_responses_api_stream_is_complete_at_response_completed(request_: Request) -> None:
    ctx = request_.ctx
    completed = {
        "type": "response.completed",
        "response": {"model": "m", "usage": {"input_tokens": 5, "output_tokens": 2}},
    }
    body = b"event: response.completed\n" + event(completed)
    ctx.on_response_body(body, end_of_stream=False)
    assert ctx.finished
    assert request_.value("inference_model_output_tokens", "_sum") == 2
    assert request_.value("inference_model_response_sizes", "_sum") == len(body)


# --- every order of marker, end of stream, disconnect and failure ---------------------------------


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted(c % (len(data) + 1) for c in cuts)
    pieces = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    return [p for p in pieces if p]


#: What can happen to a streamed request besides its next body chunk arriving.
OTHERS = ("end_of_stream", "cancel", "fail", "finish")


@settings(max_examples=300, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    tail=st.booleans(),
    others=st.lists(st.tuples(st.integers(0, 8), st.sampled_from(OTHERS)), max_size=4),
)
def test_any_order_of_events_ends_the_request_once_as_the_first_end_says(
    cuts: list[int], tail: bool, others: list[tuple[int, str]]
) -> None:
    request = streaming_request()
    ctx = request.ctx
    chunks = cut(STREAM + (TAIL if tail else b""), cuts)
    # Chunks arrive in order; the other events go in between them, at the drawn positions.
    timeline: list[bytes | str] = list(chunks)
    for position, other in sorted(others, key=lambda o: -o[0]):
        timeline.insert(min(position, len(timeline)), other)
    delivered = 0
    expected: tuple[str, int] | None = None  # how the request ends: (kind, bytes counted)
    for step in timeline:
        request.clock.advance(0.125)
        if isinstance(step, bytes):
            delivered += len(step)
            ctx.on_response_body(step, end_of_stream=False)
            if expected is None and delivered >= len(STREAM):
                expected = ("completed", len(STREAM))
        elif step == "end_of_stream":
            ctx.on_response_body(b"", end_of_stream=True)
            if expected is None:
                expected = ("completed", min(delivered, len(STREAM)))
        elif step == "finish":
            ctx.finish()
            if expected is None:
                expected = ("completed", min(delivered, len(STREAM)))
        elif step == "cancel":
            ctx.cancel()
            expected = expected or ("cancelled", 0)
        else:
            ctx.fail(ErrorCode.INTERNAL)
            expected = expected or ("failed", 0)
    ctx.cancel()  # the ext_proc stream ends; Envoy may cancel it whatever happened before
    expected = expected or ("cancelled", 0)
    assert ctx.finished
    assert request.running() == 0
    kind, size = expected
    assert request.completions() == (kind == "completed")
    assert request.errors() == (kind == "failed")
    if kind == "completed":
        assert request.value("inference_model_response_sizes", "_sum") == size
        assert request.value("inference_model_request_total") == 1


# --- threads --------------------------------------------------------------------------------------


class BlockingClock:
    """A clock whose next reading in ``thread`` waits until :attr:`release` is set (bounded):
    lets another thread act in the middle of an end."""

    def __init__(self) -> None:
        self.now = 100.0
        self.armed: threading.Thread | None = None
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> float:
        if self.armed is threading.current_thread():
            self.armed = None
            self.reached.set()
            assert self.release.wait(10)
        self.now += 0.125
        return self.now


def test_a_failure_from_another_thread_while_the_marker_completes_is_not_counted() -> None:
    clock = BlockingClock()
    request = streaming_request(clock)
    ctx = request.ctx
    ctx.on_response_body(HEAD + USAGE, end_of_stream=False)

    def marker() -> None:
        clock.armed = threading.current_thread()  # blocks inside the completion
        ctx.on_response_body(MARKER, end_of_stream=False)

    thread = threading.Thread(target=marker)
    thread.start()
    assert clock.reached.wait(10)
    ctx.fail(ErrorCode.INTERNAL)  # another thread, in the middle of the completion
    ctx.cancel()
    clock.release.set()
    thread.join(10)
    assert (request.completions(), request.errors(), request.running()) == (1, 0, 0)


def race(
    barrier: threading.Barrier, end: Callable[[RequestContext], None], ctx: RequestContext
) -> None:
    barrier.wait(10)
    end(ctx)


def test_racing_ends_from_many_threads_end_each_request_once() -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    ends: list[Callable[[RequestContext], None]] = [
        lambda ctx: ctx.on_response_body(MARKER, end_of_stream=False),
        lambda ctx: ctx.on_response_body(b"", end_of_stream=True),
        RequestContext.cancel,
        lambda ctx: ctx.fail(ErrorCode.INTERNAL),
    ]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for _ in range(100):
            ctx = RequestContext(recorder)
            assert ctx.on_request_body(b'{"model": "m"}', end_of_stream=True)
            ctx.route()
            ctx.on_response_headers({"content-type": "text/event-stream"})
            ctx.on_response_body(HEAD + USAGE, end_of_stream=False)
            barrier = threading.Barrier(len(ends))
            threads = [threading.Thread(target=race, args=(barrier, end, ctx)) for end in ends]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
    finally:
        sys.setswitchinterval(interval)
    families = parse_registry(registry)
    assert running(registry) == 0
    durations = families.get("inference_model_request_duration_seconds")
    completed = (
        0.0
        if durations is None
        else durations.samples.get(
            ("inference_model_request_duration_seconds_count", frozenset(M.items())), 0.0
        )
    )
    errors = families.get("inference_model_request_error_total")
    failed = 0.0 if errors is None else sum(errors.samples.values())
    assert completed + failed <= 100
    assert (
        families["inference_model_request_total"].value("inference_model_request_total", **M) == 100
    )


# --- the ASGI middleware, in process --------------------------------------------------------------


def run_app(
    app: Callable[..., Any], incoming: list[dict[str, Any]], registry: CollectorRegistry
) -> list[dict[str, Any]]:
    """``app`` behind the middleware, with ``incoming`` as what the server receives (then
    ``http.disconnect`` for ever); what reached the server."""
    sent: list[dict[str, Any]] = []
    messages = list(incoming)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0)
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    middleware = MetricsMiddleware(app, recorder=Recorder(PrometheusBackend(registry)))
    with pytest.raises(RuntimeError) if any(m.get("raise") for m in incoming) else _nothing():
        asyncio.run(middleware(scope, receive, send))
    return sent


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


REQUEST = {"type": "http.request", "body": b'{"model": "m", "stream": true}', "more_body": False}
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/event-stream")],
}


@pytest.mark.parametrize(
    "after",
    ["disconnect", "raise", "return_without_end", "end", "cancelled"],
)
def test_the_middleware_completes_at_the_marker_whatever_the_app_does_after(after: str) -> None:
    registry = CollectorRegistry()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(START)
        await send({"type": "http.response.body", "body": STREAM, "more_body": True})
        if after == "disconnect":
            assert (await receive())["type"] == "http.disconnect"
        elif after == "raise":
            raise RuntimeError("the app failed after the marker")
        elif after == "end":
            await send({"type": "http.response.body", "body": TAIL, "more_body": False})
        elif after == "cancelled":
            raise asyncio.CancelledError

    incoming: list[dict[str, Any]] = [dict(REQUEST)]
    if after == "raise":
        incoming[0]["raise"] = True
    if after == "cancelled":
        with pytest.raises(asyncio.CancelledError):
            run_app(app, incoming, registry)
    else:
        run_app(app, incoming, registry)
    assert total(registry, "inference_model_request_duration_seconds", "_count") == 1
    assert total(registry, "inference_model_response_sizes") == len(STREAM)
    assert "inference_model_request_error_total" not in parse_registry(registry)
    assert running(registry) == 0


def test_the_middleware_cancels_a_stream_the_client_left_before_the_marker() -> None:
    registry = CollectorRegistry()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(START)
        await send({"type": "http.response.body", "body": HEAD + USAGE, "more_body": True})
        assert (await receive())["type"] == "http.disconnect"
        await send({"type": "http.response.body", "body": MARKER, "more_body": False})

    run_app(app, [REQUEST], registry)
    families = parse_registry(registry)
    assert "inference_model_request_duration_seconds" not in families
    assert "inference_model_request_error_total" not in families
    assert running(registry) == 0


# --- the decorator --------------------------------------------------------------------------------


def measured_stream(recorder: Recorder, clock: FakeClock) -> Callable[..., Generator[str]]:
    @instrument_handler(recorder, clock=clock)
    def handler(model: str) -> Generator[str]:
        clock.advance(0.25)
        yield HEAD.decode()
        clock.advance(0.75)
        yield (USAGE + MARKER).decode()
        clock.advance(0.3)  # the handler finishes up after its last event
        yield TAIL.decode()

    return handler


def test_a_decorated_stream_closed_after_its_marker_is_complete(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    clock = FakeClock(100.0)
    stream = measured_stream(recorder, clock)("m")
    for item in stream:
        if "[DONE]" in item:
            break  # the consumer stops at the marker, as the OpenAI client does
    stream.close()
    assert total(registry, "inference_model_request_duration_seconds") == 1.0
    assert total(registry, "inference_model_response_sizes") == len(STREAM)
    assert total(registry, "inference_model_output_tokens") == 3


def test_a_decorated_stream_run_to_its_end_counts_up_to_its_marker(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    clock = FakeClock(100.0)
    assert "".join(measured_stream(recorder, clock)("m")).encode() == STREAM + TAIL
    assert total(registry, "inference_model_request_duration_seconds") == 1.0
    assert total(registry, "inference_model_response_sizes") == len(STREAM)


def test_a_decorated_thread_pool_stream_cancelled_after_its_marker_stays_complete(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    produced = threading.Event()
    finishing = threading.Event()

    @instrument_handler(recorder)
    def handler(model: str) -> Iterator[bytes]:
        yield STREAM
        produced.set()
        assert finishing.wait(10)  # the server cancels while the handler finishes up
        yield TAIL

    async def consume() -> None:
        stream = handler("m")
        assert isinstance(stream, AsyncIterator)
        assert await anext(stream) == STREAM
        task = asyncio.ensure_future(anext(stream))
        await asyncio.to_thread(produced.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        finishing.set()

    asyncio.run(consume())
    assert total(registry, "inference_model_request_duration_seconds", "_count") == 1
    assert running(registry) == 0


def test_usage_reported_by_the_marker_chunk_is_kept(request_: Request) -> None:
    request_.ctx.on_response_body(HEAD + USAGE + MARKER, end_of_stream=False)
    assert request_.ctx.usage == Usage(4, 3, 2)
