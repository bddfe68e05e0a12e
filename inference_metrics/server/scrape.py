"""What ``/metrics`` answers, whichever door a scrape came through (the server, the ASGI app).

One render path, many doors: :class:`Renderer` builds the exposition through
:func:`inference_metrics.exposition.render` (gzip'd: through its
:class:`~inference_metrics.gzip_cache.GzipCache`, which reuses the compressed bytes of chunks
unchanged since its last gzip'd render) in worker threads, never on an event loop, and

* shares one render among concurrent scrapes asking for the same representation (format, gzip or
  not): they all get the bytes of that one render (single-flight);
* runs at most ``max_renders`` renders at once; a render that cannot start within ``render_wait``
  seconds is dropped and its scrapes get 503 with ``Retry-After`` (client_golang's
  ``MaxRequestsInFlight``, with a bounded wait first);
* drops a render that has not started yet once every scrape waiting for it has gone, so no work
  is done for nobody.

:func:`answer_scrape` puts authentication, rendering and the reply together; both doors call it
and answer exactly what it returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

from prometheus_client.registry import Collector, CollectorRegistry

from .. import exposition
from ..gzip_cache import GzipCache
from .auth import Authenticator, AuthRequest, AuthResult
from .headers import Headers

__all__ = [
    "GZIP_LEVEL",
    "TEXT_PLAIN",
    "Busy",
    "Renderer",
    "Reply",
    "answer_scrape",
    "decide",
    "gzip_accepted",
    "method_refusal",
    "peer_name",
    "plain",
]

logger = logging.getLogger(__name__)

GZIP_LEVEL = 6
TEXT_PLAIN = "text/plain; charset=utf-8"
_STATUS_BODIES = {
    400: b"Bad Request\n",
    401: b"Unauthorized\n",
    403: b"Forbidden\n",
    404: b"404 page not found\n",
    405: b"Method Not Allowed\n",
    413: b"Request Entity Too Large\n",
    431: b"Request Header Fields Too Large\n",
    500: b"Internal Server Error\n",
    503: b"Service Unavailable\n",
    505: b"HTTP Version Not Supported\n",
}


@dataclass
class Reply:
    """A response before it is framed: status, header fields (``Content-Length`` excluded), body."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: The authenticator's decision, for the access log.
    auth: AuthResult | None = None


def plain(status: int, *headers: tuple[str, str], auth: AuthResult | None = None) -> Reply:
    """A short ``text/plain`` reply for ``status`` (``Bad Request\\n`` and so on)."""
    return Reply(
        status, _STATUS_BODIES.get(status, b""), [("Content-Type", TEXT_PLAIN), *headers], auth
    )


_ALLOWED_METHODS = ("GET", "HEAD")


def method_refusal(method: str) -> Reply | None:
    """The 405 (with ``Allow: GET, HEAD``) for a method ``/metrics`` does not answer, whichever
    the door; None for GET and HEAD."""
    if method in _ALLOWED_METHODS:
        return None
    return plain(405, ("Allow", ", ".join(_ALLOWED_METHODS)))


class Busy(Exception):
    """No render slot became free within the bounded wait: answer 503 with ``Retry-After``."""


def gzip_accepted(accept_encoding: str) -> bool:
    """Whether ``gzip`` is an accepted coding (and not refused with ``q=0``). Never raises."""
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if coding.lower() != "gzip":
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    return False
                return quality > 0 and not math.isnan(quality)
        return True
    return False


@dataclass(eq=False)
class _Flight:
    """One render and the scrapes waiting for it."""

    deadline: float
    started: concurrent.futures.Future[None] = field(default_factory=concurrent.futures.Future)
    result: concurrent.futures.Future[bytes] | None = None
    waiters: int = 0


class Renderer:
    """Renders ``registry`` for scrapes, shared and bounded (see the module docstring).

    Thread-safe, and usable from several event loops at once (a server's and an ASGI server's):
    renders run in this renderer's own threads. :meth:`close` stops them.
    """

    def __init__(
        self,
        registry: Collector,
        *,
        max_renders: int = 2,
        render_wait: float = 5.0,
    ) -> None:
        if isinstance(max_renders, bool) or not isinstance(max_renders, int) or max_renders < 1:
            raise ValueError(f"max_renders must be an int >= 1, got {max_renders!r}")
        if not render_wait > 0:
            raise ValueError(f"render_wait must be > 0 seconds, got {render_wait!r}")
        self.registry = registry
        self.max_renders = max_renders
        self.render_wait = render_wait
        self._lock = threading.Lock()
        self._flights: dict[tuple[exposition.Representation, bool], _Flight] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: Compressed chunks of the last gzip'd render of each format, reused while their series
        #: are unchanged.
        self.gzip = GzipCache(GZIP_LEVEL)
        #: Renders run to completion; for tests and diagnostics.
        self.renders = 0

    @property
    def retry_after(self) -> str:
        """The ``Retry-After`` seconds sent with a 503 for a render that could not start."""
        return str(max(1, math.ceil(self.render_wait)))

    def close(self) -> None:
        """Drop renders not started yet; threads end once their render is done."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def render(self, representation: exposition.Representation, gzipped: bool) -> bytes:
        """The exposition in ``representation`` (gzip-compressed when ``gzipped``).

        Raises :class:`Busy` when the render could not start in time, or what rendering raised.
        """
        key = (representation, gzipped)
        with self._lock:
            flight = self._flights.get(key)
            new = flight is None
            if flight is None:
                flight = self._start(key)
            flight.waiters += 1
        if new:
            # Outside the lock: a render already done runs the callback at once, in this thread.
            assert flight.result is not None
            flight.result.add_done_callback(lambda _: self._forget(key, flight))
        try:
            return await self._wait(flight)
        finally:
            with self._lock:
                flight.waiters -= 1
                gone = flight.waiters == 0
            if gone and flight.result is not None and not flight.started.done():
                flight.result.cancel()  # nobody waits for it any more: do not start it

    def _start(self, key: tuple[exposition.Representation, bool]) -> _Flight:
        # Called with self._lock held.
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.max_renders, thread_name_prefix="inference-metrics-render"
            )
        flight = _Flight(deadline=time.monotonic() + self.render_wait)
        flight.result = self._executor.submit(self._work, flight, *key)
        self._flights[key] = flight
        return flight

    def _forget(self, key: tuple[exposition.Representation, bool], flight: _Flight) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]

    def _work(
        self, flight: _Flight, representation: exposition.Representation, gzipped: bool
    ) -> bytes:
        flight.started.set_result(None)
        # Any collector will do: one that is not a registry goes to prometheus_client's encoder.
        registry = cast(CollectorRegistry, self.registry)
        if gzipped:
            body = self.gzip.render(registry, representation)
        else:
            body = exposition.render(registry, representation)
        with self._lock:
            self.renders += 1
        return body

    async def _wait(self, flight: _Flight) -> bytes:
        result = flight.result
        assert result is not None
        # Shielded: one scrape giving up must not cancel the render the others wait for.
        done = asyncio.shield(asyncio.wrap_future(result))
        if not flight.started.done():
            started = asyncio.shield(asyncio.wrap_future(flight.started))
            remaining = flight.deadline - time.monotonic()
            waits: set[asyncio.Future[Any]] = {started, done}
            await asyncio.wait(
                waits, timeout=max(remaining, 0.0), return_when=asyncio.FIRST_COMPLETED
            )
            if not flight.started.done() and result.cancel():
                logger.warning(
                    "no render slot free within %gs (%d at most at once): answering 503",
                    self.render_wait,
                    self.max_renders,
                )
        try:
            return await done
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if result.cancelled() and task is not None and not task.cancelling():
                raise Busy from None  # the render was dropped, this scrape was not cancelled
            raise


def peer_name(address: object) -> str:
    """``host:port`` (``[host]:port`` for IPv6) of a socket or ASGI client address, for logs."""
    if isinstance(address, list | tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address or "")


async def decide(auth: Authenticator, request: AuthRequest, limit: float) -> AuthResult:
    """``auth``'s decision within ``limit`` seconds; a failure, a timeout or nonsense is a 503."""
    try:
        async with asyncio.timeout(limit):
            decision = await auth.authorize(request)
    except TimeoutError:
        logger.warning("authenticator gave no answer within %gs: answering 503", limit)
        return AuthResult.unavailable("authenticator timed out")
    except Exception as exc:
        logger.warning("authenticator failed (%s): answering 503", type(exc).__name__)
        return AuthResult.unavailable("authenticator failed")
    if not isinstance(decision, AuthResult) or decision.status not in (200, 401, 403, 503):
        logger.warning("authenticator answered %r: answering 503", type(decision).__name__)
        return AuthResult.unavailable("authenticator answered nonsense")
    return decision


async def answer_scrape(
    auth: Authenticator, renderer: Renderer, request: AuthRequest, *, auth_timeout: float
) -> Reply:
    """The reply to an authenticated-endpoint request: a refusal, a 503, a 500 or the exposition."""
    decision = await decide(auth, request, auth_timeout)
    if not decision.allowed:
        if decision.status == 401:
            return plain(401, ("WWW-Authenticate", decision.challenge or "Bearer"), auth=decision)
        return plain(decision.status, auth=decision)
    headers: Headers = request.headers
    representation = exposition.negotiate(headers.joined("Accept") or None)
    gzipped = gzip_accepted(headers.joined("Accept-Encoding"))
    try:
        body = await renderer.render(representation, gzipped)
    except Busy:
        return plain(503, ("Retry-After", renderer.retry_after), auth=decision)
    except Exception:
        logger.exception("building the exposition failed")
        return plain(500, auth=decision)
    reply_headers = [
        ("Content-Type", representation.content_type),
        ("Vary", "Accept, Accept-Encoding"),
    ]
    if gzipped:
        reply_headers.append(("Content-Encoding", "gzip"))
    return Reply(200, body, reply_headers, decision)
