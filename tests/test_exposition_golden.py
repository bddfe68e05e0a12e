"""The exposition of every schema, in every format and through every backend, byte for byte.

One fixed sequence of Recorder calls (every recording call: two streamed and two non-streamed
requests per label set, errors, running requests, the inter-token latency observer, upstream's
per-metric calls, every pool gauge, per-pod queues, a removed pod and pool, build info, and more
label sets than ``max_series`` so the overflow series shows) is recorded under each schema, and
the bytes are compared with the files in ``tests/data/golden/``:

* ``text`` and ``openmetrics``: :func:`inference_metrics.exposition.render` (what the server and
  the ASGI app send);
* ``generate_latest``: prometheus_client's own render of the same registry (the collector path);
* ``multiprocess``: the multiprocess store's merged view (one process);
* ``otel``: the OpenTelemetry backend through the SDK's Prometheus exporter (the parity
  configuration); the GenAI metrics through the same exporter as ``genai.otel``.

These files were written by the code as it was before the catalogue became quantities and views;
the refactor must not move a byte. Regenerate them only for a change that means to change the
exposition: ``INFERENCE_METRICS_WRITE_GOLDEN=1 .venv/bin/python -m pytest
tests/test_exposition_golden.py`` (then read the diff).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import OpenTelemetryBackend, PrometheusBackend, Recorder
from inference_metrics.exposition import TEXT, negotiate, render
from inference_metrics.genai import GenAIRecorder
from inference_metrics.schemas import SCHEMAS

GOLDEN = Path(__file__).parent / "data" / "golden"
WRITE = os.environ.get("INFERENCE_METRICS_WRITE_GOLDEN") == "1"
OPENMETRICS = negotiate("application/openmetrics-text; version=1.0.0")
#: Every named schema, and two recorded together (a migration).
CASES: dict[str, str | list[str]] = {
    **{name: name for name in SCHEMAS},
    "gie-v0.3+llm-d-router-without-deprecated": ["gie-v0.3", "llm-d-router-without-deprecated"],
}
MAX_SERIES = 5
PAIRS = [("llama", "llama"), ("llama", "llama-lora"), ("mistral", "mistral"), ("a", "b"), ("c", "")]


def record_everything(recorder: Recorder) -> None:
    """Every recording call, deterministic, with more request label sets than MAX_SERIES."""
    for index, (model, target) in enumerate(PAIRS):
        flow = {"fairness_id": f"tenant-{index % 2}", "priority": index % 3 - 1}
        recorder.record_request_started(model, target, 100 * index, **flow)  # type: ignore[arg-type]
        recorder.record_running_request_started(model, target, **flow)  # type: ignore[arg-type]
        observe = recorder.inter_token_latency_observer(model, target, **flow)  # type: ignore[arg-type]
        for gap in (0.015, 0.03, 0.5):
            observe(gap)
        recorder.record_inter_token_latency(model, target, 0.02, **flow)  # type: ignore[arg-type]
        recorder.record_request_completed(
            model,
            target,
            received=10.0,
            first_token=10.25,
            completed=12.5 + index,
            response_size=300 + index,
            input_tokens=20 * (index + 1),
            output_tokens=5 + index,
            cached_tokens=8 * index,
            **flow,  # type: ignore[arg-type]
        )
        recorder.record_request_completed(
            model,
            target,
            received=20.0,
            completed=23.0,
            response_size=50,
            request_size=64,
            output_tokens=1,
            streaming=False,
            **flow,  # type: ignore[arg-type]
        )
        recorder.record_request_completed(
            model,
            target,
            received=5.0,
            completed=5.0,
            response_size=0,
            **flow,  # type: ignore[arg-type]
        )
        recorder.record_request_failed(model, target, "Internal" if index % 2 else "", **flow)  # type: ignore[arg-type]
        if index % 2:
            recorder.record_running_request_finished(model, target, **flow)  # type: ignore[arg-type]
        # upstream's per-metric calls
        recorder.record_request_counter(model, target)
        recorder.record_request_error(model, target, "BadRequest")
        recorder.record_request_latency(model, target, 1.0, 1.75)
        recorder.record_request_size(model, target, 2048)
        recorder.record_response_size(model, target, 16384)
        recorder.record_input_tokens(model, target, 32778)
        recorder.record_output_tokens(model, target, 0)
    recorder.record_request_error("", "", "BadRequest")
    for pool, scale in (("pool-a", 1.0), ("pool-b", 2.0), ("pool-gone", 3.0)):
        recorder.record_pool_kv_cache_utilization(pool, 0.25 * scale)
        recorder.record_pool_queue_size(pool, 3 * scale)
        recorder.record_pool_ready_pods(pool, 2 * scale)
        recorder.record_pool_average_running_requests(pool, 4.5 * scale)
        recorder.record_pool_std_dev_kv_cache_utilization(pool, 0.125 * scale)
        recorder.record_pool_std_dev_queue_size(pool, 1.5 * scale)
        recorder.record_pool_std_dev_running_requests(pool, 2.5 * scale)
        for pod in ("pod-0", "pod-1"):
            recorder.record_pool_per_pod_queue_size(pool, pod, 7 * scale)
    recorder.remove_pod("pool-a", "pod-1")
    recorder.remove_pod("pool-gone", "pod-0")
    recorder.remove_pod("pool-gone", "pod-1")
    recorder.remove_pool("pool-gone")
    recorder.record_extension_info("abc123", "v1.2.3")


def genai_calls(recorder: Recorder) -> None:
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
    recorder.record_request_completed(
        "llama", "", received=1.0, completed=2.0, response_size=1, output_tokens=5,
        operation="text_completion",
    )  # fmt: skip
    recorder.record_request_failed("llama", "llama-lora", "Internal", received=1.0, completed=2.0)
    recorder.record_request_failed("", "", "BadRequest", received=3.0, completed=3.5)


def check(name: str, body: bytes) -> None:
    """``body`` against ``GOLDEN/name.gz`` (gzip'd: the pages are ~200 KB each as text)."""
    path = GOLDEN / f"{name}.gz"
    if WRITE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(body, 9, mtime=0))
        return
    assert path.exists(), f"no golden file {path}: see this module's docstring"
    expected = gzip.decompress(path.read_bytes())
    if body != expected:
        got, want = body.splitlines(), expected.splitlines()
        first = next(
            (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
            min(len(got), len(want)),
        )
        pytest.fail(
            f"{name} changed (see this module's docstring); first difference at line {first + 1}:"
            f"\n  got:      {got[first] if first < len(got) else '(end)'!r}"
            f"\n  expected: {want[first] if first < len(want) else '(end)'!r}"
        )


def prometheus_registry(schema: str | list[str]) -> CollectorRegistry:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), schema=schema, max_series=MAX_SERIES)
    record_everything(recorder)
    return registry


@pytest.mark.parametrize("case", list(CASES))
def test_the_served_text_and_openmetrics_are_unchanged(case: str) -> None:
    registry = prometheus_registry(CASES[case])
    check(f"{case}.txt", render(registry, TEXT))
    check(f"{case}.openmetrics.txt", render(registry, OPENMETRICS))


@pytest.mark.parametrize("case", list(CASES))
def test_prometheus_clients_own_render_is_unchanged(case: str) -> None:
    check(f"{case}.generate_latest.txt", generate_latest(prometheus_registry(CASES[case])))


@pytest.mark.parametrize("case", list(CASES))
def test_the_multiprocess_exposition_is_unchanged(case: str, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    backend = PrometheusBackend(registry, multiprocess_dir=tmp_path)
    try:
        record_everything(Recorder(backend, schema=CASES[case], max_series=MAX_SERIES))
        check(f"{case}.multiprocess.txt", render(registry, TEXT))
    finally:
        backend.close()


@pytest.fixture
def otel_registry() -> Iterator[tuple[CollectorRegistry, MeterProvider]]:
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(
        disable_target_info=True, scope_info_enabled=False, registry=registry
    )
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        yield registry, provider
    finally:
        provider.shutdown()


@pytest.mark.parametrize("case", list(CASES))
def test_the_opentelemetry_exposition_is_unchanged(
    case: str, otel_registry: tuple[CollectorRegistry, MeterProvider]
) -> None:
    registry, provider = otel_registry
    recorder = Recorder(OpenTelemetryBackend(provider), schema=CASES[case], max_series=MAX_SERIES)
    record_everything(recorder)
    check(f"{case}.otel.txt", generate_latest(registry))


def test_the_genai_exposition_is_unchanged() -> None:
    # With the exporter's scope labels: the meter's name and version show in them.
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(disable_target_info=True, registry=registry)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        genai = GenAIRecorder(provider, provider_name="openai")
        genai_calls(Recorder(PrometheusBackend(CollectorRegistry()), genai=genai))
        check("genai.otel.txt", generate_latest(registry))
    finally:
        provider.shutdown()
