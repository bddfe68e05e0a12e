"""No log record of the pool monitor, the pool's Kubernetes discovery or the server's review
client holds a token, even when a broken peer echoes the request back in a malformed reply.

The peer is real: a socket server on 127.0.0.1 that reads what the client sent (head and any
body) and answers with it inside a malformed status line, or inside a malformed header field
after a good status line, as a broken proxy does. An HTTP library's error message quotes the
line it could not parse; the clients must log a message of their own instead. Every record of
every logger is captured at DEBUG, with its formatted exception chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from inference_metrics.pool import Endpoint, KubernetesDiscovery, PoolMonitor
from inference_metrics.server import AuthRequest, Headers, KubernetesAuthenticator
from inference_metrics.server.kubernetes import KubernetesConfig

from .model_servers import wait_until

OWN_TOKEN = "own-token-5f1c9e2a7b3d"  # what the client authenticates itself with
REVIEWED_TOKEN = "reviewed-token-8a2d6c4e0f"  # what a scraper presented (a TokenReview's body)
SECRETS = (OWN_TOKEN, REVIEWED_TOKEN)


def status_line_echo(received: bytes) -> bytes:
    """A status line that is the whole request, line breaks folded."""
    return received.replace(b"\r\n", b" ") + b"\r\n\r\n"


def header_echo(received: bytes) -> bytes:
    """A good status line, then the request as a header field without a colon."""
    return b"HTTP/1.1 200 OK\r\n" + received.replace(b"\r\n", b" ") + b"\r\nX: y\r\n\r\n"


ECHOES = {"status-line": status_line_echo, "header-field": header_echo}


class EchoingPeer:
    """Answers every request with ``echo(what it received)``, then closes."""

    def __init__(self, echo: Callable[[bytes], bytes]) -> None:
        self.echo = echo
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received = await reader.readuntil(b"\r\n\r\n")
            # The body, if any, as far as it came in a moment (a TokenReview holds a token).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    received += await reader.read(65536)
            self.requests.append(received)
            writer.write(self.echo(received))
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> EchoingPeer:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(params=sorted(ECHOES))
async def peer(request: pytest.FixtureRequest) -> AsyncIterator[EchoingPeer]:
    async with EchoingPeer(ECHOES[request.param]) as started:
        yield started


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(OWN_TOKEN + "\n")
    return path


def everything_logged(records: list[logging.LogRecord]) -> str:
    """Each record's message and its exception with the whole chain, as a handler would write."""
    parts = []
    for record in records:
        parts.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            parts.extend(traceback.format_exception(record.exc_info[1], chain=True))
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
    return "\n".join(parts)


def assert_no_secret(peer: EchoingPeer, caplog: pytest.LogCaptureFixture, logged: str) -> None:
    # The peer really saw the token (so it could echo it) and the failure was logged.
    assert any(OWN_TOKEN.encode() in request for request in peer.requests)
    assert any(record.levelno >= logging.WARNING for record in caplog.records)
    text = everything_logged(caplog.records)
    assert logged in text
    for secret in SECRETS:
        assert secret[:10] not in text  # nor a cut-off part of it


async def test_the_pool_monitor_logs_no_token_a_broken_peer_echoes(
    peer: EchoingPeer, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = Endpoint("echo-0", f"{peer.url}/metrics")
    monitor = PoolMonitor("p", [endpoint], bearer_token_file=token_file, poll_interval=0.01)
    async with monitor:
        await wait_until(lambda: monitor.poll_errors >= 3)
    assert_no_secret(peer, caplog, "poll failed")


async def test_kubernetes_discovery_logs_no_token_a_broken_peer_echoes(
    peer: EchoingPeer, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = KubernetesConfig(peer.url, token_file=token_file)
    # A short path, so a message cut to a length still reaches the header fields.
    discovery = KubernetesDiscovery(config, "m", selector="a=b", port=8000, retry_interval=0.01)
    task = asyncio.create_task(discovery.run(lambda endpoints: None))
    try:
        await wait_until(lambda: len(peer.requests) >= 3)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert_no_secret(peer, caplog, "Kubernetes discovery")


async def test_the_review_client_logs_no_token_a_broken_peer_echoes(
    peer: EchoingPeer, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = KubernetesAuthenticator(KubernetesConfig(peer.url, token_file=token_file))
    presented = Headers([("Authorization", f"Bearer {REVIEWED_TOKEN}")])
    request = AuthRequest("GET", "/metrics", presented)
    result = await auth.authorize(request)
    assert result.status == 503
    assert any(REVIEWED_TOKEN.encode() in request for request in peer.requests)
    assert_no_secret(peer, caplog, "Kubernetes review failed")
    for secret in SECRETS:
        assert secret[:10] not in result.reason  # the server logs the reason too
