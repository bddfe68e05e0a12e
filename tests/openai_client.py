"""The official OpenAI Python client as a test client, with the body bytes it received counted.

:func:`openai_client` makes an ``openai.OpenAI`` whose HTTP transport (httpx2's own: the OpenAI
client 3.x's HTTP library) is wrapped by :class:`CountingTransport`: for each response it keeps
how many body bytes the client read (after the transfer coding, as the client's SSE decoder sees
them) and whether the client closed the response before the body ended. The client stops
reading a stream at ``data: [DONE]`` and closes it at once; against a server that lingers after
the marker, ``ended`` stays False and ``size`` is the bytes up to and including the marker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import openai

__all__ = ["CountingTransport", "Received", "openai_client"]


@dataclass
class Received:
    """What the client read of one response body."""

    size: int = 0
    ended: bool = False  # read to the end of the body
    closed: bool = False


class _CountedStream(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, received: Received) -> None:
        self._inner = inner
        self._received = received

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._received.size += len(chunk)
            yield chunk
        self._received.ended = True

    def close(self) -> None:
        self._received.closed = True
        self._inner.close()


class CountingTransport(httpx2.BaseTransport):
    """httpx2's transport, keeping a :class:`Received` per response (in order of requests)."""

    def __init__(self) -> None:
        self._inner = httpx2.HTTPTransport()
        self._lock = threading.Lock()
        self._received: list[Received] = []

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._inner.handle_request(request)
        received = Received()
        with self._lock:
            self._received.append(received)
        assert isinstance(response.stream, httpx2.SyncByteStream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CountedStream(response.stream, received),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self._inner.close()


def openai_client(base_url: str, transport: CountingTransport) -> openai.OpenAI:
    """An OpenAI client for ``base_url`` (``http://host:port/v1``) over ``transport``; no retries
    (a retried request would be measured twice)."""
    return openai.OpenAI(
        base_url=base_url,
        api_key="test-key",
        max_retries=0,
        timeout=30.0,
        http_client=httpx2.Client(transport=transport, timeout=30.0),
    )
