"""The official OpenAI Python client against apps served by uvicorn that linger after
``data: [DONE]`` (a generator that still awaits after its last event): the client reads to the
marker and closes at once, before the body ends. Every stream must be recorded whole, through
:class:`MetricsMiddleware` and through the decorator: exact counts, token sums and the bytes the
client received up to and including the marker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from inference_metrics import PrometheusBackend, Recorder, instrument_handler
from inference_metrics.asgi import MetricsMiddleware
from tests.expo import Family, parse_registry
from tests.openai_client import COMPLETED, CountingTransport, openai_client, stream_with_usage
from tests.uvicorn_harness import serve

STREAMS = 20
LINGER = 0.3  # seconds between data: [DONE] and the end of the body


def events(body: dict[str, Any], *, chat: bool) -> Iterator[str]:
    """An OpenAI-style event stream: one event per output token (``max_tokens``), the usage
    (prompt tokens: the prompt's or messages' words), then ``data: [DONE]``."""
    tokens = int(body["max_tokens"])
    if chat:
        prompt = sum(len(m["content"].split()) for m in body["messages"])
    else:
        prompt = len(body["prompt"].split())
    kind = "chat.completion.chunk" if chat else "text_completion"
    for i in range(tokens):
        choice = {"index": 0, "delta": {"content": f"été{i} "}} if chat else {"text": f"été{i} "}
        chunk = {"id": "x", "object": kind, "created": 0, "model": body["model"]}
        chunk["choices"] = [{**choice, "index": 0, "finish_reason": None}]
        yield "data: " + json.dumps(chunk, ensure_ascii=False) + "\n\n"
    usage = {"prompt_tokens": prompt, "completion_tokens": tokens, "total_tokens": prompt + tokens}
    final = {"id": "x", "object": kind, "created": 0, "model": body["model"], "choices": []}
    yield "data: " + json.dumps({**final, "usage": usage}) + "\n\n"
    yield "data: [DONE]\n\n"


async def lingering(body: dict[str, Any], *, chat: bool) -> AsyncIterator[str]:
    """:func:`events`, then a pause before the generator ends (and with it the body)."""
    for event in events(body, chat=chat):
        yield event
        await asyncio.sleep(0)
    await asyncio.sleep(LINGER)


def app(stream: Callable[[dict[str, Any], bool], AsyncIterator[str]]) -> Starlette:
    def endpoint(chat: bool) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            body = json.loads(await request.body())
            return StreamingResponse(stream(body, chat), media_type="text/event-stream")

        return handle

    return Starlette(
        routes=[
            Route("/v1/chat/completions", endpoint(True), methods=["POST"]),
            Route("/v1/completions", endpoint(False), methods=["POST"]),
        ]
    )


@dataclass
class Sent:
    prompt_tokens: int = 0
    completion_tokens: int = 0


def send_streams(base_url: str, transport: CountingTransport) -> Sent:
    """:data:`STREAMS` streamed requests (chat and completions in turn) with the OpenAI client,
    usage included; returns the token sums the client saw."""
    sent = Sent()
    with openai_client(base_url + "/v1", transport) as client:
        for i in range(STREAMS):
            words, max_tokens = " ".join(["word"] * (i % 5 + 1)), i % 4 + 2
            usage = stream_with_usage(
                client, chat=i % 2 == 1, model="m", prompt=words, max_tokens=max_tokens
            )
            assert (usage.prompt_tokens, usage.completion_tokens) == (i % 5 + 1, max_tokens)
            sent.prompt_tokens += usage.prompt_tokens
            sent.completion_tokens += usage.completion_tokens
    return sent


def value(families: dict[str, Family], family: str, suffix: str = "") -> float:
    return families[family].value(family + suffix, model_name="m", target_model_name="m")


def assert_every_stream_recorded(
    registry: CollectorRegistry, transport: CountingTransport, sent: Sent
) -> None:
    received = transport.received
    assert len(received) == STREAMS
    # The client left at data: [DONE], before the body ended.
    assert not any(r.ended for r in received), received
    families = parse_registry(registry)
    assert value(families, "inference_model_request_total") == STREAMS
    for family in COMPLETED:
        assert value(families, family, "_count") == STREAMS, family
    assert value(families, "inference_model_input_tokens", "_sum") == sent.prompt_tokens
    assert value(families, "inference_model_output_tokens", "_sum") == sent.completion_tokens
    assert value(families, "inference_model_response_sizes", "_sum") == sum(
        r.size for r in received
    )
    running = families["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0
    assert "inference_model_request_error_total" not in families


@pytest.fixture
def recorder(registry: CollectorRegistry) -> Recorder:
    return Recorder(PrometheusBackend(registry))


def test_the_middleware_records_every_stream_the_client_left_at_done(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    def stream(body: dict[str, Any], chat: bool) -> AsyncIterator[str]:
        return lingering(body, chat=chat)

    transport = CountingTransport()
    with serve(MetricsMiddleware(app(stream), recorder=recorder)) as url:
        sent = send_streams(url, transport)
    assert_every_stream_recorded(registry, transport, sent)


def test_the_decorator_records_every_stream_the_client_left_at_done(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    @instrument_handler(recorder, model="body")
    async def measured(body: dict[str, Any], chat: bool) -> AsyncIterator[str]:
        async for event in lingering(body, chat=chat):
            yield event

    transport = CountingTransport()
    with serve(app(measured)) as url:
        sent = send_streams(url, transport)
    assert_every_stream_recorded(registry, transport, sent)
