"""What the metrics server answers each request: the three paths and who may read them.

Checked in this order, so nothing unauthenticated reaches an authenticator it need not: an
unknown path is a 404 and another method than GET or HEAD a 405 (both before authentication);
``/healthz`` is 200 while the server runs; ``/readyz`` 200, or 503 while the server stops or the
readiness callable says no; ``/metrics`` the exposition, once the authenticator allows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .auth import AuthRequest
from .config import METRICS_PATH, ServerConfig
from .headers import Headers
from .scrape import TEXT_PLAIN, Renderer, Reply, answer_scrape, method_refusal, plain

__all__ = ["Routes"]

logger = logging.getLogger(__name__)

_PATHS = (METRICS_PATH, "/healthz", "/readyz")


class Routes:
    """Answers requests for one running server. ``stopping``: whether the server stops."""

    def __init__(
        self, config: ServerConfig, renderer: Renderer, *, stopping: Callable[[], bool]
    ) -> None:
        self.config = config
        self.renderer = renderer
        self._stopping = stopping

    async def respond(
        self,
        method: str,
        path: str,
        headers: Headers,
        peer: str,
        certificate: Mapping[str, Any] | None,
    ) -> Reply:
        """The reply to ``method path``; ``certificate``: the client's verified one (TLS)."""
        if path not in _PATHS:
            return plain(404)
        refusal = method_refusal(method)
        if refusal is not None:
            return refusal
        if path == "/healthz":
            return Reply(200, b"ok\n", [("Content-Type", TEXT_PLAIN)])
        if path == "/readyz":
            if self._stopping() or not self._ready():
                return plain(503)
            return Reply(200, b"ok\n", [("Content-Type", TEXT_PLAIN)])
        request = AuthRequest(method, path, headers, certificate or None, peer)
        return await answer_scrape(
            self.config.auth, self.renderer, request, auth_timeout=self.config.limits.auth_timeout
        )

    def _ready(self) -> bool:
        readiness = self.config.readiness
        if readiness is None:
            return True
        try:
            return bool(readiness())
        except Exception:
            logger.exception("readiness check failed")
            return False
