"""MetricsMiddleware on real uvicorn serving FastAPI and Starlette apps, measured by httpx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client.registry import CollectorRegistry
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response
from starlette.responses import StreamingResponse as StarletteStreamingResponse
from starlette.routing import Route

from inference_metrics import Recorder
from inference_metrics.asgi import MetricsMiddleware
from tests.expo import Family, parse_registry
from tests.uvicorn_harness import serve, wait_for

SERVED = "served-model-v2"  # the model the responses name (the target)


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion}


def completion(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "model": SERVED,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "日本語"}}],
        "usage": usage(7, body.get("max_tokens", 3)),
    }


async def events(body: dict[str, Any]) -> AsyncIterator[bytes]:
    tokens = body.get("max_tokens", 3)
    for i in range(tokens):
        await asyncio.sleep(0.001)
        chunk = {"model": SERVED, "choices": [{"delta": {"content": f"トークン{i}"}}]}
        yield b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"
    yield b"data: " + json.dumps({"model": SERVED, "usage": usage(5, tokens)}).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


async def endless() -> AsyncIterator[bytes]:
    while True:
        yield b'data: {"model": "%s", "choices": []}\n\n' % SERVED.encode()
        await asyncio.sleep(0.01)


class Answer(BaseModel):
    model: str
    text: str
    usage: dict[str, int]


def fastapi_app(recorder: Recorder | None) -> FastAPI:
    """The app, measured by the middleware when a recorder is given."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        mode = body.get("mode", "json")
        if mode == "http_exception":
            raise HTTPException(status_code=404, detail="no such model")
        if mode == "status":
            return JSONResponse({"error": "slow down"}, status_code=429)
        if mode == "crash":
            raise RuntimeError("the handler failed")
        if mode == "sse":
            return StreamingResponse(events(body), media_type="text/event-stream")
        if mode == "endless":
            return StreamingResponse(endless(), media_type="text/event-stream")
        return completion(body)

    @app.post("/v1/completions", response_model=Answer)
    async def complete(request: Request) -> Answer:
        await request.json()
        return Answer(model=SERVED, text="été ☀", usage=usage(2, 4))

    @app.post("/other")
    async def other(request: Request) -> dict[str, str]:
        return {"ok": "yes"}

    if recorder is not None:
        app.add_middleware(MetricsMiddleware, recorder=recorder)
    return app


def starlette_app(recorder: Recorder) -> Starlette:
    async def chat(request: StarletteRequest) -> Response:
        body = json.loads(await request.body())
        mode = body.get("mode", "json")
        if mode == "http_exception":
            raise StarletteHTTPException(status_code=404)
        if mode == "status":
            return StarletteJSONResponse({"error": "slow down"}, status_code=429)
        if mode == "crash":
            raise RuntimeError("the handler failed")
        if mode == "sse":
            return StarletteStreamingResponse(events(body), media_type="text/event-stream")
        if mode == "endless":
            return StarletteStreamingResponse(endless(), media_type="text/event-stream")
        return StarletteJSONResponse(completion(body))

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.add_middleware(MetricsMiddleware, recorder=recorder)
    return app


APPS: dict[str, Callable[[Recorder], Any]] = {"fastapi": fastapi_app, "starlette": starlette_app}


@pytest.fixture(params=sorted(APPS))
def base_url(request: pytest.FixtureRequest, recorder: Recorder) -> Iterator[str]:
    with serve(APPS[request.param](recorder)) as url:
        yield url


@pytest.fixture
def fastapi_url(recorder: Recorder) -> Iterator[str]:
    with serve(fastapi_app(recorder)) as url:
        yield url


def post(url: str, body: dict[str, Any] | bytes) -> tuple[httpx.Response, int]:
    """POST ``body``; the response (read) and the request body's size as sent."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with httpx.Client(timeout=10) as client:
        response = client.post(url, content=content)
    return response, len(content)


def one(family: Family, sample: str) -> tuple[dict[str, str], float]:
    """The only sample called ``sample`` of ``family``: its labels and value."""
    found = [(dict(labels), v) for (name, labels), v in family.samples.items() if name == sample]
    assert len(found) == 1, found
    return found[0]


def total(fams: dict[str, Family], family: str, **labels: str) -> float:
    """The ``_sum`` of histogram ``family`` for ``labels`` (default: model m, the served one)."""
    return fams[family].value(family + "_sum", **(labels or M))


def the_error(registry: CollectorRegistry) -> tuple[dict[str, str], float]:
    """The one error series recorded: its labels and count."""
    errors = parse_registry(registry)["inference_model_request_error_total"]
    return one(errors, "inference_model_request_error_total")


M = {"model_name": "m", "target_model_name": SERVED}
OWN = {"model_name": "m", "target_model_name": "m"}
NO_LABELS = {"model_name": "", "target_model_name": ""}


def test_json_response_records_exact_request_and_response_bytes_and_tokens(
    base_url: str, registry: CollectorRegistry
) -> None:
    response, sent = post(base_url + "/v1/chat/completions", {"model": "m", "max_tokens": 3})
    assert response.status_code == 200
    assert "日本語" in response.text
    fams = parse_registry(registry)
    assert fams["inference_model_request_total"].value("inference_model_request_total", **M) == 1
    assert total(fams, "inference_model_request_sizes") == sent
    received = total(fams, "inference_model_response_sizes")
    assert received == response.num_bytes_downloaded
    assert total(fams, "inference_model_input_tokens") == 7
    assert total(fams, "inference_model_output_tokens") == 3
    assert "inference_model_request_ttft_seconds" not in fams


def test_pydantic_response_model_is_measured_as_the_bytes_sent(
    fastapi_url: str, registry: CollectorRegistry
) -> None:
    response, _ = post(fastapi_url + "/v1/completions", {"model": "m"})
    assert response.json()["text"] == "été ☀"
    fams = parse_registry(registry)
    received = total(fams, "inference_model_response_sizes")
    assert received == response.num_bytes_downloaded > 0
    assert total(fams, "inference_model_output_tokens") == 4


def test_event_stream_records_bytes_tokens_ttft_and_tpot(
    base_url: str, registry: CollectorRegistry
) -> None:
    response, sent = post(
        base_url + "/v1/chat/completions", {"model": "m", "mode": "sse", "max_tokens": 4}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    fams = parse_registry(registry)
    assert total(fams, "inference_model_request_sizes") == sent
    received = total(fams, "inference_model_response_sizes")
    assert received == response.num_bytes_downloaded
    assert total(fams, "inference_model_output_tokens") == 4
    assert total(fams, "inference_model_input_tokens") == 5
    ttft = fams["inference_model_request_ttft_seconds"]
    assert ttft.value("inference_model_request_ttft_seconds_count", **M) == 1
    tpot = fams["inference_model_request_tpot_seconds"]
    assert tpot.value("inference_model_request_tpot_seconds_count", **M) == 1


def test_byte_sums_add_up_over_several_requests(base_url: str, registry: CollectorRegistry) -> None:
    sent_total = received_total = 0
    for mode, tokens in (("json", 1), ("sse", 2), ("json", 5), ("sse", 3)):
        response, sent = post(
            base_url + "/v1/chat/completions", {"model": "m", "mode": mode, "max_tokens": tokens}
        )
        sent_total += sent
        received_total += response.num_bytes_downloaded
    fams = parse_registry(registry)
    assert total(fams, "inference_model_request_sizes") == sent_total
    assert total(fams, "inference_model_response_sizes") == received_total
    assert total(fams, "inference_model_output_tokens") == 11


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        ("http_exception", 404, "NotFound"),  # a raised HTTPException
        ("status", 429, "ResourceExhausted"),  # a returned error response
        ("crash", 500, "Internal"),  # an unhandled exception
    ],
)
def test_error_response_is_counted_once_with_its_status_code(
    base_url: str, registry: CollectorRegistry, mode: str, status: int, code: str
) -> None:
    response, _ = post(base_url + "/v1/chat/completions", {"model": "m", "mode": mode})
    assert response.status_code == status
    assert the_error(registry) == ({**OWN, "error_code": code}, 1)
    fams = parse_registry(registry)
    running = fams["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0
    assert "inference_model_response_sizes" not in fams


def test_non_json_body_is_a_bad_request_with_empty_labels(
    fastapi_url: str, registry: CollectorRegistry
) -> None:
    response, _ = post(fastapi_url + "/v1/chat/completions", b"model=m")
    assert response.status_code == 400
    fams = parse_registry(registry)
    labels, value = the_error(registry)
    assert (labels, value) == ({**NO_LABELS, "error_code": "BadRequest"}, 1)
    assert "inference_model_request_total" not in fams


def test_client_leaving_mid_stream_brings_running_requests_back_to_zero(
    base_url: str, registry: CollectorRegistry
) -> None:
    def running() -> float:
        family = parse_registry(registry).get("inference_model_running_requests")
        if family is None:
            return 0.0
        return family.value("inference_model_running_requests", model_name="m")

    with httpx.Client(timeout=10) as client:
        body = json.dumps({"model": "m", "mode": "endless"}).encode()
        with client.stream("POST", base_url + "/v1/chat/completions", content=body) as response:
            chunks = response.iter_raw()
            next(chunks)
            assert running() == 1
    # The connection is closed: the server sees the client leave.
    assert wait_for(lambda: running() == 0, timeout=1.0), running()
    fams = parse_registry(registry)
    assert "inference_model_request_error_total" not in fams
    assert "inference_model_request_duration_seconds" not in fams


def test_other_paths_and_methods_pass_through_unmeasured(
    fastapi_url: str, registry: CollectorRegistry
) -> None:
    response, _ = post(fastapi_url + "/other", {"model": "m"})
    assert response.json() == {"ok": "yes"}
    with httpx.Client(timeout=10) as client:
        assert client.get(fastapi_url + "/v1/chat/completions").status_code == 405
    assert parse_registry(registry) == {}


def test_target_model_callable_overrides_the_response_model(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    app = fastapi_app(None)
    wrapped = MetricsMiddleware(
        app, recorder=recorder, paths={"/v1/completions"}, target_model=lambda scope, body: "pinned"
    )
    with serve(wrapped) as url:
        post(url + "/v1/completions", {"model": "m"})
    total = parse_registry(registry)["inference_model_request_total"]
    labels, value = one(total, "inference_model_request_total")
    assert (labels, value) == ({"model_name": "m", "target_model_name": "pinned"}, 1)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"recorder": object()}, TypeError),
        ({"paths": "/v1/completions"}, TypeError),
        ({"paths": ["v1/completions"]}, ValueError),
        ({"paths": [b"/v1/completions"]}, TypeError),
        ({"target_model": "m"}, TypeError),
        ({"max_body_size": 0}, ValueError),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(
    recorder: Recorder, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    arguments: dict[str, Any] = {"recorder": recorder, **kwargs}
    with pytest.raises(error, match=next(iter(kwargs))):
        MetricsMiddleware(app, **arguments)


# --- a plain ASGI app: what the app receives, bounds, the Responses API -----------------------


class Echo:
    """A plain ASGI app that answers with what it received, and a chosen response."""

    def __init__(self, status: int = 200, chunks: tuple[bytes, ...] = (b"{}",)) -> None:
        self.status = status
        self.chunks = chunks
        self.received: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            self.received.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = [(b"content-type", b"text/event-stream")] if len(self.chunks) > 1 else []
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def test_streamed_request_body_reaches_the_app_unchanged_and_is_counted_whole(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    app = Echo()
    parts = [b'{"model": ', b'"m", "prompt": "', "é".encode() * 40_000, b'"}']
    with serve(MetricsMiddleware(app, recorder=recorder)) as url, httpx.Client() as client:
        client.post(url + "/v1/completions", content=iter(parts))  # chunked upload
    assert b"".join(app.received) == b"".join(parts)
    sizes = total(parse_registry(registry), "inference_model_request_sizes", **OWN)
    assert sizes == len(b"".join(parts))


def test_request_body_beyond_the_bound_is_bad_request_and_still_reaches_the_app(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    app = Echo()
    body = json.dumps({"model": "m", "prompt": "x" * 5000}).encode()
    wrapped = MetricsMiddleware(app, recorder=recorder, max_body_size=1024)
    with serve(wrapped) as url, httpx.Client() as client:
        client.post(url + "/v1/completions", content=body)
    assert b"".join(app.received) == body
    labels, value = the_error(registry)
    assert (labels, value) == ({**NO_LABELS, "error_code": "BadRequest"}, 1)


def test_responses_api_stream_names_its_target_and_usage(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    created = {"model": "gpt-x-2026", "usage": None}
    done = {"model": "gpt-x-2026", "usage": {"input_tokens": 9, "output_tokens": 4}}
    events = tuple(
        b"event: %s\ndata: %s\n\n"
        % (kind, json.dumps({"type": kind.decode(), "response": r}).encode())
        for kind, r in ((b"response.created", created), (b"response.completed", done))
    )
    with serve(MetricsMiddleware(Echo(chunks=events), recorder=recorder)) as url:
        post(url + "/v1/responses", {"model": "gpt-x"})
    fams = parse_registry(registry)
    served = {"model_name": "gpt-x", "target_model_name": "gpt-x-2026"}
    assert total(fams, "inference_model_output_tokens", **served) == 4
    assert (
        fams["inference_model_input_tokens"].value("inference_model_input_tokens_sum", **served)
        == 9
    )


def test_malformed_event_stream_completes_and_is_counted_as_a_parse_failure(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    events = (b'data: {"model": "m", "usage": {"prompt_tokens": \n\n', b"data: [DONE]\n\n")
    with serve(MetricsMiddleware(Echo(chunks=events), recorder=recorder)) as url:
        response, _ = post(url + "/v1/chat/completions", {"model": "m"})
    assert response.status_code == 200
    assert recorder.response_parse_failures == 1
    fams = parse_registry(registry)
    assert total(fams, "inference_model_response_sizes", **OWN) == sum(map(len, events))


def test_concurrent_requests_all_end_and_leave_nothing_running(
    base_url: str, registry: CollectorRegistry
) -> None:
    async def many() -> list[int]:
        async with httpx.AsyncClient(timeout=10) as client:
            bodies = [
                {"model": "m", "mode": mode, "max_tokens": 2}
                for mode in ("json", "sse", "http_exception", "crash") * 5
            ]
            responses = await asyncio.gather(
                *(client.post(base_url + "/v1/chat/completions", json=b) for b in bodies)
            )
            return [r.status_code for r in responses]

    statuses = asyncio.run(many())
    assert sorted(set(statuses)) == [200, 404, 500]
    fams = parse_registry(registry)
    running = fams["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0
    total = fams["inference_model_request_total"]
    assert sum(total.samples.values()) == 20
