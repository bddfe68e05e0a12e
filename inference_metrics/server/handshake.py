"""TLS per connection: the handshake off the accept path, and plain HTTP on the TLS port.

The listening socket is plain TCP. Each accepted connection reads nothing (:class:`PausedProtocol`)
until its own task peeks at the first byte: a TLS handshake record starts the handshake with the
configuration's current context (so a reloaded certificate is used at once); anything else is
plain HTTP sent to the TLS port and gets Go's answer, a 400, as upstream's server gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any

from .limits import ServerLimits
from .tls import ServerTLS

__all__ = ["PausedProtocol", "start_tls"]

logger = logging.getLogger(__name__)

_READ_CHUNK = 16 * 1024
#: What Go's server answers to plain HTTP on a TLS port, and when it does so.
_PLAIN_ON_TLS = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
_TLS_HANDSHAKE_RECORD = 0x16


class PausedProtocol(asyncio.StreamReaderProtocol):
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


async def start_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    tls: ServerTLS,
    limits: ServerLimits,
    peer: str,
) -> bool:
    """The TLS handshake, or a 400 for plain HTTP sent to the TLS port; whether to go on."""
    async with asyncio.timeout(limits.handshake_timeout):
        plain_http = await _plain_http_on_tls(writer)
    if plain_http:
        logger.debug("plain HTTP from %s on the TLS port: answering 400", peer)
        writer.write(_PLAIN_ON_TLS)
        await _linger(reader, writer, limits.write_timeout)
        return False
    try:
        await writer.start_tls(tls.context(), ssl_handshake_timeout=limits.handshake_timeout)
    except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
        logger.debug("TLS handshake with %s failed: %s", peer, exc)
        return False
    return True


async def _plain_http_on_tls(writer: asyncio.StreamWriter) -> bool:
    """Whether the client's first byte is not a TLS handshake record (peeked, not read).

    The transport does not read until the handshake starts; a duplicate of its socket is
    watched for the first byte instead, so nothing the TLS layer needs is consumed. Waits for
    that byte as long as it takes: the caller bounds the wait.
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
            await readable
        finally:
            loop.remove_reader(peek.fileno())
        try:
            first = peek.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
    return bool(first) and first[0] != _TLS_HANDSHAKE_RECORD


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
