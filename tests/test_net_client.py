"""The one outbound HTTP client (h11): kept-alive connections, gzip, bounds, streams, and its own
error messages, against real sockets on 127.0.0.1 that answer as scripted."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from inference_metrics.net import HTTPClient, HTTPError

from .clocks import FakeClock
from .server_support import TLSMaterial

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Peer:
    """A socket server on 127.0.0.1 running ``handler`` per connection; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"


@contextlib.asynccontextmanager
async def serving(handler: Handler, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[Peer]:
    peer = Peer(handler)
    server = await asyncio.start_server(peer._serve, "127.0.0.1", 0, ssl=tls)
    peer.port = server.sockets[0].getsockname()[1]
    async with server:
        yield peer


def reply(body: bytes, *fields: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *fields]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def keep_answering(body: bytes, *fields: str) -> Handler:
    """Answer every request on the connection with ``body``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply(body, *fields))
            await writer.drain()

    return handler


async def test_requests_to_one_origin_share_one_kept_alive_connection() -> None:
    async with serving(keep_answering(b"page")) as peer:
        client = HTTPClient()
        for _ in range(5):
            assert await client.get(peer.url, max_bytes=100) == (200, b"page")
        await client.aclose()
    assert (peer.connections, client.connections_opened) == (1, 1)


async def test_without_keep_alive_each_request_has_its_own_connection() -> None:
    async with serving(keep_answering(b"page")) as peer:
        client = HTTPClient(keep_alive=False)
        for _ in range(3):
            assert await client.get(peer.url, max_bytes=100) == (200, b"page")
    assert peer.connections == 3


async def test_an_idle_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply(b"page"))  # keep-alive, as far as the client knows; then gone
        await writer.drain()

    async with serving(once) as peer:
        client = HTTPClient()
        assert await client.get(peer.url, max_bytes=100) == (200, b"page")
        await asyncio.sleep(0.05)
        assert await client.get(peer.url, max_bytes=100) == (200, b"page")
        await client.aclose()
    assert peer.connections == 2


async def test_a_gzip_reply_is_gunzipped_and_the_bound_applies_after() -> None:
    page = b"vllm:num_requests_waiting 3.0\n" * 1000
    async with serving(keep_answering(gzip.compress(page), "Content-Encoding: gzip")) as peer:
        client = HTTPClient()
        assert await client.get(peer.url, max_bytes=len(page)) == (200, page)
        with pytest.raises(HTTPError, match=f"body exceeds {len(page) - 1} bytes"):
            await client.get(peer.url, max_bytes=len(page) - 1)
        await client.aclose()


async def test_a_gzip_bomb_is_cut_at_the_bound_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * (256 << 20), 9)  # 256 MiB in ~250 kB
    async with serving(keep_answering(bomb, "Content-Encoding: gzip")) as peer:
        client = HTTPClient()
        with pytest.raises(HTTPError, match="body exceeds 1048576 bytes"):
            await client.get(peer.url, max_bytes=1 << 20)
        await client.aclose()


@pytest.mark.parametrize(
    ("body", "message"),
    [(gzip.compress(b"x" * 1000)[:-12], "truncated gzip body"), (b"not gzip", "malformed gzip")],
)
async def test_a_broken_gzip_body_is_an_error(body: bytes, message: str) -> None:
    async with serving(keep_answering(body, "Content-Encoding: gzip")) as peer:
        with pytest.raises(HTTPError, match=message):
            await HTTPClient().get(peer.url, max_bytes=1 << 20)


async def test_an_encoding_not_asked_for_is_an_error() -> None:
    async with serving(keep_answering(b"...", "Content-Encoding: br")) as peer:
        with pytest.raises(HTTPError, match="content encoding not asked for"):
            await HTTPClient().get(peer.url, max_bytes=100)


async def test_a_declared_length_over_the_bound_is_refused_before_the_body_comes() -> None:
    async def head_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(30)  # the body never comes

    async with serving(head_only) as peer:
        async with asyncio.timeout(5):
            with pytest.raises(HTTPError, match="body of 100000000 bytes exceeds 1000"):
                await HTTPClient().get(peer.url, max_bytes=1000)


async def test_a_request_cut_short_closes_its_connection() -> None:
    async def slow_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.write(b"-there")
            await writer.drain()

    async with serving(slow_body) as peer:
        client = HTTPClient()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.get(peer.url, max_bytes=100)
        # Not handed to the next request with half a reply in it: a new connection.
        assert await client.get(peer.url, max_bytes=100) == (200, b"half-there")
        await client.aclose()
    assert client.connections_opened == 2


async def test_lines_are_split_across_chunks_and_the_last_one_kept() -> None:
    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b'{"a":', b'1}\n{"b"', b":2}\n\n", b'{"c":3}'):
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with serving(stream) as peer, HTTPClient().request("GET", peer.url) as response:
        lines = [line async for line in response.lines(100)]
    assert lines == [b'{"a":1}', b'{"b":2}', b"", b'{"c":3}']


async def test_a_line_over_the_bound_is_an_error() -> None:
    async with (
        serving(keep_answering(b"x" * 500)) as peer,
        HTTPClient().request("GET", peer.url) as response,
    ):
        with pytest.raises(HTTPError, match="a line over 100 bytes"):
            async for _ in response.lines(100):
                pass


async def test_idle_connections_are_closed_after_the_idle_timeout() -> None:
    clock = FakeClock(0.0)
    async with serving(keep_answering(b"a")) as first, serving(keep_answering(b"b")) as second:
        client = HTTPClient(idle_timeout=15.0, clock=clock)
        await client.get(first.url, max_bytes=10)
        clock.advance(20)
        await client.get(second.url, max_bytes=10)  # gives its connection back: a sweep
        await client.get(first.url, max_bytes=10)
        await client.aclose()
    assert (first.connections, second.connections) == (2, 1)


async def test_failures_are_described_in_our_words() -> None:
    async with serving(keep_answering(b"")) as peer:
        port = peer.port
    with pytest.raises(HTTPError) as refused:
        await HTTPClient().get(f"http://127.0.0.1:{port}/metrics", max_bytes=10)
    assert str(refused.value) == (
        f"cannot connect to http://127.0.0.1:{port}: Connection refused (ECONNREFUSED)"
    )
    assert refused.value.__cause__ is None
    assert refused.value.__context__ is None


# --- TLS ----------------------------------------------------------------------------------------


def server_context(material: TLSMaterial) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(material.cert_file, material.key_file)
    return context


async def test_https_verifies_the_server_with_the_given_context(tmp_path: Path) -> None:
    from inference_metrics.net import ClientContext

    material = TLSMaterial(tmp_path / "tls")
    async with serving(keep_answering(b"page"), tls=server_context(material)) as peer:
        url = peer.url.replace("http://", "https://")
        trusting = HTTPClient(tls=ClientContext(ca_file=material.ca_file))
        assert await trusting.get(url, max_bytes=10) == (200, b"page")
        await trusting.aclose()
        with pytest.raises(HTTPError, match=r"TLS failure \(CERTIFICATE_VERIFY_FAILED\)"):
            await HTTPClient().get(url, max_bytes=10)  # the system's CAs do not know it


# --- base dependencies only ------------------------------------------------------------------

ONLY_BASE = """
import asyncio, sys
try:
    import aiohttp
except ImportError:
    pass
else:
    raise SystemExit("aiohttp is importable: not an environment of the base dependencies")
import inference_metrics
from inference_metrics.pool import Endpoint, PoolMonitor
from inference_metrics.server import KubernetesAuthenticator, KubernetesConfig

PAGE = b"# TYPE vllm:num_requests_waiting gauge\\nvllm:num_requests_waiting 4.0\\n"

async def main():
    async def answer(reader, writer):
        await reader.readuntil(b"\\r\\n\\r\\n")
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(PAGE) + PAGE)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        monitor = PoolMonitor("p", [Endpoint("e", f"http://127.0.0.1:{port}/metrics")])
        metrics = await monitor.poll("e")
        await monitor.stop()
    KubernetesAuthenticator(KubernetesConfig("https://127.0.0.1:6443"))
    print(metrics.queue, sorted(m for m in ("aiohttp", "httpx") if m in sys.modules))

asyncio.run(main())
"""


def test_the_monitor_polls_and_kubernetes_auth_builds_with_only_the_base_dependencies(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    import h11
    import prometheus_client

    import inference_metrics

    for module in (inference_metrics, prometheus_client, h11):
        (tmp_path / module.__name__).symlink_to(Path(module.__file__ or "").parent)
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + ONLY_BASE
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4.0 []"


async def test_a_connection_with_bytes_after_the_reply_is_not_kept() -> None:
    async def extra(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply(b"page") + b"HTTP/1.1 200 OK\r\n")  # half of an unasked reply
            await writer.drain()

    async with serving(extra) as peer:
        client = HTTPClient()
        for _ in range(3):
            assert await client.get(peer.url, max_bytes=100) == (200, b"page")
        await client.aclose()
    assert client.connections_opened == 3
