"""A small OpenAI-compatible front end measured with ``instrument_handler`` (aiohttp).

Serves on 127.0.0.1:

* ``POST /v1/completions`` and ``POST /v1/chat/completions``: a JSON completion, or with
  ``"stream": true`` a ``text/event-stream`` (usage in the last event when the client sends
  ``"stream_options": {"include_usage": true}``, then ``data: [DONE]``);
* ``GET /metrics``: the endpoint picker's metrics in the Prometheus text format.

The "model" echoes words: prompt tokens are the prompt's whitespace-separated words, completion
tokens are ``max_tokens`` (default 8). The decorator wraps the functions that produce a
completion, not the framework; for ASGI apps (FastAPI, Starlette), ``MetricsMiddleware`` measures
the bytes on the wire instead (examples/fastapi_app.py).

Run it::

    python examples/aiohttp_app.py --port 8000
    curl -s 127.0.0.1:8000/v1/chat/completions -d '{"model": "m", "messages": [{"role": "user",
         "content": "hi there"}], "stream": true, "stream_options": {"include_usage": true}}'
    curl -s 127.0.0.1:8000/metrics | grep inference_model_
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import (
    ErrorCode,
    PrometheusBackend,
    Recorder,
    RequestContext,
    instrument_handler,
)

DEFAULT_MAX_TOKENS = 8


def _prompt_words(body: dict[str, Any]) -> list[str]:
    if "messages" in body:
        messages = body.get("messages") or []
        text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    else:
        text = str(body.get("prompt", ""))
    return text.split()


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    return value if isinstance(value, int) and 0 < value <= 4096 else DEFAULT_MAX_TOKENS


def _words(body: dict[str, Any]) -> list[str]:
    prompt = _prompt_words(body) or ["ok"]
    return [prompt[i % len(prompt)] for i in range(_max_tokens(body))]


def _usage(body: dict[str, Any]) -> dict[str, int]:
    prompt, completion = len(_prompt_words(body)), _max_tokens(body)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def make_app(registry: CollectorRegistry | None = None) -> web.Application:
    """The application, recording into ``registry`` (a new one by default)."""
    registry = registry if registry is not None else CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))

    # One request = one call. The model comes from the request body (the "body" parameter), the
    # request size from "raw_size"; usage and size from the returned response's body
    # (non-streamed: returning the response, not a dict, makes the size the bytes aiohttp sends)
    # or the SSE events the generator yields (streamed).
    @instrument_handler(recorder, model="body", request_size="raw_size")
    async def complete(body: dict[str, Any], raw_size: int, chat: bool) -> web.Response:
        text = " ".join(_words(body))
        choice: dict[str, Any] = (
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
            if chat
            else {"index": 0, "text": text, "finish_reason": "length"}
        )
        return web.json_response(
            {
                "id": "cmpl-example",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [choice],
                "usage": _usage(body),
            }
        )

    @instrument_handler(recorder, model="body", request_size="raw_size")
    async def stream(
        body: dict[str, Any], raw_size: int, chat: bool
    ) -> AsyncGenerator[bytes, None]:
        base = {
            "id": "cmpl-example",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "model": body["model"],
        }
        for word in _words(body):
            await asyncio.sleep(0)  # a real model computes here
            choice = (
                {"index": 0, "delta": {"content": word + " "}}
                if chat
                else {"index": 0, "text": word + " "}
            )
            yield _event({**base, "choices": [choice]})
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            yield _event({**base, "choices": [], "usage": _usage(body)})
        yield b"data: [DONE]\n\n"

    async def completions(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            # Not a request the decorated functions can take: count it as upstream does.
            RequestContext(recorder).fail(ErrorCode.BAD_REQUEST)
            return web.json_response({"error": {"message": "a JSON body with a model"}}, status=400)
        chat = request.path.endswith("/chat/completions")
        if body.get("stream") is not True:
            return await complete(body, len(raw), chat)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        # aclosing: a client that goes away mid-stream ends the request now (as cancelled).
        async with contextlib.aclosing(stream(body, len(raw), chat)) as chunks:
            async for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
        return response

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/metrics", metrics)
    return app


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
