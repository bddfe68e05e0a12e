"""OpenTelemetry GenAI metrics: names, units, attributes and buckets as semantic conventions
v1.41.0 define them, through the SDK's in-memory reader and a real Prometheus scraping the
OpenTelemetry Prometheus exporter.

Most tests call ``GenAIRecorder``'s own (deprecated) recording methods, which record through a
Recorder of its own: what they record is what a Recorder records with the GenAI schema (tested
below too), and their deprecation warning is tested once."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as semconv
from prometheus_client import CollectorRegistry, start_http_server

from inference_metrics import OpenTelemetryBackend, PrometheusBackend, Recorder
from inference_metrics.genai import GENAI_METRICS, GenAIRecorder, genai_schema, operation_for_path

from .expo import parse_registry
from .prometheus_harness import PrometheusServer, ScrapeJob, find_prometheus, free_port

# Semantic conventions v1.41.0, docs/gen-ai/gen-ai-metrics.md, written out by hand.
FACTS = {
    "gen_ai.server.request.duration": (
        "s",
        (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92),
    ),
    "gen_ai.server.time_to_first_token": (
        "s",
        (
            0.001,
            0.005,
            0.01,
            0.02,
            0.04,
            0.06,
            0.08,
            0.1,
            0.25,
            0.5,
            0.75,
            1.0,
            2.5,
            5.0,
            7.5,
            10.0,
        ),
    ),
    "gen_ai.server.time_per_output_token": (
        "s",
        (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5),
    ),
    "gen_ai.client.token.usage": (
        "{token}",
        (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864),
    ),
}
pytestmark = pytest.mark.filterwarnings("ignore:GenAIRecorder.record_request_:DeprecationWarning")

BASE = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "llama",
    "gen_ai.response.model": "llama-lora",
}


@pytest.fixture
def memory() -> Iterator[tuple[GenAIRecorder, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        yield GenAIRecorder(provider, provider_name="openai"), reader
    finally:
        provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, tuple[str, list[HistogramDataPoint]]]:
    data = reader.get_metrics_data()
    found: dict[str, tuple[str, list[HistogramDataPoint]]] = {}
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = (metric.unit or "", list(metric.data.data_points))  # type: ignore[arg-type]
    return found


def streamed(recorder: GenAIRecorder | Recorder, **extra: Any) -> None:
    recorder.record_request_completed(
        "llama",
        "llama-lora",
        received=10.0,
        first_token=10.25,
        completed=12.25,
        input_tokens=100,
        output_tokens=9,
        **extra,
    )


def test_the_metrics_are_the_conventions_names_units_and_descriptions() -> None:
    assert {m.name: (m.unit, m.buckets) for m in GENAI_METRICS} == {
        name: (unit, tuple(float(b) for b in buckets)) for name, (unit, buckets) in FACTS.items()
    }
    # The installed semantic-conventions package agrees on the names and descriptions.
    for metric, constant in zip(
        GENAI_METRICS,
        (
            semconv.GEN_AI_SERVER_REQUEST_DURATION,
            semconv.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN,
            semconv.GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN,
            semconv.GEN_AI_CLIENT_TOKEN_USAGE,
        ),
        strict=True,
    ):
        assert metric.name == constant


def test_a_streamed_request_records_every_metric_with_the_advised_buckets(
    memory: tuple[GenAIRecorder, InMemoryMetricReader],
) -> None:
    recorder, reader = memory
    streamed(recorder)
    found = points(reader)
    assert set(found) == set(FACTS)
    for name, (unit, buckets) in FACTS.items():
        assert found[name][0] == unit, name
        for point in found[name][1]:
            assert tuple(point.explicit_bounds) == tuple(float(b) for b in buckets), name
    (duration,) = found["gen_ai.server.request.duration"][1]
    assert dict(duration.attributes or {}) == BASE
    assert duration.sum == 2.25
    (ttft,) = found["gen_ai.server.time_to_first_token"][1]
    assert (dict(ttft.attributes or {}), ttft.sum) == (BASE, 0.25)
    (tpot,) = found["gen_ai.server.time_per_output_token"][1]
    assert (dict(tpot.attributes or {}), tpot.sum) == (BASE, 2.0 / 8)
    usage = {
        dict(p.attributes or {})["gen_ai.token.type"]: (dict(p.attributes or {}), p.sum)
        for p in found["gen_ai.client.token.usage"][1]
    }
    assert usage == {
        "input": ({**BASE, "gen_ai.token.type": "input"}, 100),
        "output": ({**BASE, "gen_ai.token.type": "output"}, 9),
    }


def test_a_non_streamed_request_has_no_ttft_or_tpot(
    memory: tuple[GenAIRecorder, InMemoryMetricReader],
) -> None:
    recorder, reader = memory
    recorder.record_request_completed(
        "llama", "", received=1.0, completed=2.0, output_tokens=5, operation="text_completion"
    )
    found = points(reader)
    assert set(found) == {"gen_ai.server.request.duration", "gen_ai.client.token.usage"}
    (duration,) = found["gen_ai.server.request.duration"][1]
    # No response model known: the recommended attribute is left out, not empty.
    assert dict(duration.attributes or {}) == {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "llama",
    }


def test_a_failure_records_its_duration_with_error_type_only(
    memory: tuple[GenAIRecorder, InMemoryMetricReader],
) -> None:
    recorder, reader = memory
    recorder.record_request_failed(
        "llama", "llama-lora", error_type="ModelServerError", received=1.0, completed=1.5
    )
    found = points(reader)
    assert set(found) == {"gen_ai.server.request.duration"}
    (duration,) = found["gen_ai.server.request.duration"][1]
    assert dict(duration.attributes or {}) == {**BASE, "error.type": "ModelServerError"}


def test_attribute_sets_beyond_the_bound_are_recorded_as_overflow() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    recorder = GenAIRecorder(provider, provider_name="openai", max_series=2)
    for model in ("a", "b", "c", "d"):
        recorder.record_request_completed(model, model, received=0.0, completed=1.0)
    (_, duration) = points(reader)["gen_ai.server.request.duration"]
    models = sorted(str(dict(p.attributes or {})["gen_ai.request.model"]) for p in duration)
    assert models == ["__overflow__", "a", "b"]
    assert sum(p.count for p in duration) == 4
    provider.shutdown()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        ({"operation": ""}, TypeError, "operation"),
        ({"received": math.nan}, ValueError, "received"),
        ({"input_tokens": -1}, ValueError, "input_tokens"),
    ],
)
def test_bad_input_is_refused_and_records_nothing(
    memory: tuple[GenAIRecorder, InMemoryMetricReader],
    call: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    recorder, reader = memory
    arguments: dict[str, Any] = {"received": 1.0, "completed": 2.0, **call}
    with pytest.raises((TypeError, ValueError), match=message):
        recorder.record_request_completed("m", "t", **arguments)
    assert points(reader) == {}


def test_its_own_recording_methods_are_deprecated_and_still_record(
    memory: tuple[GenAIRecorder, InMemoryMetricReader],
) -> None:
    recorder, reader = memory
    with pytest.deprecated_call(match="Recorder\\(backend, genai=genai\\)"):
        recorder.record_request_completed("m", "t", received=1.0, completed=2.0)
    with pytest.deprecated_call(match="record_request_failed"):
        recorder.record_request_failed("m", "t", error_type="E", received=1.0, completed=2.0)
    (_, durations) = points(reader)["gen_ai.server.request.duration"]
    assert sum(p.count for p in durations) == 2


def test_a_recorder_with_the_genai_schema_alone_records_what_the_genai_recorder_does() -> None:
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    providers = [MeterProvider(metric_readers=[r], shutdown_on_exit=False) for r in readers]
    try:
        streamed(GenAIRecorder(providers[0], provider_name="openai"))
        alone = Recorder(OpenTelemetryBackend(providers[1]), schema=genai_schema("openai"))
        streamed(alone, response_size=0)
        first, second = points(readers[0]), points(readers[1])
        assert set(first) == set(second) == set(FACTS)
        for name in FACTS:
            assert sorted((dict(p.attributes or {}).items(), p.sum) for p in first[name][1]) == (
                sorted((dict(p.attributes or {}).items(), p.sum) for p in second[name][1])
            ), name
    finally:
        for provider in providers:
            provider.shutdown()


def test_two_recorders_can_share_one_genai_recorder() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        genai = GenAIRecorder(provider, provider_name="openai")
        for _ in range(2):
            recorder = Recorder(PrometheusBackend(CollectorRegistry()), genai=genai)
            recorder.record_request_completed(
                "m", "t", received=1.0, completed=2.0, response_size=1
            )
        (_, durations) = points(reader)["gen_ai.server.request.duration"]
        assert [p.count for p in durations] == [2]  # one instrument, one series
    finally:
        provider.shutdown()


def test_a_refused_genai_registration_leaves_the_recorders_registry_free() -> None:
    provider = MeterProvider(shutdown_on_exit=False)
    try:
        Recorder(
            PrometheusBackend(CollectorRegistry()),
            genai=GenAIRecorder(provider, provider_name="a"),
        )
        registry = CollectorRegistry()
        second = GenAIRecorder(provider, provider_name="b")  # the same names on that provider
        with pytest.raises(ValueError, match="already registered"):
            Recorder(PrometheusBackend(registry), genai=second)
        Recorder(PrometheusBackend(registry))  # nothing was left registered there
    finally:
        provider.shutdown()


def test_genai_metrics_cannot_go_to_a_prometheus_backend() -> None:
    with pytest.raises(ValueError, match="named for OpenTelemetry"):
        Recorder(PrometheusBackend(CollectorRegistry()), schema=genai_schema("openai"))


def test_a_provider_name_is_required() -> None:
    with pytest.raises(ValueError, match="provider_name"):
        GenAIRecorder(MeterProvider(), provider_name="")


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/v1/chat/completions", "chat"),
        ("/v1/completions?x=1", "text_completion"),
        ("/v1/embeddings/", "embeddings"),
        ("/healthz", None),
    ],
)
def test_the_operation_follows_the_endpoint(path: str, operation: str | None) -> None:
    assert operation_for_path(path) == operation


def test_the_recorder_records_genai_beside_the_endpoint_pickers_metrics(
    memory: tuple[GenAIRecorder, InMemoryMetricReader],
) -> None:
    genai, reader = memory
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), schema="llm-d-router", genai=genai)
    recorder.record_request_completed(
        "llama",
        "llama-lora",
        received=10.0,
        first_token=10.25,
        completed=12.25,
        response_size=10,
        input_tokens=100,
        output_tokens=9,
    )
    recorder.record_request_failed("llama", "llama-lora", "Internal", received=1.0, completed=2.0)
    assert "llm_d_epp_request_duration_seconds" in parse_registry(registry)
    (_, durations) = points(reader)["gen_ai.server.request.duration"]
    assert sorted(str(dict(p.attributes or {}).get("error.type", "")) for p in durations) == [
        "",
        "Internal",
    ]


def test_a_bad_operation_through_the_recorder_changes_nothing(
    memory: tuple[GenAIRecorder, InMemoryMetricReader],
) -> None:
    genai, reader = memory
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), genai=genai)
    with pytest.raises(TypeError, match="operation"):
        recorder.record_request_failed("m", "t", "Internal", operation=3)  # type: ignore[arg-type]
    assert parse_registry(registry) == {}
    assert points(reader) == {}


@pytest.mark.slow
@pytest.mark.skipif(find_prometheus() is None, reason="needs the prometheus binary")
def test_prometheus_scrapes_the_conventions_through_the_otel_exporter(tmp_path: Any) -> None:
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(disable_target_info=True, registry=registry)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    recorder = GenAIRecorder(provider, provider_name="openai")
    streamed(recorder)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        job = ScrapeJob("genai", [f"127.0.0.1:{port}"], scrape_interval="1s")
        with PrometheusServer([job], tmp_path / "prometheus") as prometheus:
            prometheus.wait_for_targets("genai", "up", timeout=15)
            expected = {
                "gen_ai_server_request_duration_seconds_count": 1,
                "gen_ai_server_time_to_first_token_seconds_count": 1,
                "gen_ai_server_time_per_output_token_seconds_count": 1,
                'gen_ai_client_token_usage_count{gen_ai_token_type="input"}': 1,
                'gen_ai_client_token_usage_sum{gen_ai_token_type="output"}': 9,
                'gen_ai_server_request_duration_seconds_bucket{le="2.56"}': 1,
                'gen_ai_server_request_duration_seconds_bucket{le="1.28"}': 0,
            }
            for promql, value in expected.items():
                # Scraped: the series is there (0 included) with the value recorded.
                got = prometheus.wait_for_value(promql, lambda _: True, timeout=15)
                assert got == value, promql
            (series,) = prometheus.query("gen_ai_server_request_duration_seconds_count")
            labels = {k: v for k, v in series["metric"].items() if k not in ("job", "instance")}
            assert labels == {
                "__name__": "gen_ai_server_request_duration_seconds_count",
                "gen_ai_operation_name": "chat",
                "gen_ai_provider_name": "openai",
                "gen_ai_request_model": "llama",
                "gen_ai_response_model": "llama-lora",
                **{k: v for k, v in labels.items() if k.startswith("otel_scope")},
            }
    finally:
        server.shutdown()
        thread.join(5)
        provider.shutdown()
