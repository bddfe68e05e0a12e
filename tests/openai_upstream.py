"""A deterministic OpenAI-compatible model server for tests (aiohttp, loopback only).

Serves ``POST /v1/completions`` and ``POST /v1/chat/completions``:

* a JSON response, or with ``"stream": true`` a ``text/event-stream`` of one event per output
  token, a usage event when ``"stream_options": {"include_usage": true}`` asks for it, and
  ``data: [DONE]``;
* token counts anyone can recompute: prompt tokens are the whitespace-separated words of the
  prompt (or of all chat messages' contents), completion tokens are ``max_tokens`` (default
  :data:`DEFAULT_COMPLETION_TOKENS`);
* a model listed in ``failures`` answers with that status (500, 503, ...) and a JSON error body.

Every response it sends is kept as an :class:`Exchange`, with the exact body bytes it wrote, so a
test can compare what a proxy measured with what was really sent. A request may carry
``x-test-case`` (kept in the exchange, to find it again) and ``x-test-chunk-bytes: N`` (a streamed
body is then written in N-byte pieces, splitting events across writes) and ``x-test-linger-ms: N``
(a streamed body is ended N ms after ``data: [DONE]`` was written, as a model server finishing up;
its exchange is kept when the marker went out, and a client that left meanwhile changes nothing).

:class:`UpstreamThread` runs the server on its own event loop in a thread, so synchronous tests and
fixtures of any scope can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = [
    "DEFAULT_COMPLETION_TOKENS",
    "Exchange",
    "OpenAIUpstream",
    "UpstreamThread",
    "count_prompt_tokens",
]

DEFAULT_COMPLETION_TOKENS = 8
_MAX_COMPLETION_TOKENS = 4096


@dataclass(frozen=True)
class Exchange:
    """One response the upstream sent."""

    case: str  # the request's x-test-case header ("" without one)
    path: str
    model: str  # the "model" of the request body the upstream received ("" if none)
    status: int
    streamed: bool
    request_size: int  # body bytes received
    body_size: int  # body bytes sent (the payload, without HTTP framing)
    prompt_tokens: int
    completion_tokens: int
    usage_sent: bool  # whether the body carried a usage object


def count_prompt_tokens(request: Mapping[str, Any]) -> int:
    """The upstream's prompt token count: whitespace-separated words of the prompt or messages."""
    words = 0
    prompt = request.get("prompt")
    if isinstance(prompt, str):
        words += len(prompt.split())
    elif isinstance(prompt, list):
        words += sum(len(p.split()) for p in prompt if isinstance(p, str))
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                words += len(content.split())
    return words


def _completion_tokens(request: Mapping[str, Any]) -> int:
    value = request.get("max_tokens")
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 < value <= _MAX_COMPLETION_TOKENS
    ):
        return value
    return DEFAULT_COMPLETION_TOKENS


def _json_bytes(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class OpenAIUpstream:
    """The aiohttp application and its record of exchanges; see the module docstring."""

    def __init__(self, *, failures: Mapping[str, int] | None = None) -> None:
        self.failures: dict[str, int] = dict(failures or {})
        self._exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application()
        self.app.router.add_post("/v1/completions", self._completions)
        self.app.router.add_post("/v1/chat/completions", self._chat_completions)

    # --- record -------------------------------------------------------------------------------

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    def for_case(self, case: str) -> list[Exchange]:
        """The exchanges of requests that carried ``x-test-case: case``."""
        return [e for e in self.exchanges if e.case == case]

    def _keep(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: a free port); returns the port."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- handlers -----------------------------------------------------------------------------

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def _serve(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        raw = await request.read()
        case = request.headers.get("x-test-case", "")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            payload = _json_bytes({"error": {"message": "invalid request", "code": 400}})
            self._keep(
                Exchange(case, request.path, "", 400, False, len(raw), len(payload), 0, 0, False)
            )
            return web.Response(status=400, body=payload, content_type="application/json")

        model: str = body["model"]
        failure = self.failures.get(model)
        if failure is not None:
            payload = _json_bytes(
                {"error": {"message": f"model server failure {failure}", "code": failure}}
            )
            self._keep(
                Exchange(
                    case, request.path, model, failure, False, len(raw), len(payload), 0, 0, False
                )
            )
            return web.Response(status=failure, body=payload, content_type="application/json")

        prompt_tokens = count_prompt_tokens(body)
        completion_tokens = _completion_tokens(body)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        words = [f"tok{i} " for i in range(completion_tokens)]
        if not body.get("stream"):
            if chat:
                choice: dict[str, Any] = {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(words)},
                    "finish_reason": "length",
                }
                obj = "chat.completion"
            else:
                choice = {"index": 0, "text": "".join(words), "finish_reason": "length"}
                obj = "text_completion"
            payload = _json_bytes(
                {
                    "id": "cmpl-test",
                    "object": obj,
                    "created": 0,
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )
            self._keep(
                Exchange(
                    case,
                    request.path,
                    model,
                    200,
                    False,
                    len(raw),
                    len(payload),
                    prompt_tokens,
                    completion_tokens,
                    True,
                )
            )
            return web.Response(status=200, body=payload, content_type="application/json")

        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events: list[bytes] = []
        obj = "chat.completion.chunk" if chat else "text_completion"
        for i, word in enumerate(words):
            last = i == len(words) - 1
            if chat:
                choice = {"index": 0, "delta": {"content": word}}
            else:
                choice = {"index": 0, "text": word}
            choice["finish_reason"] = "length" if last else None
            chunk: dict[str, Any] = {
                "id": "cmpl-test",
                "object": obj,
                "created": 0,
                "model": model,
                "choices": [choice],
            }
            if include_usage:
                chunk["usage"] = None
            events.append(b"data: " + _json_bytes(chunk) + b"\n\n")
        if include_usage:
            final = {
                "id": "cmpl-test",
                "object": obj,
                "created": 0,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            events.append(b"data: " + _json_bytes(final) + b"\n\n")
        events.append(b"data: [DONE]\n\n")

        pieces = events
        split = request.headers.get("x-test-chunk-bytes", "")
        if split.isdigit() and int(split) > 0:
            data = b"".join(events)
            size = int(split)
            pieces = [data[i : i + size] for i in range(0, len(data), size)]

        linger = request.headers.get("x-test-linger-ms", "")
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            for piece in pieces:
                await response.write(piece)
                sent += len(piece)
                await asyncio.sleep(0.001)  # let the proxy see separate chunks
        except ConnectionResetError:  # the client (or the proxy) went away: nothing to keep
            return response
        exchange = Exchange(
            case,
            request.path,
            model,
            200,
            True,
            len(raw),
            sent,
            prompt_tokens if include_usage else 0,
            completion_tokens if include_usage else 0,
            include_usage,
        )
        if linger.isdigit():
            # Every byte up to and including data: [DONE] went out: that is the exchange. The
            # client may close now; the body ends later.
            self._keep(exchange)
            await asyncio.sleep(int(linger) / 1000)
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
            return response
        try:
            await response.write_eof()
        except ConnectionResetError:
            return response
        self._keep(exchange)
        return response


class UpstreamThread:
    """An :class:`OpenAIUpstream` served from its own event loop in a daemon thread."""

    def __init__(self, upstream: OpenAIUpstream, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-upstream")
        self._thread.daemon = True

    @property
    def port(self) -> int:
        return self.upstream.port

    def start(self, timeout: float = 10.0) -> int:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.upstream.start(self.host), self._loop)
        return future.result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            return

        async def stop_all() -> None:
            await self.upstream.stop()
            # Connection handlers aiohttp leaves behind (peers that vanished mid-request).
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(stop_all(), self._loop).result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._loop.close()
