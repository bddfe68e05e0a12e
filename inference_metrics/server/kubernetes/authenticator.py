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
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..auth import AuthRequest, AuthResult, bearer_token
from ..cache import SingleFlight, TTLCache
from .client import ReviewClient
from .config import KubernetesConfig
from .wire import AccessReview, ReviewError, TokenReview, UserInfo

__all__ = ["KubernetesAuthenticator", "ReviewStats"]

logger = logging.getLogger(__name__)


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

    @property
    def token_cache(self) -> TTLCache[bytes, _Cached]:
        """TokenReview outcomes, keyed by an HMAC-SHA256 of the token (never the token)."""
        return self._tokens

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
