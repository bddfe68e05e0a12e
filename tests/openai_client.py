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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx2
import openai
from openai.types import CompletionUsage

__all__ = ["COMPLETED", "CountingTransport", "Received", "openai_client", "stream_with_usage"]

#: The seed schema's histograms a completed stream observes once each (whatever its usage).
COMPLETED = (
    "inference_model_request_duration_seconds",
    "inference_model_request_ttft_seconds",
    "inference_model_request_tpot_seconds",
    "inference_model_normalized_time_per_output_token_seconds",
    "inference_model_response_sizes",
)


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


def stream_with_usage(
    client: openai.OpenAI,
    *,
    chat: bool,
    model: str,
    prompt: str,
    max_tokens: int,
    headers: Mapping[str, str] | None = None,
) -> CompletionUsage:
    """One streamed chat completion (``chat``) or completion with
    ``stream_options={"include_usage": True}``, read as the client reads it (to ``[DONE]``);
    the usage of its one usage chunk."""
    extra = dict(headers or {})
    if chat:
        chunks = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=extra,
        )
        usages = [chunk.usage for chunk in chunks]
    else:
        completions = client.completions.create(
            model=model,
            prompt=prompt,
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=extra,
        )
        usages = [chunk.usage for chunk in completions]
    (usage,) = [u for u in usages if u is not None]
    return usage
