"""The one outbound HTTP/1.1 client: model servers' metrics pages and the Kubernetes API
(TokenReviews, SubjectAccessReviews, lists and watches).

h11 frames every request and parses every reply (status line, fields, ``Content-Length``,
chunked and close-delimited bodies); asyncio streams carry the bytes. This module owns only what
h11 leaves to its user, as uvicorn's protocol does on the server side: connections (kept alive,
at most ``max_idle`` idle ones per origin, closed after ``idle_timeout``), TLS (a context per
new connection, from a callable so rotated files are used), the bounds (head size, body size after
decompression, line length), gzip, and the error messages. It was chosen over aiohttp and httpx
by what polling costs (benchmarks/bench_pool.py, docs/performance.md "Pool monitor").

Every failure is an :class:`HTTPError` whose message is written here: a library's error text
is never passed on, because it can quote the reply, and a broken peer can echo the request (its
``Authorization`` field) into the reply. Nor is a library exception chained to it. Callers bound
the time (``asyncio.timeout``); a request cut short closes its connection.
"""

from __future__ import annotations

import asyncio
import errno
import os
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from .tls import TLSFileError, harden

__all__ = ["HTTPClient", "HTTPError", "Response"]

#: Bytes read from a socket at once.
READ_SIZE = 64 << 10
#: Decompressed bytes produced at once from a gzip body (a gzip bomb is bounded by this).
INFLATE_SIZE = 1 << 20
DEFAULT_MAX_HEAD_BYTES = 64 << 10


class HTTPError(Exception):
    """A request failed. The message is this module's own: it never holds reply or request
    bytes (a token), and no library exception is attached as its cause or context."""


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


_SPLIT_CACHE: dict[str, tuple[_Origin, str, str]] = {}
_SPLIT_CACHE_SIZE = 4096


def _split(url: str) -> tuple[_Origin, str, str]:
    """``(origin, request target, Host field)`` of an absolute ``http(s)://`` URL (a poller asks
    for the same few URLs again and again: remembered, up to a bound)."""
    known = _SPLIT_CACHE.get(url)
    if known is not None:
        return known
    split = _split_anew(url)
    if len(_SPLIT_CACHE) >= _SPLIT_CACHE_SIZE:
        _SPLIT_CACHE.clear()
    _SPLIT_CACHE[url] = split
    return split


def _split_anew(url: str) -> tuple[_Origin, str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPError("not an http:// or https:// URL with a host")
    try:
        port = parts.port
    except ValueError:
        raise HTTPError("a URL with a bad port") from None
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname
    host_text = f"[{host}]" if ":" in host else host
    host_field = host_text if port in (None, default) else f"{host_text}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Origin(parts.scheme, host, port or default), target, host_field


def _reason(exc: BaseException) -> str:
    """Our words for a socket or TLS failure: the OpenSSL reason code or the errno's name and
    the system's text for it, never the exception's own message."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS failure ({exc.reason or type(exc).__name__})"
    if isinstance(exc, OSError) and exc.errno:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{os.strerror(exc.errno)} ({name})"
    return type(exc).__name__


class _Connection:
    """One TCP (or TLS) connection and its h11 state."""

    __slots__ = ("h11", "idle_since", "origin", "reader", "received", "reused", "writer")

    def __init__(
        self,
        origin: _Origin,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_head: int,
    ) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)
        self.reused = False
        self.received = False  # any byte of the current reply
        self.idle_since = 0.0

    def usable(self) -> bool:
        """Still open, and the server said nothing since (an idle connection it closed)."""
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        # At once, without waiting for a TLS close_notify: no socket outlives its use.
        self.writer.transport.abort()

    async def next_event(self) -> object:
        """The next h11 event of the reply (an ``h11.Response``, ``Data``, ...)."""
        failure = ""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                # h11's message may quote the reply: ours instead (a head over the bound too).
                failure = f"malformed HTTP reply from {self.origin}"
                break
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.reader.read(READ_SIZE)
            except (OSError, ssl.SSLError) as exc:
                failure = f"connection to {self.origin} failed: {_reason(exc)}"
                break
            self.received = self.received or bool(data)
            self.h11.receive_data(data)
        raise HTTPError(failure)


class Response:
    """A reply whose head was read; its body through :meth:`read`, :meth:`chunks` or
    :meth:`lines` (once)."""

    def __init__(self, connection: _Connection, event: h11.Response, gzip: bool) -> None:
        self._connection = connection
        self.status: int = event.status_code
        self.headers: list[tuple[bytes, bytes]] = list(event.headers)
        self.complete = False
        self._gzip = gzip

    def header(self, name: str) -> str | None:
        """The first field ``name`` (case-insensitive), decoded as Latin-1; None if absent."""
        wanted = name.lower().encode("ascii")
        for key, value in self.headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        return int(value) if value is not None and not self._gzip else None

    async def _raw(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while True:
            event = await connection.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise HTTPError(f"{connection.origin} closed the connection mid-reply")

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they come (gunzipped when the reply is gzip)."""
        if not self._gzip:
            async for data in self._raw():
                yield data
            return
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            async for data in self._raw():
                while data:
                    out = inflate.decompress(data, INFLATE_SIZE)
                    data = inflate.unconsumed_tail
                    if out:
                        yield out
            if not inflate.eof:
                raise HTTPError("truncated gzip body")
        except zlib.error:
            failure = "malformed gzip body"
        else:
            return
        raise HTTPError(failure)

    async def read(self, max_bytes: int) -> bytes:
        """The whole body (after decompression); :class:`HTTPError` beyond ``max_bytes``,
        before reading it when ``Content-Length`` says so. (The poller's path: one loop, no
        generator in between.)"""
        length = self.content_length
        if length is not None and length > max_bytes:
            raise HTTPError(f"body of {length} bytes exceeds {max_bytes}")
        connection = self._connection
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None
        parts: list[bytes] = []
        size = 0
        failure = ""
        while True:
            event = await connection.next_event()
            if isinstance(event, h11.Data):
                data = bytes(event.data)
                if inflate is not None:
                    try:  # at most one byte over the bound: a bomb is never inflated whole
                        data = inflate.decompress(data, max_bytes - size + 1)
                    except zlib.error:
                        failure = "malformed gzip body"
                        break
                size += len(data)
                if size > max_bytes:
                    failure = f"body exceeds {max_bytes} bytes"
                    break
                parts.append(data)
            elif isinstance(event, h11.EndOfMessage):
                if inflate is not None and not inflate.eof:
                    failure = "truncated gzip body"
                    break
                self.complete = True
                return b"".join(parts)
            elif isinstance(event, h11.ConnectionClosed):
                failure = f"{connection.origin} closed the connection mid-reply"
                break
        raise HTTPError(failure)

    async def lines(self, max_line: int) -> AsyncIterator[bytes]:
        """The body split at ``\\n`` (a watch stream's events); a last unterminated line too.
        :class:`HTTPError` for a line over ``max_line`` bytes."""
        pending = b""
        async for data in self.chunks():
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line
            if len(pending) > max_line:
                raise HTTPError(f"a line over {max_line} bytes")
        if pending:
            yield pending


class HTTPClient:
    """Makes HTTP/1.1 requests over kept-alive connections (see the module's docstring).

    ``tls``: the context for a new ``https://`` connection, or a callable giving it (called per
    connection, so rotated files apply); None: the system's defaults, TLS 1.2 at least.
    ``keep_alive`` False: every request says ``Connection: close`` and its connection is closed
    after it. ``accept_gzip``: ask for gzip and gunzip the reply (bounds apply after it).
    One client belongs to one event loop; :meth:`aclose` closes its idle connections.
    """

    def __init__(
        self,
        *,
        tls: ssl.SSLContext | Callable[[], ssl.SSLContext] | None = None,
        keep_alive: bool = True,
        max_idle: int = 2,
        idle_timeout: float = 15.0,
        accept_gzip: bool = True,
        max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
        user_agent: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if user_agent is None:
            from .. import __version__

            user_agent = f"inference-metrics/{__version__}"
        self._tls = tls
        self._default_tls: ssl.SSLContext | None = None
        self.keep_alive = keep_alive
        self.max_idle = max_idle if keep_alive else 0
        self.idle_timeout = idle_timeout
        self.accept_gzip = accept_gzip
        self.max_head_bytes = max_head_bytes
        self._fixed = [(b"User-Agent", user_agent.encode("ascii"))]
        if accept_gzip:
            self._fixed.append((b"Accept-Encoding", b"gzip"))
        if not keep_alive:
            self._fixed.append((b"Connection", b"close"))
        self._clock = clock
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._swept_at = clock()
        #: Connections opened so far (tests, diagnostics: keep-alive at work).
        self.connections_opened = 0

    def _context(self) -> ssl.SSLContext:
        if isinstance(self._tls, ssl.SSLContext):
            return self._tls
        if self._tls is not None:
            return self._tls()
        if self._default_tls is None:
            self._default_tls = harden(ssl.create_default_context())
        return self._default_tls

    async def _open(self, origin: _Origin) -> _Connection:
        failure = ""
        try:
            context = self._context() if origin.scheme == "https" else None
        except TLSFileError as exc:  # its message is ours: the file and a reason code
            failure = f"no TLS context for {origin}: {exc}"
        except (OSError, ssl.SSLError) as exc:
            failure = f"no TLS context for {origin}: {_reason(exc)}"
        if failure:
            raise HTTPError(failure)
        try:
            reader, writer = await asyncio.open_connection(
                origin.host,
                origin.port,
                ssl=context,
                server_hostname=origin.host if context is not None else None,
            )
        except (OSError, ssl.SSLError) as exc:
            failure = f"cannot connect to {origin}: {_reason(exc)}"
        else:
            self.connections_opened += 1
            return _Connection(origin, reader, writer, self.max_head_bytes)
        raise HTTPError(failure)

    def _take(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.usable():
                connection.reused = True
                return connection
            connection.close()
        return None

    def _give_back(self, connection: _Connection) -> None:
        """Keep ``connection`` for the next request to its origin, if it may be kept."""
        now = self._clock()
        state = connection.h11
        if (
            self.max_idle > 0
            and state.our_state is h11.DONE
            and state.their_state is h11.DONE
            and not state.trailing_data[0]  # bytes after the reply: not a connection to trust
            and connection.usable()
        ):
            state.start_next_cycle()
            idle = self._idle.setdefault(connection.origin, [])
            if len(idle) < self.max_idle:
                connection.idle_since = now
                connection.received = False
                idle.append(connection)
                connection = None  # type: ignore[assignment]
        if connection is not None:
            connection.close()
        if now - self._swept_at >= 1.0:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Close connections idle longer than ``idle_timeout`` (an endpoint that left)."""
        self._swept_at = now
        for origin in list(self._idle):
            kept = []
            for connection in self._idle[origin]:
                if now - connection.idle_since < self.idle_timeout and connection.usable():
                    kept.append(connection)
                else:
                    connection.close()
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]

    async def _send(
        self,
        connection: _Connection,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> Response:
        state = connection.h11
        try:
            data = state.send(h11.Request(method=method, target=target, headers=headers))
            if body:
                data = (data or b"") + (state.send(h11.Data(data=body)) or b"")
            data = (data or b"") + (state.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            failure = "a request h11 refuses to send (a bad header value)"
        else:
            failure = ""
        if failure:
            raise HTTPError(failure)
        try:
            connection.writer.write(data)
            await connection.writer.drain()
        except (OSError, ssl.SSLError) as exc:
            failure = f"connection to {connection.origin} failed: {_reason(exc)}"
        if failure:
            raise HTTPError(failure)
        while True:
            event = await connection.next_event()
            if isinstance(event, h11.Response):
                encoding = (dict(event.headers).get(b"content-encoding") or b"").lower()
                if encoding not in (b"", b"identity", b"gzip"):
                    raise HTTPError("a reply in a content encoding not asked for")
                return Response(connection, event, encoding == b"gzip")
            if isinstance(event, h11.ConnectionClosed):
                raise HTTPError(f"{connection.origin} closed the connection before answering")
            # InformationalResponse (100 Continue and the like): the real answer follows.

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> AsyncIterator[Response]:
        """``async with client.request("GET", url) as response:`` read its body inside.

        A kept-alive connection the server closed meanwhile is retried once on a new one (only
        when no byte of a reply came back). Leaving the block early (an exception, a body not
        read to its end) closes the connection.
        """
        origin, target, host_field = _split(url)
        fields = [(b"Host", host_field.encode("ascii")), *self._fixed]
        try:
            fields += [(k.encode("ascii"), v.encode("ascii")) for k, v in headers]
        except UnicodeEncodeError:
            raise HTTPError("a header that is not ASCII") from None
        if body:
            fields.append((b"Content-Length", str(len(body)).encode("ascii")))
        connection = self._take(origin)
        try:
            if connection is None:
                connection = await self._open(origin)
            try:
                response = await self._send(connection, method, target, fields, body)
            except HTTPError:
                if not (connection.reused and not connection.received):
                    raise
                connection.close()  # closed by the server while idle: once more, afresh
                connection = await self._open(origin)
                response = await self._send(connection, method, target, fields, body)
            yield response
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        if response.complete:
            self._give_back(connection)
        else:
            connection.close()

    async def get(
        self, url: str, *, headers: Iterable[tuple[str, str]] = (), max_bytes: int
    ) -> tuple[int, bytes]:
        """``(status, body)`` of a GET; the body bounded by ``max_bytes``."""
        async with self.request("GET", url, headers=headers) as response:
            return response.status, await response.read(max_bytes)

    async def aclose(self) -> None:
        """Close every idle connection (requests in flight close theirs when they end)."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
