"""``inference-metrics serve --pool-name …``: the exposition server as a pool-metrics sidecar,
from bad flags (exit 2 naming them) to a real-time run scraped by the real Prometheus."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference_metrics.cli import main

from .model_servers import Load, ModelServer, ServersThread
from .prometheus_harness import PrometheusServer, ScrapeJob, find_prometheus
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
            assert prometheus.query_value(errors) == 0

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
