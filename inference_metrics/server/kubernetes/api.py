"""The Kubernetes API server as this library talks to it: one client for the review calls (server
auth) and for pool discovery's lists and watches.

Over the library's one HTTP client (:mod:`inference_metrics.net.client`, h11): the API server's
URL, this process's own service-account token (a :class:`~inference_metrics.net.watch.TokenFile`,
re-read when it rotates and every minute, as client-go), and the CA bundle to verify it with (a
:class:`~inference_metrics.net.tls.ClientContext`, rebuilt when the file changes, TLS 1.2 at
least). Every failure is an :class:`~inference_metrics.net.client.HTTPError` whose message is
ours: no token and no library text that could echo one.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlencode

from ...net.client import HTTPClient, HTTPError, Response
from ...net.tls import ClientContext
from ...net.watch import TokenFile, TokenFileError
from .config import KubernetesConfig

__all__ = ["TOKEN_REFRESH_SECONDS", "KubernetesAPI"]

#: How often the service-account token is re-read even when its file looks unchanged (client-go's
#: cadence); a changed file is re-read at once.
TOKEN_REFRESH_SECONDS = 60.0


class KubernetesAPI:
    """Requests to the API server of ``config``, authenticated with its token file.

    ``keep_alive`` False: one connection per request (``Connection: close``), so nothing stays
    open between the review calls of a server that has no close hook.
    """

    def __init__(
        self, config: KubernetesConfig, *, keep_alive: bool = True, user_agent: str | None = None
    ) -> None:
        self.config = config
        self._base = config.api_server.rstrip("/")
        self._token = (
            TokenFile(config.token_file, refresh=TOKEN_REFRESH_SECONDS)
            if config.token_file
            else None
        )
        self._tls: ClientContext | None = None
        self.client = HTTPClient(
            tls=self._context, keep_alive=keep_alive, accept_gzip=False, user_agent=user_agent
        )

    def _context(self) -> ssl.SSLContext:
        """The CA's context, loaded at the first ``https://`` connection (a CA that cannot be
        read then is a failed request, not a failed start)."""
        if self._tls is None:
            self._tls = ClientContext(ca_file=self.config.ca_file)
        return self._tls()

    def token(self) -> str | None:
        """This process's own bearer token (None without a token file); :class:`HTTPError`
        when the file cannot be read or holds no single token."""
        if self._token is None:
            return None
        try:
            return self._token.read()
        except TokenFileError as exc:
            failure = str(exc)  # names the file, never its content
        raise HTTPError(failure)

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        return self._base + path + (f"?{urlencode(query)}" if query else "")

    @asynccontextmanager
    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        json_body: bytes = b"",
    ) -> AsyncIterator[Response]:
        """``async with api.request("GET", path, query=...) as response:``; JSON both ways."""
        headers = [("Accept", "application/json")]
        if json_body:
            headers.append(("Content-Type", "application/json"))
        token = self.token()
        if token is not None:
            headers.append(("Authorization", f"Bearer {token}"))
        async with self.client.request(
            method, self.url(path, query), headers=headers, body=json_body
        ) as response:
            yield response

    async def aclose(self) -> None:
        await self.client.aclose()
