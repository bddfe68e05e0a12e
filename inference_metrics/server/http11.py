"""HTTP/1.1 on the wire: request heads parsed strictly, responses rendered. No I/O here.

Just enough HTTP for a metrics endpoint, and no more: origin-form targets only (``/path?query``),
no request bodies worth reading, no trailers, no upgrades. Anything ambiguous is a 400, because a
guarded endpoint must never route or authorize a request it parsed differently from its client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus

__all__ = [
    "HTTPError",
    "Headers",
    "RequestHead",
    "decode_path",
    "parse_request_head",
    "render_response",
]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(r"/[\x21-\x7e]*")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)")
# Field values: visible ASCII, space, tab and obs-text; never other control characters.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HEX = frozenset("0123456789abcdefABCDEF")


class HTTPError(Exception):
    """A request the server answers with ``status`` and closes the connection after."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class Headers:
    """Request header fields in arrival order; names compared case-insensitively."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: tuple[tuple[str, str], ...] = tuple(fields)

    def get_all(self, name: str) -> list[str]:
        """Every value of field ``name``, in order (``[]`` when absent)."""
        wanted = name.lower()
        return [value for key, value in self._fields if key.lower() == wanted]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        values = self.get_all(name)
        return values[0] if values else default

    def joined(self, name: str) -> str:
        """All values of ``name`` joined with ``", "``, as RFC 9110 allows for list fields."""
        return ", ".join(self.get_all(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        # Names only: values may hold credentials.
        return f"Headers({[name for name, _ in self._fields]!r})"


@dataclass(frozen=True)
class RequestHead:
    """A parsed request line and header section."""

    method: str
    #: The request target as sent (``/%6Detrics?x``).
    target: str
    #: The percent-decoded path without the query (``/metrics``): what is routed and authorized.
    path: str
    query: str
    version: tuple[int, int]
    headers: Headers

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection stay open after the response."""
        tokens = {t.strip().lower() for t in self.headers.joined("Connection").split(",")}
        if self.version >= (1, 1):
            return "close" not in tokens
        return "keep-alive" in tokens

    @property
    def content_length(self) -> int:
        """The declared body length (0 when absent). Raises HTTPError(400) when malformed."""
        values = self.headers.get_all("Content-Length")
        if not values:
            return 0
        distinct = {v.strip() for value in values for v in value.split(",")}
        if len(distinct) != 1:
            raise HTTPError(400, "conflicting Content-Length")
        (value,) = distinct
        if not value.isdigit() or len(value) > 18:
            raise HTTPError(400, "malformed Content-Length")
        return int(value)


def decode_path(raw_path: str) -> str:
    """Percent-decode a request path strictly: bad escapes, non-UTF-8 or NUL are a 400.

    ``+`` stays ``+`` (it means space only in form-encoded queries).
    """
    if "%" not in raw_path:
        return raw_path
    out = bytearray()
    i = 0
    n = len(raw_path)
    while i < n:
        char = raw_path[i]
        if char == "%":
            pair = raw_path[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise HTTPError(400, "malformed percent-encoding in path")
            out.append(int(pair, 16))
            i += 3
        else:
            out += char.encode("ascii")
            i += 1
    try:
        path = out.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "path is not UTF-8") from None
    if "\x00" in path:
        raise HTTPError(400, "NUL in path")
    return path


def parse_request_head(data: bytes, *, max_headers: int = 100) -> RequestHead:
    """Parse a request head (request line and fields, ending with an empty line).

    Raises :class:`HTTPError` with the status to answer: 400 for malformed input, 431 for too
    many fields, 505 for an HTTP version other than 1.0 and 1.1.
    """
    text = data.decode("latin-1")
    # RFC 9112 2.2: a server SHOULD ignore empty lines received before the request line.
    while text.startswith("\r\n"):
        text = text[2:]
    if not text.endswith("\r\n\r\n"):
        raise HTTPError(400, "request head does not end with an empty line")
    lines = text[:-4].split("\r\n")
    if any("\r" in line or "\n" in line for line in lines):
        raise HTTPError(400, "bare CR or LF in request head")
    request_line, field_lines = lines[0], lines[1:]

    parts = request_line.split(" ")
    if len(parts) != 3:
        raise HTTPError(400, "malformed request line")
    method, target, version_text = parts
    if not _TOKEN.fullmatch(method):
        raise HTTPError(400, "malformed method")
    version_match = _VERSION.fullmatch(version_text)
    if version_match is None:
        raise HTTPError(400, "malformed HTTP version")
    version = (int(version_match.group(1)), int(version_match.group(2)))
    if version not in ((1, 0), (1, 1)):
        raise HTTPError(505, "HTTP version not supported")
    if not _TARGET.fullmatch(target):
        # Absolute-form, authority-form and asterisk-form are for proxies and OPTIONS; a metrics
        # endpoint takes origin-form only.
        raise HTTPError(400, "request target is not an absolute path")

    if len(field_lines) > max_headers:
        raise HTTPError(431, "too many header fields")
    fields: list[tuple[str, str]] = []
    for line in field_lines:
        name, colon, value = line.partition(":")
        # A name must be a token right up to the colon: this also refuses "Name :" and obsolete
        # line folding (a continuation line starts with whitespace).
        if not colon or not _TOKEN.fullmatch(name):
            raise HTTPError(400, "malformed header field")
        value = value.strip(" \t")
        if _BAD_VALUE.search(value):
            raise HTTPError(400, "control character in header field")
        fields.append((name, value))
    headers = Headers(fields)

    if version >= (1, 1) and len(headers.get_all("Host")) != 1:
        raise HTTPError(400, "HTTP/1.1 request without exactly one Host field")

    raw_path, _, query = target.partition("?")
    return RequestHead(
        method=method,
        target=target,
        path=decode_path(raw_path),
        query=query,
        version=version,
        headers=headers,
    )


def render_response(
    status: int,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    send_body: bool = True,
    keep_alive: bool = True,
) -> bytes:
    """An HTTP/1.1 response. ``Content-Length`` is always the body's length, also for HEAD."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if send_body else head
