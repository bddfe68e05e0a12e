"""The metrics server: ``/metrics`` behind an authenticator, ``/healthz`` and ``/readyz``, over
HTTP or TLS, on asyncio, in its own thread or inside a running event loop.

Endpoints (exact paths, after percent-decoding; the query is ignored):

* ``GET|HEAD /metrics``: the registry's exposition (text 0.0.4, or OpenMetrics when the client's
  ``Accept`` asks for it; gzip when ``Accept-Encoding`` allows), once the authenticator allows.
* ``GET|HEAD /healthz``: 200 while the server runs. ``GET|HEAD /readyz``: 200, or 503 while the
  ``readiness`` callable given to the server returns false. Neither is authenticated.
* Any other path: 404. Another method on a known path: 405 with ``Allow: GET, HEAD``. Both are
  answered before authentication.

HTTP/1.1 framing is h11's (requests, keep-alive, pipelining, ``Expect: 100-continue``); this
module owns only I/O, timeouts, the connection policy and dispatch. Every connection is bounded:
the TLS handshake (done per connection, never on the accept path), the request head (size and
time), idle keep-alive time and writes all have limits, and so has the number of open
connections. When that number is reached, the connection that has waited longest without a
request in progress (idle keep-alive, or not yet sent a whole head) is closed to admit the new
one, and head and idle timeouts shrink as connections fill up, so idle and slow clients cannot
keep scrapers out. Expositions are built off the event loop (see :mod:`.scrape`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any

import h11
from prometheus_client.registry import REGISTRY, Collector

from .auth import Authenticator, AuthRequest
from .headers import Headers
from .limits import ServerLimits
from .paths import BadTarget, target_path
from .scrape import (
    TEXT_PLAIN,
    Renderer,
    Reply,
    answer_scrape,
    method_refusal,
    peer_name,
    plain,
)
from .tls import ServerTLS

__all__ = ["DEFAULT_PORT", "MetricsServer", "ServerLimits"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9090
METRICS_PATH = "/metrics"
_READ_CHUNK = 16 * 1024
#: What Go's server answers to plain HTTP on a TLS port, and when it does so.
_PLAIN_ON_TLS = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
_TLS_HANDSHAKE_RECORD = 0x16
#: Why a request h11 refused was refused, in logs. Not h11's message: it quotes the offending
#: line, which may be an Authorization field or a target with a token in its query.
_UNPARSABLE = "request refused by the HTTP/1.1 parser"
_ACCEPT_BURST = 100
#: The kernel's queue of connections not yet accepted (capped by net.core.somaxconn).
_LISTEN_QUEUE = 1024
#: Bytes no field value may hold (RFC 9110 5.5: visible ASCII, space, tab and obs-text only).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: Connection states. Only BUSY connections (a request in progress) are never closed to make room.
_HANDSHAKE, _HEAD, _IDLE, _BUSY = "handshake", "head", "idle", "busy"


class _Tally:
    """A warning logged at most once per ``interval`` seconds, with how many times it happened."""

    def __init__(self, message: str, interval: float = 10.0) -> None:
        self.message = message
        self.interval = interval
        self.count = 0
        self._logged_at = -float("inf")
        #: Every occurrence since the server started; for tests and diagnostics.
        self.total = 0

    def note(self, *args: object) -> None:
        self.count += 1
        self.total += 1
        now = time.monotonic()
        if now - self._logged_at >= self.interval:
            logger.warning(
                self.message + " (%d time(s) since the last such warning)", *args, self.count
            )
            self.count = 0
            self._logged_at = now


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    task: asyncio.Task[None]
    state: str = _HANDSHAKE
    since: float = 0.0
    #: Closed by the server to make room or on a timeout: write nothing more.
    dropped: bool = False

    def enter(self, state: str) -> None:
        self.state = state
        self.since = time.monotonic()


class MetricsServer:
    """Serves a prometheus_client registry on ``/metrics``, guarded by ``auth``.

    In a thread (from synchronous code)::

        server = MetricsServer(auth=TokenFileAuthenticator("/etc/metrics/tokens"))
        server.start()          # returns once listening; raises if it cannot bind
        ...
        server.stop()           # graceful: in-flight scrapes finish

    Inside a running event loop::

        async with MetricsServer(auth=KubernetesAuthenticator.in_cluster()) as server:
            ...                 # or: await server.serve() until server.request_stop()

    ``registry``: what to expose (prometheus_client's default ``REGISTRY``, which also holds an
    OpenTelemetry ``PrometheusMetricReader``'s metrics). ``host``: ``"0.0.0.0"`` (all IPv4
    interfaces), ``"::"``, ``None`` (all interfaces) or an address. ``port``: 9090, or 0 for any
    free port (read it back from :attr:`port`). ``tls``: a :class:`ServerTLS` to serve HTTPS.
    ``readiness``: called (on the event loop; keep it quick) for each ``/readyz``; false is a 503.
    """

    def __init__(
        self,
        *,
        auth: Authenticator,
        registry: Collector = REGISTRY,
        host: str | None = "0.0.0.0",
        port: int = DEFAULT_PORT,
        tls: ServerTLS | None = None,
        limits: ServerLimits | None = None,
        readiness: Callable[[], bool] | None = None,
    ) -> None:
        if not isinstance(auth, Authenticator):
            raise TypeError(f"auth must be an Authenticator (async authorize()), got {auth!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port!r}")
        self.auth = auth
        self.registry = registry
        self.host = host
        self.tls = tls
        self.limits = limits if limits is not None else ServerLimits()
        self.readiness = readiness
        self._requested_port = port
        self._port: int | None = None
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._renderer: Renderer | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._evicted = _Tally("connection cap (%d) reached: closed the longest-waiting idle one")
        self._refused = _Tally("connection cap (%d) reached with every connection busy: refused")
        self._closing = False
        self._stop_requested: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------- properties

    @property
    def port(self) -> int:
        """The port listened on (the requested one, or the one picked for port 0)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http(s)://host:port`` (loopback for a wildcard host): the port listened on, or
        before the start the configured one (port 0 is picked at the start: RuntimeError)."""
        port = self._port if self._port is not None else self._requested_port
        if not port:
            raise RuntimeError("the server is not started: port 0 is picked when it starts")
        return _url(self.host, port, tls=self.tls is not None)

    @property
    def running(self) -> bool:
        return self._server is not None and not self._closing

    # ------------------------------------------------------------------------- asyncio control

    async def astart(self) -> None:
        """Start listening on the running loop; returns once bound."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._closing = False
        self._stop_requested = asyncio.Event()
        limit = self.limits.max_header_bytes
        pause = self.tls is not None

        def protocol_factory() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return _Protocol(reader, self._on_connection, loop=loop, pause=pause)

        # Accepts are taken in bursts of at most half the connection cap, so a connection
        # admitted in one burst has read its request before a later burst could make it the
        # longest-waiting one; the kernel's queue behind them is deep, so a crowd of
        # reconnecting clients does not get a scraper's SYN dropped (and retried a second later).
        burst = max(1, min(_ACCEPT_BURST, self.limits.max_connections // 2))
        self._server = await loop.create_server(
            protocol_factory, self.host, self._requested_port, reuse_address=True, backlog=burst
        )
        for listening in self._server.sockets:
            with socket.socket(fileno=os.dup(listening.fileno())) as listener:
                listener.listen(_LISTEN_QUEUE)
        self._renderer = Renderer(
            self.registry, max_renders=self.limits.max_renders, render_wait=self.limits.render_wait
        )
        self._reaper = loop.create_task(self._reap())
        # With host None and port 0 each address family gets its own port: report the IPv4 one,
        # which url names.
        sockets = sorted(self._server.sockets, key=lambda s: s.family != socket.AF_INET)
        self._port = sockets[0].getsockname()[1] if sockets else self._requested_port
        logger.info("serving %s%s", self.url, METRICS_PATH)

    async def astop(self) -> None:
        """Stop: no new connections, idle ones closed, requests in progress finish (bounded)."""
        server = self._server
        if server is None or self._closing:
            return
        self._closing = True
        server.close()
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for connection in list(self._connections.values()):
            if connection.state != _BUSY:
                connection.task.cancel()
        pending = set(self._connections)
        if pending:
            _, still = await asyncio.wait(pending, timeout=self.limits.shutdown_timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
        await server.wait_closed()
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._server = None
        if self._stop_requested is not None:
            self._stop_requested.set()
        logger.info("stopped serving %s", METRICS_PATH)

    async def serve(self) -> None:
        """Serve until :meth:`request_stop` (or cancellation), then stop gracefully."""
        if self._server is None:
            await self.astart()
        assert self._stop_requested is not None
        try:
            await self._stop_requested.wait()
        finally:
            await self.astop()

    def request_stop(self) -> None:
        """Ask :meth:`serve` to return; callable from any thread."""
        loop, event = self._loop, self._stop_requested
        if loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(event.set)

    async def __aenter__(self) -> MetricsServer:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.astop()

    # -------------------------------------------------------------------------- thread control

    def start(self, timeout: float = 10.0) -> None:
        """Serve from a new daemon thread with its own event loop; returns once listening.

        Raises what binding raised (``OSError`` for a port in use).
        """
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        started = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            try:
                await self.astart()
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            started.set()
            await self.serve()

        def run() -> None:
            asyncio.run(main())

        thread = threading.Thread(target=run, name="inference-metrics-server", daemon=True)
        self._thread = thread
        thread.start()
        if not started.wait(timeout):
            raise TimeoutError(f"the metrics server did not start within {timeout:g}s")
        if failure:
            thread.join()
            self._thread = None
            raise failure[0]

    def stop(self, timeout: float | None = 15.0) -> None:
        """Stop the thread started by :meth:`start` (graceful, see :meth:`astop`)."""
        thread = self._thread
        if thread is None:
            return
        self.request_stop()
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("the metrics server thread did not stop in time")
        self._thread = None

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------------------- connections

    @property
    def evictions(self) -> int:
        """Connections closed to admit new ones since the server started."""
        return self._evicted.total

    def _admit(self, writer: asyncio.StreamWriter, task: asyncio.Task[None]) -> _Connection | None:
        """Register a new connection, closing the longest-waiting idle one at the cap."""
        if len(self._connections) >= self.limits.max_connections:
            waiting = [c for c in self._connections.values() if c.state != _BUSY]
            if not waiting:
                self._refused.note(self.limits.max_connections)
                return None
            victim = min(waiting, key=lambda c: c.since)
            self._drop(victim, abort=True)
            self._evicted.note(self.limits.max_connections)
        connection = _Connection(writer, task)
        connection.enter(_HANDSHAKE if self.tls is not None else _HEAD)
        self._connections[task] = connection
        return connection

    def _drop(self, connection: _Connection, *, abort: bool) -> None:
        """Stop serving a waiting connection: reset at once (``abort``, to make room), or closed
        cleanly by its task (a timeout)."""
        self._connections.pop(connection.task, None)
        if abort:
            connection.dropped = True
            connection.writer.transport.abort()
        connection.task.cancel()

    async def _reap(self) -> None:
        """Close connections that waited longer than their (pressure-scaled) timeout."""
        limits = self.limits
        tick = min(max(min(limits.header_timeout, limits.idle_timeout) / 4, 0.05), 0.5)
        timeouts = {
            _HANDSHAKE: limits.handshake_timeout,
            _HEAD: limits.header_timeout,
            _IDLE: limits.idle_timeout,
        }
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            scale = limits.pressure_scale(len(self._connections))
            for connection in list(self._connections.values()):
                if connection.state == _BUSY:
                    continue
                if now - connection.since > timeouts[connection.state] * scale:
                    logger.debug(
                        "closing a connection %s for %gs", connection.state, now - connection.since
                    )
                    self._drop(connection, abort=False)

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = None if self._closing else self._admit(writer, task)
        if connection is None:
            writer.transport.abort()
            return
        try:
            await self._serve_connection(reader, writer, connection)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            pass
        except Exception:
            logger.exception("metrics server connection failed")
        finally:
            self._connections.pop(task, None)
            # Cancelled while closing (a second drop or shutdown): the transport is aborted.
            with contextlib.suppress(asyncio.CancelledError):
                await self._close(
                    writer, abort=self._closing or connection.state == _BUSY or connection.dropped
                )

    async def _close(self, writer: asyncio.StreamWriter, *, abort: bool) -> None:
        """Close a connection; the TLS close_notify exchange gets a moment, then it is cut."""
        if not abort:
            writer.close()
            try:
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
                return
            except asyncio.CancelledError:
                writer.transport.abort()
                raise
            except Exception as exc:  # timed out, a failed TLS shutdown, a reset
                logger.debug("connection closed uncleanly: %s", type(exc).__name__)
        # Shutting down, interrupted mid-request, dropped, or no answer to close_notify.
        writer.transport.abort()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        """The TLS handshake, or a 400 for plain HTTP sent to the TLS port; whether to go on."""
        assert self.tls is not None
        if await self._plain_http_on_tls(writer):
            logger.debug("plain HTTP from %s on the TLS port: answering 400", peer)
            writer.write(_PLAIN_ON_TLS)
            await _linger(reader, writer, self.limits.write_timeout)
            return False
        try:
            await writer.start_tls(
                self.tls.context(), ssl_handshake_timeout=self.limits.handshake_timeout
            )
        except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
            logger.debug("TLS handshake with %s failed: %s", peer, exc)
            return False
        return True

    async def _plain_http_on_tls(self, writer: asyncio.StreamWriter) -> bool:
        """Whether the client's first byte is not a TLS handshake record (peeked, not read).

        The transport does not read until the handshake starts; a duplicate of its socket is
        watched for the first byte instead, so nothing the TLS layer needs is consumed.
        """
        raw = writer.get_extra_info("socket")
        if raw is None:
            return False
        loop = asyncio.get_running_loop()
        with socket.socket(fileno=os.dup(raw.fileno())) as peek:
            peek.setblocking(False)
            readable = loop.create_future()

            def ready() -> None:
                if not readable.done():
                    readable.set_result(None)

            loop.add_reader(peek.fileno(), ready)
            try:
                async with asyncio.timeout(self.limits.handshake_timeout):
                    await readable
            finally:
                loop.remove_reader(peek.fileno())
            try:
                first = peek.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, InterruptedError):
                return False
        return bool(first) and first[0] != _TLS_HANDSHAKE_RECORD

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection
    ) -> None:
        peer = peer_name(writer.get_extra_info("peername"))
        if self.tls is not None:
            if not await self._handshake(reader, writer, peer):
                return
            connection.enter(_HEAD)
        certificate = writer.get_extra_info("peercert") if self.tls is not None else None
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        while not self._closing:
            event: h11.Request | None = None
            try:
                event = await self._next_request(reader, http, connection)
                if event is None:
                    return
                connection.enter(_BUSY)
                path = self._check_request(event)
                await self._discard_body(reader, writer, http, event)
            except _Refused as refused:
                if not connection.dropped:
                    logger.debug("bad request from %s: %s", peer, refused.reason)
                    head = event is not None and event.method == b"HEAD"
                    reply = plain(refused.status, ("Connection", "close"))
                    with contextlib.suppress(h11.LocalProtocolError):  # h11 allows no answer
                        await self._send(writer, http, reply, head=head)
                return
            method = event.method.decode("ascii")
            reply = await self._respond(
                method, path, Headers.from_raw(event.headers), peer, certificate
            )
            if self._closing:
                reply.headers.append(("Connection", "close"))
            await self._send(writer, http, reply, head=method == "HEAD")
            _access_log(peer, method, path, reply)
            if http.our_state is not h11.DONE or http.their_state is not h11.DONE:
                return  # the client or the reply asked to close, or HTTP/1.0
            http.start_next_cycle()
            connection.enter(_IDLE)

    async def _next_request(
        self, reader: asyncio.StreamReader, http: h11.Connection, connection: _Connection
    ) -> h11.Request | None:
        """The next request head, or None when the client closed (or was closed for waiting)."""
        probed = False
        while True:
            try:
                event = http.next_event()
            except h11.RemoteProtocolError as error:
                raise _Refused(error.error_status_hint, _UNPARSABLE) from None
            if isinstance(event, h11.Request):
                return event
            if event is not h11.NEED_DATA:
                return None  # ConnectionClosed (or PAUSED, which a new cycle never is)
            buffered = http.trailing_data[0]
            if not probed and b"\n" in buffered:
                probed = True
                _refuse_request_line(buffered)
            data = await reader.read(_READ_CHUNK)
            if data and connection.state == _IDLE:
                connection.enter(_HEAD)  # the head timeout runs from its first byte
            http.receive_data(data)

    def _check_request(self, request: h11.Request) -> str:
        """The decoded path of a parsed request; :class:`_Refused` for what h11 lets through."""
        if request.http_version not in (b"1.0", b"1.1"):
            raise _Refused(505, "HTTP version not supported")
        if len(request.headers) > self.limits.max_headers:
            raise _Refused(431, "too many header fields")
        size = len(request.target) + sum(len(n) + len(v) + 4 for n, v in request.headers)
        if size > self.limits.max_header_bytes:
            raise _Refused(431, "request head too large")
        # h11 lets control characters through in field values; an authenticator never sees them.
        if any(_CONTROL.search(value) for _, value in request.headers):
            raise _Refused(400, "control character in a header field")
        try:
            return target_path(request.target)
        except BadTarget as error:
            raise _Refused(400, str(error)) from None

    async def _discard_body(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        http: h11.Connection,
        request: h11.Request,
    ) -> None:
        """Read and drop a request body (bounded), answering ``Expect: 100-continue`` first."""
        fields = dict(request.headers)  # h11 lower-cased the names and checked the values
        if b"transfer-encoding" in fields:
            raise _Refused(400, "request bodies with Transfer-Encoding are not accepted")
        length = int(fields.get(b"content-length", b"0"))  # digits only: h11 checked
        if length > self.limits.max_body_bytes:
            raise _Refused(413, "request body too large")
        if http.they_are_waiting_for_100_continue:
            writer.write(http.send(h11.InformationalResponse(status_code=100, headers=[])))
        try:
            async with asyncio.timeout(self.limits.header_timeout):
                while True:
                    event = http.next_event()
                    if isinstance(event, h11.EndOfMessage):
                        return
                    if event is h11.NEED_DATA:
                        data = await reader.read(_READ_CHUNK)
                        if not data:
                            raise _Refused(400, "request body cut short")
                        http.receive_data(data)
        except TimeoutError:
            raise _Refused(400, "request body not received in time") from None
        except h11.RemoteProtocolError as error:
            raise _Refused(error.error_status_hint, _UNPARSABLE) from None

    async def _send(
        self, writer: asyncio.StreamWriter, http: h11.Connection, reply: Reply, *, head: bool
    ) -> None:
        headers = [*reply.headers, ("Content-Length", str(len(reply.body)))]
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = ""
        data = http.send(h11.Response(status_code=reply.status, headers=headers, reason=phrase))
        if not head and reply.body:
            data += http.send(h11.Data(data=reply.body))
        data += http.send(h11.EndOfMessage())
        writer.write(data)
        async with asyncio.timeout(self.limits.write_timeout):
            await writer.drain()

    # -------------------------------------------------------------------------------- routing

    async def _respond(
        self,
        method: str,
        path: str,
        headers: Headers,
        peer: str,
        certificate: Mapping[str, Any] | None,
    ) -> Reply:
        if path not in (METRICS_PATH, "/healthz", "/readyz"):
            return plain(404)
        refusal = method_refusal(method)
        if refusal is not None:
            return refusal
        if path == "/healthz":
            return Reply(200, b"ok\n", [("Content-Type", TEXT_PLAIN)])
        if path == "/readyz":
            if self._closing or not self._ready():
                return plain(503)
            return Reply(200, b"ok\n", [("Content-Type", TEXT_PLAIN)])
        request = AuthRequest(method, path, headers, certificate or None, peer)
        assert self._renderer is not None
        return await answer_scrape(
            self.auth, self._renderer, request, auth_timeout=self.limits.auth_timeout
        )

    def _ready(self) -> bool:
        if self.readiness is None:
            return True
        try:
            return bool(self.readiness())
        except Exception:
            logger.exception("readiness check failed")
            return False


class _Refused(Exception):
    """A request answered with ``status`` and a closed connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def _refuse_request_line(buffered: bytes) -> None:
    """Refuse at once a first line h11 would refuse only once a whole head arrived.

    An HTTP/0.9 request (``GET /``) has no head to wait for; h11 is asked about the line alone
    (with a Host field so only the line is judged), so nothing is parsed here by hand.
    """
    line = buffered.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        return  # an empty line before the request line: h11 decides
    probe = h11.Connection(h11.SERVER)
    probe.receive_data(line + b"\r\nHost: probe\r\n\r\n")
    try:
        probe.next_event()
    except h11.RemoteProtocolError:
        raise _Refused(400, "malformed request line") from None


class _Protocol(asyncio.StreamReaderProtocol):
    """Stream protocol that, for TLS, reads nothing until the handshake starts.

    The TLS handshake is started per connection (``StreamWriter.start_tls``) so it never runs on
    the accept path and its context can be a freshly reloaded one; bytes of the ClientHello must
    not be consumed by the plain stream before that.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        callback: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
        *,
        loop: asyncio.AbstractEventLoop,
        pause: bool,
    ) -> None:
        super().__init__(reader, callback, loop=loop)
        self._pause = pause

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._pause and isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()
        super().connection_made(transport)


async def _linger(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, write_timeout: float
) -> None:
    """Send what was written, half-close, and drop what the client still sends (for a moment).

    Closing with unread bytes from the client resets the connection, and a reset can destroy
    the answer before the client reads it; reading them first lets the answer arrive.
    """
    async with asyncio.timeout(write_timeout):
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    transport = writer.transport
    if isinstance(transport, asyncio.ReadTransport) and not transport.is_reading():
        transport.resume_reading()
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(1.0):
            while await reader.read(_READ_CHUNK):
                pass


def _url(host: str | None, port: int, *, tls: bool) -> str:
    host = host or "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _access_log(peer: str, method: str, path: str, reply: Reply) -> None:
    if not logger.isEnabledFor(logging.DEBUG):
        return
    decision = reply.auth
    # The decoded path only (never the query, never a header), length-capped and repr()'d so a
    # request cannot forge log lines.
    logger.debug(
        "%s %s %r -> %d%s",
        peer,
        method,
        path[:200],
        reply.status,
        f" ({decision.user or '-'}: {decision.reason})" if decision is not None else "",
    )
