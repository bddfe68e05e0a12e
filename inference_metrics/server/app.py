"""The metrics server: ``/metrics`` behind an authenticator, ``/healthz`` and ``/readyz``, over
HTTP or TLS, on asyncio, in its own thread or inside a running event loop.

Endpoints (exact paths, after percent-decoding; the query is ignored):

* ``GET|HEAD /metrics``: the registry's exposition (text 0.0.4, or OpenMetrics when the client's
  ``Accept`` asks for it; gzip when ``Accept-Encoding`` allows), once the authenticator allows.
* ``GET|HEAD /healthz``: 200 while the server runs. ``GET|HEAD /readyz``: 200, or 503 while the
  ``readiness`` callable given to the server returns false. Neither is authenticated.
* Any other path: 404. Another method on a known path: 405 with ``Allow: GET, HEAD``. Both are
  answered before authentication.

The server is split as uvicorn splits its own: this module holds the server's lifecycle (listen,
serve, stop; in a thread or on a running loop), its I/O and the dispatch of each request (and its
access log line); :mod:`.config` the one configuration value; :mod:`.protocol` HTTP/1.1 on one
connection (h11 frames everything: requests, keep-alive, pipelining, ``Expect: 100-continue``);
:mod:`.routes` what each request is answered; :mod:`.connections` admission and eviction;
:mod:`.handshake` the per-connection TLS handshake.
Every connection is bounded: the TLS handshake (done per connection, never on the accept path),
the request head (size and time), idle keep-alive time and writes all have limits, and so has the
number of open connections. When that number is reached, the connection that has waited longest
without a request in progress (idle keep-alive, or not yet sent a whole head) is closed to admit
the new one, and head and idle timeouts shrink as connections fill up, so idle and slow clients
cannot keep scrapers out. Expositions are built off the event loop (see :mod:`.scrape`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from types import TracebackType

from prometheus_client.registry import REGISTRY, Collector

from .auth import Authenticator
from .config import DEFAULT_PORT, METRICS_PATH, ServerConfig, server_url
from .connections import ConnectionTable, State
from .handshake import PausedProtocol, start_tls
from .headers import Headers
from .limits import ServerLimits
from .protocol import H11Protocol
from .routes import Routes
from .scrape import Renderer, Reply, peer_name
from .tls import ServerTLS

__all__ = ["DEFAULT_PORT", "MetricsServer", "ServerConfig", "ServerLimits"]

logger = logging.getLogger(__name__)

_ACCEPT_BURST = 100
#: The kernel's queue of connections not yet accepted (capped by net.core.somaxconn).
_LISTEN_QUEUE = 1024


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

    The arguments are :class:`ServerConfig`'s (see there); :meth:`from_config` takes one whole.
    ``port`` 0 picks any free port: read it back from :attr:`port`.
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
        self.config = ServerConfig(
            auth=auth,
            registry=registry,
            host=host,
            port=port,
            tls=tls,
            limits=limits if limits is not None else ServerLimits(),
            readiness=readiness,
        )
        self._port: int | None = None
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._routes: Routes | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._connections = ConnectionTable(self.config.limits, tls=tls is not None)
        self._closing = False
        self._stop_requested: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: ServerConfig) -> MetricsServer:
        """A server configured by ``config``."""
        if not isinstance(config, ServerConfig):
            raise TypeError(f"config must be a ServerConfig, got {config!r}")
        return cls(
            auth=config.auth,
            registry=config.registry,
            host=config.host,
            port=config.port,
            tls=config.tls,
            limits=config.limits,
            readiness=config.readiness,
        )

    # ----------------------------------------------------------------------------- properties

    @property
    def auth(self) -> Authenticator:
        return self.config.auth

    @property
    def registry(self) -> Collector:
        return self.config.registry

    @property
    def host(self) -> str | None:
        return self.config.host

    @property
    def tls(self) -> ServerTLS | None:
        return self.config.tls

    @property
    def limits(self) -> ServerLimits:
        return self.config.limits

    @property
    def readiness(self) -> Callable[[], bool] | None:
        return self.config.readiness

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
        port = self._port if self._port is not None else self.config.port
        if not port:
            raise RuntimeError("the server is not started: port 0 is picked when it starts")
        return server_url(self.host, port, tls=self.tls is not None)

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
            return PausedProtocol(reader, self._on_connection, loop=loop, pause=pause)

        # Accepts are taken in bursts of at most half the connection cap, so a connection
        # admitted in one burst has read its request before a later burst could make it the
        # longest-waiting one; the kernel's queue behind them is deep, so a crowd of
        # reconnecting clients does not get a scraper's SYN dropped (and retried a second later).
        burst = max(1, min(_ACCEPT_BURST, self.limits.max_connections // 2))
        self._server = await loop.create_server(
            protocol_factory, self.host, self.config.port, reuse_address=True, backlog=burst
        )
        for listening in self._server.sockets:
            with socket.socket(fileno=os.dup(listening.fileno())) as listener:
                listener.listen(_LISTEN_QUEUE)
        renderer = Renderer(
            self.registry, max_renders=self.limits.max_renders, render_wait=self.limits.render_wait
        )
        self._routes = Routes(self.config, renderer, stopping=lambda: self._closing)
        self._reaper = loop.create_task(self._connections.reap())
        # With host None and port 0 each address family gets its own port: report the IPv4 one,
        # which url names.
        sockets = sorted(self._server.sockets, key=lambda s: s.family != socket.AF_INET)
        self._port = sockets[0].getsockname()[1] if sockets else self.config.port
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
        self._connections.cancel_waiting()
        pending = self._connections.tasks()
        if pending:
            _, still = await asyncio.wait(pending, timeout=self.limits.shutdown_timeout)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
        await server.wait_closed()
        if self._routes is not None:
            self._routes.renderer.close()
            self._routes = None
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
        return self._connections.evictions

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = None if self._closing else self._connections.admit(writer, task)
        if connection is None:
            writer.transport.abort()
            return
        try:
            peer = peer_name(writer.get_extra_info("peername"))
            certificate = None
            if self.tls is not None:
                if not await start_tls(reader, writer, self.tls, self.limits, peer):
                    return
                connection.enter(State.HEAD)
                certificate = writer.get_extra_info("peercert")
            routes = self._routes
            protocol = H11Protocol(
                reader, writer, connection, self.limits, peer=peer, closing=lambda: self._closing
            )

            async def respond(method: str, path: str, headers: Headers) -> Reply:
                assert routes is not None
                reply = await routes.respond(method, path, headers, peer, certificate)
                _access_log(peer, method, path, reply)
                return reply

            await protocol.run(respond)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            pass
        except Exception:
            logger.exception("metrics server connection failed")
        finally:
            self._connections.forget(task)
            # Cancelled while closing (a second drop or shutdown): the transport is aborted.
            with contextlib.suppress(asyncio.CancelledError):
                await self._close(
                    writer,
                    abort=self._closing or connection.state is State.BUSY or connection.dropped,
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
