"""Kubernetes TokenReview + SubjectAccessReview authentication against a stand-in API server.

No real API server runs in the test environment; :class:`KubeStandIn` answers over HTTPS with the
exact wire format (see tests/server_support.py) and checks every request body, path, header
and the server's own service-account token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference_metrics.server import (
    KubernetesAuthenticator,
    KubernetesConfig,
    KubernetesConfigError,
    MetricsServer,
)
from inference_metrics.server.kubernetes import (
    ACCESS_REVIEW_PATH,
    TOKEN_REVIEW_PATH,
    ReviewClient,
    ReviewError,
)

from .server_support import (
    KubeStandIn,
    StandInUser,
    TLSMaterial,
    bearer,
    get,
    raw_exchange,
    running_server,
    status_of,
)

SERVER_TOKEN = "server-sa-token-9c1e7a3b"
READER_TOKEN = "reader-token-2b8d4f6a"
NOBODY_TOKEN = "nobody-token-5e7a9c1d"
DENIED_TOKEN = "denied-token-0f2a4c6e"
SECRETS = (SERVER_TOKEN, READER_TOKEN, NOBODY_TOKEN, DENIED_TOKEN)

READER = StandInUser(
    "system:serviceaccount:monitoring:inference-gateway-sa-metrics-reader",
    uid="5b0f3e1c-8e0b-4a4e-9d0a-3f2b1c0d9e8f",
    groups=("system:serviceaccounts", "system:serviceaccounts:monitoring", "system:authenticated"),
    extra={"authentication.kubernetes.io/pod-name": ["prometheus-0"]},
)
NOBODY = StandInUser("system:serviceaccount:default:nobody", groups=("system:authenticated",))
DENIED = StandInUser("mallory", groups=("system:authenticated",))


@pytest.fixture
def material(tmp_path: Path) -> TLSMaterial:
    return TLSMaterial(tmp_path / "kube-tls")


@pytest.fixture
def sa_token_file(tmp_path: Path) -> Path:
    path = tmp_path / "sa-token"
    path.write_text(SERVER_TOKEN + "\n")
    return path


@pytest.fixture
def stand_in(material: TLSMaterial) -> Iterator[KubeStandIn]:
    with KubeStandIn(
        material,
        server_token=SERVER_TOKEN,
        tokens={READER_TOKEN: READER, NOBODY_TOKEN: NOBODY, DENIED_TOKEN: DENIED},
        allow={(READER.username, "/metrics", "get")},
        deny={(DENIED.username, "/metrics", "get")},
    ) as stand_in:
        yield stand_in
    assert stand_in.problems == []


def make_auth(
    stand_in: KubeStandIn, material: TLSMaterial, sa_token_file: Path, **options: object
) -> KubernetesAuthenticator:
    config = KubernetesConfig(stand_in.url, material.ca_file, sa_token_file)
    return KubernetesAuthenticator(config, **options)  # type: ignore[arg-type]


@pytest.fixture
def auth(
    stand_in: KubeStandIn, material: TLSMaterial, sa_token_file: Path
) -> KubernetesAuthenticator:
    return make_auth(stand_in, material, sa_token_file)


@pytest.fixture
def server(auth: KubernetesAuthenticator) -> Iterator[MetricsServer]:
    with running_server(auth) as server:
        yield server


# ----------------------------------------------------------------------------- the decisions


def test_an_allowed_identity_gets_the_metrics(server: MetricsServer, stand_in: KubeStandIn) -> None:
    reply = get(server, headers=bearer(READER_TOKEN))
    assert reply.status == 200
    assert b"inference_model_request_total" in reply.body


def test_the_reviews_are_exactly_the_wire_format(
    server: MetricsServer, stand_in: KubeStandIn
) -> None:
    assert get(server, headers=bearer(READER_TOKEN)).status == 200
    (token_review,) = stand_in.token_reviews
    (access_review,) = stand_in.access_reviews
    assert token_review.body == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": READER_TOKEN},
    }
    assert access_review.body == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": READER.username,
            "groups": list(READER.groups),
            "uid": READER.uid,
            "extra": {"authentication.kubernetes.io/pod-name": ["prometheus-0"]},
            "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
        },
    }
    for received in (token_review, access_review):
        assert received.headers["Authorization"] == f"Bearer {SERVER_TOKEN}"
        assert received.headers["Content-Type"] == "application/json"
        assert received.headers["Accept"] == "application/json"
        assert received.headers["Host"] == stand_in.url.removeprefix("https://")


def test_a_rejected_token_is_401_and_no_access_review(
    server: MetricsServer, stand_in: KubeStandIn
) -> None:
    reply = get(server, headers=bearer("forged-token"))
    assert reply.status == 401
    assert reply.header("WWW-Authenticate") == "Bearer"
    assert stand_in.count(TOKEN_REVIEW_PATH) == 1
    assert stand_in.count(ACCESS_REVIEW_PATH) == 0


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", f"Bearer  {READER_TOKEN}", f"Basic {READER_TOKEN}"]
)
def test_missing_or_malformed_tokens_are_401_without_asking_the_api_server(
    server: MetricsServer, stand_in: KubeStandIn, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = get(server, headers=headers)
    assert reply.status == 401
    assert reply.header("WWW-Authenticate") == "Bearer"
    assert stand_in.received == []


def test_two_authorization_headers_are_401(server: MetricsServer, stand_in: KubeStandIn) -> None:
    raw = (
        f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {READER_TOKEN}\r\n"
        f"Authorization: Bearer {READER_TOKEN}\r\nConnection: close\r\n\r\n"
    ).encode()
    assert status_of(raw_exchange(server.port, raw)) == 401
    assert stand_in.received == []


def test_lower_case_scheme_is_accepted(server: MetricsServer) -> None:
    assert get(server, headers={"Authorization": f"bearer {READER_TOKEN}"}).status == 200


@pytest.mark.parametrize("token", [NOBODY_TOKEN, DENIED_TOKEN])
def test_no_opinion_or_denied_is_403(server: MetricsServer, token: str) -> None:
    reply = get(server, headers=bearer(token))
    assert reply.status == 403
    assert b"inference_model" not in reply.body


def test_head_is_reviewed_as_verb_head(server: MetricsServer, stand_in: KubeStandIn) -> None:
    # The seed's ClusterRole allows only "get": HEAD is refused, as upstream.
    assert get(server, headers=bearer(READER_TOKEN), method="HEAD").status == 403
    stand_in.allow.add((READER.username, "/metrics", "head"))
    assert get(server, headers=bearer(READER_TOKEN), method="HEAD").status == 403  # deny cached
    verbs = [r.body["spec"]["nonResourceAttributes"]["verb"] for r in stand_in.access_reviews]
    assert verbs == ["head"]


def test_the_reviewed_path_is_the_decoded_path_without_query(
    server: MetricsServer, stand_in: KubeStandIn
) -> None:
    assert get(server, "/%6Detrics?token=x&y", headers=bearer(READER_TOKEN)).status == 200
    (review,) = stand_in.access_reviews
    assert review.body["spec"]["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}


# ---------------------------------------------------------------------------------- caching


def test_decisions_are_cached(
    server: MetricsServer, stand_in: KubeStandIn, auth: KubernetesAuthenticator
) -> None:
    for _ in range(3):
        assert get(server, headers=bearer(READER_TOKEN)).status == 200
        assert get(server, headers=bearer(DENIED_TOKEN)).status == 403
        assert get(server, headers=bearer("forged")).status == 401
    assert stand_in.count(TOKEN_REVIEW_PATH) == 3
    assert stand_in.count(ACCESS_REVIEW_PATH) == 2
    assert auth.stats.token_reviews == 3
    assert auth.stats.token_cache_hits == 6
    assert auth.stats.access_reviews == 2
    assert auth.stats.access_cache_hits == 4


def test_cache_entries_expire(
    stand_in: KubeStandIn, material: TLSMaterial, sa_token_file: Path
) -> None:
    auth = make_auth(stand_in, material, sa_token_file, token_ttl=0.2, allow_ttl=0.2, deny_ttl=0.2)
    with running_server(auth) as server:
        assert get(server, headers=bearer(READER_TOKEN)).status == 200
        assert get(server, headers=bearer(READER_TOKEN)).status == 200
        assert stand_in.count(TOKEN_REVIEW_PATH) == 1
        time.sleep(0.3)
        assert get(server, headers=bearer(READER_TOKEN)).status == 200
        assert stand_in.count(TOKEN_REVIEW_PATH) == 2
        assert stand_in.count(ACCESS_REVIEW_PATH) == 2


def test_allowed_is_cached_longer_than_denied(
    stand_in: KubeStandIn, material: TLSMaterial, sa_token_file: Path
) -> None:
    auth = make_auth(stand_in, material, sa_token_file, allow_ttl=60, deny_ttl=0.2)
    with running_server(auth) as server:
        assert get(server, headers=bearer(READER_TOKEN)).status == 200
        assert get(server, headers=bearer(DENIED_TOKEN)).status == 403
        # RBAC changes: the reader loses access, mallory gains it.
        stand_in.allow = {(DENIED.username, "/metrics", "get")}
        stand_in.deny = set()
        time.sleep(0.3)
        assert get(server, headers=bearer(DENIED_TOKEN)).status == 200  # deny expired
        assert get(server, headers=bearer(READER_TOKEN)).status == 200  # allow still cached


def test_token_cache_is_keyed_by_an_hmac_not_the_token(
    server: MetricsServer, auth: KubernetesAuthenticator
) -> None:
    assert get(server, headers=bearer(READER_TOKEN)).status == 200
    keys = auth.token_cache.keys()
    assert len(keys) == 1
    assert isinstance(keys[0], bytes)
    assert len(keys[0]) == 32
    assert READER_TOKEN.encode() not in keys[0]


def test_concurrent_identical_reviews_are_merged(
    server: MetricsServer, stand_in: KubeStandIn, auth: KubernetesAuthenticator
) -> None:
    stand_in.delay = 0.5
    statuses: list[int] = []
    lock = threading.Lock()

    def scrape() -> None:
        status = get(server, headers=bearer(READER_TOKEN)).status
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert statuses == [200] * 8
    assert stand_in.count(TOKEN_REVIEW_PATH) == 1
    assert stand_in.count(ACCESS_REVIEW_PATH) == 1
    assert auth.stats.token_reviews_shared + auth.stats.token_cache_hits == 7


# ---------------------------------------------------------------------------------- failures


def test_api_server_down_is_503(material: TLSMaterial, sa_token_file: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    auth = KubernetesAuthenticator(
        KubernetesConfig(f"https://127.0.0.1:{port}", material.ca_file, sa_token_file)
    )
    with running_server(auth) as server:
        assert get(server, headers=bearer(READER_TOKEN)).status == 503
        assert get(server, headers=bearer(READER_TOKEN)).status == 503  # failures not cached
    assert auth.stats.failures == 2
    assert auth.stats.token_cache_hits == 0


def test_a_slow_api_server_is_503_within_the_bound(
    stand_in: KubeStandIn, material: TLSMaterial, sa_token_file: Path
) -> None:
    stand_in.delay = 30
    auth = make_auth(stand_in, material, sa_token_file, timeout=1.0)
    with running_server(auth) as server:
        started = time.monotonic()
        assert get(server, headers=bearer(READER_TOKEN), timeout=20).status == 503
        # Well inside Prometheus' 10 s scrape timeout.
        assert time.monotonic() - started < 5
        assert get(server, "/healthz", timeout=5).status == 200


def test_an_api_server_that_never_answers_tls_is_503(
    material: TLSMaterial, sa_token_file: Path
) -> None:
    with socket.socket() as silent:  # accepts TCP (backlog), never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        auth = KubernetesAuthenticator(
            KubernetesConfig(
                f"https://127.0.0.1:{silent.getsockname()[1]}", material.ca_file, sa_token_file
            ),
            timeout=0.5,
        )
        with running_server(auth) as server:
            assert get(server, headers=bearer(READER_TOKEN), timeout=10).status == 503


@pytest.mark.parametrize("status", [500, 403, 429])
def test_api_server_errors_are_503_and_not_cached(
    server: MetricsServer, stand_in: KubeStandIn, status: int
) -> None:
    stand_in.fail_status = status
    assert get(server, headers=bearer(READER_TOKEN)).status == 503
    stand_in.fail_status = None
    assert get(server, headers=bearer(READER_TOKEN)).status == 200


def test_an_untrusted_api_server_certificate_is_503(
    stand_in: KubeStandIn, tmp_path: Path, sa_token_file: Path
) -> None:
    stranger = TLSMaterial(tmp_path / "stranger")
    auth = KubernetesAuthenticator(KubernetesConfig(stand_in.url, stranger.ca_file, sa_token_file))
    with running_server(auth) as server:
        assert get(server, headers=bearer(READER_TOKEN)).status == 503
    assert stand_in.received == []


def test_a_rejected_own_token_is_503(
    stand_in: KubeStandIn, material: TLSMaterial, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-sa-token"
    wrong.write_text("not-the-server-token")
    auth = KubernetesAuthenticator(KubernetesConfig(stand_in.url, material.ca_file, wrong))
    with running_server(auth) as server:
        assert get(server, headers=bearer(READER_TOKEN)).status == 503


def test_an_evaluation_error_refuses_and_is_not_cached(
    server: MetricsServer, stand_in: KubeStandIn
) -> None:
    stand_in.evaluation_error = "webhook authorizer unavailable"
    assert get(server, headers=bearer(NOBODY_TOKEN)).status == 403
    stand_in.evaluation_error = ""
    stand_in.allow.add((NOBODY.username, "/metrics", "get"))
    assert get(server, headers=bearer(NOBODY_TOKEN)).status == 200


async def test_malformed_replies_are_review_errors(material: TLSMaterial, tmp_path: Path) -> None:
    replies = [
        b"HTTP/1.1 201 Created\r\nContent-Length: 7\r\n\r\nnotjson",
        b'HTTP/1.1 201 Created\r\nContent-Length: 15\r\n\r\n{"kind":"Pod"}\n',
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"SPDY/3 200 OK\r\n\r\n",
        # Chunk sizes and lengths int() would take: a sign, an underscore, a Unicode digit.
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n{}\r\n0\r\n\r\n",
        "HTTP/1.1 201 Created\r\nContent-Length: \u0662\r\n\r\n{}".encode(),
        b"HTTP/1.1 201 Created\r\nContent-Length: +2\r\n\r\n{}",
    ]
    served: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(replies[len(served)])
        served.append(b"")
        await writer.drain()
        writer.close()

    plain = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = plain.sockets[0].getsockname()[1]
    auth = KubernetesAuthenticator(KubernetesConfig(f"http://127.0.0.1:{port}"))
    from inference_metrics.server import AuthRequest, Headers

    request = AuthRequest("GET", "/metrics", Headers([("Authorization", "Bearer t")]))
    async with plain:
        for _ in replies:
            assert (await auth.authorize(request)).status == 503
    assert auth.stats.failures == len(replies)


async def test_a_chunked_reply_is_read(material: TLSMaterial) -> None:
    review = json.dumps(
        {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "status": {"authenticated": True, "user": {"username": "u"}},
        }
    ).encode()
    chunks = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (review[:10], review[10:])
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(chunks + b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    plain = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = plain.sockets[0].getsockname()[1]
    config = KubernetesConfig(f"http://127.0.0.1:{port}")
    async with plain:
        result = await ReviewClient(config).token_review("t")
    assert result.authenticated
    assert result.user is not None
    assert result.user.username == "u"


async def straddling_reply(token: str, status: int, body: dict[str, object]) -> ReviewError | str:
    """Ask a one-shot API server that answers ``status`` and ``body`` for a TokenReview."""
    payload = json.dumps(body).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload
        )
        await writer.drain()
        writer.close()

    plain = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = plain.sockets[0].getsockname()[1]
    async with plain:
        try:
            review = await ReviewClient(KubernetesConfig(f"http://127.0.0.1:{port}")).token_review(
                token
            )
        except ReviewError as error:
            return error
    return review.error


@pytest.mark.parametrize("offset", [170, 185, 199, 200])
async def test_a_token_straddling_the_message_cut_is_redacted_whole(offset: int) -> None:
    token = "straddling-token-" + "0123456789abcdef" * 2
    message = "x" * offset + token + " is not valid"
    failure = await straddling_reply(token, 500, {"kind": "Status", "message": message})
    rejection = await straddling_reply(
        token, 201, {"kind": "TokenReview", "status": {"authenticated": False, "error": message}}
    )
    assert isinstance(failure, ReviewError)
    assert isinstance(rejection, str)
    for text in (str(failure), rejection):
        assert token[:8] not in text
        assert len(text) <= 250


# --------------------------------------------------------------------- identity & config


def test_own_token_rotation_is_picked_up(
    server: MetricsServer, stand_in: KubeStandIn, sa_token_file: Path, tmp_path: Path
) -> None:
    assert get(server, headers=bearer(READER_TOKEN)).status == 200
    replacement = tmp_path / "sa-token.new"
    replacement.write_text("rotated-server-token\n")
    replacement.replace(sa_token_file)
    stand_in.server_token = "rotated-server-token"
    assert get(server, headers=bearer(NOBODY_TOKEN)).status == 403  # a fresh review
    assert stand_in.token_reviews[-1].headers["Authorization"] == "Bearer rotated-server-token"


def test_audiences_are_sent_and_enforced(
    stand_in: KubeStandIn, material: TLSMaterial, sa_token_file: Path
) -> None:
    scoped = StandInUser(READER.username, audiences=("inference-metrics",))
    stand_in.tokens["scoped-token"] = scoped
    auth = make_auth(stand_in, material, sa_token_file, audiences=["inference-metrics"])
    with running_server(auth) as server:
        assert get(server, headers=bearer("scoped-token")).status == 200
        assert get(server, headers=bearer(READER_TOKEN)).status == 401  # API-server audience only
    assert stand_in.token_reviews[0].body["spec"] == {
        "token": "scoped-token",
        "audiences": ["inference-metrics"],
    }


def test_in_cluster_configuration(
    stand_in: KubeStandIn, material: TLSMaterial, tmp_path: Path
) -> None:
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(SERVER_TOKEN)
    (sa_dir / "ca.crt").write_bytes(material.ca_file.read_bytes())
    port = stand_in.url.rsplit(":", 1)[1]
    config = KubernetesConfig.in_cluster(
        environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port},
        service_account_dir=sa_dir,
    )
    assert config == KubernetesConfig(stand_in.url, sa_dir / "ca.crt", sa_dir / "token")
    with running_server(KubernetesAuthenticator(config)) as server:
        assert get(server, headers=bearer(READER_TOKEN)).status == 200


def test_in_cluster_overrides_and_errors(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("c")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    config = KubernetesConfig.in_cluster(environ=env, service_account_dir=tmp_path)
    assert config.api_server == "https://[fd00::1]:443"
    config = KubernetesConfig.in_cluster(
        api_server="https://api.example:6443", environ={}, service_account_dir=tmp_path
    )
    assert config.api_server == "https://api.example:6443"
    with pytest.raises(KubernetesConfigError, match="KUBERNETES_SERVICE_HOST"):
        KubernetesConfig.in_cluster(environ={}, service_account_dir=tmp_path)
    with pytest.raises(KubernetesConfigError, match="service-account"):
        KubernetesConfig.in_cluster(environ=env, service_account_dir=tmp_path / "missing")
    with pytest.raises(KubernetesConfigError, match="https://"):
        KubernetesConfig("ftp://x")
    with pytest.raises(ValueError, match="timeout"):
        KubernetesAuthenticator(KubernetesConfig("https://x"), timeout=0)


# ---------------------------------------------------------------------------------- logging


def test_no_token_reaches_the_logs(
    stand_in: KubeStandIn,
    material: TLSMaterial,
    sa_token_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stand_in.echo_token_in_error = True  # a rejected token's error message repeats it
    auth = make_auth(stand_in, material, sa_token_file, timeout=0.5)
    with running_server(auth) as server:
        assert get(server, headers=bearer(READER_TOKEN)).status == 200
        assert get(server, headers=bearer(NOBODY_TOKEN)).status == 403
        assert get(server, headers=bearer(DENIED_TOKEN)).status == 403
        assert get(server, headers=bearer("forged-" + READER_TOKEN)).status == 401
        stand_in.fail_status = 500
        assert get(server, headers=bearer("x" + READER_TOKEN)).status == 503
        stand_in.fail_status = None
        stand_in.delay = 5
        assert get(server, headers=bearer("y" + READER_TOKEN)).status == 503
    assert "invalid bearer token" in caplog.text  # the rejection reason was logged, redacted
    assert "-> 401" in caplog.text
    assert "review failed" in caplog.text or "timed out" in caplog.text
    for secret in SECRETS:
        assert secret not in caplog.text


def test_a_malformed_own_token_is_503_and_never_sent(
    stand_in: KubeStandIn, material: TLSMaterial, tmp_path: Path
) -> None:
    injected = tmp_path / "sa-token"
    injected.write_text(f"{SERVER_TOKEN}\r\nX-Injected: 1\n")
    auth = KubernetesAuthenticator(KubernetesConfig(stand_in.url, material.ca_file, injected))
    with running_server(auth) as server:
        assert get(server, headers=bearer(READER_TOKEN)).status == 503
    assert stand_in.received == []
