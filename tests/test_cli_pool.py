"""``inference-metrics serve --pool-name …``: the exposition server as a pool-metrics sidecar,
from bad flags (exit 2 naming them) to a real-time run scraped by the real Prometheus."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from inference_metrics.cli import build_parser, main

from .expo import parse_text
from .kube_api import PODS, KubeAPI, pod
from .model_servers import Load, ModelServer, ServersThread
from .prometheus_harness import PrometheusServer, ScrapeJob, find_prometheus
from .server_support import TLSMaterial
from .test_cli_serve import Starter, run  # noqa: F401  (the fixture)


def test_an_unknown_engine_exits_2_listing_the_engines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--pool-name", "p", "--dns", "a:80", "--engine", "tgi"])
    err = capsys.readouterr().err
    assert "invalid choice: 'tgi'" in err
    assert "'sglang', 'triton', 'triton-trtllm', 'trtllm-serve', 'vllm'" in err


@pytest.mark.slow
@pytest.mark.skipif(find_prometheus() is None, reason="Prometheus is not installed")
def test_serve_as_a_pool_sidecar_is_scraped_by_prometheus(
    run: Starter,  # noqa: F811
    tmp_path: Path,
) -> None:
    servers = [
        ModelServer("vllm-a", engines=[Load(queue=2, running=3, kv_cache=0.2)]),
        ModelServer("vllm-b", engines=[Load(queue=4, running=5, kv_cache=0.4)]),
        ModelServer("sglang-c", engine="sglang", engines=[Load(queue=9, running=1, kv_cache=0.9)]),
    ]
    with ServersThread(servers):
        args = ["serve", "--host", "127.0.0.1", "--pool-name", "pool-x"]
        for server in servers[:2]:
            args += ["--endpoint", f"{server.name}={server.metrics_url}"]
        args += ["--aggregate-interval", "0.5", "--poll-interval", "0.1"]
        vllm = run(args)
        sglang = run(
            [
                "serve",
                "--host",
                "127.0.0.1",
                "--pool-name",
                "pool-y",
                "--engine",
                "sglang",
                "--endpoint",
                servers[2].metrics_url,
                "--aggregate-interval",
                "0.5",
            ]
        )
        jobs = [
            ScrapeJob(
                "sidecar",
                [f"127.0.0.1:{vllm.port}", f"127.0.0.1:{sglang.port}"],
                scrape_interval="1s",
            )
        ]
        with PrometheusServer(jobs, tmp_path / "prometheus") as prometheus:
            prometheus.wait_for_targets("sidecar", count=2)
            ready = 'inference_pool_ready_pods{name="pool-x"}'
            assert prometheus.wait_for_value(ready, lambda v: v == 2) == 2
            assert prometheus.query_value('inference_pool_average_queue_size{name="pool-x"}') == 3
            assert (
                prometheus.query_value('inference_pool_average_running_requests{name="pool-x"}')
                == 4
            )
            kv = prometheus.query_value(
                'inference_pool_average_kv_cache_utilization{name="pool-x"}'
            )
            assert kv == pytest.approx(0.3)
            per_pod = prometheus.query('inference_pool_per_pod_queue_size{name="pool-x"}')
            assert {r["metric"]["model_server_pod"]: float(r["value"][1]) for r in per_pod} == {
                "vllm-a": 2.0,
                "vllm-b": 4.0,
            }
            assert (
                prometheus.wait_for_value(
                    'inference_pool_average_queue_size{name="pool-y"}', lambda v: v == 9
                )
                == 9
            )
            errors = 'inference_pool_datalayer_poll_errors_total{name="pool-x"}'
            # No series before the first error (as upstream's counter vectors): recorded through
            # the Recorder, a series shows from its first update.
            assert prometheus.query(errors) == []

            # One model server starts failing: after the 2 s staleness it no longer counts.
            servers[1].fault = "500"
            assert prometheus.wait_for_value(ready, lambda v: v == 1) == 1
            assert (
                prometheus.wait_for_value(
                    'inference_pool_average_queue_size{name="pool-x"}', lambda v: v == 2
                )
                == 2
            )
            assert prometheus.wait_for_value(errors, lambda v: v > 0) > 0
        code, out = vllm.stop()
    assert code == 0, out
    assert "pool pool-x: polling vllm-a, vllm-b" in out


def test_serve_discovers_the_pool_through_the_kubernetes_api(
    run: Starter,  # noqa: F811
    tmp_path: Path,
) -> None:
    material = TLSMaterial(tmp_path / "kube-tls")
    token_file = tmp_path / "token"
    token_file.write_text("sidecar-sa-token\n")
    api = KubeAPI(material, "sidecar-sa-token")
    servers = [ModelServer(f"vllm-{i}", engines=[Load(queue=2 * i + 1)]) for i in range(2)]
    path = PODS.format(namespace="models")
    with ServersThread([api, *servers]) as thread:
        for server in servers:
            thread.call(
                lambda s=server: api.put(  # type: ignore[misc]
                    path, pod(s.name, "127.0.0.1", s.port, labels={"app": "llm"})
                )
            )
        sidecar = run(
            [
                *("serve", "--host", "127.0.0.1", "--pool-name", "kube-pool"),
                *("--kube-namespace", "models", "--kube-selector", "app=llm"),
                *("--kube-port", "metrics", "--discovery-api-server", api.url),
                *("--discovery-ca-file", str(material.ca_file)),
                *("--discovery-token-file", str(token_file)),
                *("--aggregate-interval", "0.2", "--poll-interval", "0.05"),
            ]
        )

        def scrape() -> dict[str, float]:
            status, body = sidecar.request()
            assert status == 200
            family = parse_text(body.decode()).get("inference_pool_per_pod_queue_size")
            samples = {} if family is None else family.samples
            return {dict(labels)["model_server_pod"]: v for (_, labels), v in samples.items()}

        deadline = time.monotonic() + 20
        while scrape() != {"vllm-0": 1.0, "vllm-1": 3.0}:
            assert time.monotonic() < deadline, scrape()
            time.sleep(0.05)
        thread.call(lambda: api.delete(path, "vllm-0"))
        while scrape() != {"vllm-1": 3.0}:
            assert time.monotonic() < deadline, scrape()
            time.sleep(0.05)
        code, out = sidecar.stop()
    assert code == 0, out
    assert "sidecar-sa-token" not in out


def test_the_kubernetes_sidecar_manifest_runs_a_command_serve_accepts() -> None:
    manifest = Path(__file__).resolve().parent.parent / "examples/kubernetes/pool-sidecar.yaml"
    text = manifest.read_text()
    start = text.index("command: [") + len("command: ")
    command = json.loads(text[start : text.index("]", start) + 1])
    assert command[:2] == ["inference-metrics", "serve"]
    args = build_parser().parse_args(command[1:])
    assert (args.pool_name, args.kube_service, args.kube_port, args.auth) == (
        "vllm-llama3-8b-instruct",
        "vllm-llama3-8b-instruct",
        "http",
        "kubernetes",
    )
    assert '- apiGroups: ["discovery.k8s.io"]\n  resources: ["endpointslices"]\n' in text
    assert 'verbs: ["list", "watch"]' in text


def test_serve_discovers_the_pool_by_dns(run: Starter) -> None:  # noqa: F811
    server = ModelServer("only", engines=[Load(queue=6, running=2, kv_cache=0.5)])
    with ServersThread([server]):
        sidecar = run(
            [
                *("serve", "--host", "127.0.0.1", "--pool-name", "dns-pool"),
                *("--dns", f"localhost:{server.port}"),
                *("--aggregate-interval", "0.2", "--poll-interval", "0.05"),
            ]
        )
        deadline = time.monotonic() + 20
        while True:
            status, body = sidecar.request()
            assert status == 200
            families = parse_text(body.decode())
            ready = families.get("inference_pool_ready_pods")
            if ready is not None and ready.value("inference_pool_ready_pods", name="dns-pool") == 1:
                break
            assert time.monotonic() < deadline, body.decode()[-2000:]
            time.sleep(0.05)
        queues = families["inference_pool_per_pod_queue_size"]
        # localhost may also resolve to ::1, where nothing listens: that endpoint stays stale.
        assert (
            queues.value(
                "inference_pool_per_pod_queue_size", name="dns-pool", model_server_pod="127.0.0.1"
            )
            == 6
        )
        sidecar.stop()
