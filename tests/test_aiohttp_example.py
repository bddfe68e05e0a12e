"""examples/aiohttp_app.py served on 127.0.0.1: what its /metrics shows after real requests."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from .examples import load_example
from .expo import Family, parse_text


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app: web.Application = load_example("aiohttp_app.py").make_app()
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # loopback only; the kernel picks a free port
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def metrics(session: aiohttp.ClientSession, base_url: str) -> dict[str, Family]:
    async with session.get(base_url + "/metrics") as response:
        assert response.status == 200
        return parse_text(await response.text())


M = {"model_name": "m", "target_model_name": "m"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 5}


async def test_non_streamed_completion_is_measured(base_url: str) -> None:
    raw = json.dumps(CHAT).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url + "/v1/chat/completions", data=raw) as response:
            body = await response.read()
            assert json.loads(body)["usage"]["completion_tokens"] == 5
        fams = await metrics(session, base_url)
    responses = fams["inference_model_response_sizes"]
    assert responses.value("inference_model_response_sizes_sum", **M) == len(body)
    assert fams["inference_model_request_total"].value("inference_model_request_total", **M) == 1
    sizes = fams["inference_model_request_sizes"]
    assert sizes.value("inference_model_request_sizes_sum", **M) == len(raw)
    tokens = fams["inference_model_input_tokens"]
    assert tokens.value("inference_model_input_tokens_sum", **M) == 3
    assert "inference_model_request_ttft_seconds" not in fams


async def test_streamed_completion_with_usage_is_measured(base_url: str) -> None:
    request = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url + "/v1/chat/completions", json=request) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            body = await response.read()
        fams = await metrics(session, base_url)
    assert body.endswith(b"data: [DONE]\n\n")
    out = fams["inference_model_output_tokens"]
    assert out.value("inference_model_output_tokens_sum", **M) == 5
    sizes = fams["inference_model_response_sizes"]
    assert sizes.value("inference_model_response_sizes_sum", **M) == len(body)
    ttft = fams["inference_model_request_ttft_seconds"]
    assert ttft.value("inference_model_request_ttft_seconds_count", **M) == 1
    tpot = fams["inference_model_request_tpot_seconds"]
    assert tpot.value("inference_model_request_tpot_seconds_count", **M) == 1
    running = fams["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0


async def test_streamed_completion_without_include_usage_has_no_token_counts(
    base_url: str,
) -> None:
    request = {**CHAT, "model": "plain", "stream": True}
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url + "/v1/completions", json=request) as response:
            await response.read()
        fams = await metrics(session, base_url)
    labels = {"model_name": "plain", "target_model_name": "plain"}
    total = fams["inference_model_request_total"]
    assert total.value("inference_model_request_total", **labels) == 1
    assert "inference_model_output_tokens" not in fams


async def test_malformed_request_is_counted_as_bad_request(base_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(base_url + "/v1/completions", data=b"{not json") as response:
            assert response.status == 400
        fams = await metrics(session, base_url)
    errors = fams["inference_model_request_error_total"]
    labels = {"model_name": "", "target_model_name": "", "error_code": "BadRequest"}
    assert errors.value("inference_model_request_error_total", **labels) == 1
