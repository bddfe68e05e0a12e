"""TLS: serving, TLS 1.2 minimum, idle handshakes, certificate reload, self-signed, mTLS."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import tempfile
from pathlib import Path

import pytest
import trustme

from inference_metrics.server import (
    ClientCertificateAuthenticator,
    NoAuth,
    ServerLimits,
    ServerTLS,
    TLSConfigError,
    TokenFileAuthenticator,
)

from .server_support import (
    TLSMaterial,
    bearer,
    closed_by_peer,
    get,
    raw_exchange,
    running_server,
)

TOKEN = "tls-token-7c2e9a"


@pytest.fixture
def material(tmp_path: Path) -> TLSMaterial:
    return TLSMaterial(tmp_path / "tls")


def peer_certificate(port: int, context: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def test_https_with_a_token(material: TLSMaterial, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN)
    tls = ServerTLS(material.cert_file, material.key_file)
    with running_server(TokenFileAuthenticator(tokens), tls=tls) as server:
        assert server.url.startswith("https://")
        context = material.client_context()
        reply = get(server, headers=bearer(TOKEN), context=context)
        assert reply.status == 200
        assert b"inference_model_request_total" in reply.body
        assert get(server, context=context).status == 401


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_2_is_the_minimum(material: TLSMaterial) -> None:
    tls = ServerTLS(material.cert_file, material.key_file)
    assert tls.context().minimum_version == ssl.TLSVersion.TLSv1_2
    with running_server(NoAuth(), tls=tls) as server:
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            context = material.client_context()
            context.minimum_version = context.maximum_version = version
            with (
                socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
            ):
                assert conn.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
        old = material.client_context()
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with contextlib.suppress(ssl.SSLError):
            old.set_ciphers("ALL:@SECLEVEL=0")
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            pytest.raises(ssl.SSLError),
        ):
            old.wrap_socket(raw, server_hostname="127.0.0.1")


def test_an_idle_tls_client_does_not_stall_others(material: TLSMaterial) -> None:
    tls = ServerTLS(material.cert_file, material.key_file)
    limits = ServerLimits(handshake_timeout=1.0)
    with running_server(NoAuth(), tls=tls, limits=limits) as server:
        # TCP connected, never a ClientHello: the handshake waits on its own task.
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
        try:
            reply = get(server, context=material.client_context(), timeout=5)
            assert reply.status == 200
            # ... and the idle ones are dropped once the handshake time is up.
            for sock in idle:
                assert closed_by_peer(sock)
        finally:
            for sock in idle:
                sock.close()


def test_plain_http_on_the_tls_port_gets_a_400_and_a_close(material: TLSMaterial) -> None:
    tls = ServerTLS(material.cert_file, material.key_file)
    with running_server(NoAuth(), tls=tls) as server:
        response = raw_exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response.startswith(b"HTTP/1.0 400 Bad Request\r\n")
        assert response.endswith(b"\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
        assert b"inference_model" not in response
        assert get(server, "/healthz", context=material.client_context()).status == 200


def test_new_connections_get_a_renewed_certificate(material: TLSMaterial) -> None:
    tls = ServerTLS(material.cert_file, material.key_file, check_interval=0)
    first = material.leaf_der
    with running_server(NoAuth(), tls=tls) as server:
        context = material.client_context()
        assert peer_certificate(server.port, context) == first
        renewed = material.issue_server_cert()
        assert renewed != first
        assert peer_certificate(server.port, context) == renewed
        assert tls.reloads == 1
        assert get(server, context=context).status == 200


def test_a_half_written_pair_keeps_the_old_certificate(
    material: TLSMaterial, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tls = ServerTLS(material.cert_file, material.key_file, check_interval=0)
    with running_server(NoAuth(), tls=tls) as server:
        context = material.client_context()
        before = peer_certificate(server.port, context)
        saved_key = material.key_file.read_bytes()
        renewed = material.issue_server_cert()
        material.key_file.write_bytes(saved_key)  # new certificate, old key: does not load
        assert peer_certificate(server.port, context) == before
        assert "do not load" in caplog.text
        material.issue_server_cert()  # a consistent pair again
        assert peer_certificate(server.port, context) not in (before, renewed)


def test_bad_files_are_refused_at_start(material: TLSMaterial, tmp_path: Path) -> None:
    with pytest.raises(TLSConfigError, match=f"No such file or directory: {tmp_path}/missing.crt"):
        ServerTLS(tmp_path / "missing.crt", material.key_file)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(TLSConfigError):
        ServerTLS(garbage, material.key_file)
    other = TLSMaterial(tmp_path / "other")
    with pytest.raises(TLSConfigError):
        ServerTLS(material.cert_file, other.key_file)


def test_self_signed_certificate(tmp_path: Path) -> None:
    tls = ServerTLS.self_signed(["127.0.0.1", "metrics.example"])
    assert tls.certificate_pem is not None
    context = ssl.create_default_context(cadata=tls.certificate_pem.decode())
    with running_server(NoAuth(), tls=tls) as server:
        assert get(server, context=context).status == 200
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            certificate = conn.getpeercert()
    assert certificate is not None
    assert ("DNS", "metrics.example") in certificate["subjectAltName"]
    assert ("IP Address", "127.0.0.1") in certificate["subjectAltName"]


def test_self_signed_key_is_not_left_on_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ServerTLS.self_signed(["localhost"])
    assert list(tmp_path.iterdir()) == []


def test_mutual_tls(material: TLSMaterial, tmp_path: Path) -> None:
    clients = trustme.CA()
    client_ca_file = tmp_path / "client-ca.pem"
    clients.cert_pem.write_to_path(str(client_ca_file))
    tls = ServerTLS(material.cert_file, material.key_file, client_ca_file=client_ca_file)
    with running_server(ClientCertificateAuthenticator(), tls=tls) as server:
        with_cert = material.client_cert_context(clients)
        reply = get(server, context=with_cert)
        assert reply.status == 200
        assert b"inference_model_request_total" in reply.body
        without = material.client_context()
        assert get(server, context=without).status == 401
        assert get(server, "/healthz", context=without).status == 200  # probes need no cert
        stranger = material.client_cert_context(trustme.CA())
        with pytest.raises((ssl.SSLError, ConnectionError)):
            get(server, context=stranger)


def test_mutual_tls_and_a_token(material: TLSMaterial, tmp_path: Path) -> None:
    clients = trustme.CA()
    client_ca_file = tmp_path / "client-ca.pem"
    clients.cert_pem.write_to_path(str(client_ca_file))
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN)
    tls = ServerTLS(material.cert_file, material.key_file, client_ca_file=client_ca_file)
    auth = ClientCertificateAuthenticator(then=TokenFileAuthenticator(tokens))
    with running_server(auth, tls=tls) as server:
        with_cert = material.client_cert_context(clients)
        assert get(server, context=with_cert).status == 401
        assert get(server, headers=bearer(TOKEN), context=with_cert).status == 200
        assert get(server, headers=bearer(TOKEN), context=material.client_context()).status == 401


def test_client_ca_rotation(material: TLSMaterial, tmp_path: Path) -> None:
    old, new = trustme.CA(), trustme.CA()
    client_ca_file = tmp_path / "client-ca.pem"
    old.cert_pem.write_to_path(str(client_ca_file))
    tls = ServerTLS(
        material.cert_file, material.key_file, client_ca_file=client_ca_file, check_interval=0
    )
    with running_server(ClientCertificateAuthenticator(), tls=tls) as server:
        assert get(server, context=material.client_cert_context(old)).status == 200
        replacement = tmp_path / "client-ca.new"
        new.cert_pem.write_to_path(str(replacement))
        os.replace(replacement, client_ca_file)
        assert get(server, context=material.client_cert_context(new)).status == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            get(server, context=material.client_cert_context(old))
