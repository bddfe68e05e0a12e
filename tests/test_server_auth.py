"""Bearer-token parsing, static token files, client certificates; tokens never logged."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference_metrics.server import (
    AuthRequest,
    ClientCertificateAuthenticator,
    Headers,
    MetricsServer,
    NoAuth,
    TokenFileAuthenticator,
    bearer_token,
)

from .server_support import bearer, get, raw_exchange, running_server, status_of

TOKEN = "tok-3f9a1c7e5b2d4a6f8e0c"
OTHER = "other-8d2e4f6a0b1c3e5d7f9a"


def request(*authorization: str, path: str = "/metrics") -> AuthRequest:
    return AuthRequest("GET", path, Headers(("Authorization", a) for a in authorization))


# ----------------------------------------------------------------------------- bearer_token


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    assert bearer_token(Headers([("Authorization", f"{scheme} {TOKEN}")])) == (TOKEN, "")


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["Bearer"],
        ["Bearer "],
        [f"Bearer  {TOKEN}"],  # two spaces
        [f"Bearer {TOKEN} extra"],
        [f"Bearer\t{TOKEN}"],
        [f"Basic {TOKEN}"],
        [TOKEN],
        [f"Bearer{TOKEN}"],
        [f"Token {TOKEN}"],
        [f"Bearer {TOKEN}\x7f"],
        ["Bearer tök"],
        [f"Bearer {TOKEN}", f"Bearer {TOKEN}"],  # two Authorization fields
        [f"Bearer {TOKEN}", "Basic x"],
    ],
)
def test_malformed_authorization_has_no_token(values: list[str]) -> None:
    token, why = bearer_token(Headers(("Authorization", v) for v in values))
    assert token is None
    assert why
    assert TOKEN not in why


@given(st.lists(st.text(max_size=30), max_size=3))
def test_bearer_token_never_raises_and_only_takes_the_exact_form(values: list[str]) -> None:
    token, _ = bearer_token(Headers(("Authorization", v) for v in values))
    if token is not None:
        (value,) = values
        assert value.lower() == f"bearer {token}".lower()
        assert token
        assert all(0x21 <= ord(c) <= 0x7E for c in token)


# --------------------------------------------------------------------------- token files


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# metrics readers\n\n  {TOKEN}  \n{OTHER}\n")
    return path


@pytest.fixture
def token_server(token_file: Path) -> Iterator[MetricsServer]:
    with running_server(TokenFileAuthenticator(token_file)) as server:
        yield server


def test_each_token_in_the_file_is_accepted(token_server: MetricsServer) -> None:
    for token in (TOKEN, OTHER):
        reply = get(token_server, headers=bearer(token))
        assert reply.status == 200
        assert b"inference_model_request_total" in reply.body


def test_comment_lines_are_not_tokens(token_server: MetricsServer) -> None:
    assert get(token_server, headers=bearer("#")).status == 401
    assert get(token_server, headers={"Authorization": "Bearer # metrics readers"}).status == 401


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        f"Bearer  {TOKEN}",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer wrong",
    ],
)
def test_missing_malformed_or_unknown_tokens_get_401_with_a_challenge(
    token_server: MetricsServer, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = get(token_server, headers=headers)
    assert reply.status == 401
    assert reply.header("WWW-Authenticate") == "Bearer"
    assert b"inference_model" not in reply.body


def test_lower_case_scheme_is_accepted(token_server: MetricsServer) -> None:
    assert get(token_server, headers={"Authorization": f"bearer {TOKEN}"}).status == 200


def test_two_authorization_headers_get_401(token_server: MetricsServer) -> None:
    raw = (
        f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    ).encode()
    response = raw_exchange(token_server.port, raw)
    assert status_of(response) == 401
    assert b"WWW-Authenticate: Bearer" in response


def test_head_with_a_token(token_server: MetricsServer) -> None:
    reply = get(token_server, headers=bearer(TOKEN), method="HEAD")
    assert reply.status == 200
    assert reply.body == b""
    assert int(reply.header("Content-Length") or 0) > 0


def test_rotated_token_file_takes_effect_on_the_next_request(
    token_file: Path, tmp_path: Path
) -> None:
    auth = TokenFileAuthenticator(token_file)
    with running_server(auth) as server:
        assert get(server, headers=bearer(TOKEN)).status == 200
        # Atomic replacement, as a Kubernetes Secret volume does.
        replacement = tmp_path / "tokens.new"
        replacement.write_text("rotated-token-1\n")
        os.replace(replacement, token_file)
        assert get(server, headers=bearer(TOKEN)).status == 401
        assert get(server, headers=bearer("rotated-token-1")).status == 200
        # Rewritten in place.
        token_file.write_text("rotated-token-2\nrotated-token-3\n")
        assert get(server, headers=bearer("rotated-token-1")).status == 401
        assert get(server, headers=bearer("rotated-token-3")).status == 200
    assert auth.reloads == 2


def test_an_unreadable_token_file_fails_closed_then_recovers(token_file: Path) -> None:
    with running_server(TokenFileAuthenticator(token_file)) as server:
        saved = token_file.read_text()
        token_file.unlink()
        assert get(server, headers=bearer(TOKEN)).status == 503
        assert get(server, headers={}).status == 401  # no token: still unauthenticated
        token_file.write_text(saved)
        assert get(server, headers=bearer(TOKEN)).status == 200


def test_a_token_file_that_can_be_stated_but_not_read_fails_closed_and_recovers(
    token_file: Path,
) -> None:
    # The path becomes a directory: os.stat works, reading fails (as EACCES or EIO would).
    with running_server(TokenFileAuthenticator(token_file)) as server:
        saved = token_file.read_text()
        token_file.unlink()
        token_file.mkdir()
        for _ in range(2):  # a second failure on the same file must not hang either
            assert get(server, headers=bearer(TOKEN), timeout=5).status == 503
        assert get(server, "/healthz", timeout=5).status == 200
        token_file.rmdir()
        token_file.write_text(saved)
        assert get(server, headers=bearer(TOKEN), timeout=5).status == 200
    # Leaving the with block stopped the server in time (stop() raises otherwise).


def test_an_emptied_token_file_refuses_everyone(token_file: Path) -> None:
    with running_server(TokenFileAuthenticator(token_file)) as server:
        token_file.write_text("# nobody\n")
        assert get(server, headers=bearer(TOKEN)).status == 401


def test_token_file_must_exist_and_hold_a_token(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        TokenFileAuthenticator(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n# only a comment\n")
    with pytest.raises(ValueError, match="holds no token"):
        TokenFileAuthenticator(empty)


def test_a_token_with_spaces_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"{TOKEN}\nsecret with-space\n")
    with pytest.raises(ValueError, match="line 2") as raised:
        TokenFileAuthenticator(path)
    assert "secret" not in str(raised.value)


def test_every_token_is_compared(token_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file.write_text(f"{TOKEN}\n{OTHER}\nthird-token\n")
    auth = TokenFileAuthenticator(token_file)
    calls: list[int] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(len(a))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # the module auth.py uses
    assert asyncio.run(auth.authorize(request(f"Bearer {TOKEN}"))).allowed
    # No early exit at the first (matching) token, and fixed-length digests whatever the token.
    assert calls == [32, 32, 32]
    calls.clear()
    assert not asyncio.run(auth.authorize(request("Bearer x"))).allowed
    assert calls == [32, 32, 32]


async def test_token_file_identity_names_the_line_not_the_token(token_file: Path) -> None:
    result = await TokenFileAuthenticator(token_file).authorize(request(f"Bearer {OTHER}"))
    assert result.user == "token-file:line-4"
    assert OTHER not in repr(result)


# ------------------------------------------------------------------------ client certificates

CERTIFICATE = {"subject": ((("commonName", "prometheus"),),), "issuer": ()}


async def test_client_certificate_required() -> None:
    auth = ClientCertificateAuthenticator()
    refused = await auth.authorize(request())
    assert refused.status == 401
    allowed = await auth.authorize(
        AuthRequest("GET", "/metrics", Headers(), peer_certificate=CERTIFICATE)
    )
    assert allowed.allowed
    assert allowed.user == "cn:prometheus"


async def test_client_certificate_then_another_authenticator(token_file: Path) -> None:
    auth = ClientCertificateAuthenticator(then=TokenFileAuthenticator(token_file))
    with_token = Headers([("Authorization", f"Bearer {TOKEN}")])
    assert (await auth.authorize(AuthRequest("GET", "/metrics", with_token))).status == 401
    assert (
        await auth.authorize(
            AuthRequest("GET", "/metrics", Headers(), peer_certificate=CERTIFICATE)
        )
    ).status == 401
    both = AuthRequest("GET", "/metrics", with_token, peer_certificate=CERTIFICATE)
    assert (await auth.authorize(both)).allowed


async def test_no_auth_allows() -> None:
    assert (await NoAuth().authorize(request())).allowed


# ---------------------------------------------------------------------------------- logging


def test_tokens_never_reach_the_logs(
    token_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = TokenFileAuthenticator(token_file)
    with running_server(auth) as server:
        for authorization in (
            f"Bearer {TOKEN}",
            f"Bearer {OTHER}x",
            f"Basic {TOKEN}",
            f"Bearer  {TOKEN}",
        ):
            get(server, f"/metrics?token={TOKEN}", headers={"Authorization": authorization})
        token_file.write_text(f"{OTHER}\nbad {TOKEN}\n")  # a reload with a malformed line
        get(server, headers=bearer(OTHER))
        token_file.unlink()
        get(server, headers=bearer(TOKEN))
    assert "GET '/metrics' -> 200" in caplog.text  # the access log ran at DEBUG
    assert "line 2" in caplog.text
    for secret in (TOKEN, OTHER):
        assert secret not in caplog.text
