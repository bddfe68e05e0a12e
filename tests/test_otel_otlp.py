"""The OpenTelemetry backend's data as OTLP sees it: data points in memory, and a real push."""

from __future__ import annotations

import gzip
import importlib.metadata
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    Sum,
)

from inference_metrics import CATALOG, OpenTelemetryBackend, Recorder
from inference_metrics.backends.otel import otel_unit

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "otlp_push.py"


def _otlp_proto_problem() -> str | None:
    """Why OTLP encoding cannot work in this environment, or None when it can.

    xds-protos (the ``extproc`` extra) ships its own, years-older copy of opentelemetry-proto's
    generated modules; installed after opentelemetry-proto, it overwrites them, and the OTLP
    exporter then fails to import. Reported as a skip that says how to repair the environment.
    """
    try:
        from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope  # noqa: F401
    except ImportError:
        version = importlib.metadata.version("opentelemetry-proto")
        return (
            "opentelemetry-proto's generated modules were overwritten by an older copy (xds-protos "
            "ships one); repair with: pip install --force-reinstall --no-deps "
            f"opentelemetry-proto=={version}"
        )
    return None


needs_otlp_proto = pytest.mark.skipif(
    _otlp_proto_problem() is not None, reason=_otlp_proto_problem() or ""
)
M = {"model_name": "m", "target_model_name": "t"}


@pytest.fixture
def in_memory() -> Iterator[tuple[Recorder, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield Recorder(OpenTelemetryBackend(provider)), reader
    provider.shutdown()


def collect(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    assert data is not None
    (resource_metrics,) = data.resource_metrics
    (scope_metrics,) = resource_metrics.scope_metrics
    assert scope_metrics.scope.name == "inference_metrics"
    assert scope_metrics.scope.version == importlib.metadata.version("inference-metrics")
    return {metric.name: metric for metric in scope_metrics.metrics}


def only_point(metric: Metric, **attributes: str) -> NumberDataPoint | HistogramDataPoint:
    points = [p for p in metric.data.data_points if dict(p.attributes or {}) == attributes]
    assert len(points) == 1, (metric.name, attributes, metric.data.data_points)
    point = points[0]
    assert isinstance(point, NumberDataPoint | HistogramDataPoint)
    return point


def test_data_points_carry_names_units_descriptions_and_attributes(
    in_memory: tuple[Recorder, InMemoryMetricReader],
) -> None:
    recorder, reader = in_memory
    recorder.record_request_counter("m", "t")
    recorder.record_request_counter("m", "t")
    recorder.record_request_error("", "", "BadRequest")
    recorder.record_request_size("m", "t", 1200)
    recorder.record_request_size("m", "t", 500)
    recorder.record_request_latency("m", "t", 10.0, 10.25)
    recorder.record_pool_kv_cache_utilization("pool", 0.3)
    metrics = collect(reader)

    assert set(metrics) == {
        "inference_model_request_total",
        "inference_model_request_error_total",
        "inference_model_request_sizes",
        "inference_model_request_duration_seconds",
        "inference_pool_average_kv_cache_utilization",
    }
    for name, metric in metrics.items():
        assert metric.description == CATALOG[name].documentation
        assert metric.unit == otel_unit(CATALOG[name])
    assert metrics["inference_model_request_sizes"].unit == "{byte}"
    assert metrics["inference_model_request_duration_seconds"].unit == "s"

    total = metrics["inference_model_request_total"].data
    assert isinstance(total, Sum)
    assert total.is_monotonic
    assert total.aggregation_temporality is AggregationTemporality.CUMULATIVE
    assert only_point(metrics["inference_model_request_total"], **M).value == 2  # type: ignore[union-attr]

    errors = metrics["inference_model_request_error_total"]
    point = only_point(errors, model_name="", target_model_name="", error_code="BadRequest")
    assert isinstance(point, NumberDataPoint)
    assert point.value == 1

    sizes = metrics["inference_model_request_sizes"]
    assert isinstance(sizes.data, Histogram)
    assert sizes.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    histogram = only_point(sizes, **M)
    assert isinstance(histogram, HistogramDataPoint)
    assert tuple(histogram.explicit_bounds) == CATALOG["inference_model_request_sizes"].buckets
    assert histogram.count == 2
    assert histogram.sum == 1700
    # 500 falls in (256, 512], 1200 in (1024, 2048]
    bounds = list(histogram.explicit_bounds)
    assert histogram.bucket_counts[bounds.index(512.0)] == 1
    assert histogram.bucket_counts[bounds.index(2048.0)] == 1
    assert sum(histogram.bucket_counts) == 2

    kv = metrics["inference_pool_average_kv_cache_utilization"]
    assert isinstance(kv.data, Gauge)
    assert only_point(kv, name="pool").value == 0.3  # type: ignore[union-attr]


def test_values_stay_cumulative_across_collections(
    in_memory: tuple[Recorder, InMemoryMetricReader],
) -> None:
    recorder, reader = in_memory
    recorder.record_request_counter("m", "t")
    recorder.record_output_tokens("m", "t", 100)
    collect(reader)
    recorder.record_request_counter("m", "t")
    recorder.record_output_tokens("m", "t", 3000)
    metrics = collect(reader)
    assert only_point(metrics["inference_model_request_total"], **M).value == 2  # type: ignore[union-attr]
    tokens = only_point(metrics["inference_model_output_tokens"], **M)
    assert isinstance(tokens, HistogramDataPoint)
    assert (tokens.count, tokens.sum) == (2, 3100)


@needs_otlp_proto
def test_bucket_bounds_survive_otlp_encoding_as_plain_doubles(
    in_memory: tuple[Recorder, InMemoryMetricReader],
) -> None:
    recorder, reader = in_memory
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    recorder.record_request_size("m", "t", 64)
    data = reader.get_metrics_data()
    assert data is not None
    wire = ExportMetricsServiceRequest.FromString(encode_metrics(data).SerializeToString())
    (metric,) = wire.resource_metrics[0].scope_metrics[0].metrics
    assert metric.name == "inference_model_request_sizes"
    assert metric.histogram.aggregation_temporality == (
        metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    )
    (point,) = metric.histogram.data_points
    assert tuple(point.explicit_bounds) == CATALOG["inference_model_request_sizes"].buckets
    assert point.bucket_counts[0] == 1


# --- a real push, to a small OTLP/HTTP receiver on loopback -------------------------------------


class _Receiver(ThreadingHTTPServer):
    requests: list[ExportMetricsServiceRequest]


class _OtlpHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        if self.path != "/v1/metrics":
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        self.server.requests.append(ExportMetricsServiceRequest.FromString(body))
        reply = ExportMetricsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _OtlpHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _child_environment() -> dict[str, str]:
    """This environment without OTEL_* settings or proxies: the push goes straight to loopback."""
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OTEL_") and key.lower() not in proxies
    }
    environment["NO_PROXY"] = environment["no_proxy"] = "127.0.0.1,localhost"
    return environment


EXAMPLE_ARGUMENTS = (
    "--requests",
    "50",
    "--timeout",
    "5",
    "--commit",
    "c0ffee",
    "--build-ref",
    "v9",
)


@needs_otlp_proto
def test_the_example_pushes_the_metrics_over_otlp_http(receiver: _Receiver) -> None:
    host, port = receiver.server_address[:2]
    endpoint = f"http://{host!s}:{port}/v1/metrics"
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), endpoint, *EXAMPLE_ARGUMENTS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_child_environment(),
    )
    assert result.returncode == 0, result.stderr
    assert "pushed them to" in result.stdout
    assert receiver.requests, "nothing arrived"

    (resource_metrics,) = receiver.requests[-1].resource_metrics
    service = {a.key: a.value.string_value for a in resource_metrics.resource.attributes}
    assert service["service.name"] == "inference-gateway"
    metrics = {m.name: m for s in resource_metrics.scope_metrics for m in s.metrics}
    assert {
        "inference_model_request_total",
        "inference_model_request_sizes",
        "inference_model_request_duration_seconds",
        "inference_pool_average_kv_cache_utilization",
        "inference_extension_info",
    } <= set(metrics)

    info = metrics["inference_extension_info"].gauge.data_points
    assert [
        ({a.key: a.value.string_value for a in p.attributes}, p.as_double or p.as_int) for p in info
    ] == [({"commit": "c0ffee", "build_ref": "v9"}, 1)]

    # Every counted request was also sized: the two must agree in what arrived.
    counted = sum(
        p.as_int or p.as_double for p in metrics["inference_model_request_total"].sum.data_points
    )
    sized = sum(p.count for p in metrics["inference_model_request_sizes"].histogram.data_points)
    assert 0 < counted == sized <= 50
    assert metrics["inference_model_request_total"].sum.is_monotonic
