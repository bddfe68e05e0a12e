"""The guarded exposition as a pure ASGI app: mount it in any ASGI application.

::

    from inference_metrics.server import TokenFileAuthenticator
    from inference_metrics.server.asgi import metrics_app

    app.mount("/metrics", metrics_app(authenticator=TokenFileAuthenticator("/etc/metrics/tokens")))

The app answers exactly as :class:`~inference_metrics.server.MetricsServer` answers ``/metrics``
(one render path, many doors, see :mod:`.scrape`): format negotiation, gzip, the authenticator's
401 (with ``WWW-Authenticate``), 403 and 503, a 503 with ``Retry-After`` when no render slot frees
up in time, 405 for methods other than GET and HEAD. It imports no web framework.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client.registry import REGISTRY, Collector

from .auth import Authenticator, AuthRequest
from .headers import Headers
from .limits import ServerLimits
from .scrape import Renderer, Reply, answer_scrape, method_refusal, peer_name

__all__ = ["ASGIApp", "metrics_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def metrics_app(
    *,
    registry: Collector | None = None,
    authenticator: Authenticator,
    limits: ServerLimits | None = None,
) -> ASGIApp:
    """An ASGI app serving ``registry``'s exposition to requests ``authenticator`` allows.

    ``registry``: prometheus_client's default ``REGISTRY`` when None. ``authenticator``: any of
    the server's (``TokenFileAuthenticator``, ``KubernetesAuthenticator``, ...), required, so
    that an unguarded exposition is always asked for by name: ``NoAuth()`` serves everyone (like
    prometheus_client's own ASGI app), for an application that authenticates in front of it.
    ``ClientCertificateAuthenticator`` sees no certificate here (ASGI servers do not
    pass a verified one on) and so refuses every request. ``limits``: ``auth_timeout``,
    ``max_renders`` and ``render_wait`` are used (the connection limits are the ASGI server's).

    The path an authenticator sees (and a Kubernetes SubjectAccessReview checks) is the request's
    whole path, mount prefix included (``/metrics``). Lifespan events are accepted, and shutdown
    stops the render threads.
    """
    if not isinstance(authenticator, Authenticator):
        raise TypeError(
            f"authenticator must be an Authenticator (async authorize()), got {authenticator!r}"
        )
    if limits is None:
        limits = ServerLimits()
    if not isinstance(limits, ServerLimits):
        raise TypeError(f"limits must be a ServerLimits, got {limits!r}")
    renderer = Renderer(
        registry if registry is not None else REGISTRY,
        max_renders=limits.max_renders,
        render_wait=limits.render_wait,
    )
    auth = authenticator
    auth_timeout = limits.auth_timeout

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await _lifespan(receive, send, renderer)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        method = str(scope.get("method", ""))
        reply = method_refusal(method)
        if reply is None:
            request = AuthRequest(
                method=method,
                path=_full_path(scope),
                headers=Headers.from_raw((bytes(n), bytes(v)) for n, v in scope.get("headers", ())),
                peer_certificate=None,
                peer=peer_name(scope.get("client")),
            )
            reply = await answer_scrape(auth, renderer, request, auth_timeout=auth_timeout)
        await _send_reply(send, reply, head=method == "HEAD")

    return app


def _full_path(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path if not root or path.startswith(root) else root + path


async def _send_reply(send: Send, reply: Reply, *, head: bool) -> None:
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers
    ]
    headers.append((b"content-length", str(len(reply.body)).encode("ascii")))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else reply.body})


async def _lifespan(receive: Receive, send: Send, renderer: Renderer) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            renderer.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
