"""Polling ``https://`` model servers: the CA, a client certificate, and
``insecure_skip_verify``, as upstream's metrics source allows; a failed handshake is a poll error
like any other."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from inference_metrics.pool import ClientTLS, Endpoint, PoolMonitor

from .model_servers import Load, vllm_page
from .server_support import TLSMaterial


class HTTPSServer:
    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self.runner = runner
        self.url = f"https://127.0.0.1:{port}/metrics"


@pytest.fixture
def material(tmp_path: Path) -> TLSMaterial:
    return TLSMaterial(tmp_path / "tls")


@pytest.fixture
def client_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def server(material: TLSMaterial, client_ca: trustme.CA) -> AsyncIterator[HTTPSServer]:
    """A vLLM page over HTTPS that requires a client certificate from ``client_ca``."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            text=vllm_page([Load(queue=4, kv_cache=0.5)]), content_type="text/plain"
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(material.cert_file, material.key_file)
    context.verify_mode = ssl.CERT_REQUIRED
    client_ca.configure_trust(context)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield HTTPSServer(runner, int(runner.addresses[0][1]))
    await runner.cleanup()


@pytest.fixture
def client_cert(client_ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    leaf = client_ca.issue_cert("inference-metrics-pool-monitor")
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


async def poll_with(tls: ClientTLS, url: str) -> tuple[float | None, int]:
    monitor = PoolMonitor("p", [Endpoint("tls-0", url)], tls=tls)
    try:
        metrics = await monitor.poll("tls-0")
    finally:
        await monitor.stop()
    return metrics.queue, metrics.poll_errors


async def test_the_ca_and_a_client_certificate_reach_a_mutual_tls_server(
    server: HTTPSServer, material: TLSMaterial, client_cert: tuple[Path, Path]
) -> None:
    cert, key = client_cert
    tls = ClientTLS(ca_file=material.ca_file, cert_file=cert, key_file=key)
    assert await poll_with(tls, server.url) == (4.0, 0)


async def test_without_a_client_certificate_the_poll_fails(
    server: HTTPSServer, material: TLSMaterial
) -> None:
    assert await poll_with(ClientTLS(ca_file=material.ca_file), server.url) == (None, 1)


async def test_an_untrusted_server_certificate_fails_unless_verification_is_skipped(
    server: HTTPSServer, client_cert: tuple[Path, Path]
) -> None:
    cert, key = client_cert
    assert await poll_with(ClientTLS(cert_file=cert, key_file=key), server.url) == (None, 1)
    insecure = ClientTLS(cert_file=cert, key_file=key, insecure_skip_verify=True)
    assert await poll_with(insecure, server.url) == (4.0, 0)


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        (ClientTLS(cert_file="c.pem"), "cert_file and key_file go together"),
        (ClientTLS(ca_file="/no/such/ca.pem"), "ca_file '/no/such/ca.pem' cannot be used"),
        (ClientTLS(cert_file="/no/c.pem", key_file="/no/k.pem"), "cert_file/key_file '/no/c.pem'"),
    ],
)
def test_unusable_tls_files_are_value_errors_naming_them(tls: ClientTLS, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PoolMonitor("p", [], tls=tls)


def test_importing_the_pool_package_does_not_import_aiohttp() -> None:
    code = "import sys, inference_metrics.pool; assert 'aiohttp' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
