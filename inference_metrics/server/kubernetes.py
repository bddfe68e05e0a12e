"""Kubernetes delegated authentication and authorization: TokenReview, then SubjectAccessReview.

The flow is the Kubernetes API server's own for a guarded non-resource URL (and what
controller-runtime's metrics filter and kube-rbac-proxy do):

1. The bearer token from ``Authorization`` (see :func:`~inference_metrics.server.auth.bearer_token`)
   is sent in a ``TokenReview`` (``POST /apis/authentication.k8s.io/v1/tokenreviews``). A token the
   API server does not authenticate is a 401.
2. The user it names is checked with a ``SubjectAccessReview``
   (``POST /apis/authorization.k8s.io/v1/subjectaccessreviews``) for
   ``nonResourceAttributes: {path: <decoded request path>, verb: <method lower-cased>}``. Not
   allowed (denied, or no opinion) is a 403.
3. A review that cannot be made (API server unreachable, slow, answering an error) is a 503: the
   server fails closed.

Results are cached (token reviews 1 min, allowed 5 min, refused 30 s by default); the token cache is
keyed by an HMAC of the token under a per-process random key, never by the token. Concurrent
identical reviews are merged into one API call. Every decision is bounded in time (5 s by default)
so a scraper gets its 503 well inside Prometheus' 10 s scrape timeout.

The API calls are plain HTTPS/JSON over asyncio streams (no Kubernetes client library). In a pod
the configuration comes from ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT`` and the
mounted service-account token and CA, the token re-read as the kubelet rotates it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .auth import AuthRequest, AuthResult, bearer_token
from .cache import SingleFlight, TTLCache

__all__ = [
    "IN_CLUSTER_DIR",
    "AccessReview",
    "KubernetesAuthenticator",
    "KubernetesConfig",
    "KubernetesConfigError",
    "ReviewClient",
    "ReviewError",
    "ReviewStats",
    "TokenReview",
    "UserInfo",
]

logger = logging.getLogger(__name__)

#: Where the kubelet mounts a pod's service-account credentials.
IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 (a URL path)
ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

#: How often the service-account token is re-read even when its file looks unchanged (client-go's
#: cadence); a changed file is re-read at once.
_TOKEN_REFRESH_SECONDS = 60.0
_MAX_RESPONSE_BYTES = 1 << 20
_MAX_RESPONSE_HEAD_BYTES = 64 << 10


class KubernetesConfigError(ValueError):
    """The Kubernetes API server cannot be located or its credentials cannot be read."""


class ReviewError(Exception):
    """A review could not be made (network, timeout, HTTP error, malformed reply)."""


@dataclass(frozen=True)
class KubernetesConfig:
    """Where the API server is and how to talk to it.

    ``api_server``: ``https://host:port`` (``http://`` only for a local ``kubectl proxy``).
    ``ca_file``: CA bundle to verify the API server (None: the system's trust store).
    ``token_file``: this server's own bearer token, re-read as it rotates (None: send none).
    """

    api_server: str
    ca_file: Path | None = None
    token_file: Path | None = None

    def __post_init__(self) -> None:
        # Accept str paths too.
        for name in ("ca_file", "token_file"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        parts = urlsplit(self.api_server)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise KubernetesConfigError(
                f"api_server must be an https:// URL with a host, got {self.api_server!r}"
            )
        if parts.query or parts.fragment:
            raise KubernetesConfigError(
                f"api_server must not have a query or fragment, got {self.api_server!r}"
            )

    @classmethod
    def in_cluster(
        cls,
        *,
        api_server: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        token_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        service_account_dir: str | os.PathLike[str] = IN_CLUSTER_DIR,
    ) -> KubernetesConfig:
        """The in-cluster configuration, each piece overridable.

        The API server is ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`` unless
        ``api_server`` is given; the CA and token are the mounted service account's unless given.
        Raises :class:`KubernetesConfigError` naming what is missing.
        """
        env = os.environ if environ is None else environ
        sa_dir = Path(service_account_dir)
        if api_server is None:
            host = env.get("KUBERNETES_SERVICE_HOST", "")
            port = env.get("KUBERNETES_SERVICE_PORT", "")
            if not host or not port:
                raise KubernetesConfigError(
                    "not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST and "
                    "KUBERNETES_SERVICE_PORT are not set): give the API server URL"
                )
            if _is_ipv6(host):
                host = f"[{host}]"
            api_server = f"https://{host}:{port}"
        ca_path = Path(ca_file) if ca_file is not None else sa_dir / "ca.crt"
        token_path = Path(token_file) if token_file is not None else sa_dir / "token"
        for what, path in (("CA file", ca_path), ("token file", token_path)):
            if not os.access(path, os.R_OK):
                raise KubernetesConfigError(f"cannot read the service-account {what} {path}")
        return cls(api_server=api_server, ca_file=ca_path, token_file=token_path)


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


@dataclass(frozen=True)
class UserInfo:
    """The user a TokenReview authenticated (hashable: it keys the access cache)."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def from_json(cls, data: object) -> UserInfo:
        if not isinstance(data, dict):
            raise ReviewError("TokenReview status.user is not an object")
        username = data.get("username", "")
        uid = data.get("uid", "")
        groups = data.get("groups") or []
        extra = data.get("extra") or {}
        if not isinstance(username, str) or not isinstance(uid, str):
            raise ReviewError("TokenReview status.user has a malformed username or uid")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ReviewError("TokenReview status.user.groups is not a list of strings")
        if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(i, str) for i in v)
            for k, v in extra.items()
        ):
            raise ReviewError("TokenReview status.user.extra is not a map of string lists")
        return cls(
            username=username,
            uid=uid,
            groups=tuple(groups),
            extra=tuple(sorted((k, tuple(v)) for k, v in extra.items())),
        )

    def to_spec(self) -> dict[str, Any]:
        """The user fields of a SubjectAccessReview spec."""
        return {
            "user": self.username,
            "groups": list(self.groups),
            "uid": self.uid,
            "extra": {key: list(values) for key, values in self.extra},
        }


@dataclass(frozen=True)
class TokenReview:
    """A TokenReview's status."""

    authenticated: bool
    user: UserInfo | None
    audiences: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class AccessReview:
    """A SubjectAccessReview's status."""

    allowed: bool
    denied: bool = False
    reason: str = ""
    evaluation_error: str = ""


@dataclass
class ReviewStats:
    """Counters of what the authenticator did; read them in tests and diagnostics."""

    token_reviews: int = 0
    token_cache_hits: int = 0
    token_reviews_shared: int = 0
    access_reviews: int = 0
    access_cache_hits: int = 0
    access_reviews_shared: int = 0
    failures: int = 0


class _FileWatch:
    """A small file's bytes, re-read when its stat changes or ``refresh`` seconds passed."""

    def __init__(self, path: Path, refresh: float = _TOKEN_REFRESH_SECONDS) -> None:
        self.path = path
        self._refresh = refresh
        self._signature: tuple[int, int, int] | None = None
        self._read_at = 0.0
        self._data = b""
        self._lock = threading.Lock()

    def read(self) -> tuple[bytes, bool]:
        """``(data, changed)``; raises OSError when the file cannot be read."""
        stat = os.stat(self.path)
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        now = time.monotonic()
        with self._lock:
            if signature == self._signature and now - self._read_at < self._refresh:
                return self._data, False
            data = self.path.read_bytes()
            changed = data != self._data or self._signature is None
            self._data, self._signature, self._read_at = data, signature, now
            return data, changed


class ReviewClient:
    """Posts TokenReviews and SubjectAccessReviews to the API server.

    One short HTTP/1.1 connection per call (``Connection: close``); callers bound the time
    (``asyncio.timeout``). Any failure is a :class:`ReviewError` whose message never holds a token.
    """

    def __init__(self, config: KubernetesConfig, *, user_agent: str | None = None) -> None:
        self.config = config
        parts = urlsplit(config.api_server)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._base_path = parts.path.rstrip("/")
        default_port = 443 if self._tls else 80
        host_text = f"[{self._host}]" if _is_ipv6(self._host) else self._host
        self._host_header = host_text if self._port == default_port else f"{host_text}:{self._port}"
        if user_agent is None:
            from .. import __version__

            user_agent = f"inference-metrics/{__version__}"
        self._user_agent = user_agent
        self._token = _FileWatch(config.token_file) if config.token_file else None
        self._ca = _FileWatch(config.ca_file, refresh=3600.0) if config.ca_file else None
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
        spec: dict[str, Any] = {"token": token}
        if audiences:
            spec["audiences"] = list(audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        try:
            reply = await self._post(TOKEN_REVIEW_PATH, body)
        except ReviewError as exc:
            # Belt and braces: no message we pass on may echo the token.
            raise ReviewError(str(exc).replace(token, "[redacted]")) from None
        status = _status(reply, "TokenReview")
        authenticated = status.get("authenticated", False) is True
        user = UserInfo.from_json(status.get("user", {})) if authenticated else None
        audiences_out = status.get("audiences") or []
        error = status.get("error", "")
        return TokenReview(
            authenticated=authenticated,
            user=user,
            audiences=tuple(a for a in audiences_out if isinstance(a, str)),
            error=error.replace(token, "[redacted]") if isinstance(error, str) else "",
        )

    async def access_review(self, user: UserInfo, path: str, verb: str) -> AccessReview:
        spec = user.to_spec()
        spec["nonResourceAttributes"] = {"path": path, "verb": verb}
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
        }
        status = _status(await self._post(ACCESS_REVIEW_PATH, body), "SubjectAccessReview")
        reason = status.get("reason", "")
        evaluation_error = status.get("evaluationError", "")
        return AccessReview(
            allowed=status.get("allowed", False) is True,
            denied=status.get("denied", False) is True,
            reason=reason if isinstance(reason, str) else "",
            evaluation_error=evaluation_error if isinstance(evaluation_error, str) else "",
        )

    async def _post(self, api_path: str, body: Mapping[str, Any]) -> Any:
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        own_token = self._own_token()
        context = self._ssl_context() if self._tls else None
        lines = [
            f"POST {self._base_path}{api_path} HTTP/1.1",
            f"Host: {self._host_header}",
            f"User-Agent: {self._user_agent}",
            "Content-Type: application/json",
            "Accept: application/json",
            f"Content-Length: {len(payload)}",
            "Connection: close",
        ]
        if own_token is not None:
            lines.append(f"Authorization: Bearer {own_token}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
        try:
            reader, writer = await asyncio.open_connection(
                self._host,
                self._port,
                ssl=context,
                server_hostname=self._host if context is not None else None,
                limit=_MAX_RESPONSE_HEAD_BYTES,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ReviewError(f"cannot connect to the API server: {_describe(exc)}") from None
        try:
            writer.write(request)
            await writer.drain()
            status, payload_out = await _read_response(reader)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            raise ReviewError(f"API server connection failed: {_describe(e)}") from None
        finally:
            # Everything needed was read (or the call failed): close at once rather than wait
            # for the API server's TLS close_notify, so no socket outlives the call.
            writer.transport.abort()
        if status not in (200, 201):
            raise ReviewError(f"API server answered HTTP {status}{_status_message(payload_out)}")
        try:
            return json.loads(payload_out)
        except ValueError:
            raise ReviewError("API server answered malformed JSON") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _status(reply: Any, kind: str) -> dict[str, Any]:
    if not isinstance(reply, dict) or reply.get("kind") != kind:
        raise ReviewError(f"API server answered something other than a {kind}")
    status = reply.get("status", {})
    if not isinstance(status, dict):
        raise ReviewError(f"{kind} status is not an object")
    return status


def _status_message(payload: bytes) -> str:
    try:
        message = json.loads(payload).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return f": {message[:200]}" if isinstance(message, str) and message else ""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status code and body of one HTTP/1.1 response (Content-Length, chunked, or until EOF)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ReviewError("API server answered a malformed status line")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        size = 0
        while True:
            size_line = (await reader.readuntil(b"\r\n")).split(b";")[0].strip()
            try:
                chunk_size = int(size_line, 16)
            except ValueError:
                raise ReviewError("API server answered a malformed chunk") from None
            if chunk_size == 0:
                break
            size += chunk_size
            if size > _MAX_RESPONSE_BYTES:
                raise ReviewError("API server answer too large")
            chunks.append(await reader.readexactly(chunk_size))
            await reader.readexactly(2)
        return status, b"".join(chunks)
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > _MAX_RESPONSE_BYTES:
            raise ReviewError("API server answered a malformed or too large Content-Length")
        return status, await reader.readexactly(int(length))
    body = await reader.read(_MAX_RESPONSE_BYTES + 1)
    while body and len(body) <= _MAX_RESPONSE_BYTES:
        more = await reader.read(_MAX_RESPONSE_BYTES + 1 - len(body))
        if not more:
            break
        body += more
    if len(body) > _MAX_RESPONSE_BYTES:
        raise ReviewError("API server answer too large")
    return status, body


@dataclass(frozen=True)
class _Cached:
    """A cached TokenReview outcome: the user, or None for a rejected token."""

    user: UserInfo | None
    reason: str


@dataclass(eq=False)
class KubernetesAuthenticator:
    """Authenticates with a TokenReview and authorizes with a SubjectAccessReview.

    Build it with :meth:`in_cluster` in a pod, or from a :class:`KubernetesConfig`::

        auth = KubernetesAuthenticator.in_cluster()
        auth = KubernetesAuthenticator(KubernetesConfig("https://127.0.0.1:6443", ca, token))

    ``audiences``: sent in every TokenReview; a token must be valid for one of them. Empty (the
    default) means the API server's own audience, as upstream.
    ``timeout``: bound on one whole decision (both reviews), answered 503 when exceeded.
    ``token_ttl`` / ``allow_ttl`` / ``deny_ttl``: cache lifetimes in seconds for TokenReview
    results (authenticated or not), allowed and refused SubjectAccessReviews; 0 turns a cache off.
    Failed reviews are never cached.
    """

    config: KubernetesConfig
    audiences: Sequence[str] = ()
    timeout: float = 5.0
    token_ttl: float = 60.0
    allow_ttl: float = 300.0
    deny_ttl: float = 30.0
    max_cache_entries: int = 4096
    stats: ReviewStats = field(default_factory=ReviewStats)

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        for name in ("token_ttl", "allow_ttl", "deny_ttl"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)!r}")
        self.audiences = tuple(self.audiences)
        self.client = ReviewClient(self.config)
        self._key = os.urandom(32)
        self._tokens: TTLCache[bytes, _Cached] = TTLCache(self.max_cache_entries)
        self._access: TTLCache[tuple[UserInfo, str, str], AccessReview] = TTLCache(
            self.max_cache_entries
        )
        self._token_flights: SingleFlight[bytes, _Cached] = SingleFlight()
        self._access_flights: SingleFlight[tuple[UserInfo, str, str], AccessReview] = SingleFlight()

    @classmethod
    def in_cluster(
        cls,
        *,
        api_server: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        token_file: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> KubernetesAuthenticator:
        """From the pod's service account (see :meth:`KubernetesConfig.in_cluster`)."""
        config = KubernetesConfig.in_cluster(
            api_server=api_server, ca_file=ca_file, token_file=token_file
        )
        return cls(config, **options)

    def __repr__(self) -> str:
        return f"KubernetesAuthenticator(api_server={self.config.api_server!r})"

    def clear_caches(self) -> None:
        self._tokens.clear()
        self._access.clear()

    async def authorize(self, request: AuthRequest) -> AuthResult:
        token, why = bearer_token(request.headers)
        if token is None:
            return AuthResult.unauthenticated(why)
        verb = request.method.lower()
        try:
            async with asyncio.timeout(self.timeout):
                cached = await self._authenticate(token)
                if cached.user is None:
                    return AuthResult.unauthenticated(cached.reason)
                review = await self._authorize(cached.user, request.path, verb)
        except TimeoutError:
            self.stats.failures += 1
            logger.warning("Kubernetes review timed out after %gs: answering 503", self.timeout)
            return AuthResult.unavailable("review timed out")
        except ReviewError as exc:
            self.stats.failures += 1
            logger.warning("Kubernetes review failed: %s: answering 503", exc)
            return AuthResult.unavailable(f"review failed: {exc}")
        user = cached.user.username
        if review.allowed:
            return AuthResult.allow(user, review.reason or "allowed by SubjectAccessReview")
        reason = review.reason or ("denied" if review.denied else "no RBAC rule allows it")
        if review.evaluation_error:
            reason += f" (evaluation error: {review.evaluation_error[:200]})"
        return AuthResult.forbidden(f"{user} may not {verb} {request.path}: {reason}", user)

    async def _authenticate(self, token: str) -> _Cached:
        key = hmac.new(self._key, token.encode("ascii"), hashlib.sha256).digest()
        hit, cached = self._tokens.get(key)
        if hit and cached is not None:
            self.stats.token_cache_hits += 1
            return cached

        async def review() -> _Cached:
            self.stats.token_reviews += 1
            async with asyncio.timeout(self.timeout):
                result = await self.client.token_review(token, self.audiences)
            outcome = self._judge(result)
            self._tokens.put(key, outcome, self.token_ttl)
            return outcome

        outcome, shared = await self._token_flights.do(key, review)
        if shared:
            self.stats.token_reviews_shared += 1
        return outcome

    def _judge(self, result: TokenReview) -> _Cached:
        if not result.authenticated or result.user is None:
            reason = "token rejected by TokenReview"
            if result.error:
                reason += f": {result.error[:200]}"
            return _Cached(None, reason)
        if self.audiences and not set(self.audiences) & set(result.audiences):
            return _Cached(None, "token not valid for the configured audiences")
        return _Cached(result.user, "authenticated")

    async def _authorize(self, user: UserInfo, path: str, verb: str) -> AccessReview:
        key = (user, path, verb)
        hit, cached = self._access.get(key)
        if hit and cached is not None:
            self.stats.access_cache_hits += 1
            return cached

        async def review() -> AccessReview:
            self.stats.access_reviews += 1
            async with asyncio.timeout(self.timeout):
                result = await self.client.access_review(user, path, verb)
            if result.allowed:
                self._access.put(key, result, self.allow_ttl)
            elif not result.evaluation_error:
                # A refusal that came with an evaluation error may be transient: not cached.
                self._access.put(key, result, self.deny_ttl)
            return result

        result, shared = await self._access_flights.do(key, review)
        if shared:
            self.stats.access_reviews_shared += 1
        return result
