"""MetricsMiddleware over arbitrary request and response payloads (in process, hypothesis)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.asgi import MetricsMiddleware

from .expo import parse_registry


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted(cuts)
    return [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]


json_requests = st.fixed_dictionaries(
    {"model": st.one_of(st.text(max_size=8), st.integers(), st.none())},
    optional={"stream": st.booleans(), "prompt": st.text(max_size=20)},
).map(lambda d: json.dumps(d).encode())
request_bodies = st.one_of(json_requests, st.binary(max_size=64))
response_bodies = st.one_of(
    st.binary(max_size=128),
    st.lists(
        st.sampled_from(
            [
                b'data: {"model": "x", "choices": []}\n\n',
                b'data: {"usage": {"prompt_tokens": 2, "completion_tokens": 3}}\n\n',
                b'data: {"usage": \n\n',
                b"data: [DONE]\n\n",
                b"\r\n",
                b": comment\n",
            ]
        ),
        max_size=6,
    ).map(b"".join),
    st.sampled_from([b'{"model": "x", "usage": {"completion_tokens": 1}}', b"{", b""]),
)


@settings(max_examples=150, deadline=None)
@given(
    request=request_bodies,
    request_cuts=st.lists(st.integers(0, 64), max_size=4),
    status=st.sampled_from([200, 201, 302, 400, 404, 429, 500, 503]),
    content_type=st.sampled_from([b"application/json", b"text/event-stream", b"text/plain"]),
    response=response_bodies,
    response_cuts=st.lists(st.integers(0, 128), max_size=4),
    ending=st.sampled_from(["complete", "disconnect", "raise"]),
)
def test_any_payload_reaches_the_app_unchanged_and_leaves_nothing_running(
    request: bytes,
    request_cuts: list[int],
    status: int,
    content_type: bytes,
    response: bytes,
    response_cuts: list[int],
    ending: str,
) -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    parts = cut(request, [c for c in request_cuts if c <= len(request)])
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    incoming.append({"type": "http.disconnect"})
    received: list[bytes] = []
    app_sent: list[dict[str, Any]] = []  # what the app sent
    sent: list[dict[str, Any]] = []  # what reached the server

    async def app(scope: Any, receive: Any, server_send: Any) -> None:
        async def send(message: dict[str, Any]) -> None:
            app_sent.append(dict(message))
            await server_send(message)

        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            received.append(message["body"])
            if not message["more_body"]:
                break
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type)],
            }
        )
        chunks = cut(response, [c for c in response_cuts if c <= len(response)])
        for chunk in chunks[:-1]:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if ending == "raise":
            raise RuntimeError("the app failed")
        if ending == "disconnect":
            await receive()  # the client leaves: http.disconnect
            return
        await send({"type": "http.response.body", "body": chunks[-1]})

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": []}
    raised = False
    try:
        asyncio.run(MetricsMiddleware(app, recorder=recorder)(scope, receive, send))
    except RuntimeError:
        raised = True
    assert raised == (ending == "raise")
    assert b"".join(received) == request
    assert sent == app_sent
    fams = parse_registry(registry)
    running = fams.get("inference_model_running_requests")
    if running is not None:
        assert set(running.samples.values()) == {0.0}
    for name in ("inference_model_request_total", "inference_model_request_error_total"):
        family = fams.get(name)
        assert family is None or sum(family.samples.values()) <= 1
