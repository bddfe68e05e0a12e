"""Read a few families out of a Prometheus text exposition page, fast, without ever raising.

A model server's ``/metrics`` page is tens to hundreds of kilobytes (mostly histograms the pool
monitor never looks at); the monitor needs a handful of gauges. :func:`read_families` finds the
lines of just those families with ``bytes.find`` (C speed over the page) and parses only them,
instead of tokenising every line as a general parser does.

Arbitrary bytes never raise: a line that does not parse is skipped and counted in
:attr:`Page.bad_lines`; label values are decoded as UTF-8 with replacement characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["MAX_SAMPLES_PER_FAMILY", "Page", "Sample", "read_families"]

# The rest of a sample line after its metric name: optional {labels}, whitespace, a value.
# (Quoted strings as "[^"\\]*(?:\\.[^"\\]*)*": the unrolled loop, one step per run of plain
# characters instead of one alternation per character.)
_QUOTED = rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_REST = re.compile(rb"(?:\{(?P<labels>[^\"}]*(?:" + _QUOTED + rb'[^"}]*)*)\})?[ \t]+(?P<value>\S+)')
_LABEL = re.compile(rb'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"\\\n]*(?:\\.[^"\\\n]*)*)"\s*(?:,|$)')
_ESCAPES = {b"\\\\": "\\", b'\\"': '"', b"\\n": "\n"}
_ESCAPE = re.compile(rb"\\[\\\"n]")


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample of a family: its labels and value (timestamps are ignored, as upstream)."""

    labels: dict[str, str]
    value: float


@dataclass(slots=True)
class Page:
    """The families read from one page: samples in page order, and each family's ``# TYPE``
    (``untyped`` when the page declares none)."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    bad_lines: int = 0


def _unescape(raw: bytes) -> str:
    if b"\\" not in raw:
        return raw.decode("utf-8", "replace")
    return _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)].encode(), raw).decode("utf-8", "replace")


def _parse_labels(raw: bytes) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    position = 0
    end = len(raw.rstrip())
    while position < end:
        match = _LABEL.match(raw, position)
        if match is None or match.end() == position:
            return None
        labels[match.group(1).decode("ascii")] = _unescape(match.group(2))
        position = match.end()
    return labels


def _line_starts(page: bytes, prefix: bytes) -> Iterable[int]:
    """Offsets of the lines of ``page`` that start with ``prefix``."""
    if page.startswith(prefix):
        yield 0
    needle = b"\n" + prefix
    position = page.find(needle)
    while position != -1:
        yield position + 1
        position = page.find(needle, position + 1)


def _type_of(page: bytes, name: bytes) -> str:
    for start in _line_starts(page, b"# TYPE " + name):
        end = page.find(b"\n", start)
        words = page[start : len(page) if end == -1 else end].split()
        if len(words) == 4 and words[2] == name:
            return words[3].decode("ascii", "replace").lower()
    return "untyped"


#: Samples kept per family: enough for any engine's page (one series per rank, adapter set or
#: model), and a bound on memory for a page that repeats one name endlessly.
MAX_SAMPLES_PER_FAMILY = 10_000


def read_families(
    page: bytes, names: Iterable[str], *, max_samples: int = MAX_SAMPLES_PER_FAMILY
) -> Page:
    """The samples of the families ``names`` (exact sample names) found in ``page``.

    A sample line ``name{labels} value [timestamp]`` is kept when it parses and its value is a
    number; anything else on such a line counts as a bad line. Other families are not looked at.
    At most ``max_samples`` samples are kept per family (the first ones on the page).
    """
    result = Page()
    for name in names:
        try:
            raw_name = name.encode("ascii")
        except UnicodeEncodeError:
            continue
        samples: list[Sample] = []
        for start in _line_starts(page, raw_name):
            if len(samples) >= max_samples:
                break
            after = start + len(raw_name)
            following = page[after : after + 1]
            if following not in (b"{", b" ", b"\t"):
                continue  # a longer name that starts with this one
            end = page.find(b"\n", after)
            line = page[after : len(page) if end == -1 else end]
            match = _REST.match(line)
            labels = None
            if match is not None:
                raw_labels = match.group("labels")
                labels = _parse_labels(raw_labels) if raw_labels else {}
            try:
                value = float(match.group("value")) if match is not None else math.nan
            except ValueError:
                labels = None
            if labels is None:
                result.bad_lines += 1
                continue
            samples.append(Sample(labels, value))
        if samples:
            result.samples[name] = samples
            result.types[name] = _type_of(page, raw_name)
    return result
