"""What a metrics server is configured with, in one validated, frozen value.

:class:`ServerConfig` is to :class:`~inference_metrics.server.MetricsServer` what uvicorn's
``Config`` is to its ``Server``: every setting, checked once when made, read by the server and
never changed by it. ``MetricsServer(auth=..., port=...)`` builds one from its arguments;
``MetricsServer.from_config(config)`` takes one made elsewhere (the command line's options).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.registry import REGISTRY, Collector

from .auth import Authenticator
from .limits import ServerLimits
from .tls import ServerTLS

__all__ = ["DEFAULT_PORT", "METRICS_PATH", "ServerConfig", "server_url"]

#: Upstream's endpoint picker serves its metrics on this port.
DEFAULT_PORT = 9090
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class ServerConfig:
    """Everything a :class:`~inference_metrics.server.MetricsServer` serves and how.

    ``auth``: who may read ``/metrics`` (required: an unguarded exposition is never an
    accident). ``registry``: what to expose (prometheus_client's default ``REGISTRY``, which also
    holds an OpenTelemetry ``PrometheusMetricReader``'s metrics). ``host``: ``"0.0.0.0"`` (all
    IPv4 interfaces), ``"::"``, ``None`` (all interfaces) or an address. ``port``: 9090, or 0 for
    any free port. ``tls``: a :class:`ServerTLS` to serve HTTPS. ``limits``: the
    :class:`ServerLimits`. ``readiness``: called (on the event loop; keep it
    quick) for each ``/readyz``; false is a 503.
    """

    auth: Authenticator
    registry: Collector = REGISTRY
    host: str | None = "0.0.0.0"
    port: int = DEFAULT_PORT
    tls: ServerTLS | None = None
    limits: ServerLimits = field(default_factory=ServerLimits)
    readiness: Callable[[], bool] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.auth, Authenticator):
            raise TypeError(f"auth must be an Authenticator (async authorize()), got {self.auth!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port!r}")


def server_url(host: str | None, port: int, *, tls: bool) -> str:
    """``http(s)://host:port``, with loopback for a wildcard host (what a local client dials)."""
    host = host or "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"
