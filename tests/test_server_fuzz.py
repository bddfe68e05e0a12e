"""Random and mutated request bytes against a live server: an answer or a close, never a hang,
never a traceback, and the server keeps serving."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_metrics.server import MetricsServer, ServerLimits, TokenFileAuthenticator

from .server_support import get, running_server

TOKEN = "fuzz-token-2c8e4a"
#: Well-formed requests the mutations start from (pipelined, bodies, Expect, HEAD, HTTP/1.0).
SEEDS = [
    f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
    "Accept: application/openmetrics-text; version=1.0.0\r\nAccept-Encoding: gzip\r\n\r\n".encode(),
    b"HEAD /healthz HTTP/1.0\r\n\r\n",
    b"GET /readyz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /%6Detrics?q HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
]
PIECES = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b" ",
    b"\t",
    b":",
    b"%",
    b"-",
    b"_",
    b"0",
    b"9" * 20,
    "\u00b2".encode(),
    b"\xff",
    b"\xb2",
    b"HTTP/1.1",
    b"Content-Length: ",
    b"\r\n\r\n",
]
NAMES = [
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Expect",
    "Accept",
    "Accept-Encoding",
    "Authorization",
    "Connection",
    "X-A",
]
VALUES = [
    "x",
    "0",
    "5",
    "\u00b2",
    "\u0662",
    "-5",
    "1_0",
    "+1",
    "1, 2",
    "99999999999999999999",
    "chunked",
    "gzip, chunked",
    "100-continue",
    "application/openmetrics-text; version=abc",
    "application/openmetrics-text; version=1.0.0",
    "gzip;q=nan",
    "gzip;q=0",
    f"Bearer {TOKEN}",
    "Bearer",
    "close",
    "keep-alive",
    "a\x01b",
    "\u00e9",
]
STATUS_LINE = re.compile(rb"HTTP/1\.[01] [1-5][0-9][0-9] ")


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 5))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        if operation == "insert":
            data[position:position] = draw(st.sampled_from(PIECES) | st.binary(max_size=8))
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 16))]
        elif operation == "replace" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        else:
            data[position:position] = data[position : position + draw(st.integers(1, 64))]
    return bytes(data)


@st.composite
def assembled_requests(draw: st.DrawFn) -> bytes:
    """Requests put together from parts that are each valid or almost."""
    newline = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "get", "G T", "GET\x00"]))
    target = draw(
        st.sampled_from(["/metrics", "/%6Detrics?x", "*", "http://x/metrics", "/%zz", "/healthz"])
    )
    version = draw(st.sampled_from([" HTTP/1.1", " HTTP/1.0", " HTTP/2.0", " HTTP/1.x", ""]))
    fields = draw(
        st.lists(
            st.tuples(
                st.sampled_from(NAMES),
                st.sampled_from(VALUES) | st.text(max_size=10),
                st.sampled_from([": ", ":", " : ", ":\t"]),
            ),
            max_size=6,
        )
    )
    head = f"{method} {target}{version}{newline}"
    head += "".join(f"{name}{colon}{value}{newline}" for name, value, colon in fields)
    body = draw(st.binary(max_size=12))
    return (head + newline).encode("utf-8") + body


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("inference_metrics")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def server(records: Records, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsServer]:
    tokens = tmp_path_factory.mktemp("fuzz") / "tokens"
    tokens.write_text(TOKEN + "\n")
    limits = ServerLimits(header_timeout=2.0, max_header_bytes=4096)
    with running_server(TokenFileAuthenticator(tokens), limits=limits) as server:
        yield server
    bad = [r for r in records.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, logging.Formatter().format(bad[0])


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, read until the server closes (bounded: 5 s per read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already answered and closed
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # closed with bytes of ours unread: a close all the same
    return answer


def assert_answered_or_closed(answer: bytes) -> None:
    assert answer == b"" or STATUS_LINE.match(answer), answer[:80]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_requests())
def test_mutated_requests_get_an_answer_or_a_close(server: MetricsServer, data: bytes) -> None:
    assert_answered_or_closed(exchange(server.port, data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=assembled_requests())
def test_assembled_requests_get_an_answer_or_a_close(server: MetricsServer, data: bytes) -> None:
    assert_answered_or_closed(exchange(server.port, data))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600))
def test_random_bytes_get_an_answer_or_a_close(server: MetricsServer, data: bytes) -> None:
    assert_answered_or_closed(exchange(server.port, data))


def test_the_server_still_serves_after_the_fuzzing(server: MetricsServer) -> None:
    assert get(server, "/healthz", timeout=5).status == 200
    assert get(server, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).status == 200
