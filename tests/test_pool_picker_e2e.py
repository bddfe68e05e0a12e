"""The example endpoint picker picks: three stand-in vLLM servers with different loads behind a
real Envoy; the picker polls them, routes each request to the one upstream's default scorers
choose (through ``x-gateway-destination-endpoint`` and Envoy's ORIGINAL_DST cluster), and its
/metrics carries the pool gauges and, under GIE v1.5.0's names (``--schema gie-v1.5`` beside the
default), its scheduling as upstream's scheduler records it (each attempt, its plugins'
latencies, the run's)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from . import envoy_harness as harness
from .expo import Family
from .model_servers import Load, ModelServer, ServersThread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

POOL = "e2e-pool"


class Gateway:
    def __init__(self, servers: dict[str, ModelServer], listener_port: int, metrics_port: int):
        self.servers = servers
        self.listener_port = listener_port
        self.metrics_port = metrics_port

    def complete(self, headers: dict[str, str] | None = None) -> harness.Reply:
        body = json.dumps({"model": "m", "prompt": "hello", "max_tokens": 3}).encode()
        return harness.post(self.listener_port, "/v1/completions", body, headers)

    def metrics(self) -> dict[str, Family]:
        return harness.scrape(self.metrics_port)

    def gauge(self, name: str, **labels: str) -> float | None:
        family = self.metrics().get(f"inference_pool_{name}")
        if family is None:
            return None
        return family.samples.get(
            (f"inference_pool_{name}", frozenset({"name": POOL, **labels}.items()))
        )

    def wait_for(self, check: Callable[[], bool], within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, "the picker did not get there in time"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    servers = {
        "light": ModelServer("light", engines=[Load(queue=0, running=1, kv_cache=0.1)]),
        "medium": ModelServer("medium", engines=[Load(queue=5, running=4, kv_cache=0.5)]),
        "heavy": ModelServer("heavy", engines=[Load(queue=10, running=8, kv_cache=0.9)]),
        "fallback": ModelServer("fallback"),  # the static cluster: must never be used
    }
    log_dir = tmp_path_factory.mktemp("picker-e2e")
    grpc_port, metrics_port, admin_port, listener_port = harness.free_ports(4)
    processes: list[harness.ManagedProcess] = []
    with ServersThread(list(servers.values())):
        try:
            extra = ["--pool-name", POOL, "--poll-interval", "0.05", "--aggregate-interval", "0.2"]
            extra += ["--schema", "gie-v0.3", "--schema", "gie-v1.5"]
            for name in ("light", "medium", "heavy"):
                extra += ["--pool-endpoint", f"{name}={servers[name].metrics_url}"]
            processes.append(
                harness.start_picker(
                    log_dir, grpc_port=grpc_port, metrics_port=metrics_port, extra_args=extra
                )
            )
            config = harness.render_envoy_config(
                admin_port=admin_port,
                listener_port=listener_port,
                picker_port=grpc_port,
                upstream_port=servers["fallback"].port,
            )
            processes.append(harness.start_envoy(log_dir, config, admin_port=admin_port))
            gateway = Gateway(servers, listener_port, metrics_port)
            gateway.wait_for(lambda: gateway.gauge("ready_pods") == 3)
            yield gateway
        finally:
            for process in reversed(processes):
                process.stop()


X = "inference_extension_"
PLUGINS = {
    ("Filter", "fresh-endpoints-filter"),
    ("Scorer", "queue-scorer"),
    ("Scorer", "kv-cache-utilization-scorer"),
    ("Picker", "max-score-picker"),
}


def counts(gateway: Gateway) -> dict[str, float]:
    """The scheduling series' counts now: attempts by (status, endpoint, port), each plugin's
    and the run's."""
    found: dict[str, float] = {}
    families = gateway.metrics()
    attempts = families.get(X + "scheduler_attempts_total")
    for (_, labels), value in attempts.samples.items() if attempts else ():
        each = dict(labels)
        assert (each["target_model_name"], each["namespace"]) == ("m", "")
        found[f"attempt {each['status']} {each['pod_name']} {each['port']}"] = value
    plugins = families.get(X + "plugin_duration_seconds")
    for (name, labels), value in plugins.samples.items() if plugins else ():
        if name.endswith("_count"):
            each = dict(labels)
            assert each["plugin_type"] == each["plugin_name"]
            found[f"plugin {each['extension_point']} {each['plugin_type']}"] = value
    e2e = families.get(X + "scheduler_e2e_duration_seconds")
    if e2e is not None:
        found["e2e"] = e2e.value(X + "scheduler_e2e_duration_seconds_count")
    return found


def grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def served_by(reply: harness.Reply) -> str:
    assert reply.status == 200, reply.body
    return str(reply.headers["x-served-by"])


def test_requests_go_to_the_least_loaded_server_and_the_pool_gauges_say_so(
    gateway: Gateway,
) -> None:
    assert [served_by(gateway.complete()) for _ in range(5)] == ["light"] * 5
    assert gateway.gauge("ready_pods") == 3
    assert gateway.gauge("average_queue_size") == 5.0
    assert gateway.gauge("average_running_requests") == pytest.approx(13 / 3)
    assert gateway.gauge("average_kv_cache_utilization") == pytest.approx(0.5)
    assert {
        pod: gateway.gauge("per_pod_queue_size", model_server_pod=pod)
        for pod in ("light", "medium", "heavy")
    } == {"light": 0.0, "medium": 5.0, "heavy": 10.0}
    assert gateway.servers["fallback"].served == 0


def test_each_pick_is_recorded_as_upstream_s_scheduler_records_it(gateway: Gateway) -> None:
    before = counts(gateway)
    assert [served_by(gateway.complete()) for _ in range(3)] == ["light"] * 3
    port = str(gateway.servers["light"].port)
    assert grown(before, counts(gateway)) == {
        f"attempt success light {port}": 3,
        **{f"plugin {point} {kind}": 3 for point, kind in PLUGINS},
        "e2e": 3,
    }


def test_a_client_cannot_choose_the_destination_itself(gateway: Gateway) -> None:
    fallback = f"127.0.0.1:{gateway.servers['fallback'].port}"
    reply = gateway.complete({"x-gateway-destination-endpoint": fallback})
    assert served_by(reply) == "light"
    assert gateway.servers["fallback"].served == 0


def test_when_loads_change_the_picker_follows(gateway: Gateway) -> None:
    servers = gateway.servers
    servers["light"].engines = [Load(queue=20, running=9, kv_cache=0.95)]
    try:
        gateway.wait_for(
            lambda: gateway.gauge("per_pod_queue_size", model_server_pod="light") == 20
        )
        # queue scores over (20, 5, 10): light 0, medium 1, heavy 2/3; KV: 0.05, 0.5, 0.1
        assert [served_by(gateway.complete()) for _ in range(3)] == ["medium"] * 3
        assert gateway.gauge("average_queue_size") == pytest.approx(35 / 3)
    finally:
        servers["light"].engines = [Load(queue=0, running=1, kv_cache=0.1)]
        gateway.wait_for(lambda: gateway.gauge("per_pod_queue_size", model_server_pod="light") == 0)


def test_with_no_fresh_server_requests_get_503_counted_as_service_unavailable(
    gateway: Gateway,
) -> None:
    for name in ("light", "medium", "heavy"):
        gateway.servers[name].fault = "500"
    try:
        gateway.wait_for(lambda: gateway.gauge("ready_pods") == 0)
        kept = gateway.gauge("average_queue_size")
        before = counts(gateway)
        reply = gateway.complete()
        assert reply.status == 503
        # A failed attempt, after the filter alone (no candidate to score or pick).
        assert grown(before, counts(gateway)) == {
            "attempt failure  ": 1,
            "plugin Filter fresh-endpoints-filter": 1,
            "e2e": 1,
        }
        assert json.loads(reply.body)["error"]["type"] == "ServiceUnavailable"
        errors = gateway.metrics()["inference_model_request_error_total"]
        assert (
            errors.value(
                "inference_model_request_error_total",
                model_name="m",
                target_model_name="m",
                error_code="ServiceUnavailable",
            )
            == 1
        )
        # The averages keep their last values while nothing is fresh (several aggregations on).
        time.sleep(0.6)
        assert gateway.gauge("ready_pods") == 0
        assert gateway.gauge("average_queue_size") == kept
    finally:
        for name in ("light", "medium", "heavy"):
            gateway.servers[name].fault = None
        gateway.wait_for(lambda: gateway.gauge("ready_pods") == 3)
