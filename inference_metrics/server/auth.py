"""Who may read /metrics: the authenticator protocol and the simple authenticators.

An authenticator looks at one request (method, decoded path, headers, verified client certificate)
and answers with an :class:`AuthResult`: allow (200), unauthenticated (401), forbidden (403) or
unavailable (503, the decision could not be made; fail closed). The status codes are the
Kubernetes API server's: a missing, malformed or rejected credential is a 401 with
``WWW-Authenticate: Bearer``.

This module holds :class:`NoAuth`, :class:`TokenFileAuthenticator` (static bearer tokens from a
file) and :class:`ClientCertificateAuthenticator` (mTLS); the Kubernetes TokenReview /
SubjectAccessReview authenticator is in :mod:`inference_metrics.server.kubernetes`.

No token ever reaches a log line, an exception message or a ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..net.watch import FileWatch
from .headers import Headers

__all__ = [
    "AuthRequest",
    "AuthResult",
    "Authenticator",
    "ClientCertificateAuthenticator",
    "NoAuth",
    "TokenFileAuthenticator",
    "bearer_token",
]

logger = logging.getLogger(__name__)

#: Bytes a bearer token may hold: visible ASCII (RFC 6750's token68 and every JWT fit).
_TOKEN_BYTES = frozenset(range(0x21, 0x7F))


@dataclass(frozen=True)
class AuthRequest:
    """What an authenticator may look at."""

    #: The request method as sent (``GET``, ``HEAD``).
    method: str
    #: The percent-decoded path without the query: what was routed, and what is authorized.
    path: str
    headers: Headers
    #: The client certificate, verified against the server's client CA (``ssl`` ``getpeercert()``
    #: form), or None (plain HTTP, no client CA configured, or the client sent none).
    peer_certificate: Mapping[str, Any] | None = None
    #: The client's address, for logs.
    peer: str = ""


@dataclass(frozen=True)
class AuthResult:
    """An authenticator's answer. ``reason`` goes to debug logs; it never holds a credential."""

    status: int
    reason: str = ""
    #: Who was allowed (a user name, a token's line number, a certificate subject).
    user: str | None = None
    #: The ``WWW-Authenticate`` value sent with a 401.
    challenge: str | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200

    @classmethod
    def allow(cls, user: str | None = None, reason: str = "allowed") -> AuthResult:
        return cls(200, reason, user)

    @classmethod
    def unauthenticated(cls, reason: str, challenge: str = "Bearer") -> AuthResult:
        return cls(401, reason, None, challenge)

    @classmethod
    def forbidden(cls, reason: str, user: str | None = None) -> AuthResult:
        return cls(403, reason, user)

    @classmethod
    def unavailable(cls, reason: str) -> AuthResult:
        return cls(503, reason)


@runtime_checkable
class Authenticator(Protocol):
    """Decides whether one request may read the guarded endpoint.

    ``authorize`` runs on the server's event loop: it must not block (do I/O with asyncio, or in
    an executor). An exception or a result other than 200/401/403/503 is answered with 503.
    """

    async def authorize(self, request: AuthRequest) -> AuthResult: ...


def bearer_token(headers: Headers) -> tuple[str | None, str]:
    """The bearer token of ``headers``, or ``(None, why not)``.

    Exactly one ``Authorization`` field holding ``<scheme> <token>``: the scheme is ``Bearer`` in
    any case, one space, then a non-empty token of visible ASCII. ``Bearer`` alone, another scheme
    (``Basic ...``), two spaces, a second token or two ``Authorization`` fields are refused.
    """
    values = headers.get_all("Authorization")
    if not values:
        return None, "no Authorization header"
    if len(values) > 1:
        return None, "more than one Authorization header"
    scheme, space, token = values[0].partition(" ")
    if scheme.lower() != "bearer":
        return None, "Authorization scheme is not Bearer"
    if not space or not token:
        return None, "Bearer without a token"
    if not all(ord(char) in _TOKEN_BYTES for char in token):
        return None, "malformed bearer token"
    return token, ""


class NoAuth:
    """Everyone may read. Use on a loopback address or behind something that authenticates."""

    async def authorize(self, request: AuthRequest) -> AuthResult:
        return AuthResult.allow(None, "no authentication configured")

    def __repr__(self) -> str:
        return "NoAuth()"


@dataclass(frozen=True)
class _TokenSet:
    #: HMAC-SHA256 of every token under a per-process key: fixed-length values to compare.
    digests: tuple[bytes, ...]
    #: 1-based line number of each token, for logs.
    lines: tuple[int, ...]
    error: str | None = None


class TokenFileAuthenticator:
    """Static bearer tokens, one per line of a file, re-read whenever the file changes.

    Empty lines and lines starting with ``#`` are ignored; surrounding whitespace is stripped. A
    presented token is compared with every token in constant time (``hmac.compare_digest`` over
    fixed-length HMACs, without stopping at the first match), so neither which token matched nor
    a token's length leaks through timing. Any token in the file is allowed for every path and
    method that reaches the authenticator.

    The file is checked (``os.stat``) on every request and re-read when its modification time,
    size or inode changes, so a rotated Secret takes effect on the next request. If the file
    cannot be stat'ed or read (gone, a directory now, EACCES, EIO) every request gets 503 (fail
    closed) and the next request tries again, so it recovers as soon as the file is readable.
    Raises ``OSError`` or ``ValueError`` at construction if the file cannot be read or holds no
    token.
    """

    def __init__(self, token_file: str | os.PathLike[str]) -> None:
        self.token_file = Path(token_file)
        self._key = os.urandom(32)
        self._watch = FileWatch(self.token_file)
        #: Serialises re-reads; never held by anything that could wait on it again.
        self._lock = threading.Lock()
        data, _ = self._watch.read()
        tokens = self._parse(data, strict=True)
        if not tokens.digests:
            raise ValueError(f"token file {str(self.token_file)!r} holds no token")
        self._tokens = tokens
        #: How many times the file was re-read after a change; for tests and diagnostics.
        self.reloads = 0

    def _parse(self, raw: bytes, *, strict: bool) -> _TokenSet:
        digests: list[bytes] = []
        lines: list[int] = []
        for number, line in enumerate(raw.splitlines(), start=1):
            token = line.strip()
            if not token or token.startswith(b"#"):
                continue
            if not all(byte in _TOKEN_BYTES for byte in token):
                message = (
                    f"token file {str(self.token_file)!r} line {number}: a token must be "
                    "visible ASCII without spaces"
                )
                if strict:
                    raise ValueError(message)
                logger.warning("%s; line ignored", message)
                continue
            digests.append(self._digest(token))
            lines.append(number)
        return _TokenSet(tuple(digests), tuple(lines))

    def _digest(self, token: bytes) -> bytes:
        return hmac.new(self._key, token, hashlib.sha256).digest()

    def _current(self) -> _TokenSet:
        with self._lock:
            try:
                data, changed = self._watch.read()
            except OSError as exc:
                error = f"cannot read token file: {exc.strerror or type(exc).__name__}"
                if self._tokens.error != error:
                    logger.warning(
                        "%s (%s): answering 503 until it is readable", error, self.token_file
                    )
                self._tokens = _TokenSet((), (), error)
                return self._tokens
            if not changed:
                return self._tokens
            tokens = self._parse(data, strict=False)
            self._tokens = tokens
            self.reloads += 1
        if tokens.digests:
            logger.info("token file %s re-read: %d token(s)", self.token_file, len(tokens.lines))
        else:
            logger.warning(
                "token file %s holds no token: every request is refused", self.token_file
            )
        return tokens

    async def authorize(self, request: AuthRequest) -> AuthResult:
        token, why = bearer_token(request.headers)
        if token is None:
            return AuthResult.unauthenticated(why)
        tokens = self._current()
        if tokens.error is not None:
            return AuthResult.unavailable(tokens.error)
        presented = self._digest(token.encode("ascii"))
        match = -1
        for index, digest in enumerate(tokens.digests):
            if hmac.compare_digest(presented, digest):
                match = index
        if match < 0:
            return AuthResult.unauthenticated("token not in the token file")
        return AuthResult.allow(f"token-file:line-{tokens.lines[match]}", "static token")

    def __repr__(self) -> str:
        return f"TokenFileAuthenticator({str(self.token_file)!r})"


class ClientCertificateAuthenticator:
    """Requires a client certificate verified against the server's client CA (mTLS).

    The TLS layer verifies the certificate (see ``ServerTLS(client_ca_file=...)``); a request
    without one gets 401. With ``then``, a request with a certificate must also pass that
    authenticator (certificate *and* token); without, the certificate alone allows.
    """

    def __init__(self, then: Authenticator | None = None) -> None:
        self.then = then

    def __repr__(self) -> str:
        return f"ClientCertificateAuthenticator(then={self.then!r})"

    async def authorize(self, request: AuthRequest) -> AuthResult:
        certificate = request.peer_certificate
        if not certificate:
            return AuthResult.unauthenticated("no verified client certificate", challenge="Bearer")
        if self.then is not None:
            return await self.then.authorize(request)
        return AuthResult.allow(_subject_common_name(certificate), "client certificate")


def _subject_common_name(certificate: Mapping[str, Any]) -> str:
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return f"cn:{value}"
    return "client-certificate"
