"""instrument_handler: sync, async, generator and async-generator handlers measured per call."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any, Protocol, assert_type

import fastapi
import fastapi.encoders
import fastapi.responses
import httpx
import pydantic
import pytest
import starlette.exceptions
from aiohttp import web
from prometheus_client.registry import CollectorRegistry

from inference_metrics import ErrorCode, PrometheusBackend, Recorder, Usage
from inference_metrics.instrument import (
    default_size,
    default_usage,
    instrument_handler,
    start_request,
)

from .clocks import FakeClock
from .expo import Family, parse_registry
from .uvicorn_harness import serve, wait_for

M = {"model_name": "m", "target_model_name": "m"}


class Env:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.recorder = Recorder(PrometheusBackend(self.registry))
        self.clock = FakeClock(50.0)

    def families(self) -> dict[str, Family]:
        return parse_registry(self.registry)

    def value(self, name: str, sample: str = "", **labels: str) -> float:
        return self.families()[name].value(name + sample, **(labels or M))

    def errors(self) -> dict[str, float]:
        family = self.families().get("inference_model_request_error_total")
        if family is None:
            return {}
        return {dict(labels)["error_code"]: v for (_, labels), v in family.samples.items()}

    def running(self, model: str = "m") -> float:
        name = "inference_model_running_requests"
        return self.families()[name].value(name, model_name=model)


@pytest.fixture
def env() -> Env:
    return Env()


def completion(prompt: int, completion: int) -> dict[str, Any]:
    return {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


def sse_chunk(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


# --- sync functions ---------------------------------------------------------------------------


def test_function_records_the_request_and_its_usage(env: Env) -> None:
    @instrument_handler(env.recorder, clock=env.clock)
    def handler(model: str) -> dict[str, Any]:
        env.clock.now += 2.0
        return completion(10, 4)

    assert handler("m") == completion(10, 4)
    assert env.value("inference_model_request_total") == 1
    assert env.value("inference_model_request_duration_seconds", "_sum") == 2.0
    assert env.value("inference_model_input_tokens", "_sum") == 10
    assert env.value("inference_model_output_tokens", "_sum") == 4
    assert env.value("inference_model_normalized_time_per_output_token_seconds", "_sum") == 0.5
    assert env.running() == 0


class TemperatureHandler(Protocol):
    __name__: str

    def __call__(self, model: str, *, temperature: float = ...) -> dict[str, Any]: ...


def test_decorated_function_keeps_its_signature(env: Env) -> None:
    @instrument_handler(env.recorder)
    def handler(model: str, *, temperature: float = 0.0) -> dict[str, Any]:
        return {}

    typed: TemperatureHandler = handler  # mypy checks the decorated signature
    assert_type(handler("m", temperature=1.0), dict[str, Any])
    # Under mypy --strict (warn_unused_ignores) this ignore is an error if the signature is lost.
    handler(3)  # type: ignore[arg-type]
    assert typed.__name__ == "handler"


def test_model_is_read_from_a_request_body_parameter(env: Env) -> None:
    @instrument_handler(env.recorder, model="body")
    def handler(body: dict[str, Any]) -> bytes:
        return b"{}"

    handler({"model": "m", "prompt": "hi"})
    assert env.value("inference_model_request_total") == 1


def test_model_target_and_request_size_from_extractors(env: Env) -> None:
    @instrument_handler(
        env.recorder,
        model=lambda raw, pool: json.loads(raw)["model"],
        target="pool",
        request_size=lambda raw, pool: len(raw),
    )
    def handler(raw: bytes, pool: str) -> None:
        return None

    handler(b'{"model": "m"}', pool="t")
    labels = {"model_name": "m", "target_model_name": "t"}
    assert env.value("inference_model_request_total", **labels) == 1
    assert env.value("inference_model_request_sizes", "_sum", **labels) == 14


def test_bytes_result_is_parsed_as_the_response_body(env: Env) -> None:
    body = json.dumps(completion(3, 2)).encode()

    @instrument_handler(env.recorder)
    def handler(model: str) -> bytes:
        return body

    handler("m")
    assert env.value("inference_model_response_sizes", "_sum") == len(body)
    assert env.value("inference_model_output_tokens", "_sum") == 2


def test_call_without_a_model_counts_bad_request_and_still_runs(env: Env) -> None:
    @instrument_handler(env.recorder)
    def handler(model: str | None = None) -> str:
        return "ran"

    assert handler() == "ran"
    assert env.errors() == {"BadRequest": 1}
    assert "inference_model_request_total" not in env.families()


def test_unknown_parameter_name_is_refused_at_decoration(env: Env) -> None:
    def handler(body: dict[str, Any]) -> None:
        return None

    with pytest.raises(TypeError, match="no parameter 'model'"):
        instrument_handler(env.recorder)(handler)


def test_exception_is_counted_as_internal_and_reraised_unchanged(env: Env) -> None:
    error = RuntimeError("boom")

    @instrument_handler(env.recorder)
    def handler(model: str) -> None:
        raise error

    with pytest.raises(RuntimeError) as raised:
        handler("m")
    assert raised.value is error
    assert env.errors() == {"Internal": 1}
    assert env.running() == 0


def test_exception_mapping_uses_the_most_specific_base_class(env: Env) -> None:
    class Overloaded(ConnectionError):
        pass

    @instrument_handler(
        env.recorder,
        errors={OSError: ErrorCode.INTERNAL, ConnectionError: ErrorCode.SERVICE_UNAVAILABLE},
    )
    def handler(model: str) -> None:
        raise Overloaded

    with pytest.raises(Overloaded):
        handler("m")
    assert env.errors() == {"ServiceUnavailable": 1}


def test_exception_mapping_callable(env: Env) -> None:
    @instrument_handler(env.recorder, errors=lambda exc: "Timeout")
    def handler(model: str) -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        handler("m")
    assert env.errors() == {"Timeout": 1}


def test_error_status_result_is_counted_with_its_code(env: Env) -> None:
    class Response:
        status = 429
        body = b"{}"

    @instrument_handler(env.recorder)
    def handler(model: str) -> Response:
        return Response()

    handler("m")
    assert env.errors() == {"ResourceExhausted": 1}
    assert "inference_model_request_duration_seconds" not in env.families()


def test_raising_extractor_does_not_break_the_handler(env: Env) -> None:
    def broken(result: object) -> Usage | None:
        raise ValueError("bad extractor")

    @instrument_handler(env.recorder, usage=broken)
    def handler(model: str) -> str:
        return "ok"

    assert handler("m") == "ok"
    assert env.recorder.response_parse_failures == 1
    assert env.value("inference_model_request_duration_seconds", "_count") == 1


# --- coroutines -------------------------------------------------------------------------------


async def test_coroutine_records_the_request(env: Env) -> None:
    @instrument_handler(env.recorder, clock=env.clock)
    async def handler(model: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        env.clock.now += 1.0
        return completion(5, 5)

    assert_type(await handler("m"), dict[str, Any])
    assert env.value("inference_model_request_duration_seconds", "_sum") == 1.0
    assert env.value("inference_model_output_tokens", "_sum") == 5


async def test_coroutine_exception_is_counted(env: Env) -> None:
    @instrument_handler(env.recorder, errors={KeyError: ErrorCode.NOT_FOUND})
    async def handler(model: str) -> None:
        raise KeyError(model)

    with pytest.raises(KeyError):
        await handler("m")
    assert env.errors() == {"NotFound": 1}


async def test_cancelled_coroutine_is_not_an_error_and_is_reraised(env: Env) -> None:
    started = asyncio.Event()

    @instrument_handler(env.recorder)
    async def handler(model: str) -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(handler("m"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert env.errors() == {}
    assert env.running() == 0
    assert "inference_model_request_duration_seconds" not in env.families()


# --- generators -------------------------------------------------------------------------------


def test_generator_of_sse_bytes_records_ttft_tpot_and_usage(env: Env) -> None:
    @instrument_handler(env.recorder, clock=env.clock)
    def handler(model: str) -> Iterator[bytes]:
        env.clock.now += 0.5
        yield sse_chunk({"choices": [{"delta": {"content": "a"}}], "usage": None})
        env.clock.now += 3.0
        yield sse_chunk({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 7}})
        yield b"data: [DONE]\n\n"

    chunks = list(handler("m"))
    assert env.value("inference_model_response_sizes", "_sum") == sum(map(len, chunks))
    assert env.value("inference_model_request_ttft_seconds", "_sum") == 0.5
    assert env.value("inference_model_request_tpot_seconds", "_sum") == 0.5  # 3.0 / (7 - 1)
    assert env.value("inference_model_output_tokens", "_sum") == 7
    assert env.running() == 0


def test_generator_closed_early_is_cancelled_once(env: Env) -> None:
    @instrument_handler(env.recorder)
    def handler(model: str) -> Generator[bytes, None, None]:
        yield b"data: {}\n\n"
        yield b"data: {}\n\n"

    stream = handler("m")
    next(stream)
    stream.close()
    stream.close()
    assert env.running() == 0
    assert env.errors() == {}
    assert "inference_model_request_duration_seconds" not in env.families()


def test_unfinished_generator_collected_is_cancelled(env: Env) -> None:
    @instrument_handler(env.recorder)
    def handler(model: str) -> Iterator[bytes]:
        yield b"x"
        yield b"y"

    stream = handler("m")
    next(stream)
    assert env.running() == 1
    del stream
    gc.collect()
    assert env.running() == 0
    assert env.errors() == {}


def test_generator_exception_is_counted_and_reraised(env: Env) -> None:
    @instrument_handler(env.recorder)
    def handler(model: str) -> Iterator[bytes]:
        yield b"data: {}\n\n"
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        list(handler("m"))
    assert env.errors() == {"Internal": 1}
    assert env.running() == 0


def test_generator_of_objects_uses_the_extractors(env: Env) -> None:
    @instrument_handler(env.recorder, usage=lambda item: item.get("usage"), size=lambda item: 100)
    def handler(model: str) -> Iterator[dict[str, Any]]:
        yield {"delta": "a"}
        yield {"usage": Usage(1, 2, 0)}

    list(handler("m"))
    assert env.value("inference_model_response_sizes", "_sum") == 200
    assert env.value("inference_model_output_tokens", "_sum") == 2


# --- async generators -------------------------------------------------------------------------


async def test_async_generator_records_the_stream(env: Env) -> None:
    @instrument_handler(env.recorder, clock=env.clock)
    async def handler(model: str) -> AsyncIterator[dict[str, Any]]:
        env.clock.now += 0.25
        yield {"choices": [{"delta": {"content": "a"}}]}
        env.clock.now += 1.0
        yield {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3}}

    items = [item async for item in handler("m")]
    assert len(items) == 2
    assert env.value("inference_model_request_ttft_seconds", "_sum") == 0.25
    assert env.value("inference_model_request_tpot_seconds", "_sum") == 0.5
    assert env.value("inference_model_request_duration_seconds", "_sum") == 1.25
    assert env.running() == 0


async def test_async_generator_aclose_is_cancelled_once(env: Env) -> None:
    @instrument_handler(env.recorder)
    async def handler(model: str) -> AsyncGenerator[bytes, None]:
        yield b"a"
        yield b"b"

    stream = handler("m")
    assert await stream.__anext__() == b"a"
    await stream.aclose()
    await stream.aclose()
    assert env.running() == 0
    assert env.errors() == {}


async def test_async_generator_break_in_async_for_is_cancelled(env: Env) -> None:
    @instrument_handler(env.recorder)
    async def handler(model: str) -> AsyncGenerator[bytes, None]:
        for _ in range(10):
            yield b"a"

    stream = handler("m")
    async for _ in stream:
        break
    await stream.aclose()  # what `async with aclosing(...)` or the loop's GC hook does
    assert env.running() == 0


async def test_unfinished_async_generator_collected_in_a_loop_is_cancelled(env: Env) -> None:
    @instrument_handler(env.recorder)
    async def handler(model: str) -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"

    stream = handler("m")
    await stream.__anext__()
    del stream
    gc.collect()
    for _ in range(3):
        await asyncio.sleep(0)  # the loop's finalizer hook schedules aclose()
    assert env.running() == 0
    assert env.errors() == {}


def test_unfinished_async_generator_dropped_without_a_loop_is_cancelled(env: Env) -> None:
    @instrument_handler(env.recorder)
    async def handler(model: str) -> AsyncGenerator[bytes, None]:
        yield b"a"
        yield b"b"

    stream = handler("m")
    step = stream.__anext__()
    with pytest.raises(StopIteration):
        step.send(None)  # driven by hand: no event loop, no finalizer hook
    assert env.running() == 1
    del stream, step
    gc.collect()
    assert env.running() == 0
    assert env.errors() == {}


async def test_async_generator_exception_is_counted(env: Env) -> None:
    @instrument_handler(env.recorder, errors={ValueError: ErrorCode.BAD_REQUEST})
    async def handler(model: str) -> AsyncIterator[bytes]:
        yield b"a"
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        async for _ in handler("m"):
            pass
    assert env.errors() == {"BadRequest": 1}


async def test_cancelled_async_generator_consumer_is_not_an_error(env: Env) -> None:
    started = asyncio.Event()

    @instrument_handler(env.recorder)
    async def handler(model: str) -> AsyncIterator[bytes]:
        yield b"a"
        started.set()
        await asyncio.sleep(3600)
        yield b"b"

    async def consume() -> None:
        async for _ in handler("m"):
            pass

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert env.errors() == {}
    assert env.running() == 0


# --- start_request and the defaults -----------------------------------------------------------


def test_start_request_is_a_routed_context_manager(env: Env) -> None:
    with start_request(env.recorder, "m", "t", request_size=9, clock=env.clock) as ctx:
        env.clock.now += 1.0
        ctx.on_response_part(size=30, usage=Usage(1, 2, 0))
    labels = {"model_name": "m", "target_model_name": "t"}
    assert env.value("inference_model_request_sizes", "_sum", **labels) == 9
    assert env.value("inference_model_response_sizes", "_sum", **labels) == 30
    assert env.value("inference_model_request_duration_seconds", "_sum", **labels) == 1.0


class OpenAIStyleUsage:
    prompt_tokens = 3
    completion_tokens = 4

    class prompt_tokens_details:
        cached_tokens = 2


class OpenAIStyleResult:
    usage = OpenAIStyleUsage()


@pytest.mark.parametrize(
    ("result", "usage"),
    [
        (completion(1, 2), Usage(1, 2)),
        (json.dumps(completion(1, 2)), Usage(1, 2)),
        (OpenAIStyleResult(), Usage(3, 4, 2)),
        (Usage(7, 8, 9), Usage(7, 8, 9)),
        (b"not json", None),
        (42, None),
    ],
)
def test_default_usage(result: object, usage: Usage | None) -> None:
    assert default_usage(result) == usage


@pytest.mark.parametrize(("result", "size"), [(b"abc", 3), ("é", 2), ({"a": 1}, 7), (None, 0)])
def test_default_size(result: object, size: int) -> None:
    assert default_size(result) == size


# --- what a web framework sees ----------------------------------------------------------------


def test_generator_clock_starts_at_the_call_not_the_first_iteration(env: Env) -> None:
    @instrument_handler(env.recorder, clock=env.clock)
    def handler(model: str) -> Iterator[bytes]:
        yield b"data: {}\n\n"

    stream = handler("m")
    env.clock.now += 0.5  # the server waits before it iterates
    list(stream)
    assert env.value("inference_model_request_duration_seconds", "_sum") == 0.5
    assert env.value("inference_model_request_ttft_seconds", "_sum") == 0.5


def test_generator_closed_before_its_first_item_is_counted_and_cancelled_at_once(
    env: Env,
) -> None:
    @instrument_handler(env.recorder)
    def handler(model: str) -> Generator[bytes, None, None]:
        yield b"x"

    stream = handler("m")
    assert env.running() == 1
    stream.close()
    assert env.running() == 0
    assert env.value("inference_model_request_total") == 1
    assert env.errors() == {}


async def test_async_generator_closed_before_its_first_item_is_cancelled_at_once(
    env: Env,
) -> None:
    @instrument_handler(env.recorder)
    async def handler(model: str) -> AsyncGenerator[bytes, None]:
        yield b"x"

    stream = handler("m")
    assert env.running() == 1
    await stream.aclose()
    assert env.running() == 0
    assert env.errors() == {}


def test_generator_never_iterated_and_dropped_is_cancelled(env: Env) -> None:
    @instrument_handler(env.recorder)
    def handler(model: str) -> Iterator[bytes]:
        yield b"x"

    handler("m")
    gc.collect()
    assert env.running() == 0
    assert env.value("inference_model_request_total") == 1


@pytest.mark.parametrize(
    ("exception", "code"),
    [
        (starlette.exceptions.HTTPException(404), "NotFound"),
        (fastapi.HTTPException(status_code=429), "ResourceExhausted"),
        (web.HTTPServiceUnavailable(), "ServiceUnavailable"),
        (web.HTTPConflict(), "BadRequest"),
    ],
    ids=["starlette-404", "fastapi-429", "aiohttp-503", "aiohttp-409"],
)
def test_http_exception_is_counted_with_its_status_code(
    env: Env, exception: Exception, code: str
) -> None:
    @instrument_handler(env.recorder)
    def handler(model: str) -> dict[str, Any]:
        raise exception

    with pytest.raises(type(exception)):
        handler("m")
    assert env.errors() == {code: 1}


def test_mapping_result_size_is_the_bytes_fastapi_sends(env: Env) -> None:
    result = {"c": "日本語"}

    @instrument_handler(env.recorder)
    def handler(model: str) -> dict[str, str]:
        return result

    handler("m")
    sent = fastapi.responses.JSONResponse(result).body
    assert len(sent) == 17
    assert env.value("inference_model_response_sizes", "_sum") == len(sent)


class Answer(pydantic.BaseModel):
    model: str
    text: str


def test_pydantic_result_size_is_the_bytes_fastapi_sends(env: Env) -> None:
    answer = Answer(model="m", text="été ☀")

    @instrument_handler(env.recorder)
    def handler(model: str) -> Answer:
        return answer

    handler("m")
    sent = fastapi.responses.JSONResponse(fastapi.encoders.jsonable_encoder(answer)).body
    assert env.value("inference_model_response_sizes", "_sum") == len(sent)


def test_aiohttp_response_result_size_is_its_body(env: Env) -> None:
    response = web.json_response({"c": "日本語", "usage": {"completion_tokens": 2}})

    @instrument_handler(env.recorder)
    def handler(model: str) -> web.Response:
        return response

    handler("m")
    assert isinstance(response.body, bytes)
    assert env.value("inference_model_response_sizes", "_sum") == len(response.body)
    assert env.value("inference_model_output_tokens", "_sum") == 2


def test_start_request_with_several_parts_is_streamed_without_an_extra_call(env: Env) -> None:
    with start_request(env.recorder, "m", clock=env.clock) as ctx:
        env.clock.now += 0.25
        ctx.on_response_part(size=3)
        env.clock.now += 1.0
        ctx.on_response_part(size=4, usage=Usage(1, 3, 0))
    assert env.value("inference_model_request_ttft_seconds", "_sum") == 0.25
    assert env.value("inference_model_request_tpot_seconds", "_sum") == 0.5


def test_sync_generator_behind_a_streaming_response_ends_when_the_client_leaves(
    env: Env,
) -> None:
    @instrument_handler(env.recorder)
    def tokens(model: str) -> Iterator[bytes]:
        while True:
            time.sleep(0.005)
            yield b'data: {"choices": []}\n\n'

    app = fastapi.FastAPI()

    @app.post("/v1/completions")
    async def complete(request: fastapi.Request) -> fastapi.responses.StreamingResponse:
        body = await request.json()
        return fastapi.responses.StreamingResponse(tokens(body["model"]))

    gc.disable()  # the request must end without waiting for a collection
    try:
        with serve(app) as url, httpx.Client(timeout=10) as client:
            with client.stream("POST", url + "/v1/completions", json={"model": "m"}) as response:
                chunks = response.iter_raw()
                next(chunks)
                assert env.running() == 1
            assert wait_for(lambda: env.running() == 0, timeout=1.0)
    finally:
        gc.enable()
    assert env.errors() == {}
