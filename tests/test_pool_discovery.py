"""Discovery: a static list, a DNS name re-resolved, and the Kubernetes API (EndpointSlices of
a Service, or pods by label selector; list then watch) against a stand-in API server that
speaks its JSON over HTTPS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from inference_metrics.pool import (
    DNSDiscovery,
    Endpoint,
    KubernetesDiscovery,
    PoolMonitor,
    StaticDiscovery,
)
from inference_metrics.server import KubernetesConfig

from .kube_api import PODS, SLICES, KubeAPI, endpoint_slice, pod
from .model_servers import Load, ModelServer, wait_until
from .server_support import TLSMaterial

TOKEN = "discovery-sa-token-7f3a"
SLICE_PATH = SLICES.format(namespace="models")
POD_PATH = PODS.format(namespace="models")


class Updates:
    """Collects what a discovery reports; :meth:`until` waits for a report to satisfy a check."""

    def __init__(self) -> None:
        self.seen: list[list[Endpoint]] = []
        self._changed = asyncio.Event()

    def __call__(self, endpoints: Sequence[Endpoint]) -> None:
        self.seen.append(list(endpoints))
        self._changed.set()

    @property
    def last(self) -> list[Endpoint]:
        return self.seen[-1] if self.seen else []

    async def until(self, check: Callable[[list[Endpoint]], bool]) -> None:
        async with asyncio.timeout(10):
            while not (self.seen and check(self.last)):
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def running(discovery: KubernetesDiscovery | DNSDiscovery) -> AsyncIterator[Updates]:
    updates = Updates()
    task = asyncio.create_task(discovery.run(updates))
    try:
        yield updates
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def names(endpoints: Sequence[Endpoint]) -> list[str]:
    return [e.name for e in endpoints]


async def test_a_static_list_is_reported_once() -> None:
    endpoints = [Endpoint("a", "http://10.0.0.1:8000/metrics")]
    updates = Updates()
    await StaticDiscovery(endpoints).run(updates)
    assert updates.seen == [endpoints]


async def test_a_dns_name_is_re_resolved_every_interval() -> None:
    answers = [["10.0.0.2", "10.0.0.1"], ["10.0.0.1", "fd00::3"]]
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return answers[min(len(asked), len(answers)) - 1]

    dns = DNSDiscovery("vllm.models.svc.cluster.local", 8000, interval=0.01, resolve=resolve)
    async with running(dns) as updates:
        await updates.until(lambda e: "fd00::3" in names(e))
    assert [e.url for e in updates.seen[0]] == [
        "http://10.0.0.1:8000/metrics",
        "http://10.0.0.2:8000/metrics",
    ]
    assert [e.url for e in updates.last] == [
        "http://10.0.0.1:8000/metrics",
        "http://[fd00::3]:8000/metrics",
    ]
    assert asked[0] == ("vllm.models.svc.cluster.local", 8000)


async def test_a_failed_lookup_keeps_the_last_endpoints() -> None:
    calls = 0

    async def resolve(host: str, port: int) -> list[str]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError("Temporary failure in name resolution")
        return ["10.0.0.1"]

    async with running(DNSDiscovery("svc", 80, interval=0.01, resolve=resolve)) as updates:
        await wait_until(lambda: calls >= 3)
    assert updates.seen == [[Endpoint("10.0.0.1", "http://10.0.0.1:80/metrics")]]


async def test_the_system_resolver_resolves_localhost() -> None:
    endpoints = await DNSDiscovery("localhost", 8000).resolve_once()
    assert "127.0.0.1" in names(endpoints)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("svc", "--dns takes NAME:PORT, got 'svc'"), ("svc:http", "NAME:PORT"), (":80", "NAME:PORT")],
)
def test_a_bad_dns_spec_is_a_value_error_naming_it(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DNSDiscovery.from_spec(spec)


# --- Kubernetes ----------------------------------------------------------------------------


@pytest.fixture
def material(tmp_path: Path) -> TLSMaterial:
    return TLSMaterial(tmp_path / "kube-tls")


@pytest.fixture
async def api(material: TLSMaterial) -> AsyncIterator[KubeAPI]:
    stand_in = await KubeAPI(material, TOKEN).start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
def config(api: KubeAPI, material: TLSMaterial, tmp_path: Path) -> KubernetesConfig:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return KubernetesConfig(api.url, ca_file=material.ca_file, token_file=token_file)


async def test_endpoint_slices_of_a_service_give_its_ready_pods_and_follow_changes(
    api: KubeAPI, config: KubernetesConfig
) -> None:
    def put_vllm_slice(name: str, *endpoints: tuple[str, str, bool]) -> None:
        api.put(SLICE_PATH, endpoint_slice(name, "vllm", list(endpoints), port=8000))

    put_vllm_slice("vllm-abc12", ("vllm-0", "10.1.0.4", True), ("vllm-1", "10.1.0.5", False))
    api.put(SLICE_PATH, endpoint_slice("other-x", "other", [("o-0", "10.1.9.9", True)], port=80))
    discovery = KubernetesDiscovery(config, "models", service="vllm")
    async with running(discovery) as updates:
        await updates.until(lambda e: names(e) == ["vllm-0"])
        assert updates.last[0].url == "http://10.1.0.4:8000/metrics"
        put_vllm_slice("vllm-abc12", ("vllm-0", "10.1.0.4", True), ("vllm-1", "10.1.0.5", True))
        await updates.until(lambda e: names(e) == ["vllm-0", "vllm-1"])
        put_vllm_slice("vllm-def34", ("vllm-2", "10.1.0.6", True))
        await updates.until(lambda e: names(e) == ["vllm-0", "vllm-1", "vllm-2"])
        api.delete(SLICE_PATH, "vllm-abc12")
        await updates.until(lambda e: names(e) == ["vllm-2"])
    (list_path, list_query), (watch_path, watch_query) = api.requests[:2]
    assert (list_path, list_query) == (
        SLICE_PATH,
        {"labelSelector": "kubernetes.io/service-name=vllm"},
    )
    assert watch_path == SLICE_PATH
    assert watch_query == {
        "labelSelector": "kubernetes.io/service-name=vllm",
        "watch": "1",
        "resourceVersion": "102",  # the list's
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "300",
    }


async def test_a_named_port_is_looked_up_in_the_slice(
    api: KubeAPI, config: KubernetesConfig
) -> None:
    api.put(
        SLICE_PATH,
        endpoint_slice("s", "vllm", [("vllm-0", "10.1.0.4", True)], port=9400, port_name="metrics"),
    )
    discovery = KubernetesDiscovery(
        config, "models", service="vllm", port="metrics", scheme="https"
    )
    async with running(discovery) as updates:
        await updates.until(lambda e: bool(e))
    assert updates.last[0].url == "https://10.1.0.4:9400/metrics"


async def test_pods_by_selector_give_ready_running_pods_with_their_engine_label(
    api: KubeAPI, config: KubernetesConfig
) -> None:
    app = {"app": "llm"}
    api.put(POD_PATH, pod("vllm-0", "10.2.0.1", 8000, labels=app))
    api.put(
        POD_PATH, pod("sgl-0", "10.2.0.2", 30000, labels={**app, "llm-d.ai/engine-type": "sglang"})
    )
    api.put(
        POD_PATH,
        pod(
            "trt-0",
            "10.2.0.3",
            8000,
            labels={**app, "inference.networking.k8s.io/engine-type": "trtllm-serve"},
        ),
    )
    api.put(POD_PATH, pod("starting", "10.2.0.4", 8000, labels=app, ready=False))
    api.put(POD_PATH, pod("done", "10.2.0.5", 8000, labels=app, phase="Succeeded"))
    api.put(POD_PATH, pod("unrelated", "10.2.0.6", 8000, labels={"app": "web"}))
    discovery = KubernetesDiscovery(config, "models", selector="app=llm", port="metrics")
    async with running(discovery) as updates:
        await updates.until(lambda e: len(e) == 3)
        assert {(e.name, e.engine, e.url) for e in updates.last} == {
            ("vllm-0", "vllm", "http://10.2.0.1:8000/metrics"),
            ("sgl-0", "sglang", "http://10.2.0.2:30000/metrics"),
            ("trt-0", "trtllm-serve", "http://10.2.0.3:8000/metrics"),
        }
        api.put(POD_PATH, pod("starting", "10.2.0.4", 8000, labels=app))
        await updates.until(lambda e: "starting" in names(e))
        api.put(POD_PATH, pod("vllm-0", "10.2.0.1", 8000, labels=app, ready=False))
        await updates.until(lambda e: "vllm-0" not in names(e))


async def test_an_expired_watch_is_followed_by_a_new_list(
    api: KubeAPI, config: KubernetesConfig
) -> None:
    api.put(POD_PATH, pod("a", "10.2.0.1", 8000, labels={"app": "llm"}))
    api.expire_watches = True
    discovery = KubernetesDiscovery(config, "models", selector="app=llm", port=8000)
    async with running(discovery) as updates:
        await wait_until(lambda: sum("watch" not in query for _, query in api.requests) >= 2)
        api.put(POD_PATH, pod("b", "10.2.0.2", 8000, labels={"app": "llm"}))
        await updates.until(lambda e: names(e) == ["a", "b"])


async def test_a_wrong_token_lists_nothing_and_keeps_retrying(
    api: KubeAPI, config: KubernetesConfig
) -> None:
    assert config.token_file is not None
    config.token_file.write_text("not-the-token")
    api.put(POD_PATH, pod("a", "10.2.0.1", 8000, labels={"app": "llm"}))
    discovery = KubernetesDiscovery(
        config, "models", selector="app=llm", port=8000, retry_interval=0.01
    )
    async with running(discovery) as updates:
        await wait_until(lambda: len(api.requests) >= 2)
        assert updates.seen == []
        config.token_file.write_text(TOKEN)  # the kubelet rotated it in
        await updates.until(lambda e: names(e) == ["a"])


@pytest.mark.parametrize("body", [b"[1, 2]", b"{", b'{"items": [7]}', b'{"items": []}', b"\xff"])
async def test_a_list_reply_of_another_shape_is_retried_not_raised(
    api: KubeAPI, config: KubernetesConfig, body: bytes
) -> None:
    api.put(POD_PATH, pod("a", "10.2.0.1", 8000, labels={"app": "llm"}))
    api.list_body = body
    discovery = KubernetesDiscovery(
        config, "models", selector="app=llm", port=8000, retry_interval=0.01
    )
    async with running(discovery) as updates:
        await wait_until(lambda: len(api.requests) >= 3)
        api.list_body = None
        await updates.until(lambda e: names(e) == ["a"])


async def test_the_monitor_follows_kubernetes_discovery_and_drops_departed_pods(
    api: KubeAPI, config: KubernetesConfig
) -> None:
    servers = [ModelServer(f"vllm-{i}", engines=[Load(queue=i)]) for i in range(2)]
    for server in servers:
        await server.start()
    try:
        for server in servers:
            api.put(POD_PATH, pod(server.name, "127.0.0.1", server.port, labels={"app": "llm"}))
        discovery = KubernetesDiscovery(config, "models", selector="app=llm", port="metrics")
        async with PoolMonitor("pool", discovery, poll_interval=0.02) as monitor:
            await wait_until(lambda: sum(m.fresh for m in monitor.snapshot()) == 2)
            api.delete(POD_PATH, "vllm-0")
            await wait_until(lambda: len(monitor.endpoints) == 1)
            assert [m.endpoint.name for m in monitor.snapshot()] == ["vllm-1"]
            assert monitor.snapshot()[0].queue == 1.0
    finally:
        for server in servers:
            await server.stop()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of service= or selector="),
        ({"service": "a", "selector": "b"}, "exactly one of service= or selector="),
        ({"selector": "app=x"}, "port is required with selector="),
        ({"service": "a", "port": 0}, "port must be in 1..65535, got 0"),
        ({"service": "a", "scheme": "ftp"}, "scheme must be 'http' or 'https', got 'ftp'"),
    ],
)
def test_bad_kubernetes_discovery_options_are_value_errors(
    kwargs: dict[str, object], message: str
) -> None:
    config = KubernetesConfig("https://127.0.0.1:6443")
    with pytest.raises(ValueError, match=message):
        KubernetesDiscovery(config, "models", **kwargs)  # type: ignore[arg-type]
