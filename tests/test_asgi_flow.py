"""MetricsMiddleware under uvicorn, recording llm-d-router's labels from the request itself:
fairness id and priority (headers or callables), ``streaming``, and the running target."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.asgi import FlowValue, MetricsMiddleware, Scope
from tests.expo import parse_registry
from tests.uvicorn_harness import serve

FAIRNESS = "x-llm-d-inference-fairness-id"
SERVED = "served-v2"


async def chat(request: Request) -> Response:
    body = json.loads(await request.body())
    if body.get("stream"):

        async def events() -> AsyncIterator[bytes]:
            for text in ("a", "b"):
                chunk = {"model": SERVED, "choices": [{"delta": {"content": text}}]}
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            usage = {"prompt_tokens": 2, "completion_tokens": 2}
            yield b"data: " + json.dumps({"model": SERVED, "usage": usage}).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
    usage = {"prompt_tokens": 2, "completion_tokens": 3}
    return JSONResponse({"object": "chat.completion", "model": SERVED, "usage": usage})


class Served:
    def __init__(self, url: str, registry: CollectorRegistry) -> None:
        self.url = url
        self.registry = registry

    def post(self, headers: dict[str, str] | list[tuple[bytes, bytes]], **body: Any) -> None:
        with httpx.Client(timeout=10) as client:
            response = client.post(
                self.url + "/v1/chat/completions",
                content=json.dumps({"model": "m", **body}).encode(),
                headers=headers,
            )
        assert response.status_code == 200

    def samples(self, family: str, sample: str | None = None) -> dict[tuple[str, ...], float]:
        """``sample``'s values keyed by (fairness_id, priority, target, streaming-or-"")."""
        found = parse_registry(self.registry)[family].samples.items()
        return {
            (
                labels["fairness_id"],
                labels["priority"],
                labels["target_model_name"],
                labels.get("streaming", ""),
            ): value
            for (name, frozen), value in found
            if name == (sample or family)
            for labels in [dict(frozen)]
        }


def served(**options: Any) -> Iterator[Served]:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), schema="llm-d-router", max_priorities=4)
    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.add_middleware(MetricsMiddleware, recorder=recorder, **options)
    with serve(app) as url:
        yield Served(url, registry)


@pytest.fixture
def with_header() -> Iterator[Served]:
    yield from served(priority_header="x-priority")


def test_the_fairness_and_priority_headers_become_the_request_labels(with_header: Served) -> None:
    with_header.post({FAIRNESS: "tenant-a", "x-priority": "3"})
    assert with_header.samples("llm_d_epp_request_total") == {("tenant-a", "3", SERVED, ""): 1}
    # A JSON answer names its model at its end: the request ran under an empty target.
    assert with_header.samples("llm_d_epp_request_running") == {("tenant-a", "3", "", ""): 0}
    # A stream's first event names the model: the request runs under it from then on.
    with_header.post({FAIRNESS: "tenant-a", "x-priority": "3"}, stream=True)
    assert with_header.samples("llm_d_epp_request_running") == {
        ("tenant-a", "3", "", ""): 0,
        ("tenant-a", "3", SERVED, ""): 0,
    }
    assert with_header.samples("llm_d_epp_request_total") == {("tenant-a", "3", SERVED, ""): 2}


def test_unusable_header_values_are_recorded_as_the_defaults(with_header: Served) -> None:
    with_header.post([(FAIRNESS.encode(), b"\xff\xfe"), (b"x-priority", b"urgent")])
    with_header.post({FAIRNESS: "t" * 5000, "x-priority": "99999999999999999999"})
    assert with_header.samples("llm_d_epp_request_total") == {("default-flow", "0", SERVED, ""): 2}


def test_priorities_beyond_the_bound_fold_into_the_overflow(with_header: Served) -> None:
    for priority in range(6):
        with_header.post({"x-priority": str(priority)})
    totals = with_header.samples("llm_d_epp_request_total")
    assert {key[1] for key in totals} == {"0", "1", "2", "3", "__overflow__"}
    assert sum(totals.values()) == 6


def test_non_streamed_and_streamed_responses_record_ttft_with_their_streaming_label(
    with_header: Served,
) -> None:
    with_header.post({})
    with_header.post({}, stream=True)
    ttft = with_header.samples(
        "llm_d_epp_request_ttft_seconds", "llm_d_epp_request_ttft_seconds_count"
    )
    assert ttft == {
        ("default-flow", "0", SERVED, "false"): 1,
        ("default-flow", "0", SERVED, "true"): 1,
    }


def test_callables_override_the_headers_and_their_failures_are_ignored() -> None:
    def fairness(scope: Scope, body: dict[str, Any]) -> object:
        return body.get("user")

    def priority(scope: Scope, body: dict[str, Any]) -> object:
        if body.get("user") == "boom":
            raise RuntimeError("the callable failed")
        return {"premium": 10}.get(body.get("tier", ""))

    callables: dict[str, FlowValue] = {"fairness_id": fairness, "priority": priority}
    for server in served(priority_header="x-priority", **callables):
        server.post({"x-priority": "1"}, user="alice", tier="premium")
        server.post({"x-priority": "1", FAIRNESS: "from-header"})
        server.post({}, user="boom")
        assert server.samples("llm_d_epp_request_total") == {
            ("alice", "10", SERVED, ""): 1,
            ("from-header", "1", SERVED, ""): 1,
            ("boom", "0", SERVED, ""): 1,
        }


def test_a_target_model_callable_makes_the_running_gauge_carry_that_target() -> None:
    def target(scope: Scope, body: dict[str, Any]) -> str:
        return "lora-7"

    for server in served(target_model=target):
        server.post({FAIRNESS: "a"})
        assert server.samples("llm_d_epp_request_running") == {("a", "0", "lora-7", ""): 0}
        assert server.samples("llm_d_epp_request_total") == {("a", "0", "lora-7", ""): 1}


def test_a_bad_callable_or_header_name_is_refused_when_the_middleware_is_made() -> None:
    recorder = Recorder(PrometheusBackend(CollectorRegistry()), schema="llm-d-router")
    app = Starlette()
    with pytest.raises(TypeError, match="fairness_id must be callable"):
        MetricsMiddleware(app, recorder=recorder, fairness_id="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="priority_header"):
        MetricsMiddleware(app, recorder=recorder, priority_header="")
