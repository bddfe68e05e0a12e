"""OpenAI-compatible request and response payloads: the model name and the token usage.

Pure functions and one incremental parser; no I/O, nothing imported from this package but its
leaf argument checks (:mod:`.validation`, which imports nothing of ours).

Requests (completions, chat completions, the Responses API, embeddings): a JSON object with a
string ``model``; ``stream`` and ``stream_options.include_usage`` say whether a streamed response
will carry usage at all (OpenAI-compatible servers send usage in a streamed chat or completions
response only when the client asked with ``"stream_options": {"include_usage": true}``).

Responses: usage is the ``usage`` object of a JSON body (``prompt_tokens`` / ``completion_tokens``
for completions and chat completions, ``input_tokens`` / ``output_tokens`` for the Responses API),
or, in a ``text/event-stream`` body, the last ``usage`` object carried by a ``data:`` event: a
chat or completions chunk's ``usage``, or the ``response.usage`` of a Responses API event
(``response.completed``, also ``response.incomplete``/``response.failed``, which carry usage as
well). Cached prompt tokens come from ``usage.prompt_tokens_details.cached_tokens`` (Responses
API: ``input_tokens_details``); a usage without them reports none (None, not 0).

A stream's end marker (:attr:`SSEUsageParser.ended_at`): the event ``data: [DONE]`` (completions
and chat completions: OpenAI, vLLM, SGLang, TGI and the other OpenAI-compatible servers), or a
Responses API ``response.completed``, ``response.incomplete`` or ``response.failed`` event (the
Responses API sends no ``[DONE]``). The OpenAI client stops reading at
either and closes the response; so does a stream's end here.
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass
from typing import Any, Literal

from .validation import positive_int

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "BodyKind",
    "RequestInfo",
    "SSEUsageParser",
    "Usage",
    "decode_json",
    "model_from_object",
    "operation_for_path",
    "parse_request",
    "sniff_body",
    "usage_from_json",
    "usage_from_object",
]

#: The longest SSE line (and the largest data of one event) :class:`SSEUsageParser` buffers.
#: A Responses API ``response.completed`` event repeats the whole output, so this is generous.
DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024

# Token counts beyond this are not counts (and would overflow a float's integer range).
_MAX_COUNT = 2**53

BodyKind = Literal["json", "sse", "other"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one response; a prompt or completion count the response did not report is
    0. ``cached_tokens`` is None when the response reported none (no
    ``prompt_tokens_details.cached_tokens``), else the count, 0 included: upstream observes the
    cached-token histogram whenever the details are there (llm-d-router
    ``pkg/epp/handlers/response.go``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a request body says about itself."""

    model: str
    stream: bool
    include_usage: bool
    body: dict[str, Any]


def decode_json(data: bytes | bytearray | memoryview | str) -> object:
    """The JSON value in ``data``; ``ValueError`` when it is not JSON (any nesting depth)."""
    if isinstance(data, memoryview):
        data = data.tobytes()
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def parse_request(body: bytes | bytearray | memoryview) -> RequestInfo | None:
    """The request's model and streaming options, or None when ``body`` is not a JSON object
    with a non-empty string ``model``."""
    try:
        obj = decode_json(body)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        return None
    options = obj.get("stream_options")
    return RequestInfo(
        model=model,
        stream=obj.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        body=obj,
    )


def _count(value: object) -> int | None:
    """A token count: a non-negative integer (an integral float is accepted), else None."""
    if type(value) is int:
        return value if 0 <= value <= _MAX_COUNT else None
    if type(value) is float and value.is_integer() and 0 <= value <= _MAX_COUNT:
        return int(value)
    return None


def _first_count(usage: dict[Any, Any], *keys: str) -> int | None:
    for key in keys:
        count = _count(usage.get(key))
        if count is not None:
            return count
    return None


def usage_from_object(obj: object) -> Usage | None:
    """The usage carried by a decoded response body or stream event, or None.

    Looks at ``obj["usage"]``, then (Responses API stream events) ``obj["response"]["usage"]``.
    A usage object counts when it has at least one prompt/input or completion/output count.
    """
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        response = obj.get("response")
        if not isinstance(response, dict):
            return None
        usage = response.get("usage")
        if not isinstance(usage, dict):
            return None
    prompt = _first_count(usage, "prompt_tokens", "input_tokens")
    completion = _first_count(usage, "completion_tokens", "output_tokens")
    if prompt is None and completion is None:
        return None
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        details = usage.get("input_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
    return Usage(prompt or 0, completion or 0, cached)


def model_from_object(obj: object) -> str | None:
    """The model a decoded response body or stream event names: ``obj["model"]``, or (Responses
    API events) ``obj["response"]["model"]``; None when it names none (or not as a non-empty
    string)."""
    if not isinstance(obj, dict):
        return None
    model = obj.get("model")
    if model is None:
        response = obj.get("response")
        model = response.get("model") if isinstance(response, dict) else None
    return model if isinstance(model, str) and model else None


#: OpenAI-style endpoints and the GenAI ``gen_ai.operation.name`` each is.
_OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "chat",
}


def operation_for_path(path: str) -> str | None:
    """The ``gen_ai.operation.name`` of an OpenAI-style endpoint path, or None if unknown."""
    if not isinstance(path, str):
        raise TypeError(f"path must be a string, got {path!r}")
    return _OPERATIONS.get(path.split("?", 1)[0].rstrip("/"))


def usage_from_json(body: bytes | bytearray | memoryview | str) -> Usage | None:
    """The usage of a JSON response body (None when it has none); ``ValueError`` if not JSON."""
    return usage_from_object(decode_json(body))


_SSE_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")
_WHITESPACE = b" \t\r\n"
_MAX_SNIFF = 4096


def sniff_body(head: bytes | bytearray) -> BodyKind | None:
    """What a response body starting with ``head`` is, when its content type did not say.

    ``"sse"`` when the first non-blank bytes start an event-stream field (``data:``, ``event:``,
    ``id:``, ``retry:`` or a ``:`` comment), ``"json"`` for ``{`` or ``[``, ``"other"`` otherwise;
    None while ``head`` is too short to tell.
    """
    text = bytes(head).lstrip(_WHITESPACE)
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    if not text:
        return None if len(head) < _MAX_SNIFF else "other"
    if text[:1] in (b"{", b"["):
        return "json"
    for prefix in _SSE_FIELDS:
        if text.startswith(prefix):
            return "sse"
    if any(prefix.startswith(text) for prefix in _SSE_FIELDS):
        return None
    return "other"


_USAGE_KEY = b'"usage"'
#: The Responses API event types that end a stream (its ``event:`` field, its data's ``type``).
_END_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed"})
_END_EVENTS = frozenset(t.encode() for t in _END_TYPES)
_DONE = b"[DONE]"
#: A line's end in the bytes as they came: CRLF, LF or CR.
_LINE_END = re.compile(rb"\r\n|\r|\n")
_MODEL_KEY = b'"model"'
# How many events mentioning "model" are decoded to find the model a stream names.
_MODEL_TRIES = 4
_NULL_USAGE = re.compile(rb'"usage"\s*:\s*null')
_NULL_USAGE_COMPACT = b'"usage":null'
_NULL_USAGE_SPACED = b'"usage": null'
_CR = 0x0D
_LF = 0x0A
_COLON = 0x3A
_NEWLINE = b"\n"
# How much of a chunk is split into lines at once: bounds the line objects alive at a time.
_SLICE = 16 * 1024


class SSEUsageParser:
    """Finds the last usage object in a ``text/event-stream`` body, fed in chunks of any size.

    Lines end with CRLF, LF or CR (a CRLF split across chunks counts once); ``data:`` takes its
    value with or without the space after the colon; consecutive ``data:`` lines of one event are
    joined with newlines; comments (``:`` lines) and other fields are skipped; an event ends at a
    blank line. ``[DONE]`` sets :attr:`done`. Only an event whose data mentions a non-null
    ``"usage"`` is JSON-decoded, so the per-token chunks of a stream cost a substring search;
    and, until one names the model (:attr:`model`), the first few that mention ``"model"``.

    The stream's end marker sets :attr:`ended_at`: the stream's bytes up to and including the
    line end of the blank line that ended the marker's event (a CRLF whole, even split between
    chunks). The marker is ``data: [DONE]``, or a Responses API ``response.completed``,
    ``response.incomplete`` or ``response.failed`` event: told by its ``event:`` field (the
    Responses API sends one with every event), or by the ``type`` of an event decoded for its
    usage (a completed or incomplete response carries usage). Nothing after the marker is read
    (no usage, no model).

    Memory is bounded: a line (or one event's data) longer than ``max_line_bytes`` is dropped
    and counted in :attr:`oversized_lines`. :attr:`invalid_events` counts events that mentioned
    usage but were not JSON. Never raises on any input.
    """

    __slots__ = (
        "_broken",
        "_buf",
        "_data",
        "_data_lines",
        "_data_size",
        "_discarding",
        "_end_cr",
        "_ended",
        "_event",
        "_fed",
        "_first_line",
        "_max",
        "_model_tries",
        "_skip_lf",
        "done",
        "ended_at",
        "events",
        "invalid_events",
        "model",
        "oversized_lines",
        "usage",
    )

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._max = positive_int("max_line_bytes", max_line_bytes)
        self._buf = bytearray()
        self._discarding = False
        self._skip_lf = False
        self._first_line = True
        # One event's data lines joined with newlines (one buffer, not an object per line).
        self._data = bytearray()
        self._data_lines = 0
        self._data_size = 0
        self._broken = False
        #: The last usage object seen, or None.
        self.usage: Usage | None = None
        #: The model the stream names (its first events that mention ``"model"``), or None.
        self.model: str | None = None
        self._model_tries = 0
        #: Whether ``data: [DONE]`` was seen.
        self.done = False
        #: The stream's bytes up to and including its end marker's event (see the class), once
        #: the marker went by; None before.
        self.ended_at: int | None = None
        # The marker's event was dispatched; its end is placed in the bytes (ended_at) by the
        # line loop, or, after a CR that ended a chunk, by the next chunk (_end_cr: the offset
        # after that CR, an LF may follow).
        self._ended = False
        self._end_cr: int | None = None
        self._fed = 0  # bytes fed so far
        self._event = b""  # the event: field of the event being read
        #: Events dispatched (those with data).
        self.events = 0
        #: Events whose data mentioned usage but was not valid JSON.
        self.invalid_events = 0
        #: Lines (or events' data) dropped for exceeding ``max_line_bytes``.
        self.oversized_lines = 0

    @property
    def failed(self) -> bool:
        """Whether any part of the stream could not be parsed (invalid or oversized)."""
        return self.invalid_events > 0 or self.oversized_lines > 0

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Parse the next ``chunk`` of the stream (any split, even inside a UTF-8 sequence).

        A large chunk is parsed in slices of 16 KiB, so what parsing it allocates is bounded by
        the slice, not by the chunk (a chunk of millions of short lines would otherwise be
        split into millions of objects at once).
        """
        if len(chunk) <= _SLICE:
            self._feed(chunk if isinstance(chunk, bytes) else bytes(chunk))
            return
        view = memoryview(chunk)
        for start in range(0, len(view), _SLICE):
            self._feed(view[start : start + _SLICE].tobytes())

    def _feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        start = self._fed  # where ``chunk`` starts in the stream
        self._fed += len(chunk)
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
                start += 1
            if self._end_cr is not None:  # the marker's blank line ended with that CR (+ LF)
                self.ended_at, self._end_cr = start, None
        if self._ended:
            return  # nothing after the end marker is read
        raw = chunk
        if b"\r" in chunk:
            # CRLF and CR end lines too; a CR that ends the chunk may be the first half of a CRLF.
            self._skip_lf = chunk[-1] == _CR
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        rest = lines.pop()  # after the last newline: the start of a line still to come
        if lines:
            skipped = 0
            if self._buf or self._discarding:
                # The first line completes the one buffered from earlier chunks.
                first = lines.pop(0)
                skipped = 1
                self._append(first, 0, len(first))
                if self._discarding:
                    self._discarding = False
                    self._broken = True
                else:
                    self._line(bytes(self._buf))
                self._buf.clear()
            limit = self._max
            remaining = iter(lines)
            for line in remaining:
                if len(line) > limit:
                    self.oversized_lines += 1
                    self._broken = True
                    continue
                self._line(line)
                if not line and self._ended:  # this blank line ended the marker's event
                    index = len(lines) - operator.length_hint(remaining) - 1
                    self._place_end(raw, start, index + skipped)
                    return
        self._append(rest, 0, len(rest))

    def _place_end(self, raw: bytes, start: int, line: int) -> None:
        """The end marker's event ended with line ``line`` (0-based) of ``raw`` (the chunk as it
        came, from stream offset ``start``): set :attr:`ended_at` after that line's end."""
        for number, match in enumerate(_LINE_END.finditer(raw)):
            if number == line:
                end = match.end()
                if end == len(raw) and match.group() == b"\r":
                    self._end_cr = start + end  # an LF in the next chunk belongs to it
                else:
                    self.ended_at = start + end
                    self._skip_lf = False
                return

    def close(self) -> None:
        """End of stream: parse a last line without a newline and a last event without a blank
        line (servers that close right after their last ``data:`` line). A marker event ended
        this way ends at the end of the stream."""
        if not self._ended:
            if self._buf and not self._discarding:
                self._line(bytes(self._buf))
            self._dispatch()
        self._buf.clear()
        self._discarding = False
        if self._ended and self.ended_at is None:
            self.ended_at = self._fed if self._end_cr is None else self._end_cr
            self._end_cr = None

    def _append(self, chunk: bytes, start: int, end: int) -> None:
        if self._discarding or start == end:
            return
        if len(self._buf) + (end - start) > self._max:
            self._buf.clear()
            self._discarding = True
            self.oversized_lines += 1
            return
        self._buf += chunk[start:end]

    def _line(self, line: bytes) -> None:
        if self._first_line:
            self._first_line = False
            if line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
        if not line:
            self._dispatch()
            return
        if line[0] == _COLON:
            return
        if line.startswith(b"data:"):
            value = line[6:] if line[5:6] == b" " else line[5:]
        elif line == b"data":
            value = b""  # a field without a colon has an empty value
        elif line.startswith(b"event:"):
            self._event = line[7:] if line[6:7] == b" " else line[6:]
            return
        else:
            return  # id:, retry: and unknown fields say nothing about usage
        self._data_size += len(value) + 1
        if self._data_size > self._max:
            if not self._broken:
                self.oversized_lines += 1
            self._broken = True
            self._data.clear()
            self._data_lines = 0
            return
        if not self._broken:
            if self._data_lines:
                self._data += _NEWLINE
            self._data += value
            self._data_lines += 1

    def _dispatch(self) -> None:
        lines, broken = self._data_lines, self._broken
        named = self._event
        if named:
            self._event = b""  # the event type is the dispatched event's only
        data = bytes(self._data)
        self._data.clear()
        self._data_lines = 0
        self._data_size = 0
        self._broken = False
        if not lines or broken:
            return
        self.events += 1
        if not self._handle(data):
            self._invalid(data, lines)
        if named and named in _END_EVENTS:
            self._ended = True  # a Responses API end event, its usage taken

    def _invalid(self, data: bytes, lines: int) -> None:
        """An event's data that is not one JSON document."""
        if lines == 1:
            self.invalid_events += 1
            return
        # Producers that leave out the blank line between events. Each line is taken in turn
        # (found, not split: no list of every line at once), up to an end marker.
        valid = True
        start = 0
        while start >= 0 and not self._ended:
            end = data.find(_NEWLINE, start)
            part = data[start:] if end < 0 else data[start:end]
            valid = self._handle(part) and valid
            start = end if end < 0 else end + 1
        if not valid:
            self.invalid_events += 1

    def _handle(self, data: bytes) -> bool:
        """Take usage (and the model, from the first events) from one event's data, and see
        whether it is the end marker; False when it mentioned usage but was not JSON."""
        wants_model = self.model is None and self._model_tries < _MODEL_TRIES and _MODEL_KEY in data
        mentions = data.count(_USAGE_KEY)
        if wants_model:
            self._model_tries += 1
        elif not mentions:
            if data.strip() == _DONE:
                self.done = self._ended = True
            return True
        elif (mentions == 1 and (_NULL_USAGE_COMPACT in data or _NULL_USAGE_SPACED in data)) or (
            mentions > 1 and mentions == len(_NULL_USAGE.findall(data))
        ):
            return True  # every "usage" null (the chunks before the last one): nothing to decode
        try:
            obj = decode_json(data)
        except ValueError:
            return not mentions
        if wants_model:
            self.model = model_from_object(obj)
        if mentions:
            usage = usage_from_object(obj)
            if usage is not None:
                self.usage = usage
        if type(obj) is dict and obj.get("type") in _END_TYPES:
            self._ended = True  # a Responses API end event without its event: field
        return True
