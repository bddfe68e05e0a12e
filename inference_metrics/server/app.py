"""The metrics server: ``/metrics`` behind an authenticator, ``/healthz`` and ``/readyz``, over
HTTP or TLS, on asyncio, in its own thread or inside a running event loop.

Endpoints (exact paths, after percent-decoding; the query is ignored):

* ``GET|HEAD /metrics``: the registry's exposition (text 0.0.4, or OpenMetrics when the client's
  ``Accept`` asks for it; gzip when ``Accept-Encoding`` allows), once the authenticator allows.
* ``GET|HEAD /healthz``: 200 while the server runs. ``GET|HEAD /readyz``: 200, or 503 while the
  ``readiness`` callable given to the server returns false. Neither is authenticated.
* Any other path: 404. Another method on a known path: 405 with ``Allow: GET, HEAD``. Both are
  answered before authentication.

Every connection is bounded: the TLS handshake (done per connection, never on the accept path),
the request head (size and time), idle keep-alive time and writes all have limits, and so has the
number of open connections, so a slow or idle client holds only its own connection. The exposition
is built in a worker thread, so a scrape never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gzip
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import REGISTRY, Collector

from .auth import Authenticator, AuthRequest, AuthResult
from .http11 import HTTPError, RequestHead, parse_request_head, render_response
from .tls import ServerTLS

__all__ = ["DEFAULT_PORT", "MetricsServer", "ServerLimits"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9090
METRICS_PATH = "/metrics"
_TEXT = "text/plain; charset=utf-8"
_ALLOWED_METHODS = ("GET", "HEAD")
_STATUS_BODIES = {
    400: b"Bad Request\n",
    401: b"Unauthorized\n",
    403: b"Forbidden\n",
    404: b"404 page not found\n",
    405: b"Method Not Allowed\n",
    413: b"Request Entity Too Large\n",
    431: b"Request Header Fields Too Large\n",
    500: b"Internal Server Error\n",
    503: b"Service Unavailable\n",
    505: b"HTTP Version Not Supported\n",
}


@dataclass(frozen=True)
class ServerLimits:
    """Bounds that keep one client from holding the server. Times in seconds."""

    #: Request line and header fields together (a Kubernetes token is 1-2 KiB).
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    #: A request body is read and discarded up to this size; larger ones get 413.
    max_body_bytes: int = 64 * 1024
    #: To receive a whole request head once its first byte arrived (and a new connection's first).
    header_timeout: float = 10.0
    #: An idle keep-alive connection is closed after this long.
    idle_timeout: float = 60.0
    handshake_timeout: float = 10.0
    #: To hand a response to a client that reads slowly.
    write_timeout: float = 30.0
    #: Outer bound on an authenticator's decision (the Kubernetes one bounds itself tighter).
    auth_timeout: float = 10.0
    #: Open connections beyond this are closed at once.
    max_connections: int = 256
    #: Worker threads building expositions.
    scrape_workers: int = 2
    #: On shutdown, requests in progress get this long to finish.
    shutdown_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"ServerLimits.{name} must be > 0, got {value!r}")


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False
    auth: AuthResult | None = None


@dataclass(eq=False)
class _Connection:
    task: asyncio.Task[None]
    busy: bool = False


def _plain(status: int, **kwargs: Any) -> _Response:
    response = _Response(status, _STATUS_BODIES.get(status, b""), **kwargs)
    response.headers.insert(0, ("Content-Type", _TEXT))
    return response


def _gzip_accepted(accept_encoding: str) -> bool:
    """Whether ``gzip`` is an accepted coding (and not refused with ``q=0``)."""
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if coding.lower() != "gzip":
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


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
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
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
        """``http(s)://host:port`` (loopback for a wildcard host)."""
        return _url(self.host, self.port, tls=self.tls is not None)

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

        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.limits.scrape_workers, thread_name_prefix="inference-metrics-scrape"
        )
        try:
            self._server = await loop.create_server(
                protocol_factory, self.host, self._requested_port, reuse_address=True
            )
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
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
        for connection in list(self._connections.values()):
            if not connection.busy:
                connection.task.cancel()
        pending = set(self._connections)
        if pending:
            _, still = await asyncio.wait(pending, timeout=self.limits.shutdown_timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
        await server.wait_closed()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
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

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._closing or len(self._connections) >= self.limits.max_connections:
            writer.transport.abort()
            if not self._closing:
                logger.warning(
                    "connection refused: %d connections open", self.limits.max_connections
                )
            return
        connection = _Connection(task)
        self._connections[task] = connection
        try:
            await self._serve_connection(reader, writer, connection)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception:
            logger.exception("metrics server connection failed")
        finally:
            try:
                await self._close(writer, abort=self._closing or connection.busy)
            finally:
                del self._connections[task]

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
        # Shutting down, interrupted mid-request, or the client did not answer close_notify.
        writer.transport.abort()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection
    ) -> None:
        peer = _peer(writer.get_extra_info("peername"))
        if self.tls is not None:
            context = self.tls.context()
            try:
                await writer.start_tls(context, ssl_handshake_timeout=self.limits.handshake_timeout)
            except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
                logger.debug("TLS handshake with %s failed: %s", peer, exc)
                return
        certificate = writer.get_extra_info("peercert") if self.tls is not None else None
        first = True
        while not self._closing:
            try:
                head = await self._read_head(reader, first)
            except HTTPError as error:
                connection.busy = True
                await self._write(writer, _plain(error.status, close=True), head=False, keep=False)
                connection.busy = False
                return
            if head is None:
                return
            first = False
            connection.busy = True
            try:
                request = parse_request_head(head, max_headers=self.limits.max_headers)
                await self._discard_body(reader, request)
            except HTTPError as error:
                logger.debug("bad request from %s: %s", peer, error.reason)
                await self._write(writer, _plain(error.status, close=True), head=False, keep=False)
                connection.busy = False
                return
            response = await self._respond(request, peer, certificate)
            keep = request.keep_alive and not response.close and not self._closing
            if keep and request.version == (1, 0):
                response.headers.append(("Connection", "keep-alive"))
            await self._write(writer, response, head=request.method == "HEAD", keep=keep)
            _access_log(peer, request, response)
            connection.busy = False
            if not keep:
                return

    async def _read_head(self, reader: asyncio.StreamReader, first: bool) -> bytes | None:
        """The next request head, or None when the client closed or stayed idle too long."""
        limits = self.limits
        try:
            async with asyncio.timeout(limits.header_timeout if first else limits.idle_timeout):
                start = await reader.readexactly(1)
        except (asyncio.IncompleteReadError, TimeoutError):
            return None
        try:
            async with asyncio.timeout(limits.header_timeout):
                return start + await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise HTTPError(431, "request head too large") from None
        except asyncio.IncompleteReadError:
            return None
        except TimeoutError:
            logger.debug("request head not received within %gs", limits.header_timeout)
            return None

    async def _discard_body(self, reader: asyncio.StreamReader, request: RequestHead) -> None:
        if "Transfer-Encoding" in request.headers:
            raise HTTPError(400, "request bodies with Transfer-Encoding are not accepted")
        length = request.content_length
        if length > self.limits.max_body_bytes:
            raise HTTPError(413, "request body too large")
        if length:
            try:
                async with asyncio.timeout(self.limits.header_timeout):
                    await reader.readexactly(length)
            except TimeoutError:
                raise HTTPError(400, "request body not received in time") from None

    async def _write(
        self, writer: asyncio.StreamWriter, response: _Response, *, head: bool, keep: bool
    ) -> None:
        writer.write(
            render_response(
                response.status,
                response.headers,
                response.body,
                send_body=not head,
                keep_alive=keep,
            )
        )
        async with asyncio.timeout(self.limits.write_timeout):
            await writer.drain()

    # -------------------------------------------------------------------------------- routing

    async def _respond(
        self, request: RequestHead, peer: str, certificate: Mapping[str, Any] | None
    ) -> _Response:
        path = request.path
        if path not in (METRICS_PATH, "/healthz", "/readyz"):
            return _plain(404)
        if request.method not in _ALLOWED_METHODS:
            return _plain(405, headers=[("Allow", ", ".join(_ALLOWED_METHODS))])
        if path == "/healthz":
            return _Response(200, b"ok\n", [("Content-Type", _TEXT)])
        if path == "/readyz":
            if self._closing or not self._ready():
                return _plain(503)
            return _Response(200, b"ok\n", [("Content-Type", _TEXT)])

        decision = await self._authorize(
            AuthRequest(
                method=request.method,
                path=path,
                headers=request.headers,
                peer_certificate=certificate or None,
                peer=peer,
            )
        )
        if not decision.allowed:
            response = _plain(decision.status, auth=decision)
            if decision.status == 401:
                response.headers.append(("WWW-Authenticate", decision.challenge or "Bearer"))
            return response

        loop = asyncio.get_running_loop()
        accept = request.headers.joined("Accept")
        accept_encoding = request.headers.joined("Accept-Encoding")
        try:
            body, headers = await loop.run_in_executor(
                self._executor, self._render, accept, accept_encoding
            )
        except Exception:
            logger.exception("building the exposition failed")
            return _plain(500, auth=decision)
        return _Response(200, body, headers, auth=decision)

    def _ready(self) -> bool:
        if self.readiness is None:
            return True
        try:
            return bool(self.readiness())
        except Exception:
            logger.exception("readiness check failed")
            return False

    async def _authorize(self, request: AuthRequest) -> AuthResult:
        try:
            async with asyncio.timeout(self.limits.auth_timeout):
                decision = await self.auth.authorize(request)
        except TimeoutError:
            logger.warning("authenticator gave no answer within %gs", self.limits.auth_timeout)
            return AuthResult.unavailable("authenticator timed out")
        except Exception as exc:
            logger.warning("authenticator failed (%s): answering 503", type(exc).__name__)
            return AuthResult.unavailable("authenticator failed")
        if not isinstance(decision, AuthResult) or decision.status not in (200, 401, 403, 503):
            logger.warning("authenticator answered %r: answering 503", type(decision).__name__)
            return AuthResult.unavailable("authenticator answered nonsense")
        return decision

    def _render(self, accept: str, accept_encoding: str) -> tuple[bytes, list[tuple[str, str]]]:
        encoder: Callable[[Collector], bytes]
        encoder, content_type = choose_encoder(accept)
        body = encoder(self.registry)
        headers = [("Content-Type", content_type), ("Vary", "Accept, Accept-Encoding")]
        if _gzip_accepted(accept_encoding):
            body = gzip.compress(body, compresslevel=6)
            headers.append(("Content-Encoding", "gzip"))
        return body, headers


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


def _url(host: str | None, port: int, *, tls: bool) -> str:
    host = host or "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _peer(peername: object) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername or "")


def _access_log(peer: str, request: RequestHead, response: _Response) -> None:
    if not logger.isEnabledFor(logging.DEBUG):
        return
    decision = response.auth
    # The decoded path only (never the query, never a header), length-capped and repr()'d so a
    # request cannot forge log lines.
    logger.debug(
        "%s %s %r -> %d%s",
        peer,
        request.method,
        request.path[:200],
        response.status,
        f" ({decision.user or '-'}: {decision.reason})" if decision is not None else "",
    )
