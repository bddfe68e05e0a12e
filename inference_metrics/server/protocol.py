"""HTTP/1.1 on one connection, framed by h11 (as uvicorn's ``protocols/http/h11_impl.py``).

Bytes read from the client are fed to an ``h11.Connection`` and :meth:`H11Protocol.run` loops over
its ``next_event()``: a request head is checked, its body (if any) read and dropped, the request
handed to the server's ``respond`` callable, and the reply framed by h11 again. What h11 refuses
(``RemoteProtocolError``) is answered with its status and the connection closed; keep-alive is
``our_state is DONE`` (and the client's), then ``start_next_cycle()``. Nothing of HTTP is parsed
here by hand: the few checks h11 leaves to its user (HTTP version, head size, control characters
in field values, the target's form) are made on what h11 parsed.

The protocol tells the connection's :class:`~.connections.Connection` where it is (waiting for a
head, busy, idle) so the server's sweep applies the right timeout; the server owns the socket,
the timeouts and what each request is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import h11

from .connections import Connection, State
from .headers import Headers
from .limits import ServerLimits
from .paths import BadTarget, target_path
from .scrape import Reply, plain

__all__ = ["H11Protocol", "Respond"]

logger = logging.getLogger(__name__)

#: Answers one request: ``(method, decoded path, header fields)`` to the reply.
Respond = Callable[[str, str, Headers], Awaitable[Reply]]

_READ_CHUNK = 16 * 1024
#: Why a request h11 refused was refused, in logs. Not h11's message: it quotes the offending
#: line, which may be an Authorization field or a target with a token in its query.
_UNPARSABLE = "request refused by the HTTP/1.1 parser"
#: Bytes no field value may hold (RFC 9110 5.5: visible ASCII, space, tab and obs-text only).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class _Refused(Exception):
    """A request answered with ``status`` and a closed connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class H11Protocol:
    """Serves requests on one connection until either side closes it.

    ``closing``: whether the server is shutting down (no further request is read, and the
    reply in progress asks the client to close). ``peer``: for log lines only.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: Connection,
        limits: ServerLimits,
        *,
        peer: str,
        closing: Callable[[], bool],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.connection = connection
        self.limits = limits
        self.peer = peer
        self._closing = closing
        self._http = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)

    async def run(self, respond: Respond) -> None:
        """Read, answer and write requests in order (pipelined ones too) until the connection
        closes, a request is refused, or the server is closing."""
        http = self._http
        while not self._closing():
            event: h11.Request | None = None
            try:
                event = await self._next_request()
                if event is None:
                    return
                self.connection.enter(State.BUSY)
                path = self._check_request(event)
                await self._discard_body(event)
            except _Refused as refused:
                if not self.connection.dropped:
                    logger.debug("bad request from %s: %s", self.peer, refused.reason)
                    head = event is not None and event.method == b"HEAD"
                    reply = plain(refused.status, ("Connection", "close"))
                    with contextlib.suppress(h11.LocalProtocolError):  # h11 allows no answer
                        await self._send(reply, head=head)
                return
            method = event.method.decode("ascii")
            reply = await respond(method, path, Headers.from_raw(event.headers))
            if self._closing():
                reply.headers.append(("Connection", "close"))
            await self._send(reply, head=method == "HEAD")
            if http.our_state is not h11.DONE or http.their_state is not h11.DONE:
                return  # the client or the reply asked to close, or HTTP/1.0
            http.start_next_cycle()
            self.connection.enter(State.IDLE)

    async def _next_request(self) -> h11.Request | None:
        """The next request head, or None when the client closed (or was closed for waiting)."""
        http = self._http
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
            data = await self.reader.read(_READ_CHUNK)
            if data and self.connection.state is State.IDLE:
                self.connection.enter(State.HEAD)  # the head timeout runs from its first byte
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

    async def _discard_body(self, request: h11.Request) -> None:
        """Read and drop a request body (bounded), answering ``Expect: 100-continue`` first."""
        http = self._http
        fields = dict(request.headers)  # h11 lower-cased the names and checked the values
        if b"transfer-encoding" in fields:
            raise _Refused(400, "request bodies with Transfer-Encoding are not accepted")
        length = int(fields.get(b"content-length", b"0"))  # digits only: h11 checked
        if length > self.limits.max_body_bytes:
            raise _Refused(413, "request body too large")
        if http.they_are_waiting_for_100_continue:
            self.writer.write(http.send(h11.InformationalResponse(status_code=100, headers=[])))
        try:
            async with asyncio.timeout(self.limits.header_timeout):
                while True:
                    event = http.next_event()
                    if isinstance(event, h11.EndOfMessage):
                        return
                    if event is h11.NEED_DATA:
                        data = await self.reader.read(_READ_CHUNK)
                        if not data:
                            raise _Refused(400, "request body cut short")
                        http.receive_data(data)
        except TimeoutError:
            raise _Refused(400, "request body not received in time") from None
        except h11.RemoteProtocolError as error:
            raise _Refused(error.error_status_hint, _UNPARSABLE) from None

    async def _send(self, reply: Reply, *, head: bool) -> None:
        http = self._http
        headers = [*reply.headers, ("Content-Length", str(len(reply.body)))]
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = ""
        data = http.send(h11.Response(status_code=reply.status, headers=headers, reason=phrase))
        if not head and reply.body:
            data += http.send(h11.Data(data=reply.body))
        data += http.send(h11.EndOfMessage())
        self.writer.write(data)
        async with asyncio.timeout(self.limits.write_timeout):
            await self.writer.drain()


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
