"""Request and response payloads: model names, usage from JSON bodies and SSE streams."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference_metrics.payloads import (
    DEFAULT_MAX_LINE_BYTES,
    RequestInfo,
    SSEUsageParser,
    Usage,
    parse_request,
    sniff_body,
    usage_from_json,
    usage_from_object,
)

# --- requests ---------------------------------------------------------------------------------


def test_request_model_and_stream_options_are_read() -> None:
    raw = b'{"model": "m", "stream": true, "stream_options": {"include_usage": true}}'
    info = parse_request(raw)
    assert info == RequestInfo(
        "m", True, True, {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    )


def test_request_without_stream_is_not_streamed() -> None:
    info = parse_request(b'{"model": "m", "messages": []}')
    assert info is not None
    assert (info.stream, info.include_usage) == (False, False)


@pytest.mark.parametrize(
    "raw", [b"", b"null", b"[]", b'"m"', b"{", b'{"model": null}', b'{"model": ""}', b"\x00"]
)
def test_request_that_is_not_an_object_with_a_model_is_refused(raw: bytes) -> None:
    assert parse_request(raw) is None


def test_deeply_nested_request_is_refused_not_raised() -> None:
    assert parse_request(b'{"model": "m", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}") is None


# --- JSON responses ---------------------------------------------------------------------------


def test_chat_completion_usage_with_cached_tokens() -> None:
    body = {
        "object": "chat.completion",
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 7,
            "total_tokens": 19,
            "prompt_tokens_details": {"cached_tokens": 8},
        },
    }
    assert usage_from_json(json.dumps(body).encode()) == Usage(12, 7, 8)


def test_responses_api_body_usage_with_cached_tokens() -> None:
    body = {
        "object": "response",
        "usage": {
            "input_tokens": 30,
            "output_tokens": 5,
            "input_tokens_details": {"cached_tokens": 16},
        },
    }
    assert usage_from_json(json.dumps(body)) == Usage(30, 5, 16)


def test_responses_api_completed_event_usage() -> None:
    event = {
        "type": "response.completed",
        "response": {"usage": {"input_tokens": 3, "output_tokens": 4}},
    }
    assert usage_from_object(event) == Usage(3, 4)


def test_embeddings_usage_has_prompt_tokens_only() -> None:
    assert usage_from_json(b'{"usage": {"prompt_tokens": 5, "total_tokens": 5}}') == Usage(5, 0)


@pytest.mark.parametrize(
    "usage",
    [None, {}, {"prompt_tokens": -1}, {"prompt_tokens": "3"}, {"completion_tokens": True}],
)
def test_usage_without_a_valid_count_is_none(usage: object) -> None:
    assert usage_from_object({"usage": usage}) is None


def test_non_json_response_raises_value_error() -> None:
    with pytest.raises(ValueError, match="Expecting"):
        usage_from_json(b"{oops")


# --- sniffing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b'  {"a": 1}', "json"),
        (b"data: {}", "sse"),
        (b"data:{}", "sse"),
        (b": keep-alive\n", "sse"),
        (b"event: x\n", "sse"),
        (b"\r\nda", None),
        (b"", None),
        (b"<html>", "other"),
        (b"hello", "other"),
    ],
)
def test_sniff_body(head: bytes, kind: str | None) -> None:
    assert sniff_body(head) == kind


# --- SSE --------------------------------------------------------------------------------------


def chunk_line(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 2}}
CHAT_STREAM = (
    chunk_line({"choices": [{"delta": {"content": "hé"}}], "usage": None})
    + b": keep-alive\n\n"
    + chunk_line({"choices": [{"delta": {"content": "llo"}}], "usage": None})
    + chunk_line({"choices": [], "usage": USAGE})
    + b"data: [DONE]\n\n"
)


def parse(*chunks: bytes) -> SSEUsageParser:
    parser = SSEUsageParser()
    for chunk in chunks:
        parser.feed(chunk)
    parser.close()
    return parser


def test_sse_usage_comes_from_the_last_chunk() -> None:
    parser = parse(CHAT_STREAM)
    assert parser.usage == Usage(9, 4, 2)
    assert parser.done


def test_sse_usage_and_done_in_different_chunks() -> None:
    split = CHAT_STREAM.index(b"data: [DONE]")
    assert parse(CHAT_STREAM[:split], CHAT_STREAM[split:]).usage == Usage(9, 4, 2)


def test_sse_last_usage_wins() -> None:
    first = chunk_line({"usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    second = chunk_line({"usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    assert parse(first + second).usage == Usage(1, 2)


def test_sse_data_without_space_after_colon() -> None:
    assert parse(b'data:{"usage": {"prompt_tokens": 1}}\n\n').usage == Usage(1, 0)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_sse_line_endings(newline: bytes) -> None:
    stream = b'data: {"usage": {"completion_tokens": 3}}' + newline + newline
    assert parse(stream).usage == Usage(0, 3)


def test_sse_crlf_split_across_chunks_ends_one_line() -> None:
    # b"\r" | b"\n" must not count as two line ends (that would end the event early).
    parser = parse(b'data: {"usage":\r', b'\ndata: {"prompt_tokens": 2}}\r', b"\n\r\n")
    assert parser.usage == Usage(2, 0)


def test_sse_utf8_sequence_split_across_chunks() -> None:
    stream = 'data: {"choices": [{"delta": {"content": "é€"}}], "usage": {"prompt_tokens": 1}}\n\n'
    raw = stream.encode()
    cut_at = raw.index("€".encode()) + 1
    assert parse(raw[:cut_at], raw[cut_at:]).usage == Usage(1, 0)


def test_sse_data_field_without_colon_is_an_empty_line_of_data() -> None:
    stream = b'data: {"usage":\ndata\ndata: {"prompt_tokens": 8}}\n\n'
    assert parse(stream).usage == Usage(8, 0)


def test_sse_multi_line_data_is_joined() -> None:
    stream = b'data: {"usage":\ndata: {"prompt_tokens": 2,\ndata: "completion_tokens": 5}}\n\n'
    assert parse(stream).usage == Usage(2, 5)


def test_sse_events_without_blank_lines_between_them() -> None:
    stream = b'data: {"choices": []}\ndata: {"usage": {"prompt_tokens": 4}}\ndata: [DONE]\n'
    parser = parse(stream)
    assert parser.usage == Usage(4, 0)


def test_sse_responses_api_stream() -> None:
    created = {"type": "response.created", "response": {"usage": None}}
    delta = {"type": "response.output_text.delta", "delta": "hi"}
    completed = {
        "type": "response.completed",
        "response": {"usage": {"input_tokens": 11, "output_tokens": 2}},
    }
    stream = b"".join(
        b"event: " + e["type"].encode() + b"\n" + chunk_line(e)  # type: ignore[attr-defined]
        for e in (created, delta, completed)
    )
    assert parse(stream).usage == Usage(11, 2)


# --- the end marker -----------------------------------------------------------------------------


def test_the_end_marker_ends_after_the_blank_line_of_its_event() -> None:
    parser = SSEUsageParser()
    parser.feed(CHAT_STREAM + b": after the marker\n\n")
    assert parser.ended_at == len(CHAT_STREAM)
    assert parser.done


def test_nothing_after_the_end_marker_is_read() -> None:
    late = chunk_line({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    assert parse(CHAT_STREAM, late).usage == Usage(9, 4, 2)
    assert parse(CHAT_STREAM + late).usage == Usage(9, 4, 2)


def test_the_marker_ends_only_when_its_event_does() -> None:
    parser = SSEUsageParser()
    parser.feed(b"data: [DONE]\n")
    assert parser.ended_at is None  # the client too waits for the blank line
    parser.feed(b"\n")
    assert parser.ended_at == len(b"data: [DONE]\n\n")


def test_a_crlf_after_the_marker_split_between_chunks_is_counted_whole() -> None:
    parser = SSEUsageParser()
    parser.feed(b"data: [DONE]\r\n\r")
    assert parser.ended_at is None  # an LF may follow the CR
    parser.feed(b"\nmore")
    assert parser.ended_at == len(b"data: [DONE]\r\n\r\n")


def test_a_marker_the_stream_ends_without_a_blank_line_ends_at_the_end() -> None:
    assert parse(b"data: [DONE]").ended_at == len(b"data: [DONE]")
    assert parse(b"data: [DONE]\r\n\r").ended_at == len(b"data: [DONE]\r\n\r")


@pytest.mark.parametrize("kind", ["response.completed", "response.incomplete", "response.failed"])
def test_a_responses_api_end_event_is_the_end_marker(kind: str) -> None:
    delta: dict[str, object] = {"type": "response.output_text.delta", "delta": "hi"}
    end: dict[str, object] = {
        "type": kind,
        "response": {"usage": {"input_tokens": 3, "output_tokens": 1}},
    }
    events = [b"event: " + str(e["type"]).encode() + b"\n" + chunk_line(e) for e in (delta, end)]
    parser = parse(*events, b": later\n\n")
    assert parser.ended_at == len(b"".join(events))
    assert parser.usage == Usage(3, 1)
    assert not parser.done


def test_a_failed_response_without_usage_ends_the_stream_by_its_event_field() -> None:
    event = b"event: response.failed\n" + chunk_line(
        {"type": "response.failed", "response": {"usage": None, "error": {}}}
    )
    assert parse(event, b": later\n\n").ended_at == len(event)


def test_an_end_event_without_its_event_field_is_told_by_its_type() -> None:
    usage = {"input_tokens": 3, "output_tokens": 1}
    event = chunk_line({"type": "response.completed", "response": {"usage": usage}})
    parser = parse(event, b": later\n\n")
    assert (parser.ended_at, parser.usage) == (len(event), Usage(3, 1))


def test_the_event_field_names_only_the_event_it_is_in() -> None:
    stream = b"event: response.completed\n\n" + chunk_line({"type": "response.in_progress"})
    assert parse(stream).ended_at is None  # an event without data is not dispatched


@pytest.mark.parametrize(
    "data",
    [
        {"type": "response.output_text.delta", "delta": "response.completed"},
        {"type": "response.output_text.delta", "delta": '"response.completed"'},
        {"choices": [{"delta": {"content": "[DONE]"}}]},
        {"type": "response.in_progress", "response": {"usage": None}},
    ],
)
def test_text_that_names_an_end_marker_does_not_end_the_stream(data: object) -> None:
    assert parse(chunk_line(data)).ended_at is None


def test_sse_last_event_without_trailing_blank_line_is_read_at_close() -> None:
    assert parse(b'data: {"usage": {"prompt_tokens": 6}}').usage == Usage(6, 0)


def test_sse_invalid_usage_event_is_counted() -> None:
    parser = parse(b'data: {"usage": {"prompt_tokens": 6}\n\n')
    assert parser.usage is None
    assert parser.invalid_events == 1


def test_sse_without_usage_is_not_a_failure() -> None:
    parser = parse(b'data: {"choices": []}\n\ndata: [DONE]\n\n')
    assert parser.usage is None
    assert not parser.failed


def test_sse_line_longer_than_the_bound_is_dropped_and_counted() -> None:
    parser = SSEUsageParser(max_line_bytes=64)
    parser.feed(b"data: " + b"x" * 1000)
    parser.feed(b"x" * 1000 + b"\n\n" + chunk_line({"usage": {"prompt_tokens": 1}}))
    parser.close()
    assert parser.oversized_lines == 1
    assert parser.usage == Usage(1, 0)


def test_sse_stream_without_newlines_does_not_grow_memory() -> None:
    parser = SSEUsageParser(max_line_bytes=1024)
    for _ in range(1000):
        parser.feed(b"y" * 1000)
    assert len(parser._buf) <= 1024


@pytest.mark.parametrize("chunk_size", [16 * 1024, 0], ids=["16KiB-chunks", "one-chunk"])
def test_sse_event_of_millions_of_empty_data_lines_stays_within_the_line_bound(
    chunk_size: int,
) -> None:
    # As many empty data lines as the bound of one event's data allows (one byte each): 4 Mi
    # lines under the default 4 MiB grew memory by 378 MiB. The bound is scaled down 16 times
    # here (tracing every allocation of 4 Mi lines takes seconds); the ratio is the same.
    bound = DEFAULT_MAX_LINE_BYTES // 16
    stream = b"data:\n" * (bound - 1) + b"\n"
    step = chunk_size or len(stream)
    chunks = [stream[i : i + step] for i in range(0, len(stream), step)]
    parser = SSEUsageParser(max_line_bytes=bound)
    tracemalloc.start()
    try:
        for chunk in chunks:
            parser.feed(chunk)
        parser.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parser.events == 1
    assert not parser.failed
    # The event's data, its copy at dispatch, and what one 16 KiB slice of lines costs.
    assert peak < 2 * bound + 512 * 1024, f"peak {peak} bytes"


# --- properties -------------------------------------------------------------------------------


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted(cuts)
    return [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]


def splits(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """``data`` cut at arbitrary points."""
    return st.lists(st.integers(0, len(data)), max_size=20).map(lambda cuts: cut(data, cuts))


sse_lines = st.one_of(
    st.sampled_from(
        [
            b"",
            b": comment",
            b"event: message",
            b"id: 7",
            b"data: [DONE]",
            b'data: {"usage": null}',
            b'data: {"usage": {"prompt_tokens": 1, "completion_tokens": 2}}',
            b'data:{"usage": {"completion_tokens": 3}}',
            b'data: {"response": {"usage": {"input_tokens": 4, "output_tokens": 5}}}',
            b'data: {"usage": ',
            b'data: "completion_tokens": 6}',
            b'data: {"choices": [{"delta": {"content": "\xc3\xa9\xe2\x82\xac"}}]}',
        ]
    ),
    st.binary(max_size=40),
)
sse_streams = st.tuples(
    st.lists(st.tuples(sse_lines, st.sampled_from([b"\n", b"\r\n", b"\r"])), max_size=12),
    st.sampled_from([32, 64, 4096]),
).map(lambda t: (b"".join(line + end for line, end in t[0]), t[1]))


def summary(parser: SSEUsageParser) -> tuple[object, ...]:
    return (
        parser.usage,
        parser.done,
        parser.ended_at,
        parser.events,
        parser.invalid_events,
        parser.oversized_lines,
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), stream=sse_streams)
def test_sse_any_split_gives_what_the_whole_stream_gives(
    data: st.DataObject, stream: tuple[bytes, int]
) -> None:
    raw, bound = stream
    whole = SSEUsageParser(max_line_bytes=bound)
    whole.feed(raw)
    whole.close()
    pieces = SSEUsageParser(max_line_bytes=bound)
    for piece in data.draw(splits(raw)):
        pieces.feed(piece)
    pieces.close()
    assert summary(pieces) == summary(whole)


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=20))
def test_sse_random_bytes_never_raise(chunks: list[bytes]) -> None:
    parser = SSEUsageParser(max_line_bytes=32)
    for chunk in chunks:
        parser.feed(chunk)
    parser.close()


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_request_parsing_of_random_bytes_never_raises(raw: bytes) -> None:
    parse_request(raw)


@settings(max_examples=200, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(["usage", "response", "prompt_tokens", "input_tokens_details"]),
                children,
                max_size=3,
            )
        ),
        max_leaves=12,
    )
)
def test_usage_from_any_json_value_never_raises(value: object) -> None:
    usage = usage_from_object(value)
    assert usage is None or isinstance(usage, Usage)
