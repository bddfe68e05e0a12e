"""A real Prometheus scrapes the guarded server: with its token it is up and queryable, without
it the target is down with a 401; through Kubernetes auth (stand-in API server) likewise 200/403.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from inference_metrics import CATALOG, PrometheusBackend, Recorder
from inference_metrics.exposition import negotiate, render
from inference_metrics.server import (
    KubernetesAuthenticator,
    KubernetesConfig,
    MetricsServer,
    ServerTLS,
    TokenFileAuthenticator,
)
from inference_metrics.simulate import simulate_pools, simulate_request

from .prometheus_harness import PrometheusServer, ScrapeJob, find_prometheus
from .server_support import KubeStandIn, StandInUser, TLSMaterial

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_prometheus() is None, reason="needs the prometheus binary"),
]

SCRAPE_TOKEN = "prometheus-scrape-token-41d9e2"
SERVER_SA_TOKEN = "gateway-sa-token-8f3b"
READER_TOKEN = "metrics-reader-token-6a2c"
NOBODY_TOKEN = "nobody-token-0e1f"
READER = StandInUser("system:serviceaccount:default:inference-gateway-sa-metrics-reader")
NOBODY = StandInUser("system:serviceaccount:default:nobody")


def simulated_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    rng = random.Random(7)
    simulate_pools(recorder, rng)
    for _ in range(200):
        simulate_request(recorder, rng, time.monotonic())
    return registry


def write(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    return path


@pytest.fixture
def material(tmp_path: Path) -> TLSMaterial:
    return TLSMaterial(tmp_path / "tls")


@pytest.fixture
def token_server(material: TLSMaterial, tmp_path: Path) -> Iterator[MetricsServer]:
    tokens = write(tmp_path / "server-tokens", SCRAPE_TOKEN)
    server = MetricsServer(
        auth=TokenFileAuthenticator(tokens),
        registry=simulated_registry(),
        host="127.0.0.1",
        port=0,
        tls=ServerTLS(material.cert_file, material.key_file),
    )
    with server:
        yield server


@pytest.fixture
def kube_server(material: TLSMaterial, tmp_path: Path) -> Iterator[MetricsServer]:
    with KubeStandIn(
        material,
        server_token=SERVER_SA_TOKEN,
        tokens={READER_TOKEN: READER, NOBODY_TOKEN: NOBODY},
        allow={(READER.username, "/metrics", "get")},
    ) as stand_in:
        config = KubernetesConfig(
            stand_in.url, material.ca_file, write(tmp_path / "sa-token", SERVER_SA_TOKEN)
        )
        server = MetricsServer(
            auth=KubernetesAuthenticator(config),
            registry=simulated_registry(),
            host="127.0.0.1",
            port=0,
        )
        with server:
            yield server
    assert stand_in.problems == []


def test_prometheus_scrapes_the_guarded_server(
    token_server: MetricsServer,
    kube_server: MetricsServer,
    material: TLSMaterial,
    tmp_path: Path,
) -> None:
    token_target = f"127.0.0.1:{token_server.port}"
    kube_target = f"127.0.0.1:{kube_server.port}"
    jobs = [
        ScrapeJob(
            "guarded",
            [token_target],
            scheme="https",
            ca_file=material.ca_file,
            bearer_token_file=write(tmp_path / "scrape-token", SCRAPE_TOKEN),
        ),
        ScrapeJob("anonymous", [token_target], scheme="https", ca_file=material.ca_file),
        ScrapeJob(
            "kubernetes",
            [kube_target],
            bearer_token_file=write(tmp_path / "reader-token", READER_TOKEN),
        ),
        ScrapeJob(
            "kubernetes-nobody",
            [kube_target],
            bearer_token_file=write(tmp_path / "nobody-token", NOBODY_TOKEN),
        ),
    ]
    with PrometheusServer(jobs, tmp_path / "prometheus") as prometheus:
        prometheus.wait_for_targets("guarded", "up")
        prometheus.wait_for_targets("kubernetes", "up")
        (anonymous,) = prometheus.wait_for_targets("anonymous", "down")
        (nobody,) = prometheus.wait_for_targets("kubernetes-nobody", "down")
        assert "401" in anonymous["lastError"]
        assert "403" in nobody["lastError"]

        for job in ("guarded", "kubernetes"):
            count = prometheus.wait_for_value(
                f'sum(inference_model_request_duration_seconds_count{{job="{job}"}})'
            )
            assert count > 0
        # The seed metrics arrive with upstream's names, labels and buckets.
        buckets = prometheus.query(
            'count by (model_name, target_model_name) (inference_model_request_duration_seconds_bucket{job="guarded"})'  # noqa: E501
        )
        assert buckets
        assert {float(series["value"][1]) for series in buckets} == {36.0}  # 35 bounds + +Inf
        kv = prometheus.query_value(
            'inference_pool_average_kv_cache_utilization{job="guarded",name="vllm-llama3-8b"}'
        )
        assert kv is not None
        assert 0 < kv < 1
        assert prometheus.query_value('up{job="anonymous"}') == 0


def test_prometheus_scrapes_gzip_bodies_built_from_reused_and_fresh_chunks(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    counter, histogram = PrometheusBackend(registry).register(
        [
            CATALOG["inference_model_request_total"],
            CATALOG["inference_model_request_duration_seconds"],
        ]
    )
    pairs = [(f"model-{i}", f"target-{i}") for i in range(300)]
    for i, pair in enumerate(pairs):
        counter.bind(pair).add(1 + i)
        histogram.bind(pair).observe(0.01 * i)
    server = MetricsServer(
        auth=TokenFileAuthenticator(write(tmp_path / "tokens", SCRAPE_TOKEN)),
        registry=registry,
        host="127.0.0.1",
        port=0,
    )
    page = render(registry, negotiate(None))
    samples = sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))
    total = sum(1 + i for i in range(300))
    with server:
        job = ScrapeJob(
            "gzip",
            [f"127.0.0.1:{server.port}"],
            bearer_token_file=write(tmp_path / "scrape-token", SCRAPE_TOKEN),
        )
        with PrometheusServer([job], tmp_path / "prometheus") as prometheus:
            prometheus.wait_for_value(
                'scrape_samples_scraped{job="gzip"}', lambda value: value == samples
            )
            counter.bind(pairs[150]).add(1000)  # one chunk changes, the others are reused
            query = 'sum(inference_model_request_total{job="gzip"})'
            assert prometheus.wait_for_value(query, lambda value: value == total + 1000)
            prometheus.wait_for_value(
                'inference_model_request_total{job="gzip",model_name="model-150"}',
                lambda value: value == 151 + 1000,
            )
            assert server._routes is not None
            (chunks,) = server._routes.renderer.gzip._slots.values()  # Prometheus asked for gzip
            assert len(chunks) > 5
