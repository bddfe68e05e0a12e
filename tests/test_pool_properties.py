"""Hypothesis: for any loads and ages of any number of endpoints, the pool gauges equal an
independent computation of upstream v1.5.0's rules (fresh = updated at most 2 s ago; ready pods
= their count; plain means over them; per-pod queues for everyone)."""

from __future__ import annotations

import asyncio
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.pool import Endpoint, PoolMonitor

from .clocks import FakeClock
from .expo import parse_registry
from .model_servers import Load, vllm_page

loads = st.builds(
    Load,
    queue=st.integers(0, 500).map(float),
    running=st.integers(0, 500).map(float),
    kv_cache=st.floats(0, 1),
)
# Ages in milliseconds, so "exactly 2 s" is reachable and compared without rounding surprises.
ages = st.sampled_from([0, 1, 1999, 2000, 2001, 5000]) | st.integers(0, 10_000)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(loads, ages), max_size=6))
def test_pool_gauges_follow_upstreams_rules_for_any_loads_and_ages(
    pool: list[tuple[Load, int]],
) -> None:
    pages = {
        f"http://10.0.0.{i}:8000/metrics": vllm_page([load]) for i, (load, _) in enumerate(pool)
    }
    clock = FakeClock(100.0)

    async def fetch(url: str) -> bytes:
        return pages[url].encode()

    registry = CollectorRegistry()
    monitor = PoolMonitor(
        "p",
        [Endpoint(f"pod-{i}", url) for i, url in enumerate(pages)],
        recorder=Recorder(PrometheusBackend(registry)),
        clock=clock,
        fetch=fetch,
    )

    async def run() -> None:
        for i, (_, age) in enumerate(pool):
            clock.now = 100.0 - age / 1000
            await monitor.poll(f"pod-{i}")
        clock.now = 100.0
        monitor.aggregate()

    asyncio.run(run())
    families = parse_registry(registry)

    def gauge(name: str) -> float | None:
        family = families.get(f"inference_pool_{name}")
        return None if family is None else family.value(family.name, name="p")

    fresh = [load for load, age in pool if age <= 2000]
    assert gauge("ready_pods") == len(fresh)
    if fresh:
        assert gauge("average_queue_size") == math.fsum(x.queue for x in fresh) / len(fresh)
        assert gauge("average_running_requests") == math.fsum(x.running for x in fresh) / len(fresh)
        kv = gauge("average_kv_cache_utilization")
        assert kv == math.fsum(float(repr(x.kv_cache)) for x in fresh) / len(fresh)
    else:
        assert gauge("average_queue_size") is None
    per_pod = families.get("inference_pool_per_pod_queue_size")
    expected = {f"pod-{i}": load.queue for i, (load, _) in enumerate(pool)}
    got = (
        {}
        if per_pod is None
        else {dict(k[1])["model_server_pod"]: v for k, v in per_pod.samples.items()}
    )
    assert got == expected
