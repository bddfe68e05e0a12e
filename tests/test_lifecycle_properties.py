"""RequestContext invariants: no payload makes it raise, and chunking never changes the result."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder, RequestContext, Usage

from .clocks import FakeClock
from .expo import Family, parse_registry


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted(c % (len(data) + 1) for c in cuts)
    return [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]


def run(
    request: list[bytes], response: list[bytes], headers: dict[str, str]
) -> tuple[RequestContext, dict[str, Family]]:
    registry = CollectorRegistry()
    clock = FakeClock(0.0, step=0.125)  # every reading is a step later: exact in binary
    ctx = RequestContext(Recorder(PrometheusBackend(registry)), clock=clock, max_body_size=4096)
    ctx.on_request_headers()
    for chunk in request[:-1]:
        ctx.on_request_body(chunk, end_of_stream=False)
    if ctx.on_request_body(request[-1] if request else b"", end_of_stream=True):
        ctx.route()
    ctx.on_response_headers(headers)
    for chunk in response:
        ctx.on_response_body(chunk, end_of_stream=False)
    ctx.on_response_body(b"", end_of_stream=True)
    return ctx, parse_registry(registry)


content_types = st.sampled_from(
    [{}, {"content-type": "text/event-stream"}, {"content-type": "application/json"}]
)


@settings(max_examples=200, deadline=None)
@given(
    request=st.lists(st.binary(max_size=64), max_size=5),
    response=st.lists(st.binary(max_size=64), max_size=8),
    headers=content_types,
)
def test_random_bytes_never_raise(
    request: list[bytes], response: list[bytes], headers: dict[str, str]
) -> None:
    ctx, _ = run(request, response, headers)
    assert ctx.finished


@settings(max_examples=200, deadline=None)
@given(
    model=st.text(min_size=1, max_size=8),
    response=st.lists(st.binary(max_size=64), max_size=8),
    headers=content_types,
)
def test_random_responses_to_a_valid_request_never_raise(
    model: str, response: list[bytes], headers: dict[str, str]
) -> None:
    request = json.dumps({"model": model}).encode()
    ctx, families = run([request], response, headers)
    assert ctx.finished
    assert "inference_model_request_total" in families


STREAM = (
    b'data: {"choices": [{"delta": {"content": "\xc3\xa9"}}], "usage": null}\r\n\r\n'
    b": ping\r\n\r\n"
    b'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9,\r\n'
    b'data: "prompt_tokens_details": {"cached_tokens": 3}}}\r\n\r\n'
    b"data: [DONE]\r\n\r\n"
)


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0), max_size=12), headers=content_types)
def test_a_stream_split_anywhere_records_what_it_records_whole(
    cuts: list[int], headers: dict[str, str]
) -> None:
    request = [b'{"model": "m", "stream": true}']
    pieces = [p for p in cut(STREAM, cuts) if p]  # one clock reading per non-empty chunk
    split_ctx, split = run(request, pieces, headers)
    assert split_ctx.usage == Usage(7, 9, 3)
    sizes = split["inference_model_response_sizes"]
    assert sizes.value(
        "inference_model_response_sizes_sum", model_name="m", target_model_name="m"
    ) == len(STREAM)
    whole_ctx, _ = run(request, [STREAM], headers)
    assert whole_ctx.usage == split_ctx.usage
    assert not split_ctx.response_parse_failed
