"""A real Prometheus 2.42 (native histograms and exemplar storage on) scrapes a page our protobuf
encoder made: it asks for protobuf first, ingests native series it can query with
histogram_count / histogram_sum / histogram_quantile, keeps the exemplar of a native-only
histogram (on its ``+Inf`` bucket entry) and of a classic bucket, and reads counters, gauges and
classic histograms as before. The page is served by a plain HTTP server in the test: the
encoder, not our exposition server (which does not serve protobuf yet), is what is tested."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import median

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from inference_metrics.backends.exemplars import ExemplarSlots, span_reader
from inference_metrics.backends.native import NativeHistogram, bucket_key, upper_bound
from inference_metrics.backends.protobuf import (
    CONTENT_TYPE,
    HistogramEncoder,
    MetricType,
    counter,
    family,
    family_header,
    gauge,
    label_pairs,
)

from .prometheus_harness import PrometheusServer, ScrapeJob, find_prometheus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_prometheus() is None, reason="Prometheus is not installed"),
]

LATENCY = (0.1, 0.25, 0.5, 1.0, 2.5)
OBSERVED = [0.05, 0.12, 0.2, 0.3, 0.33, 0.45, 0.6, 0.8, 1.7, 3.2, 7.5]


class Page:
    """The page the test serves, and the Accept headers it was asked with."""

    def __init__(self) -> None:
        tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("test")
        read = span_reader()
        labels = label_pairs([("model_name", "m")])
        native = NativeHistogram()
        native.observe(OBSERVED)
        native_exemplars = ExemplarSlots(1)
        classic_exemplars = ExemplarSlots(len(LATENCY) + 1)
        with tracer.start_as_current_span("slow request") as span:
            ids = read()
            assert ids is not None
            self.ids = span.get_span_context()
            now = time.time()
            native_exemplars.offer_span(0, ids, 7.5, now)
            classic_exemplars.offer_span(len(LATENCY), ids, 7.5, now)
        counts = [0] * (len(LATENCY) + 1)
        for value in OBSERVED:
            counts[sum(value > bound for bound in LATENCY)] += 1
        total = sum(OBSERVED)
        self.body = b"".join(
            (
                family(
                    family_header("requests_total", "Requests.", MetricType.COUNTER),
                    [counter(labels, 11.0)],
                ),
                family(
                    family_header("running", "Running.", MetricType.GAUGE), [gauge(labels, 3.0)]
                ),
                family(
                    family_header("native_seconds", "Native.", MetricType.HISTOGRAM),
                    [
                        HistogramEncoder().metric(
                            labels,
                            native.count,
                            total,
                            native=native,
                            exemplars=[native_exemplars.latest()],
                        )
                    ],
                ),
                family(
                    family_header("classic_seconds", "Classic.", MetricType.HISTOGRAM),
                    [
                        HistogramEncoder(LATENCY).metric(
                            labels,
                            len(OBSERVED),
                            total,
                            counts=counts,
                            exemplars=classic_exemplars.snapshot(),
                        )
                    ],
                ),
            )
        )
        self.accept: list[str] = []


@pytest.fixture(scope="module")
def page() -> Page:
    return Page()


@pytest.fixture(scope="module")
def prometheus(page: Page, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page.accept.append(self.headers.get("Accept", ""))
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(page.body)))
            self.end_headers()
            self.wfile.write(page.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target = f"127.0.0.1:{server.server_address[1]}"
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    try:
        with PrometheusServer(
            [ScrapeJob("encoder", [target])],
            workdir,
            extra_args=["--enable-feature=native-histograms,exemplar-storage"],
        ) as running:
            running.wait_for_targets("encoder")
            running.wait_for_value('histogram_count(native_seconds{job="encoder"})')
            yield running
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_prometheus_asks_for_protobuf_first(page: Page, prometheus: PrometheusServer) -> None:
    assert page.accept
    assert page.accept[0].startswith("application/vnd.google.protobuf;")
    assert "proto=io.prometheus.client.MetricFamily" in page.accept[0]


def test_the_native_series_count_and_sum_are_what_was_observed(
    prometheus: PrometheusServer,
) -> None:
    assert prometheus.query_value("histogram_count(native_seconds)") == len(OBSERVED)
    assert prometheus.query_value("histogram_sum(native_seconds)") == pytest.approx(sum(OBSERVED))


def test_the_native_median_lies_in_the_bucket_of_the_true_median(
    prometheus: PrometheusServer,
) -> None:
    estimate = prometheus.query_value("histogram_quantile(0.5, native_seconds)")
    assert estimate is not None
    key = bucket_key(median(OBSERVED))  # 0.45: (0.420, 0.459], one factor of 1.09 wide
    assert upper_bound(key - 1) < estimate <= upper_bound(key)


def test_a_native_histogram_has_no_bucket_series(prometheus: PrometheusServer) -> None:
    assert prometheus.query("native_seconds_bucket") == []


def test_the_native_exemplar_carries_the_ids_of_the_span_that_made_it(
    page: Page, prometheus: PrometheusServer
) -> None:
    exemplars = prometheus.api(
        "query_exemplars", query="native_seconds", start=time.time() - 600, end=time.time() + 60
    )
    labels = [e["labels"] for series in exemplars for e in series["exemplars"]]
    assert {
        "trace_id": f"{page.ids.trace_id:032x}",
        "span_id": f"{page.ids.span_id:016x}",
    } in labels


def test_counters_gauges_and_classic_histograms_read_as_before(
    page: Page, prometheus: PrometheusServer
) -> None:
    assert prometheus.query_value("requests_total") == 11.0
    assert prometheus.query_value("running") == 3.0
    assert prometheus.query_value('classic_seconds_bucket{le="0.5"}') == 6.0
    assert prometheus.query_value('classic_seconds_bucket{le="+Inf"}') == len(OBSERVED)
    assert prometheus.query_value("classic_seconds_count") == len(OBSERVED)
    exemplars = prometheus.api(
        "query_exemplars",
        query="classic_seconds_bucket",
        start=time.time() - 600,
        end=time.time() + 60,
    )
    found = [
        (series["seriesLabels"].get("le"), e["labels"]["trace_id"])
        for series in exemplars
        for e in series["exemplars"]
    ]
    assert ("+Inf", f"{page.ids.trace_id:032x}") in found
