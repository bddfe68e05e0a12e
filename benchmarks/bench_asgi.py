"""MetricsMiddleware's added cost per request, against the same app without it.

A trivial OpenAI-style endpoint (a fixed JSON chat completion with usage, or a 16-event stream)
served two ways, each timed with and without the middleware in the same run:

* **in process**: the ASGI app called directly with in-memory ``receive``/``send`` (the request
  body in one message): what the middleware itself costs, with nothing else in the way;
* **uvicorn**: a real uvicorn server on 127.0.0.1, driven by one ``http.client`` connection over
  keep-alive, one request at a time: what a client sees end to end. (TCP_NODELAY on the
  listening socket, and ``http.client``, which sends a request's headers and body in one write:
  otherwise Nagle's algorithm meets delayed ACKs, 40 ms a request, hiding everything else.)

Also a path the middleware does not measure (``/health``) in process, to show what a
pass-through costs.

Run: ``.venv/bin/python -m benchmarks.bench_asgi`` (``--number N`` in-process requests per timing
run, ``--http N`` requests per uvicorn timing run, 0 for none, ``--rounds R`` interleaved rounds,
``--schema NAME`` the Recorder's schema: ``llm-d-router`` also records an inter-token latency per
streamed event).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.asgi import ASGIApp, MetricsMiddleware, Receive, Scope, Send

REQUEST = json.dumps(
    {"model": "llama-3-8b", "messages": [{"role": "user", "content": "hello there"}]}
).encode()
STREAM_REQUEST = json.dumps(
    {"model": "llama-3-8b", "messages": [{"role": "user", "content": "hi"}], "stream": True}
).encode()
COMPLETION = json.dumps(
    {
        "object": "chat.completion",
        "model": "llama-3-8b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi " * 32}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 32},
    }
).encode()
EVENTS = [
    b'data: {"model":"llama-3-8b","choices":[{"delta":{"content":"tok"}}],"usage":null}\n\n'
] * 15 + [
    b'data: {"model":"llama-3-8b","choices":[],"usage":{"prompt_tokens":3,'
    b'"completion_tokens":15}}\n\ndata: [DONE]\n\n'
]
JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream")]


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """The trivial app: reads the body, answers JSON or an event stream."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    if b'"stream": true' in body:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for event in EVENTS:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": COMPLETION})


def measured(app: ASGIApp, schema: str = "gie-v0.3") -> ASGIApp:
    recorder = Recorder(PrometheusBackend(CollectorRegistry()), schema=schema)
    return MetricsMiddleware(app, recorder=recorder)


def in_process(app: ASGIApp, path: str, body: bytes) -> Callable[[], Awaitable[None]]:
    """One request to ``app`` through in-memory receive/send."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-type", b"application/json")],
    }
    request = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: Any) -> None:
        return None

    async def call() -> None:
        await app(dict(scope), receive, send)

    return call


async def time_in_process(call: Callable[[], Awaitable[None]], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        await call()
    return (time.perf_counter() - start) / number


class Served:
    """``app`` under uvicorn on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app: ASGIApp) -> None:
        self.sock = socket.socket()
        # Accepted connections inherit it: no Nagle delay between a response's small writes.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def time_http(port: int, path: str, body: bytes, number: int) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    try:
        start = time.perf_counter()
        for _ in range(number):
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
        return (time.perf_counter() - start) / number
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="MetricsMiddleware's added cost per request")
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--http", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--schema", default="gie-v0.3", help="the Recorder's schema (llm-d-router: with ITL)"
    )
    args = parser.parse_args()

    cases = {
        "JSON completion": ("/v1/chat/completions", REQUEST),
        "16-event stream": ("/v1/chat/completions", STREAM_REQUEST),
        "unmeasured path": ("/health", REQUEST),
    }
    best: dict[tuple[str, str], float] = {}

    async def run_in_process() -> None:
        for _ in range(args.rounds):
            for name, (path, body) in cases.items():
                middleware = measured(endpoint, args.schema)
                for side, app in (("bare", endpoint), ("middleware", middleware)):
                    call = in_process(app, path, body)
                    await time_in_process(call, 200)  # warm up
                    seconds = await time_in_process(call, args.number)
                    key = (name, side)
                    best[key] = min(best.get(key, float("inf")), seconds)

    asyncio.run(run_in_process())
    print(f"in process, best of {args.rounds} rounds of {args.number} requests:")
    for name in cases:
        bare, with_mw = best[(name, "bare")], best[(name, "middleware")]
        print(
            f"  {name:16} bare {bare * 1e6:7.2f} µs  middleware {with_mw * 1e6:7.2f} µs  "
            f"added {(with_mw - bare) * 1e6:6.2f} µs  ratio {with_mw / bare:5.2f}"
        )

    if args.http < 1:
        return  # --http 0: in process only
    servers = {"bare": Served(endpoint), "middleware": Served(measured(endpoint, args.schema))}
    http_best: dict[tuple[str, str], float] = {}
    try:
        for _ in range(args.rounds):
            for name, (path, body) in list(cases.items())[:2]:
                for side, served in servers.items():
                    time_http(served.port, path, body, 50)  # warm up
                    seconds = time_http(served.port, path, body, args.http)
                    key = (name, side)
                    http_best[key] = min(http_best.get(key, float("inf")), seconds)
    finally:
        for served in servers.values():
            served.stop()
    print(
        f"uvicorn + http.client on 127.0.0.1, best of {args.rounds} rounds of {args.http} requests:"
    )
    for name in list(cases)[:2]:
        bare, with_mw = http_best[(name, "bare")], http_best[(name, "middleware")]
        print(
            f"  {name:16} bare {bare * 1e6:7.1f} µs  middleware {with_mw * 1e6:7.1f} µs  "
            f"added {(with_mw - bare) * 1e6:6.1f} µs  ratio {with_mw / bare:5.2f}"
        )


if __name__ == "__main__":
    main()
