"""``--schema`` on ``serve`` and ``demo``: the names the command exposes."""

from __future__ import annotations

import time

import pytest

from inference_metrics.cli import main

from .expo import Family, parse_text
from .model_servers import Load, ModelServer, ServersThread
from .test_cli_serve import Starter, run  # noqa: F401  (the fixture)


def scrape_until(
    starter: object, family: str, value: float | None = None, timeout: float = 20.0
) -> dict[str, Family]:
    """The exposition once ``family`` has samples (and one of them equals ``value``)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = starter.request()  # type: ignore[attr-defined]
        assert status == 200
        families = parse_text(body.decode())
        found = families.get(family)
        if found and found.samples and (value is None or value in found.samples.values()):
            return families
        assert time.monotonic() < deadline, body.decode()[-2000:]
        time.sleep(0.05)


def test_serve_sets_the_pool_gauges_under_the_schemas_names(run: Starter) -> None:  # noqa: F811
    server = ModelServer("vllm-a", engines=[Load(queue=4, running=2, kv_cache=0.5)])
    with ServersThread([server]):
        sidecar = run(
            [
                *("serve", "--host", "127.0.0.1", "--pool-name", "p"),
                *("--endpoint", f"vllm-a={server.metrics_url}"),
                *("--aggregate-interval", "0.2", "--poll-interval", "0.05"),
                "--schema=llm-d-router-without-deprecated",
            ]
        )
        families = scrape_until(sidecar, "llm_d_epp_per_endpoint_queue_size", 4)
        queue = families["llm_d_epp_per_endpoint_queue_size"]
        assert (
            queue.value(
                "llm_d_epp_per_endpoint_queue_size", name="p", model_server_endpoint="vllm-a"
            )
            == 4
        )
        families = scrape_until(sidecar, "llm_d_epp_ready_endpoints", 1)
        assert (
            families["llm_d_epp_ready_endpoints"].value("llm_d_epp_ready_endpoints", name="p") == 1
        )
        assert not [name for name in families if name.startswith("inference_pool_average")]
        sidecar.stop()


def test_demo_serves_every_metric_of_two_schemas(run: Starter) -> None:  # noqa: F811
    demo = run(["demo", "--rate", "300", "--schema", "gie-v0.3", "--schema", "gie-v1.5"])
    for name in (
        "inference_model_request_total",
        "inference_objective_request_total",
        "inference_objective_request_ttft_seconds",
    ):
        scrape_until(demo, name)
    demo.stop()


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_an_unknown_schema_exits_2_listing_the_schemas(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([command, "--schema", "gie-v9"])
    assert caught.value.code == 2
    assert "gie-v1.5" in capsys.readouterr().err


def test_two_clashing_schemas_exit_2_saying_why(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["demo", "--schema", "gie-v1.5", "--schema", "llm-d-router"])
    assert caught.value.code == 2
    assert "both define 'inference_objective_request_total'" in capsys.readouterr().err
