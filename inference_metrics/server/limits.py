"""The bounds of the exposition server and the ASGI metrics app, in one frozen value."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerLimits"]


@dataclass(frozen=True)
class ServerLimits:
    """Bounds that keep one client from holding the server. Times in seconds."""

    #: Request line and header fields together (a Kubernetes token is 1-2 KiB).
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    #: A request body is read and discarded up to this size; larger ones get 413.
    max_body_bytes: int = 64 * 1024
    #: To receive a whole request head once its first byte arrived (and a new connection's first).
    header_timeout: float = 10.0
    #: An idle keep-alive connection is closed after this long.
    idle_timeout: float = 60.0
    handshake_timeout: float = 10.0
    #: To hand a response to a client that reads slowly.
    write_timeout: float = 30.0
    #: Outer bound on an authenticator's decision (the Kubernetes one bounds itself tighter).
    auth_timeout: float = 10.0
    #: Open connections. At the cap, the longest-waiting connection without a request in
    #: progress is closed to admit a new one; with every one busy, the new one is closed.
    max_connections: int = 256
    #: Renders (expositions being built in worker threads) running at once.
    max_renders: int = 2
    #: How long a scrape waits for a render slot before it gets 503 with Retry-After.
    render_wait: float = 5.0
    #: On shutdown, requests in progress get this long to finish.
    shutdown_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"ServerLimits.{name} must be a number, got {value!r}")
            if not value > 0:
                raise ValueError(f"ServerLimits.{name} must be > 0, got {value!r}")

    def pressure_scale(self, open_connections: int) -> float:
        """The factor head and idle timeouts are multiplied by with this many connections open.

        1 up to half the cap, then falling linearly to 0.1 at the cap (a 60 s idle timeout
        becomes 6 s, a 10 s head timeout 1 s).
        """
        fill = open_connections / self.max_connections
        return 1.0 if fill <= 0.5 else max(0.1, 2.0 * (1.0 - fill))
