"""The pool monitor against stand-in model servers on 127.0.0.1 (real HTTP, real pages), with an
injected clock: averages, ready count, staleness, removal and faults, as upstream v1.5.0."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.pool import Endpoint, EndpointMetrics, PoolMonitor

from .clocks import FakeClock
from .expo import Family, parse_registry
from .model_servers import Load, ModelServer, wait_until

POOL = "pool-a"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
async def servers() -> AsyncIterator[list[ModelServer]]:
    started = [
        ModelServer("vllm-0", engines=[Load(queue=2, running=4, kv_cache=0.2)]),
        ModelServer("vllm-1", engines=[Load(queue=6, running=8, kv_cache=0.6)]),
        ModelServer("sglang-0", engine="sglang", engines=[Load(queue=1, running=0, kv_cache=0.1)]),
    ]
    for server in started:
        await server.start()
    yield started
    for server in started:
        await server.stop()


def endpoints(servers: Sequence[ModelServer]) -> list[Endpoint]:
    return [Endpoint(s.name, s.metrics_url, engine=s.engine) for s in servers]


@pytest.fixture
async def monitor(
    servers: list[ModelServer], recorder: Recorder, clock: FakeClock
) -> AsyncIterator[PoolMonitor]:
    monitor = PoolMonitor(POOL, endpoints(servers), recorder=recorder, clock=clock)
    yield monitor
    await monitor.stop(remove_series=False)


def gauges(registry: CollectorRegistry) -> dict[str, Family]:
    return parse_registry(registry)


def pool_value(registry: CollectorRegistry, name: str) -> float:
    return gauges(registry)[f"inference_pool_{name}"].value(f"inference_pool_{name}", name=POOL)


def per_pod(registry: CollectorRegistry) -> dict[str, float]:
    family = gauges(registry).get("inference_pool_per_pod_queue_size")
    if family is None:
        return {}
    return {dict(labels)["model_server_pod"]: v for (_, labels), v in family.samples.items()}


def poll_errors(registry: CollectorRegistry) -> float:
    """The pool's poll errors under the GIE schemas' name."""
    name = "inference_pool_datalayer_poll_errors_total"
    return gauges(registry)[name].value(name, name=POOL, source_type="metrics-data-source")


def by_name(snapshot: Sequence[EndpointMetrics]) -> dict[str, EndpointMetrics]:
    return {m.endpoint.name: m for m in snapshot}


async def test_a_poll_fills_each_endpoints_snapshot(monitor: PoolMonitor) -> None:
    await monitor.poll_all()
    snapshot = by_name(monitor.snapshot())
    assert (snapshot["vllm-1"].queue, snapshot["vllm-1"].running) == (6.0, 8.0)
    assert snapshot["vllm-1"].kv_cache == 0.6
    assert (snapshot["sglang-0"].queue, snapshot["sglang-0"].kv_cache) == (1.0, 0.1)
    assert snapshot["vllm-0"].block_size == 16
    assert all(m.fresh and m.updated_at == 1000.0 for m in snapshot.values())


async def test_averages_and_ready_pods_are_over_the_fresh_endpoints(
    monitor: PoolMonitor, registry: CollectorRegistry
) -> None:
    await monitor.poll_all()
    monitor.aggregate()
    assert pool_value(registry, "ready_pods") == 3
    assert pool_value(registry, "average_queue_size") == pytest.approx(3.0)
    assert pool_value(registry, "average_running_requests") == pytest.approx(4.0)
    assert pool_value(registry, "average_kv_cache_utilization") == pytest.approx(0.3)
    assert per_pod(registry) == {"vllm-0": 2.0, "vllm-1": 6.0, "sglang-0": 1.0}


async def test_an_endpoint_older_than_two_seconds_is_stale_and_left_out(
    monitor: PoolMonitor, servers: list[ModelServer], registry: CollectorRegistry, clock: FakeClock
) -> None:
    await monitor.poll_all()
    clock.now += 2.0  # exactly the threshold: still fresh
    await monitor.poll("vllm-1")
    monitor.aggregate()
    assert pool_value(registry, "ready_pods") == 3
    clock.now += 0.001
    monitor.aggregate()
    assert pool_value(registry, "ready_pods") == 1
    assert pool_value(registry, "average_queue_size") == 6.0
    assert by_name(monitor.snapshot())["vllm-0"].fresh is False
    # The stale ones keep their last numbers in the per-pod series.
    assert per_pod(registry) == {"vllm-0": 2.0, "vllm-1": 6.0, "sglang-0": 1.0}


async def test_with_none_fresh_ready_pods_is_zero_and_the_averages_keep_their_values(
    monitor: PoolMonitor, registry: CollectorRegistry, clock: FakeClock
) -> None:
    await monitor.poll_all()
    monitor.aggregate()
    clock.now += 10
    monitor.aggregate()
    assert pool_value(registry, "ready_pods") == 0
    assert pool_value(registry, "average_queue_size") == pytest.approx(3.0)
    assert pool_value(registry, "average_kv_cache_utilization") == pytest.approx(0.3)


async def test_ready_pods_is_set_to_zero_before_any_endpoint_answered(
    servers: list[ModelServer], recorder: Recorder, registry: CollectorRegistry, clock: FakeClock
) -> None:
    for server in servers:
        server.fault = "500"
    async with PoolMonitor(POOL, endpoints(servers), recorder=recorder, clock=clock) as monitor:
        await monitor.poll_all()
        monitor.aggregate()
        assert pool_value(registry, "ready_pods") == 0
        assert "inference_pool_average_queue_size" not in gauges(registry)


async def test_new_numbers_replace_old_ones_on_the_next_poll(
    monitor: PoolMonitor, servers: list[ModelServer], registry: CollectorRegistry, clock: FakeClock
) -> None:
    await monitor.poll_all()
    servers[0].engines = [Load(queue=10, running=1, kv_cache=0.9)]
    clock.now += 1
    await monitor.poll_all()
    monitor.aggregate()
    assert per_pod(registry)["vllm-0"] == 10.0
    assert pool_value(registry, "average_queue_size") == pytest.approx(17 / 3)


async def test_an_endpoint_leaving_discovery_stops_being_polled_and_counted(
    monitor: PoolMonitor, servers: list[ModelServer], registry: CollectorRegistry
) -> None:
    await monitor.poll_all()
    monitor.aggregate()
    monitor.set_endpoints(endpoints(servers[1:]))
    scrapes = servers[0].scrapes
    await monitor.poll_all()
    monitor.aggregate()
    assert servers[0].scrapes == scrapes
    assert [e.name for e in monitor.endpoints] == ["vllm-1", "sglang-0"]
    assert pool_value(registry, "ready_pods") == 2
    assert pool_value(registry, "average_queue_size") == pytest.approx(3.5)


async def test_a_departed_endpoints_per_pod_series_is_removed_at_once(
    monitor: PoolMonitor, servers: list[ModelServer], registry: CollectorRegistry
) -> None:
    await monitor.poll_all()
    monitor.aggregate()
    assert set(per_pod(registry)) == {"vllm-0", "vllm-1", "sglang-0"}
    monitor.set_endpoints(endpoints(servers[1:]))
    assert per_pod(registry) == {"vllm-1": 6.0, "sglang-0": 1.0}


async def test_stopping_the_monitor_removes_the_pools_series(
    servers: list[ModelServer], recorder: Recorder, registry: CollectorRegistry, clock: FakeClock
) -> None:
    other = PoolMonitor("pool-b", endpoints(servers[:1]), recorder=recorder, clock=clock)
    async with PoolMonitor(POOL, endpoints(servers), recorder=recorder, clock=clock) as monitor:
        await monitor.poll_all()
        monitor.aggregate()
        await other.poll_all()
        other.aggregate()
    await other.stop(remove_series=False)
    families = gauges(registry)
    pools = {
        dict(labels)["name"]
        for family in families.values()
        if family.name.startswith("inference_pool_")
        for (_, labels) in family.samples
    }
    assert pools == {"pool-b"}
    assert set(per_pod(registry)) == {"vllm-0"}


@pytest.mark.parametrize("fault", ["hang", "500", "garbage", "huge", "wrong-type"])
async def test_a_faulty_endpoint_goes_stale_and_the_others_are_unaffected(
    fault: str,
    monitor: PoolMonitor,
    servers: list[ModelServer],
    registry: CollectorRegistry,
    clock: FakeClock,
) -> None:
    await monitor.poll_all()
    servers[1].fault = fault
    clock.now += 3
    await asyncio.wait_for(monitor.poll_all(), timeout=10)  # the hang is cut at 1 s
    monitor.aggregate()
    snapshot = by_name(monitor.snapshot())
    assert snapshot["vllm-1"].fresh is False
    assert snapshot["vllm-0"].fresh
    assert snapshot["sglang-0"].fresh
    assert pool_value(registry, "ready_pods") == 2
    assert pool_value(registry, "average_queue_size") == pytest.approx(1.5)
    assert monitor.poll_errors + monitor.extract_errors >= 1


async def test_one_unreadable_family_keeps_its_last_number_and_the_endpoint_fresh(
    monitor: PoolMonitor, servers: list[ModelServer], clock: FakeClock
) -> None:
    # Upstream: any number read refreshes the update time; the others keep their last values.
    await monitor.poll_all()
    servers[0].engines = [Load(queue=9, running=9, kv_cache=0.9)]
    servers[0].deprecated_kv = False
    page = servers[0].page()
    servers[0].page = lambda: page.replace(  # type: ignore[method-assign]
        "# TYPE vllm:num_requests_waiting gauge", "# TYPE vllm:num_requests_waiting summary"
    )
    clock.now += 3
    metrics = await monitor.poll("vllm-0")
    assert (metrics.queue, metrics.running, metrics.kv_cache) == (2.0, 9.0, 0.9)
    assert metrics.updated_at == clock.now
    assert metrics.extract_errors == 1


async def test_a_pod_name_the_recorder_refuses_does_not_stop_the_others(
    servers: list[ModelServer], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), max_label_length=10)
    named = [Endpoint("x" * 11, servers[0].metrics_url), Endpoint("ok", servers[1].metrics_url)]
    monitor = PoolMonitor(POOL, named, recorder=recorder, clock=clock)
    try:
        await monitor.poll_all()
        monitor.aggregate()
    finally:
        await monitor.stop(remove_series=False)
    assert per_pod(registry) == {"ok": 6.0}
    assert pool_value(registry, "ready_pods") == 2
    assert "cannot record its queue: pod_name is 11 characters long" in caplog.text


async def test_a_page_over_the_bound_is_a_poll_error_without_reading_it_all(
    servers: list[ModelServer], clock: FakeClock
) -> None:
    servers[0].fault = "huge"
    monitor = PoolMonitor(POOL, endpoints(servers[:1]), clock=clock, max_page_bytes=1 << 20)
    try:
        metrics = await monitor.poll("vllm-0")
    finally:
        await monitor.stop()
    assert metrics.poll_errors == 1
    assert metrics.updated_at is None


async def test_an_endpoint_that_is_down_is_a_poll_error(
    clock: FakeClock, recorder: Recorder
) -> None:
    down = ModelServer("down")
    port = await down.start()
    await down.stop()
    monitor = PoolMonitor(POOL, [Endpoint("down", f"http://127.0.0.1:{port}/metrics")], clock=clock)
    try:
        metrics = await monitor.poll("down")
    finally:
        await monitor.stop()
    assert (metrics.poll_errors, monitor.poll_errors) == (1, 1)


async def test_errors_are_logged_at_most_once_a_minute_per_endpoint(
    monitor: PoolMonitor,
    servers: list[ModelServer],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    servers[0].fault = "500"
    servers[1].fault = "500"
    caplog.set_level(logging.WARNING, logger="inference_metrics.pool")
    for _ in range(3):
        await monitor.poll_all()
        clock.now += 10
    clock.now += 30  # 60 s after the first
    await monitor.poll_all()
    lines = [r.getMessage() for r in caplog.records]
    assert sum("vllm-0" in line for line in lines) == 2
    assert sum("vllm-1" in line for line in lines) == 2
    assert all("HTTP status 500" in line for line in lines)
    assert monitor.poll_errors == 8


async def test_the_bearer_token_is_sent_and_never_logged(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aiohttp import web

    seen: list[str] = []

    async def metrics(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(status=403)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    caplog.set_level(logging.DEBUG)
    monitor = PoolMonitor(
        POOL,
        [Endpoint("p", f"http://127.0.0.1:{port}/metrics")],
        clock=clock,
        bearer_token_file=token_file,
    )
    try:
        await monitor.poll("p")
    finally:
        await monitor.stop()
        await runner.cleanup()
    assert seen == ["Bearer s3cret-token"]
    assert "s3cret-token" not in caplog.text
    assert "HTTP status 403" in caplog.text


async def test_the_error_counters_are_recorded_through_the_recorder_with_the_pools_name(
    monitor: PoolMonitor, servers: list[ModelServer], registry: CollectorRegistry
) -> None:
    servers[0].fault = "500"
    servers[1].fault = "wrong-type"
    await monitor.poll_all()
    assert poll_errors(registry) == 1  # the Recorder's registry: nothing else registered
    families = parse_registry(registry)
    extracts = families["inference_pool_datalayer_extract_errors_total"]
    assert (
        extracts.value(
            "inference_pool_datalayer_extract_errors_total",
            name=POOL,
            source_type="metrics-data-source",
            extractor_type="core-metrics-extractor",
        )
        == 3  # queue, running and KV cache: one extract error per number not read
    )
    assert (monitor.poll_errors, monitor.extract_errors) == (1, 3)


async def test_under_llm_d_router_the_errors_have_upstreams_names_and_labels(
    servers: list[ModelServer], clock: FakeClock
) -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), schema="llm-d-router")
    monitor = PoolMonitor(POOL, endpoints(servers[:1]), recorder=recorder, clock=clock)
    servers[0].fault = "500"
    try:
        await monitor.poll_all()
    finally:
        await monitor.stop(remove_series=False)
    families = parse_registry(registry)
    for name in (
        "llm_d_epp_datalayer_poll_errors_total",
        "llm_d_inference_scheduler_datalayer_poll_errors_total",  # the deprecated twin
    ):
        assert dict(families[name].samples) == {
            (name, frozenset({("source_type", "metrics-data-source")})): 1.0
        }


async def test_two_pools_of_one_recorder_keep_their_errors_apart_by_name(
    servers: list[ModelServer], recorder: Recorder, registry: CollectorRegistry, clock: FakeClock
) -> None:
    first = PoolMonitor("pool-a", endpoints(servers[:1]), recorder=recorder, clock=clock)
    second = PoolMonitor("pool-b", endpoints(servers[1:]), recorder=recorder, clock=clock)
    for server in servers:
        server.fault = "500"
    try:
        await first.poll_all()
        await second.poll_all()
    finally:
        await first.stop(remove_series=False)
        await second.stop(remove_series=False)
    polls = parse_registry(registry)["inference_pool_datalayer_poll_errors_total"]
    assert {dict(labels)["name"]: value for (_, labels), value in polls.samples.items()} == {
        "pool-a": 1.0,
        "pool-b": 2.0,
    }


async def test_the_deprecated_collector_still_shows_the_monitors_counts(
    servers: list[ModelServer], clock: FakeClock
) -> None:
    monitor = PoolMonitor(POOL, endpoints(servers[:1]), clock=clock)  # no Recorder
    servers[0].fault = "500"
    registry = CollectorRegistry()
    with pytest.deprecated_call(match="collector"):
        registry.register(monitor.collector())
    try:
        await monitor.poll_all()
    finally:
        await monitor.stop()
    assert poll_errors(registry) == 1


async def test_running_monitor_polls_on_its_own_and_aggregates_on_the_interval(
    servers: list[ModelServer], recorder: Recorder, registry: CollectorRegistry
) -> None:
    async with PoolMonitor(
        POOL, endpoints(servers), recorder=recorder, poll_interval=0.05, aggregate_interval=0.1
    ) as monitor:
        await wait_until(
            lambda: (
                "inference_pool_ready_pods" in gauges(registry)
                and pool_value(registry, "ready_pods") == 3
            )
        )
        assert pool_value(registry, "ready_pods") == 3
        assert all(s.scrapes >= 1 for s in servers)
        assert all(m.fresh for m in monitor.snapshot())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_interval": 0}, "poll_interval must be > 0 seconds, got 0"),
        ({"staleness": float("nan")}, "staleness must be > 0 seconds, got nan"),
        ({"timeout": -1}, "timeout must be > 0 seconds, got -1"),
        ({"max_page_bytes": 0}, "max_page_bytes must be >= 1, got 0"),
    ],
)
def test_bad_knobs_are_value_errors_naming_them(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PoolMonitor(POOL, [], **kwargs)  # type: ignore[arg-type]


def test_an_unreadable_token_file_is_a_start_up_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bearer_token_file: cannot read the bearer token file"):
        PoolMonitor(POOL, [], bearer_token_file=tmp_path / "missing")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="holds no single token"):
        PoolMonitor(POOL, [], bearer_token_file=tmp_path / "empty")


def test_a_pool_name_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="pool_name must be a string, got 7"):
        PoolMonitor(7, [])  # type: ignore[arg-type]


def test_an_unknown_engine_is_a_value_error_listing_the_known_ones() -> None:
    with pytest.raises(
        ValueError,
        match="engine must be one of sglang, triton, triton-trtllm, trtllm-serve, vllm, got 'tgi'",
    ):
        PoolMonitor(POOL, [Endpoint("a", "http://127.0.0.1:1/metrics", engine="tgi")])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "ftp://h/metrics",
            "url must be an http:// or https:// URL with a host, got 'ftp://h/metrics'",
        ),
        ("http:///metrics", "url must be an http:// or https:// URL with a host"),
        ("http://user:pw@h/metrics", "url must not carry credentials"),
        ("http://h:99999/metrics", "url has a bad port"),
    ],
)
def test_a_bad_url_is_a_value_error_naming_it(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Endpoint("a", url)


def test_a_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        Endpoint("a", "http://user:pw@h/metrics")
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "name", "address"),
    [
        ("vllm-0=http://10.0.0.4:8000/metrics", "vllm-0", "10.0.0.4:8000"),
        ("http://10.0.0.4:8000/metrics", "10.0.0.4:8000", "10.0.0.4:8000"),
        ("https://[fd00::1]/metrics?x=a=b", "[fd00::1]:443", "[fd00::1]:443"),
    ],
)
def test_an_endpoint_flag_names_the_pod_or_falls_back_to_host_and_port(
    spec: str, name: str, address: str
) -> None:
    endpoint = Endpoint.parse(spec, engine="sglang")
    assert (endpoint.name, endpoint.address, endpoint.engine) == (name, address, "sglang")


async def test_a_query_in_the_url_is_not_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def fetch(url: str) -> bytes:
        raise OSError("connection refused")

    url = "http://127.0.0.1:9/metrics?access_token=abc123"
    monitor = PoolMonitor(POOL, [Endpoint("p", url)], clock=clock, fetch=fetch)
    caplog.set_level(logging.WARNING)
    await monitor.poll("p")
    assert "http://127.0.0.1:9/metrics" in caplog.text
    assert "abc123" not in caplog.text


@pytest.fixture
async def uneven() -> AsyncIterator[list[ModelServer]]:
    # Means 0.2665 (KV cache), 1.5 (queue), 3.5 (running): not on two decimals.
    started = [
        ModelServer("vllm-a", engines=[Load(queue=1, running=2, kv_cache=0.2)]),
        ModelServer("vllm-b", engines=[Load(queue=2, running=5, kv_cache=0.333)]),
    ]
    for server in started:
        await server.start()
    yield started
    for server in started:
        await server.stop()


async def aggregated(servers: list[ModelServer], clock: FakeClock, schema: str) -> dict[str, float]:
    """Every pool gauge (name label = the pool) after one poll and one aggregation."""
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), schema=schema)
    monitor = PoolMonitor(POOL, endpoints(servers), recorder=recorder, clock=clock)
    await monitor.poll_all()
    monitor.aggregate()
    await monitor.stop(remove_series=False)
    return {
        name: value
        for name, family in parse_registry(registry).items()
        for (sample, labels), value in family.samples.items()
        if sample == name and dict(labels) == {"name": POOL}
    }


async def test_under_llm_d_router_means_and_std_devs_are_rounded_to_two_decimals(
    uneven: list[ModelServer], clock: FakeClock
) -> None:
    values = await aggregated(uneven, clock, "llm-d-router")
    assert values["llm_d_epp_average_kv_cache_utilization"] == 0.27  # 0.2665
    assert values["llm_d_epp_average_queue_size"] == 1.5
    assert values["llm_d_epp_average_running_requests"] == 3.5
    # Sample standard deviations from the unrounded means: sqrt(SS / (n - 1)).
    assert values["llm_d_epp_std_dev_kv_cache_utilization"] == 0.09  # 0.0940452...
    assert values["llm_d_epp_std_dev_queue_size"] == 0.71  # 0.7071067...
    assert values["llm_d_epp_std_dev_running_requests"] == 2.12  # 2.1213203...
    # The deprecated twins carry the same (rounded) values.
    assert values["inference_pool_average_kv_cache_utilization"] == 0.27
    assert values["llm_d_epp_ready_endpoints"] == 2


async def test_under_gie_v1_5_the_means_are_not_rounded_and_no_std_dev_is_exposed(
    uneven: list[ModelServer], clock: FakeClock
) -> None:
    values = await aggregated(uneven, clock, "gie-v1.5")
    assert values["inference_pool_average_kv_cache_utilization"] == pytest.approx(0.2665)
    assert values["inference_pool_average_kv_cache_utilization"] != 0.27
    assert values["inference_pool_average_running_requests"] == 3.5
    assert not [name for name in values if "std_dev" in name]


async def test_a_single_fresh_endpoint_has_a_standard_deviation_of_zero(
    uneven: list[ModelServer], clock: FakeClock
) -> None:
    values = await aggregated(uneven[:1], clock, "llm-d-router-without-deprecated")
    assert values["llm_d_epp_std_dev_queue_size"] == 0.0
    assert values["llm_d_epp_average_kv_cache_utilization"] == 0.2
