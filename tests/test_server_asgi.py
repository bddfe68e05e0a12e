"""The guarded metrics ASGI app under a real uvicorn: the server's answers, through another door."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inference_metrics.backends.protobuf import CONTENT_TYPE
from inference_metrics.server import (
    AuthRequest,
    AuthResult,
    ClientCertificateAuthenticator,
    NoAuth,
    ServerLimits,
    TokenFileAuthenticator,
)
from inference_metrics.server.asgi import metrics_app

from .client_model import decode_stream
from .expo import parse_text
from .server_support import (
    GatedCollector,
    Reply,
    bearer,
    get,
    recorded_registry,
    running_asgi,
    running_server,
)
from .test_protobuf_exposition import PROMETHEUS_2_NATIVE

TOKEN = "asgi-token-9e4b2d"
OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


class Answering:
    """Answers ``result`` and remembers the paths it was asked about."""

    def __init__(self, result: AuthResult) -> None:
        self.result = result
        self.paths: list[str] = []

    async def authorize(self, request: AuthRequest) -> AuthResult:
        self.paths.append(request.path)
        return self.result


@pytest.fixture
def token_port(tmp_path: Path) -> Iterator[int]:
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    app = metrics_app(registry=recorded_registry(), authenticator=TokenFileAuthenticator(tokens))
    with running_asgi(app) as port:
        yield port


def test_an_allowed_scrape_gets_the_registry(token_port: int) -> None:
    reply = get(token_port, headers=bearer(TOKEN))
    assert reply.status == 200
    assert reply.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    family = parse_text(reply.body.decode())["inference_model_request_total"]
    labels = {"model_name": "llama", "target_model_name": "llama-lora"}
    assert family.value("inference_model_request_total", **labels) == 1.0


def test_a_missing_or_wrong_token_gets_401_with_a_challenge(token_port: int) -> None:
    for headers in ({}, bearer("wrong")):
        reply = get(token_port, headers=headers)
        assert reply.status == 401
        assert reply.header("WWW-Authenticate") == "Bearer"
        assert b"inference_model" not in reply.body


def test_openmetrics_and_gzip_are_negotiated(token_port: int) -> None:
    plain = get(token_port, headers={**bearer(TOKEN), "Accept": OPENMETRICS})
    packed = get(
        token_port, headers={**bearer(TOKEN), "Accept": OPENMETRICS, "Accept-Encoding": "gzip"}
    )
    assert (plain.header("Content-Type") or "").startswith("application/openmetrics-text")
    assert plain.body.endswith(b"# EOF\n")
    assert packed.header("Content-Encoding") == "gzip"
    assert gzip.decompress(packed.body) == plain.body


def test_protobuf_is_negotiated_as_prometheus_asks_for_it(token_port: int) -> None:
    headers = {**bearer(TOKEN), "Accept": PROMETHEUS_2_NATIVE, "Accept-Encoding": "gzip"}
    reply = get(token_port, headers=headers)
    assert reply.header("Content-Type") == CONTENT_TYPE
    families = {family.name: family for family in decode_stream(gzip.decompress(reply.body))}
    assert families["inference_model_request_total"].metric[0].counter.value == 1.0


def test_head_has_the_headers_of_get_and_no_body(token_port: int) -> None:
    body = get(token_port, headers=bearer(TOKEN)).body
    reply = get(token_port, headers=bearer(TOKEN), method="HEAD")
    assert reply.status == 200
    assert reply.header("Content-Length") == str(len(body))
    assert reply.body == b""


def test_other_methods_get_405_before_authentication() -> None:
    answering = Answering(AuthResult.allow("tester"))
    with running_asgi(metrics_app(registry=recorded_registry(), authenticator=answering)) as port:
        reply = get(port, method="POST")
    assert reply.status == 405
    assert reply.header("Allow") == "GET, HEAD"
    assert answering.paths == []


def essentials(reply: Reply) -> tuple[Any, ...]:
    names = ("Content-Type", "Content-Encoding", "WWW-Authenticate", "Retry-After", "Vary")
    return (reply.status, reply.body, *(reply.header(name) for name in names))


@pytest.mark.parametrize(
    "result",
    [
        AuthResult.allow("tester"),
        AuthResult.unauthenticated("no", challenge='Bearer realm="metrics"'),
        AuthResult.forbidden("no"),
        AuthResult.unavailable("no"),
    ],
)
@pytest.mark.parametrize(
    "headers", [{}, {"Accept": OPENMETRICS}, {"Accept-Encoding": "gzip"}, {"Accept": "x/y;q=abc"}]
)
def test_every_answer_is_the_servers(result: AuthResult, headers: dict[str, str]) -> None:
    registry = recorded_registry()
    app = metrics_app(registry=registry, authenticator=Answering(result))
    with running_asgi(app) as port, running_server(Answering(result), registry=registry) as server:
        assert essentials(get(port, headers=headers)) == essentials(get(server, headers=headers))


def test_the_authenticator_sees_the_whole_path_under_a_mount() -> None:
    answering = Answering(AuthResult.allow("tester"))
    inner = metrics_app(registry=recorded_registry(), authenticator=answering)

    async def mounted(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # What a router does for app.mount("/metrics", inner): the prefix goes to root_path.
        if scope["type"] == "http" and scope["path"].startswith("/metrics"):
            scope = {**scope, "root_path": "/metrics", "path": scope["path"][len("/metrics") :]}
        await inner(scope, receive, send)

    with running_asgi(mounted) as port:
        assert get(port, "/metrics").status == 200
    assert answering.paths == ["/metrics"]


def test_a_client_certificate_authenticator_refuses_without_a_certificate() -> None:
    app = metrics_app(registry=recorded_registry(), authenticator=ClientCertificateAuthenticator())
    with running_asgi(app) as port:
        assert get(port).status == 401


def test_beyond_max_renders_the_app_answers_503_with_retry_after() -> None:
    gate = GatedCollector()
    app = metrics_app(
        registry=gate.registry(),
        authenticator=NoAuth(),
        limits=ServerLimits(max_renders=1, render_wait=0.2),
    )
    try:
        with running_asgi(app) as port:
            holder = threading.Thread(target=lambda: get(port))
            holder.start()
            assert gate.entered.acquire(timeout=5)
            refused = get(port, headers={"Accept-Encoding": "gzip"})
            gate.release.set()
            holder.join(10)
    finally:
        gate.release.set()
    assert refused.status == 503
    assert refused.header("Retry-After") == "1"


def test_the_app_refuses_what_is_not_an_authenticator() -> None:
    with pytest.raises(TypeError, match="authenticator"):
        metrics_app(authenticator=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limits"):
        metrics_app(authenticator=NoAuth(), limits={"max_renders": 1})  # type: ignore[arg-type]


def test_the_app_has_no_unguarded_default() -> None:
    with pytest.raises(TypeError, match="authenticator"):
        metrics_app()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="authenticator"):
        metrics_app(authenticator=None)  # type: ignore[arg-type]
