"""A real Prometheus 2.42 (``--enable-feature=native-histograms,exemplar-storage``) scrapes our
real MetricsServer: a backend with ``histograms="native", exemplars=True`` and one with
``histograms="both"``. Prometheus asks for protobuf first, queries the native series with
histogram_count / histogram_sum / histogram_quantile, keeps the exemplars of observations made in
sampled spans (their trace and span ids), and, 2.x being what it is, keeps only the native half
of a ``both`` histogram (docs/native-histograms.md). Then the same with three worker processes
recording into the multiprocess store, served merged by ``inference-metrics serve
--multiprocess-dir DIR --histograms native --exemplars``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from prometheus_client import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.backends.native import bucket_key, upper_bound
from inference_metrics.server import AuthRequest, AuthResult, MetricsServer

from .prometheus_harness import (
    PrometheusServer,
    ScrapeJob,
    find_prometheus,
    free_port,
    stop_process,
)
from .test_cli_serve import command
from .test_multiproc import in_child, wait

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_prometheus() is None, reason="needs the prometheus binary"),
]

DURATION = "llm_d_epp_request_duration_seconds"
TTFT = "llm_d_epp_request_ttft_seconds"
LATENCIES = [0.05, 0.12, 0.2, 0.3, 0.33, 0.45, 0.6, 0.8, 1.7, 3.2, 7.5]


class Remembering:
    """Allows every scrape and remembers the ``Accept`` header of each."""

    def __init__(self) -> None:
        self.accept: list[str] = []

    async def authorize(self, request: AuthRequest) -> AuthResult:
        self.accept.append(request.headers.joined("Accept"))
        return AuthResult.allow("prometheus")


@dataclass
class Traffic:
    """What was recorded, and the span ids of every traced request."""

    registry: CollectorRegistry
    trace_ids: set[str] = field(default_factory=set)
    span_ids: set[str] = field(default_factory=set)
    last_trace_id: str = ""


def recorded(histograms: str) -> Traffic:
    registry = CollectorRegistry()
    backend = PrometheusBackend(registry, histograms=histograms, exemplars=True)
    recorder = Recorder(backend, schema="llm-d-router")
    traffic = Traffic(registry)
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("test")
    for n, latency in enumerate(LATENCIES):
        with tracer.start_as_current_span(f"request {n}") as span:
            recorder.record_request_completed(
                "llama",
                "llama-lora",
                received=100.0,
                completed=100.0 + latency,
                first_token=100.0 + latency / 4,
                response_size=100,
                output_tokens=10,
            )
        context = span.get_span_context()
        traffic.trace_ids.add(f"{context.trace_id:032x}")
        traffic.span_ids.add(f"{context.span_id:016x}")
        traffic.last_trace_id = f"{context.trace_id:032x}"
    # Outside any span: counted, but it makes no exemplar.
    recorder.record_request_latency("llama", "llama-lora", 100.0, 100.5)
    return traffic


@dataclass
class Scraped:
    prometheus: PrometheusServer
    native: Traffic
    both: Traffic
    auth: Remembering


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    native, both = recorded("native"), recorded("both")
    auth = Remembering()
    servers = [
        MetricsServer(auth=auth, registry=traffic.registry, host="127.0.0.1", port=0)
        for traffic in (native, both)
    ]
    for server in servers:
        server.start()
    try:
        jobs = [
            ScrapeJob(name, [f"127.0.0.1:{server.port}"])
            for name, server in zip(("native", "both"), servers, strict=True)
        ]
        with PrometheusServer(
            jobs,
            tmp_path_factory.mktemp("prometheus"),
            extra_args=["--enable-feature=native-histograms,exemplar-storage"],
        ) as prometheus:
            for job in ("native", "both"):
                prometheus.wait_for_targets(job)
                prometheus.wait_for_value(f'histogram_count({DURATION}{{job="{job}"}})')
            yield Scraped(prometheus, native, both, auth)
    finally:
        for server in servers:
            server.stop()


def exemplars_of(prometheus: PrometheusServer, query: str) -> list[dict[str, Any]]:
    found = prometheus.api(
        "query_exemplars", query=query, start=time.time() - 600, end=time.time() + 60
    )
    return [exemplar for series in found for exemplar in series["exemplars"]]


def test_prometheus_asks_our_server_for_protobuf_first(scraped: Scraped) -> None:
    assert scraped.auth.accept
    assert all(
        accept.startswith("application/vnd.google.protobuf;") for accept in scraped.auth.accept
    )


@pytest.mark.parametrize("job", ["native", "both"])
def test_histogram_count_and_sum_are_what_was_observed(scraped: Scraped, job: str) -> None:
    prometheus = scraped.prometheus
    count = prometheus.query_value(f'histogram_count({DURATION}{{job="{job}"}})')
    total = prometheus.query_value(f'histogram_sum({DURATION}{{job="{job}"}})')
    assert count == len(LATENCIES) + 1
    assert total == pytest.approx(sum(LATENCIES) + 0.5)


def test_the_native_median_lies_in_the_bucket_of_the_true_median(scraped: Scraped) -> None:
    estimate = scraped.prometheus.query_value(
        f'histogram_quantile(0.5, {DURATION}{{job="native"}})'
    )
    assert estimate is not None
    observed = sorted([*LATENCIES, 0.5])  # twelve: the median lies between the middle two
    low, high = observed[len(observed) // 2 - 1], observed[len(observed) // 2]
    assert low <= median(observed) <= high
    assert upper_bound(bucket_key(low) - 1) <= estimate <= upper_bound(bucket_key(high))


def test_the_exemplars_carry_the_ids_of_the_spans_that_made_them(scraped: Scraped) -> None:
    found = exemplars_of(scraped.prometheus, f'{DURATION}{{job="native"}}')
    assert found
    for exemplar in found:
        assert exemplar["labels"]["trace_id"] in scraped.native.trace_ids
        assert exemplar["labels"]["span_id"] in scraped.native.span_ids
    # The latest observation in a span is the one a native histogram shows.
    assert found[-1]["labels"]["trace_id"] == scraped.native.last_trace_id
    assert float(found[-1]["value"]) == LATENCIES[-1]


def test_ttft_exemplars_carry_span_ids_too(scraped: Scraped) -> None:
    found = exemplars_of(scraped.prometheus, f'{TTFT}{{job="native"}}')
    assert found
    assert {e["labels"]["trace_id"] for e in found} <= scraped.native.trace_ids


def test_a_native_histogram_has_no_bucket_series(scraped: Scraped) -> None:
    assert scraped.prometheus.query(f'{DURATION}_bucket{{job="native"}}') == []


def test_prometheus_2_keeps_only_the_native_half_of_both(scraped: Scraped) -> None:
    # Without scrape_classic_histograms (2.45+), upstream's _bucket dashboards see nothing.
    assert scraped.prometheus.query(f'{DURATION}_bucket{{job="both"}}') == []
    exemplars = exemplars_of(scraped.prometheus, f'{DURATION}{{job="both"}}')
    assert exemplars
    assert {e["labels"]["trace_id"] for e in exemplars} <= scraped.both.trace_ids


# --- three worker processes: the multiprocess store, served by `inference-metrics serve` -------

WORKERS = 3
PER_WORKER = 20


@dataclass
class Workers:
    prometheus: PrometheusServer
    latencies: list[float]
    trace_ids: set[str]


def worker_latencies(worker: int) -> list[float]:
    return [0.01 * (worker + 1) * (1 + i) ** 1.5 for i in range(PER_WORKER)]


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    root = tmp_path_factory.mktemp("workers")
    directory = root / "multiproc"
    directory.mkdir()
    ready, release = os.pipe(), os.pipe()
    pids = []
    for worker in range(WORKERS):

        def work(worker: int = worker) -> None:
            registry = CollectorRegistry()
            backend = PrometheusBackend(
                registry, multiprocess_dir=directory, histograms="native", exemplars=True
            )
            recorder = Recorder(backend, schema="llm-d-router")
            tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("worker")
            ids = []
            for latency in worker_latencies(worker):
                with tracer.start_as_current_span("request") as span:
                    recorder.record_request_latency("llama", "llama-lora", 100.0, 100.0 + latency)
                ids.append(f"{span.get_span_context().trace_id:032x}")
            (root / f"worker-{worker}.json").write_text(json.dumps(ids))
            os.write(ready[1], b"x")
            os.read(release[0], 1)  # alive (its file live, unmerged into the archive) until then

        pids.append(in_child(work))
    try:
        for _ in range(WORKERS):
            assert os.read(ready[0], 1) == b"x"
        port = free_port()
        exporter = subprocess.Popen(
            [
                *command(),
                "serve",
                "--host=127.0.0.1",
                f"--port={port}",
                f"--multiprocess-dir={directory}",
                "--schema=llm-d-router",
                "--histograms=native",
                "--exemplars",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            with PrometheusServer(
                [ScrapeJob("workers", [f"127.0.0.1:{port}"])],
                root / "prometheus",
                extra_args=["--enable-feature=native-histograms,exemplar-storage"],
            ) as prometheus:
                prometheus.wait_for_targets("workers")
                prometheus.wait_for_value(
                    f"histogram_count({DURATION})", lambda v: v == WORKERS * PER_WORKER
                )
                trace_ids = {
                    trace_id
                    for worker in range(WORKERS)
                    for trace_id in json.loads((root / f"worker-{worker}.json").read_text())
                }
                latencies = [v for worker in range(WORKERS) for v in worker_latencies(worker)]
                yield Workers(prometheus, latencies, trace_ids)
        finally:
            stop_process(exporter)
    finally:
        os.write(release[1], b"x" * WORKERS)
        for pid in pids:
            assert wait(pid) == 0


def test_three_workers_native_series_count_sum_and_quantile(workers: Workers) -> None:
    prometheus = workers.prometheus
    assert prometheus.query_value(f"histogram_count({DURATION})") == WORKERS * PER_WORKER
    assert prometheus.query_value(f"histogram_sum({DURATION})") == pytest.approx(
        sum(workers.latencies)
    )
    estimate = prometheus.query_value(f"histogram_quantile(0.5, {DURATION})")
    assert estimate is not None
    observed = sorted(workers.latencies)  # sixty: the median lies between the middle two
    low, high = observed[len(observed) // 2 - 1], observed[len(observed) // 2]
    assert upper_bound(bucket_key(low) - 1) <= estimate <= upper_bound(bucket_key(high))


def test_three_workers_exemplars_carry_the_ids_of_their_spans(workers: Workers) -> None:
    found = exemplars_of(workers.prometheus, DURATION)
    assert found
    assert {e["labels"]["trace_id"] for e in found} <= workers.trace_ids
