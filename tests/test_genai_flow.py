"""GenAI metrics from the request flow: the middleware and the lifecycle pass on the operation the
endpoint is and give failures their duration with ``error.type`` (OpenTelemetry SDK, in-memory
reader; the middleware under uvicorn)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inference_metrics import ErrorCode, PrometheusBackend, Recorder, RequestContext
from inference_metrics.asgi import MetricsMiddleware
from inference_metrics.genai import GenAIRecorder
from tests.clocks import FakeClock
from tests.uvicorn_harness import serve

DURATION = "gen_ai.server.request.duration"


@dataclass
class GenAI:
    recorder: Recorder
    reader: InMemoryMetricReader

    def durations(self) -> list[HistogramDataPoint]:
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == DURATION
            for point in metric.data.data_points
            if isinstance(point, HistogramDataPoint)
        ]

    def duration_attributes(self) -> list[dict[str, object]]:
        return in_order(dict(p.attributes or {}) for p in self.durations())


def in_order(found: Iterable[dict[str, object]]) -> list[dict[str, object]]:
    return sorted(found, key=lambda a: json.dumps(a, sort_keys=True))


@pytest.fixture
def genai() -> Iterator[GenAI]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        genai = GenAIRecorder(provider, provider_name="vllm")
        yield GenAI(Recorder(PrometheusBackend(CollectorRegistry()), genai=genai), reader)
    finally:
        provider.shutdown()


def attributes(operation: str, model: str, target: str | None, **extra: str) -> dict[str, object]:
    found: dict[str, object] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": "vllm",
        "gen_ai.request.model": model,
        **extra,
    }
    if target:
        found["gen_ai.response.model"] = target
    return found


# --- through the middleware -----------------------------------------------------------------------


async def answer(request: Request) -> Response:
    body = json.loads(await request.body())
    status = int(body.get("status", 200))
    if body.get("crash"):
        raise RuntimeError("the handler failed")
    if status != 200:
        return JSONResponse({"error": {"message": "failed"}}, status_code=status)
    usage = {"prompt_tokens": 2, "completion_tokens": 3}
    return JSONResponse({"model": body["model"], "choices": [], "usage": usage})


def app(recorder: Recorder) -> MetricsMiddleware:
    routes = [
        Route(path, answer, methods=["POST"])
        for path in ("/v1/completions", "/v1/chat/completions")
    ]
    return MetricsMiddleware(Starlette(routes=routes), recorder=recorder)


def post(url: str, **body: object) -> int:
    with httpx.Client(timeout=10) as client:
        return client.post(url, content=json.dumps({"model": "m", **body})).status_code


def test_completions_through_the_middleware_are_text_completion(genai: GenAI) -> None:
    with serve(app(genai.recorder)) as url:
        assert post(url + "/v1/completions") == 200
        assert post(url + "/v1/chat/completions") == 200
    assert genai.duration_attributes() == in_order(
        [attributes("chat", "m", "m"), attributes("text_completion", "m", "m")]
    )


def test_failures_through_the_middleware_record_their_duration_with_error_type(
    genai: GenAI,
) -> None:
    with serve(app(genai.recorder)) as url:
        assert post(url + "/v1/chat/completions", status=500) == 500
        assert post(url + "/v1/chat/completions", status=503) == 503
        assert post(url + "/v1/completions", crash=True) == 500
    assert genai.duration_attributes() == in_order(
        [
            attributes("chat", "m", "m", **{"error.type": "Internal"}),
            attributes("chat", "m", "m", **{"error.type": "ServiceUnavailable"}),
            attributes("text_completion", "m", "m", **{"error.type": "Internal"}),
        ]
    )
    assert all(point.count == 1 and point.sum > 0 for point in genai.durations())


# --- through the lifecycle (an ext_proc stream) ---------------------------------------------------


def context(genai: GenAI, clock: FakeClock, path: str) -> RequestContext:
    ctx = RequestContext(genai.recorder, clock=clock)
    ctx.on_request_headers([(":method", "POST"), (":path", path)])
    return ctx


def test_a_failure_in_the_lifecycle_records_its_duration_with_error_type(genai: GenAI) -> None:
    clock = FakeClock(100.0)
    ctx = context(genai, clock, "/v1/completions")
    assert ctx.on_request_body(b'{"model": "m"}', end_of_stream=True)
    ctx.route("m-lora")
    clock.advance(1.5)
    ctx.on_response_headers({":status": "500"})
    ctx.on_response_body(b'{"error": {}}', end_of_stream=True)
    (point,) = genai.durations()
    assert dict(point.attributes or {}) == attributes(
        "text_completion", "m", "m-lora", **{"error.type": "ModelServerError"}
    )
    assert point.sum == 1.5


def test_a_request_refused_before_routing_records_its_duration_without_models(
    genai: GenAI,
) -> None:
    clock = FakeClock(100.0)
    ctx = context(genai, clock, "/v1/chat/completions?api-version=1")
    clock.advance(0.25)
    assert not ctx.on_request_body(b"not json", end_of_stream=True)
    (point,) = genai.durations()
    assert dict(point.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "vllm",
        "error.type": "BadRequest",
    }
    assert point.sum == 0.25


def test_the_path_header_names_the_operation_of_a_completed_request(genai: GenAI) -> None:
    clock = FakeClock(100.0)
    ctx = context(genai, clock, "/v1/completions")
    assert ctx.on_request_body(b'{"model": "m"}', end_of_stream=True)
    ctx.route()
    clock.advance(2.0)
    ctx.on_response_body(
        b'{"usage": {"prompt_tokens": 1, "completion_tokens": 1}}', end_of_stream=True
    )
    (point,) = genai.durations()
    assert dict(point.attributes or {}) == attributes("text_completion", "m", "m")
    assert ctx.operation == "text_completion"


def test_a_cancelled_request_records_no_genai_duration(genai: GenAI) -> None:
    ctx = context(genai, FakeClock(100.0), "/v1/completions")
    assert ctx.on_request_body(b'{"model": "m"}', end_of_stream=True)
    ctx.route()
    ctx.cancel()
    ctx.fail(ErrorCode.INTERNAL)
    assert genai.durations() == []
