"""The request header fields an authenticator sees: the server's own type, not a parser's.

The exposition server (h11 underneath) and the ASGI metrics app (an ASGI server underneath) both
hand authenticators this one type, so an authenticator works behind either door.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["Headers"]


class Headers:
    """Request header fields in arrival order; names compared case-insensitively.

    Values are ``str`` (decoded as Latin-1 from the wire, so every byte maps to one character and
    nothing is lost or refused here).
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: tuple[tuple[str, str], ...] = tuple(fields)

    @classmethod
    def from_raw(cls, fields: Iterable[tuple[bytes, bytes]]) -> Headers:
        """From ``(name, value)`` byte pairs as h11 and ASGI servers give them."""
        return cls((name.decode("latin-1"), value.decode("latin-1")) for name, value in fields)

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
