"""One render path for every door: shared renders, bounded renders, 503 with Retry-After."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from inference_metrics import exposition
from inference_metrics.server import NoAuth, Renderer, ServerLimits

from .server_support import GatedCollector, raw_exchange, running_server, status_of


@pytest.fixture
def gate() -> Iterator[GatedCollector]:
    gate = GatedCollector()
    yield gate
    gate.release.set()


async def entered(gate: GatedCollector) -> None:
    """Wait (off the loop, so every task gets to run meanwhile) until a render is in collect()."""
    assert await asyncio.to_thread(gate.entered.acquire, True, 5)


async def test_concurrent_scrapes_of_one_representation_share_one_render(
    gate: GatedCollector,
) -> None:
    renderer = Renderer(gate.registry())
    try:
        scrapes = [asyncio.create_task(renderer.render(exposition.TEXT, False)) for _ in range(5)]
        await entered(gate)
        gate.release.set()
        bodies = await asyncio.gather(*scrapes)
    finally:
        renderer.close()
    assert gate.calls == 1
    assert renderer.renders == 1
    assert len(set(bodies)) == 1
    assert b"gated_gauge 1.0" in bodies[0]


async def test_gzip_and_plain_are_separate_renders_of_the_same_bytes(gate: GatedCollector) -> None:
    gate.release.set()
    renderer = Renderer(gate.registry())
    try:
        plain = await renderer.render(exposition.TEXT, False)
        packed = await renderer.render(exposition.TEXT, True)
    finally:
        renderer.close()
    assert gzip.decompress(packed) == plain
    assert gate.calls == 2


async def test_a_render_whose_scrapes_all_left_is_never_started(gate: GatedCollector) -> None:
    renderer = Renderer(gate.registry(), max_renders=1)
    try:
        holder = asyncio.create_task(renderer.render(exposition.TEXT, False))
        await entered(gate)  # the only render slot is taken
        queued = asyncio.create_task(renderer.render(exposition.TEXT, True))
        await asyncio.sleep(0)  # it is waiting for a slot now
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.release.set()
        await holder
        # A new render of the plain text runs; the gzip one was dropped, not run for nobody.
        await renderer.render(exposition.TEXT, False)
    finally:
        renderer.close()
    assert gate.calls == 2
    assert renderer.renders == 2


def test_beyond_max_renders_a_scrape_waits_then_gets_503_with_retry_after(
    gate: GatedCollector,
) -> None:
    limits = ServerLimits(max_renders=1, render_wait=0.2)
    with running_server(NoAuth(), registry=gate.registry(), limits=limits) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as holder:
            holder.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert gate.entered.acquire(timeout=5)
            # Another representation (gzip) cannot share that render and finds no free slot.
            refused = raw_exchange(
                server.port,
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
                b"Connection: close\r\n\r\n",
            )
            assert status_of(refused) == 503
            assert b"\r\nRetry-After: 1\r\n" in refused
            gate.release.set()
            answer = b""
            while chunk := holder.recv(65536):
                answer += chunk
        assert status_of(answer) == 200
        assert gate.calls == 1  # the refused render never ran


def test_renderer_limits_are_checked() -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match="max_renders"):
        Renderer(registry, max_renders=0)
    with pytest.raises(ValueError, match="render_wait"):
        Renderer(registry, render_wait=0)
