"""Inter-token latency from streamed traffic (llm-d-router's ``request_streaming_itl_seconds``):
through the lifecycle with the fake clock, through ``start_request``, and through the ASGI
middleware under real uvicorn."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from inference_metrics import PrometheusBackend, Recorder, RequestContext
from inference_metrics.asgi import MetricsMiddleware
from inference_metrics.instrument import start_request
from inference_metrics.lifecycle import MAX_HELD_GAPS

from .clocks import FakeClock
from .expo import Family, parse_registry
from .uvicorn_harness import serve

ITL = "llm_d_epp_request_streaming_itl_seconds"
LABELS = {
    "model_name": "m",
    "target_model_name": "t",
    "fairness_id": "default-flow",
    "priority": "0",
}
# Binary fractions: their sums are exact.
GAPS = (0.25, 0.5, 0.125, 2.0)


class World:
    def __init__(self, schema: str = "llm-d-router", clock: FakeClock | None = None) -> None:
        self.registry = CollectorRegistry()
        self.recorder = Recorder(PrometheusBackend(self.registry), schema=schema)
        self.clock = clock or FakeClock()

    def routed(self, content_type: str | None = "text/event-stream") -> RequestContext:
        ctx = RequestContext(self.recorder, clock=self.clock)
        ctx.on_request_headers({})
        assert ctx.on_request_body(b'{"model": "m", "stream": true}', end_of_stream=True)
        ctx.route("t")
        if content_type is not None:
            ctx.on_response_headers({":status": "200", "content-type": content_type})
        return ctx

    def families(self) -> dict[str, Family]:
        return parse_registry(self.registry)

    def itl(self, suffix: str, **labels: str) -> float:
        return self.families()[ITL].value(ITL + suffix, **(labels or LABELS))


def event(i: int) -> bytes:
    """A chat completion chunk: like OpenAI's and vLLM's, it names the model that serves it."""
    return b'data: {"model": "t", "choices": [{"delta": {"content": "t%d"}}]}\n\n' % i


def stream(world: World, ctx: RequestContext, gaps: tuple[float, ...]) -> None:
    """A first chunk, then one chunk after each gap, then the (empty) end of stream."""
    ctx.on_response_body(event(0), end_of_stream=False)
    for i, gap in enumerate(gaps, start=1):
        world.clock.advance(gap)
        ctx.on_response_body(event(i), end_of_stream=False)
    world.clock.advance(1.0)
    ctx.on_response_body(b"", end_of_stream=True)


def test_each_later_streamed_chunk_observes_the_time_since_the_previous_one() -> None:
    world = World()
    stream(world, world.routed(), GAPS)
    assert world.itl("_count") == len(GAPS)  # the first chunk only starts the count
    assert world.itl("_sum") == sum(GAPS)
    assert world.itl("_bucket", **LABELS, le="0.2") == 1  # 0.125
    assert world.itl("_bucket", **LABELS, le="0.3") == 2  # and 0.25
    assert world.itl("_bucket", **LABELS, le="1.0") == 3  # and 0.5
    assert world.itl("_bucket", **LABELS, le="2.0") == 4  # and 2.0


def test_the_empty_end_of_stream_chunk_is_not_an_inter_token_gap() -> None:
    world = World()
    ctx = world.routed()
    ctx.on_response_body(event(0), end_of_stream=False)
    world.clock.advance(3.0)
    ctx.on_response_body(b"", end_of_stream=True)
    assert ITL not in world.families()


def test_a_non_streamed_response_in_several_chunks_observes_no_inter_token_latency() -> None:
    world = World()
    ctx = world.routed(content_type="application/json")
    ctx.on_response_body(b'{"choices": [], ', end_of_stream=False)
    world.clock.advance(0.5)
    usage = b'"usage": {"prompt_tokens": 1, "completion_tokens": 2}}'
    ctx.on_response_body(usage, end_of_stream=False)
    world.clock.advance(0.5)
    ctx.on_response_body(b"", end_of_stream=True)
    assert ITL not in world.families()
    assert "llm_d_epp_request_ttft_seconds" in world.families()  # the request did complete


def test_a_stream_told_by_its_first_bytes_counts_the_gap_after_a_too_short_first_chunk() -> None:
    world = World()
    ctx = world.routed(content_type=None)
    ctx.on_response_body(b"da", end_of_stream=False)  # cannot tell yet what the body is
    world.clock.advance(0.25)
    ctx.on_response_body(b'ta: {"choices": []}\n\n', end_of_stream=False)
    world.clock.advance(0.5)
    ctx.on_response_body(event(1), end_of_stream=True)
    assert ctx.streamed
    assert world.itl("_count") == 2
    assert world.itl("_sum") == 0.75


def test_a_failed_stream_observes_no_inter_token_latency() -> None:
    world = World()
    ctx = RequestContext(world.recorder, clock=world.clock)
    ctx.on_request_headers({})
    assert ctx.on_request_body(b'{"model": "m"}', end_of_stream=True)
    ctx.route("t")
    ctx.on_response_headers({":status": "503", "content-type": "text/event-stream"})
    stream(world, ctx, GAPS)
    assert ITL not in world.families()
    assert "llm_d_epp_request_error_total" in world.families()


def test_a_clock_going_backwards_observes_nothing_and_does_not_raise() -> None:
    world = World()
    ctx = world.routed()
    ctx.on_response_body(event(0), end_of_stream=False)
    world.clock.advance(-1.0)
    ctx.on_response_body(event(1), end_of_stream=False)
    world.clock.advance(0.5)
    ctx.on_response_body(event(2), end_of_stream=True)
    assert world.itl("_count") == 1  # only the gap after the backwards reading
    assert world.itl("_sum") == 0.5


def test_the_gaps_are_observed_under_the_requests_fairness_id_and_priority() -> None:
    world = World()
    ctx = RequestContext(world.recorder, clock=world.clock, priority_header="x-priority")
    ctx.on_request_headers({"x-llm-d-inference-fairness-id": "tenant-a", "x-priority": "3"})
    assert ctx.on_request_body(b'{"model": "m"}', end_of_stream=True)
    ctx.route("t")
    ctx.on_response_headers({"content-type": "text/event-stream"})
    stream(world, ctx, (0.25,))
    labels = {**LABELS, "fairness_id": "tenant-a", "priority": "3"}
    assert world.itl("_sum", **labels) == 0.25


def test_a_schema_without_the_histogram_reads_the_clock_no_more_for_a_longer_stream() -> None:
    readings = []
    for chunks in (2, 10):
        world = World(schema="gie-v1.5", clock=FakeClock(0.0, step=1.0))  # now: readings so far
        assert not world.recorder.records_inter_token_latency
        stream(world, world.routed(), (0.0,) * (chunks - 1))
        readings.append(world.clock.now)
        assert not any("itl" in name for name in world.families())
    assert readings[0] == readings[1]


def admitted(world: World) -> RequestContext:
    ctx = RequestContext(world.recorder, clock=world.clock)
    ctx.on_request_headers({})
    assert ctx.on_request_body(b'{"model": "m", "stream": true}', end_of_stream=True)
    ctx.admit()
    ctx.on_response_headers({"content-type": "text/event-stream"})
    return ctx


def anonymous(i: int) -> bytes:
    """An event that names no model."""
    return b'data: {"choices": [{"delta": {"content": "t%d"}}]}\n\n' % i


def test_gaps_before_the_target_is_known_are_observed_under_the_target_at_the_end() -> None:
    world = World()
    ctx = admitted(world)
    ctx.on_response_body(anonymous(0), end_of_stream=False)
    for i, gap in enumerate(GAPS, start=1):
        world.clock.advance(gap)
        ctx.on_response_body(anonymous(i), end_of_stream=False)
    assert ITL not in world.families()  # no target yet: held
    ctx.on_response_body(b"", end_of_stream=True)
    labels = {**LABELS, "target_model_name": "m"}  # named by no event: the model itself
    assert world.itl("_count", **labels) == len(GAPS)
    assert world.itl("_sum", **labels) == sum(GAPS)


def test_gaps_held_before_the_first_event_naming_the_model_are_observed_under_it() -> None:
    world = World()
    ctx = admitted(world)
    ctx.on_response_body(anonymous(0), end_of_stream=False)
    world.clock.advance(0.25)
    ctx.on_response_body(anonymous(1), end_of_stream=False)
    world.clock.advance(0.5)
    ctx.on_response_body(event(2), end_of_stream=False)  # names "t": routed there
    world.clock.advance(2.0)
    ctx.on_response_body(event(3), end_of_stream=False)
    assert world.itl("_count") == 3
    assert world.itl("_sum") == 2.75
    ctx.finish()


def test_at_most_max_held_gaps_are_held_for_a_stream_without_a_target() -> None:
    world = World()
    ctx = admitted(world)
    ctx.on_response_body(anonymous(0), end_of_stream=False)
    for i in range(MAX_HELD_GAPS + 10):
        world.clock.advance(0.5)
        ctx.on_response_body(anonymous(i), end_of_stream=False)
    ctx.finish()
    labels = {**LABELS, "target_model_name": "m"}
    assert world.itl("_count", **labels) == MAX_HELD_GAPS
    assert world.itl("_sum", **labels) == MAX_HELD_GAPS * 0.5


def test_handler_parts_after_the_first_observe_the_time_since_the_previous_part() -> None:
    world = World()
    with start_request(world.recorder, "m", "t", clock=world.clock) as ctx:
        ctx.on_response_part(size=4)
        for gap in GAPS:
            world.clock.advance(gap)
            ctx.on_response_part(size=4)
    assert world.itl("_count") == len(GAPS)
    assert world.itl("_sum") == sum(GAPS)


def test_the_middleware_under_uvicorn_observes_each_streamed_event_gap() -> None:
    world = World()

    async def events() -> AsyncIterator[bytes]:
        yield event(0)
        for i, gap in enumerate(GAPS, start=1):
            world.clock.advance(gap)  # the model server takes this long for the next token
            yield event(i)
        yield b"data: " + json.dumps({"usage": {"completion_tokens": 5}}).encode() + b"\n\n"

    async def chat(request: Request) -> StreamingResponse:
        await request.body()
        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.add_middleware(MetricsMiddleware, recorder=world.recorder, clock=world.clock)
    with serve(app) as url:
        response = httpx.post(
            f"{url}/v1/chat/completions", json={"model": "m", "stream": True}, timeout=10
        )
        assert response.status_code == 200
        assert response.text.count("data: ") == len(GAPS) + 2
    # Admitted without a target; routed to the model the first event names ("t").
    assert world.itl("_count") == len(GAPS) + 1  # the usage event came 0 s later
    assert world.itl("_sum") == sum(GAPS)


def test_the_bound_observer_refuses_a_negative_gap_naming_it_and_records_nothing() -> None:
    world = World()
    observe = world.recorder.inter_token_latency_observer("m", "t")
    with pytest.raises(ValueError, match=r"seconds.*-0\.5"):
        observe(-0.5)
    assert ITL not in world.families()
    observe(0.25)
    assert world.itl("_sum") == 0.25
