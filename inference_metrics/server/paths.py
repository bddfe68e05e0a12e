"""Request targets to paths: what the server routes and what an authenticator authorizes.

The target is split at ``?``, the path percent-decoded strictly, and the result must then equal a
known path exactly: no slash merging, no trailing-slash redirects, no dot-segment removal.
"""

from __future__ import annotations

__all__ = ["BadTarget", "decode_path", "target_path"]

_HEX = frozenset("0123456789abcdefABCDEF")


class BadTarget(ValueError):
    """A request target that is not an origin-form path with valid percent-encoding (a 400)."""


def target_path(target: bytes) -> str:
    """The decoded path of an origin-form target (``/%6Detrics?x`` is ``/metrics``).

    Absolute-form, authority-form and asterisk-form are for proxies and OPTIONS; a metrics
    endpoint takes origin-form only. Raises :class:`BadTarget`.
    """
    if not target.startswith(b"/"):
        raise BadTarget("request target is not an absolute path")
    raw_path, _, _ = target.decode("ascii", "replace").partition("?")
    return decode_path(raw_path)


def decode_path(raw_path: str) -> str:
    """Percent-decode a request path strictly: bad escapes, non-UTF-8 or NUL raise BadTarget.

    ``+`` stays ``+`` (it means space only in form-encoded queries).
    """
    if "%" not in raw_path:
        if "\x00" in raw_path:
            raise BadTarget("NUL in path")
        return raw_path
    out = bytearray()
    i = 0
    n = len(raw_path)
    while i < n:
        char = raw_path[i]
        if char == "%":
            pair = raw_path[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise BadTarget("malformed percent-encoding in path")
            out.append(int(pair, 16))
            i += 3
        else:
            out += char.encode("utf-8")
            i += 1
    try:
        path = out.decode("utf-8")
    except UnicodeDecodeError:
        raise BadTarget("path is not UTF-8") from None
    if "\x00" in path:
        raise BadTarget("NUL in path")
    return path
