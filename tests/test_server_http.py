"""The exposition server's HTTP behaviour: endpoints, methods, paths, negotiation, limits, shutdown.

Path handling (documented in docs/exposition-server.md): the target is split at ``?``, the path
percent-decoded, and the result must equal ``/metrics`` exactly; no slash merging, no trailing-slash
redirects, no dot-segment removal. The authenticator sees that same decoded path.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inference_metrics.backends.protobuf import CONTENT_TYPE
from inference_metrics.server import (
    AuthRequest,
    AuthResult,
    MetricsServer,
    NoAuth,
    ServerLimits,
    ServerTLS,
)
from inference_metrics.server.paths import BadTarget, target_path

from .client_model import decode_stream
from .expo import parse_text
from .server_support import (
    GatedCollector,
    closed_by_peer,
    get,
    raw_exchange,
    recorded_registry,
    running_server,
    status_of,
)
from .test_protobuf_exposition import PROMETHEUS_2_NATIVE


class Recording:
    """Allows everything and remembers what it was asked."""

    def __init__(self, result: AuthResult | None = None) -> None:
        self.requests: list[AuthRequest] = []
        self.result = result or AuthResult.allow("tester")

    async def authorize(self, request: AuthRequest) -> AuthResult:
        self.requests.append(request)
        return self.result


class SlowCollector(Collector):
    """A collector that takes ``delay`` seconds (a big registry, a slow custom collector)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def collect(self) -> Iterator[Metric]:
        time.sleep(self.delay)
        yield GaugeMetricFamily("slow_gauge", "A gauge that takes its time.", value=1.0)


def slow_registry(delay: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(SlowCollector(delay))
    return registry


@pytest.fixture
def recording() -> Recording:
    return Recording()


@pytest.fixture
def server(recording: Recording) -> Iterator[MetricsServer]:
    with running_server(recording) as server:
        yield server


# ------------------------------------------------------------------------------ exposition


def test_metrics_serves_the_registry_in_text_format(server: MetricsServer) -> None:
    reply = get(server)
    assert reply.status == 200
    assert reply.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    assert reply.header("Content-Encoding") is None
    families = parse_text(reply.body.decode())
    family = families["inference_model_request_total"]
    labels = {"model_name": "llama", "target_model_name": "llama-lora"}
    assert family.value("inference_model_request_total", **labels) == 1.0


def test_openmetrics_when_the_client_asks_for_it(server: MetricsServer) -> None:
    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
        "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )  # what Prometheus 2.x sends
    reply = get(server, headers={"Accept": accept})
    assert reply.status == 200
    content_type = reply.header("Content-Type") or ""
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert reply.body.endswith(b"# EOF\n")


def test_protobuf_gzipped_when_prometheus_asks_for_native_histograms(
    server: MetricsServer,
) -> None:
    reply = get(server, headers={"Accept": PROMETHEUS_2_NATIVE, "Accept-Encoding": "gzip"})
    assert reply.status == 200
    assert reply.header("Content-Type") == CONTENT_TYPE
    assert reply.header("Content-Encoding") == "gzip"
    families = {family.name: family for family in decode_stream(gzip.decompress(reply.body))}
    (metric,) = families["inference_model_request_total"].metric
    assert metric.counter.value == 1.0


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("deflate, GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("identity", False),
        ("", False),
    ],
)
def test_gzip_only_when_accepted(
    server: MetricsServer, accept_encoding: str, gzipped: bool
) -> None:
    plain = get(server).body
    reply = get(server, headers={"Accept-Encoding": accept_encoding})
    assert reply.status == 200
    if gzipped:
        assert reply.header("Content-Encoding") == "gzip"
        assert gzip.decompress(reply.body) == plain
    else:
        assert reply.header("Content-Encoding") is None
        assert reply.body == plain


def test_head_sends_the_headers_of_get_and_no_body(server: MetricsServer) -> None:
    body = get(server).body
    request = b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
    request += b"Connection: close\r\n\r\n"
    response = raw_exchange(server.port, request)
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Length: {len(body)}".encode() in head
    # No body after the HEAD response: the next bytes are the pipelined GET's response.
    assert rest.startswith(b"HTTP/1.1 200 ")
    assert rest.endswith(b"\r\n\r\nok\n")


def test_health_endpoints_are_not_authenticated() -> None:
    refuse = Recording(AuthResult.unauthenticated("nobody gets in"))
    with running_server(refuse) as server:
        assert get(server, "/healthz").status == 200
        assert get(server, "/readyz").body == b"ok\n"
        assert get(server, "/healthz", method="HEAD").status == 200
        reply = get(server)
        assert reply.status == 401
        assert reply.header("WWW-Authenticate") == "Bearer"
    assert [r.path for r in refuse.requests] == ["/metrics"]


def test_readyz_follows_the_readiness_check() -> None:
    ready = threading.Event()
    with running_server(NoAuth(), readiness=ready.is_set) as server:
        assert get(server, "/readyz").status == 503
        assert get(server, "/healthz").status == 200
        ready.set()
        assert get(server, "/readyz").status == 200


# ----------------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("target", "status", "authorized_path"),
    [
        ("/metrics", 200, "/metrics"),
        ("/metrics?x", 200, "/metrics"),
        ("/metrics?name[]=a&b=%2F", 200, "/metrics"),
        ("/%6Detrics", 200, "/metrics"),
        ("/%6d%65trics?", 200, "/metrics"),
        ("/metrics/", 404, None),
        ("//metrics", 404, None),
        ("/metrics%2F", 404, None),
        ("/%2Fmetrics", 404, None),
        ("/./metrics", 404, None),
        ("/x/../metrics", 404, None),
        ("/METRICS", 404, None),
        ("/metrics;x", 404, None),
        ("/", 404, None),
        ("/favicon.ico", 404, None),
        ("/healthz/", 404, None),
        ("/%zzmetrics", 400, None),
        ("/metrics%", 400, None),
        ("/metrics%00", 400, None),
        ("/%C3%28", 400, None),
    ],
)
def test_path_handling(
    server: MetricsServer,
    recording: Recording,
    target: str,
    status: int,
    authorized_path: str | None,
) -> None:
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    assert status_of(raw_exchange(server.port, request)) == status
    assert [r.path for r in recording.requests] == (
        [authorized_path] if authorized_path is not None else []
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "get"])
def test_other_methods_get_405_before_authentication(
    server: MetricsServer, recording: Recording, method: str
) -> None:
    for path in ("/metrics", "/healthz"):
        reply = get(server, path, method=method)
        assert reply.status == 405
        assert reply.header("Allow") == "GET, HEAD"
    assert recording.requests == []


def test_unknown_paths_get_404_whatever_the_method(
    server: MetricsServer, recording: Recording
) -> None:
    assert get(server, "/nope", method="POST").status == 404
    assert get(server, "/nope").body == b"404 page not found\n"
    assert recording.requests == []


def test_authenticator_sees_method_path_headers_and_peer(
    server: MetricsServer, recording: Recording
) -> None:
    get(server, "/%6Detrics?q=1", headers={"X-Probe": "1"}, method="HEAD")
    (request,) = recording.requests
    assert request.method == "HEAD"
    assert request.path == "/metrics"
    assert request.headers.get("x-probe") == "1"
    assert request.peer.startswith("127.0.0.1:")
    assert request.peer_certificate is None


# ------------------------------------------------------------------------------ bad requests


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /metrics\r\n\r\n", 400),
        (b"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /metrics HTTP/1.x\r\nHost: x\r\n\r\n", 400),
        (b"GET http://x/metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400),
        # A superscript two: str.isdigit() says yes, int() says no (as Latin-1 and as UTF-8).
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n", 400),
        ("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: \u00b2\r\n\r\n".encode(), 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1_0\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413),
    ],
)
def test_malformed_requests_are_refused_and_closed(
    server: MetricsServer, recording: Recording, request_bytes: bytes, status: int
) -> None:
    response = raw_exchange(server.port, request_bytes)
    assert status_of(response) == status
    assert b"Connection: close" in response
    assert recording.requests == []


def test_an_http_0_9_request_is_refused_at_once(server: MetricsServer) -> None:
    # No head follows an HTTP/0.9 request line: the 400 comes without waiting for one (the
    # 5 s read bound is half the 10 s head timeout the server used to wait for).
    response = raw_exchange(server.port, b"GET /metrics\r\n", timeout=5)
    assert status_of(response) == 400
    assert b"Connection: close" in response


def test_bare_lf_line_endings_are_answered(server: MetricsServer) -> None:
    response = raw_exchange(
        server.port, b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n", timeout=5
    )
    assert status_of(response) == 200
    assert response.endswith(b"ok\n")


def test_expect_100_continue_gets_a_100_then_the_answer(server: MetricsServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"hello")
        assert _read_response(sock).endswith(b"ok\n")


def test_an_unparsable_accept_header_gets_the_text_format(server: MetricsServer) -> None:
    reply = get(server, headers={"Accept": "application/openmetrics-text; version=abc"})
    assert reply.status == 200
    assert reply.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    assert b"inference_model_request_total" in reply.body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer SECRET-5a7c\r\n\r\n",
        b"GET /metrics?token=SECRET-5a7c HTTP/1.1 x\r\nHost: x\r\n\r\n",
        b"GET /metrics?token=SECRET-5a7c\r\n",
    ],
)
def test_a_refused_request_is_not_quoted_in_the_logs(
    server: MetricsServer, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="inference_metrics")
    assert status_of(raw_exchange(server.port, request_bytes)) == 400
    assert "bad request from" in caplog.text
    assert "SECRET" not in caplog.text


def test_a_small_body_is_read_and_ignored(server: MetricsServer) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    request += b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = raw_exchange(server.port, request)
    assert response.count(b"HTTP/1.1 200 OK") == 2


def test_http_1_0_is_answered_and_closed(server: MetricsServer) -> None:
    response = raw_exchange(server.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status_of(response) == 200
    assert response.endswith(b"ok\n")


def test_oversized_request_head_gets_431() -> None:
    limits = ServerLimits(max_header_bytes=2048)
    with running_server(NoAuth(), limits=limits) as server:
        big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n"
        assert status_of(raw_exchange(server.port, big)) == 431
        many = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X: 1\r\n" * 101 + b"\r\n"
        assert status_of(raw_exchange(server.port, many)) == 431
        assert get(server).status == 200


@given(st.binary(max_size=300))
def test_target_decoding_raises_only_bad_target(target: bytes) -> None:
    try:
        path = target_path(target)
    except BadTarget:
        return
    assert path.startswith("/")
    assert "\x00" not in path


@pytest.mark.parametrize("target", [b"/\x00", b"/metrics\x00", b"/a\x00?x=1", b"/%00"])
def test_a_nul_in_the_path_is_a_bad_target_escaped_or_not(target: bytes) -> None:
    with pytest.raises(BadTarget, match="NUL"):
        target_path(target)


@given(
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?"), max_size=40
    )
)
def test_decoded_path_is_what_routing_and_authorization_see(raw: str) -> None:
    try:
        path = target_path(f"/{raw}?q".encode())
    except BadTarget:
        assert "%" in raw
        return
    assert "%" in raw or path == "/" + raw


# ------------------------------------------------------------------------ keep-alive & limits


def test_keep_alive_serves_several_requests_on_one_connection(server: MetricsServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(sock).endswith(b"ok\n")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"Connection: close" in _read_response(sock)
        assert sock.recv(1) == b""


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before a response head"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_a_slow_client_does_not_stall_others_and_is_cut_off() -> None:
    limits = ServerLimits(header_timeout=0.5, idle_timeout=0.5)
    with running_server(NoAuth(), limits=limits) as server:
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            slow.sendall(b"GET /metrics HTTP/1.1\r\nHo")  # and never more
            assert get(server, timeout=5).status == 200
            # Both are closed by the server once their time is up (recv sees EOF, not a timeout).
            assert closed_by_peer(slow)
            assert closed_by_peer(idle)
        finally:
            slow.close()
            idle.close()


def test_idle_keep_alive_connection_is_closed() -> None:
    with (
        running_server(NoAuth(), limits=ServerLimits(idle_timeout=0.3)) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
    ):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        _read_response(sock)
        assert closed_by_peer(sock)


def test_at_the_cap_the_longest_idle_connection_makes_room_for_a_new_one() -> None:
    # Timeouts long enough that, shrunk tenfold at the cap, none of them closes anything here.
    limits = ServerLimits(max_connections=2, header_timeout=600.0, idle_timeout=600.0)
    with running_server(NoAuth(), limits=limits) as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
        try:
            for sock in held:  # both served once, then idle: the first has waited longest
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                _read_response(sock)
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert _read_response(extra).endswith(b"ok\n")
                assert closed_by_peer(held[0])
                held[1].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert _read_response(held[1]).endswith(b"ok\n")
            assert server.evictions == 1
        finally:
            for sock in held:
                sock.close()


def test_idle_connections_are_closed_sooner_when_connections_fill_up() -> None:
    # Unscaled, these idle connections would be kept 20 s; with the cap full, a tenth of it.
    limits = ServerLimits(max_connections=4, idle_timeout=20.0, header_timeout=20.0)
    with running_server(NoAuth(), limits=limits) as server:
        idle: list[socket.socket] = []
        try:
            for _ in range(4):
                idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
                idle[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                _read_response(idle[-1])
            # The first to go idle is closed after a tenth of 20 s; recv is bounded by 10 s. Only
            # it is asserted: once it is gone the cap is no longer full, the scale rises again
            # (0.5 with three open, 1 with two), and the rest rightly wait longer.
            assert closed_by_peer(idle[0])
        finally:
            for sock in idle:
                sock.close()


@pytest.mark.parametrize(
    ("open_connections", "scale"), [(0, 1.0), (128, 1.0), (192, 0.5), (256, 0.1), (300, 0.1)]
)
def test_timeouts_scale_down_past_half_the_cap(open_connections: int, scale: float) -> None:
    assert ServerLimits().pressure_scale(open_connections) == pytest.approx(scale)


def test_at_the_cap_with_every_connection_busy_a_new_one_is_closed() -> None:
    gate = GatedCollector()
    limits = ServerLimits(max_connections=2)
    with running_server(NoAuth(), registry=gate.registry(), limits=limits) as server:
        busy = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
        try:
            for index, sock in enumerate(busy):  # two different renders, both held in collect()
                gzip_or_not = b"Accept-Encoding: gzip\r\n" if index else b""
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + gzip_or_not + b"\r\n")
                assert gate.entered.acquire(timeout=5)
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert closed_by_peer(extra)
            gate.release.set()
            for sock in busy:  # the busy ones were left alone
                assert _read_response(sock).startswith(b"HTTP/1.1 200 ")
        finally:
            gate.release.set()
            for sock in busy:
                sock.close()


# -------------------------------------------------------------------------- auth failures


class Broken:
    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def authorize(self, request: AuthRequest) -> AuthResult:
        if self.mode == "raise":
            raise RuntimeError("authenticator bug")
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode == "nonsense":
            return AuthResult(302, "redirect?")
        return "yes"  # type: ignore[return-value]


@pytest.mark.parametrize("mode", ["raise", "hang", "nonsense", "wrong-type"])
def test_a_failing_authenticator_fails_closed_with_503(mode: str) -> None:
    limits = ServerLimits(auth_timeout=0.3)
    with running_server(Broken(mode), limits=limits) as server:
        reply = get(server)
        assert reply.status == 503
        assert b"inference_model" not in reply.body


@pytest.mark.parametrize(
    "result",
    [
        AuthResult.unauthenticated("no"),
        AuthResult.forbidden("no"),
        AuthResult.unavailable("no"),
    ],
)
def test_refusals_carry_the_authenticators_status_and_no_metrics(result: AuthResult) -> None:
    with running_server(Recording(result)) as server:
        reply = get(server)
        assert reply.status == result.status
        assert b"inference_model" not in reply.body
        assert (reply.header("WWW-Authenticate") == "Bearer") == (result.status == 401)


def test_a_failing_collector_is_a_500() -> None:
    class Failing(Collector):
        def collect(self) -> Iterator[Metric]:
            raise RuntimeError("collector bug")

    registry = CollectorRegistry()
    registry.register(Failing())
    with running_server(NoAuth(), registry=registry) as server:
        assert get(server).status == 500
        assert get(server, "/healthz").status == 200


# ----------------------------------------------------------------------- lifecycle & asyncio


def test_graceful_stop_lets_a_scrape_in_progress_finish() -> None:
    server = MetricsServer(auth=NoAuth(), registry=slow_registry(0.5), host="127.0.0.1", port=0)
    server.start()
    replies: list[int] = []
    client = threading.Thread(target=lambda: replies.append(get(server).status))
    client.start()
    time.sleep(0.2)  # the scrape is in the collector now
    server.stop()
    client.join(10)
    assert replies == [200]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


def test_start_raises_when_the_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = MetricsServer(auth=NoAuth(), host="127.0.0.1", port=taken.getsockname()[1])
        with pytest.raises(OSError, match="in use"):
            server.start()
        server.stop()  # nothing to stop; must not hang


def test_context_manager_and_restart() -> None:
    server = MetricsServer(auth=NoAuth(), registry=recorded_registry(), host="127.0.0.1", port=0)
    with server:
        assert get(server, "/healthz").status == 200
    with server:
        assert get(server).status == 200


def test_constructor_refuses_a_non_authenticator() -> None:
    with pytest.raises(TypeError, match="Authenticator"):
        MetricsServer(auth=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        MetricsServer(auth=NoAuth(), port=70000)


async def _fetch(port: int, path: str = "/metrics") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


async def test_inside_a_running_loop_a_scrape_does_not_block_the_loop() -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    async with MetricsServer(
        auth=NoAuth(), registry=slow_registry(0.5), host="127.0.0.1", port=0
    ) as server:
        task = asyncio.create_task(ticker())
        response = await asyncio.wait_for(_fetch(server.port), 10)
        stop.set()
        await task
    assert status_of(response) == 200
    assert b"slow_gauge 1.0" in response
    # A loop blocked for the 0.5 s collection would have ticked about once.
    assert ticks >= 10


async def test_serve_runs_until_request_stop() -> None:
    server = MetricsServer(auth=NoAuth(), registry=recorded_registry(), host="127.0.0.1", port=0)
    serving = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.running:
            break
        await asyncio.sleep(0.01)
    assert status_of(await _fetch(server.port, "/healthz")) == 200
    server.request_stop()
    await asyncio.wait_for(serving, 10)
    assert not server.running


async def test_cancelling_serve_stops_the_server() -> None:
    server = MetricsServer(auth=NoAuth(), host="127.0.0.1", port=0)
    serving = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.running:
            break
        await asyncio.sleep(0.01)
    port = server.port
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


def test_limits_must_be_numbers() -> None:
    with pytest.raises(TypeError, match="max_renders"):
        ServerLimits(max_renders="2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="idle_timeout"):
        ServerLimits(idle_timeout=True)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="header_timeout"):
        ServerLimits(header_timeout=0)
    with pytest.raises(ValueError, match="max_connections"):
        ServerLimits(max_connections=-1)


@pytest.mark.parametrize(
    ("host", "tls", "url"),
    [
        ("127.0.0.1", False, "http://127.0.0.1:9090"),
        ("0.0.0.0", False, "http://127.0.0.1:9090"),
        (None, True, "https://127.0.0.1:9090"),
        ("", False, "http://127.0.0.1:9090"),
        ("::", False, "http://[::1]:9090"),
        ("fd00::1", True, "https://[fd00::1]:9090"),
        ("localhost", False, "http://localhost:9090"),
    ],
)
def test_url_names_a_reachable_address(host: str | None, tls: bool, url: str) -> None:
    server = MetricsServer(
        auth=NoAuth(), host=host, port=9090, tls=ServerTLS.self_signed() if tls else None
    )
    assert server.url == url


def test_url_of_a_server_configured_with_port_0_is_known_only_once_started() -> None:
    with pytest.raises(RuntimeError, match="port 0"):
        _ = MetricsServer(auth=NoAuth(), port=0).url


def test_url_of_a_running_server(server: MetricsServer) -> None:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
        assert response.status == 200
    assert server.url == f"http://127.0.0.1:{server.port}"
