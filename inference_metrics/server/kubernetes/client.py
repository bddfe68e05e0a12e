"""An HTTPS client for the two review calls: one short HTTP/1.1 exchange per call, framed by h11.

No Kubernetes client library and no hand-written HTTP: h11 frames the request and parses the
status line, header fields, ``Content-Length``, chunked bodies and bodies delimited by the close.
Callers bound the time (``asyncio.timeout``). Any failure is a :class:`ReviewError` whose message
never holds a token: text from the API server is redacted first and cut to length after.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import h11

from ..watch import FileWatch
from .config import KubernetesConfig, is_ipv6
from .wire import (
    ACCESS_REVIEW_PATH,
    TOKEN_REVIEW_PATH,
    AccessReview,
    ReviewError,
    TokenReview,
    UserInfo,
    access_review_body,
    parse_access_review,
    parse_token_review,
    token_review_body,
)

__all__ = ["ReviewClient", "redact"]

logger = logging.getLogger(__name__)

#: How often the service-account token is re-read even when its file looks unchanged (client-go's
#: cadence); a changed file is re-read at once.
TOKEN_REFRESH_SECONDS = 60.0
MAX_RESPONSE_BYTES = 1 << 20
MAX_RESPONSE_HEAD_BYTES = 64 << 10
#: Characters of API-server text (an error message) kept in a ReviewError.
MAX_MESSAGE_CHARS = 200
_REDACTED = "[redacted]"


def redact(text: str, secret: str | None, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` with every occurrence of ``secret`` replaced, then cut to ``limit`` characters.

    In that order: cutting first could leave part of a secret that straddles the cut.
    """
    if secret:
        text = text.replace(secret, _REDACTED)
    return text[:limit]


class ReviewClient:
    """Posts TokenReviews and SubjectAccessReviews to the API server.

    One short HTTP/1.1 connection per call (``Connection: close``); callers bound the time.
    """

    def __init__(self, config: KubernetesConfig, *, user_agent: str | None = None) -> None:
        self.config = config
        parts = urlsplit(config.api_server)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._base_path = parts.path.rstrip("/")
        default_port = 443 if self._tls else 80
        host_text = f"[{self._host}]" if is_ipv6(self._host) else self._host
        self._host_header = host_text if self._port == default_port else f"{host_text}:{self._port}"
        if user_agent is None:
            from ... import __version__

            user_agent = f"inference-metrics/{__version__}"
        self._user_agent = user_agent
        self._token = (
            FileWatch(config.token_file, refresh=TOKEN_REFRESH_SECONDS)
            if config.token_file
            else None
        )
        self._ca = FileWatch(config.ca_file, refresh=3600.0) if config.ca_file else None
        self._ssl: ssl.SSLContext | None = None
        if not self._tls:
            logger.warning(
                "Kubernetes API server %s is plain HTTP: use it only through a local proxy",
                config.api_server,
            )

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ca is None:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            return self._ssl
        try:
            data, changed = self._ca.read()
        except OSError as exc:
            raise ReviewError(f"cannot read the API server CA file: {exc.strerror}") from None
        if changed or self._ssl is None:
            try:
                context = ssl.create_default_context(cadata=data.decode("ascii"))
            except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
                raise ReviewError(f"malformed API server CA file: {exc}") from None
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._ssl = context
        return self._ssl

    def _own_token(self) -> str | None:
        if self._token is None:
            return None
        try:
            data, _ = self._token.read()
        except OSError as exc:
            raise ReviewError(f"cannot read the service-account token: {exc.strerror}") from None
        token = data.decode("ascii", "replace").strip()
        if not token:
            raise ReviewError("the service-account token file is empty")
        if not all(0x21 <= ord(char) <= 0x7E for char in token):
            raise ReviewError("the service-account token file holds more than one visible token")
        return token

    async def token_review(self, token: str, audiences: Sequence[str] = ()) -> TokenReview:
        reply = await self._post(TOKEN_REVIEW_PATH, token_review_body(token, audiences), token)
        review = parse_token_review(reply)
        if token in review.error:
            # The API server may echo the token in its error: never keep it.
            review = TokenReview(
                review.authenticated, review.user, review.audiences, redact(review.error, token)
            )
        return review

    async def access_review(self, user: UserInfo, path: str, verb: str) -> AccessReview:
        reply = await self._post(ACCESS_REVIEW_PATH, access_review_body(user, path, verb), None)
        return parse_access_review(reply)

    async def _post(self, api_path: str, body: Mapping[str, Any], secret: str | None) -> Any:
        """POST ``body`` as JSON; the decoded JSON reply. ``secret`` is redacted from errors."""
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        own_token = self._own_token()
        headers = [
            ("Host", self._host_header),
            ("User-Agent", self._user_agent),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Connection", "close"),
        ]
        if own_token is not None:
            headers.append(("Authorization", f"Bearer {own_token}"))
        connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD_BYTES)
        request = connection.send(
            h11.Request(method="POST", target=f"{self._base_path}{api_path}", headers=headers)
        )
        request += connection.send(h11.Data(data=payload)) + connection.send(h11.EndOfMessage())
        context = self._ssl_context() if self._tls else None
        try:
            reader, writer = await asyncio.open_connection(
                self._host,
                self._port,
                ssl=context,
                server_hostname=self._host if context is not None else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ReviewError(f"cannot connect to the API server: {_describe(exc)}") from None
        try:
            writer.write(request)
            await writer.drain()
            status, reply = await _read_response(connection, reader)
        except (OSError, ssl.SSLError) as exc:
            raise ReviewError(f"API server connection failed: {_describe(exc)}") from None
        finally:
            # Everything needed was read (or the call failed): close at once rather than wait
            # for the API server's TLS close_notify, so no socket outlives the call.
            writer.transport.abort()
        if status not in (200, 201):
            raise ReviewError(f"API server answered HTTP {status}{_status_message(reply, secret)}")
        try:
            return json.loads(reply)
        except ValueError:
            raise ReviewError("API server answered malformed JSON") from None


async def _read_response(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> tuple[int, bytes]:
    """Status code and body of the response, bounded in size."""
    status = 0
    body = bytearray()
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(64 << 10))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ReviewError("API server answer too large")
            elif isinstance(event, h11.EndOfMessage):
                return status, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise ReviewError("API server closed the connection before answering")
            # InformationalResponse (100 Continue and the like): nothing to do.
    except h11.RemoteProtocolError:
        # h11's message may quote the reply's bytes: not passed on.
        raise ReviewError("API server answered malformed HTTP") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _status_message(payload: bytes, secret: str | None) -> str:
    try:
        message = json.loads(payload).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return f": {redact(message, secret)}" if isinstance(message, str) and message else ""
