"""How both text formats spell numbers and label values, as prometheus_client (and Go) do.

A leaf module: the store, the writer, native histograms and exemplars all use it, and it uses
none of them.
"""

from __future__ import annotations

from prometheus_client.utils import floatToGoString

__all__ = ["escape_label_value", "go_float"]


def go_float(value: float) -> str:
    """``value`` as prometheus_client (and Go) print sample values and ``le`` bounds."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def escape_label_value(value: str) -> str:
    """A label value as both exposition formats quote it (backslash, newline, double quote)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
