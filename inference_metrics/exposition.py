"""One render path behind every door (``MetricsServer``, the ASGI metrics app, the CLI).

``negotiate(accept)`` picks the representation from an ``Accept`` header as prometheus_client picks
it, and never raises: a header it cannot parse falls back to the Prometheus text format 0.0.4.
``render(registry, representation)`` returns the body for that representation.

The doors add what is theirs (gzip, auth, single-flight, bounds); the bytes are decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["TEXT", "Representation", "negotiate", "render"]


@dataclass(frozen=True, slots=True)
class Representation:
    """What a scrape asked for: the ``Content-Type`` answered and the encoder that makes it.

    Hashable, so a server can share one render among concurrent scrapes asking for the same one.
    """

    content_type: str
    openmetrics: bool


#: Prometheus text format 0.0.4, the fallback.
TEXT = Representation(CONTENT_TYPE_PLAIN_0_0_4, openmetrics=False)


def negotiate(accept: str | None) -> Representation:
    """The representation for an ``Accept`` header (``None`` or unparsable: :data:`TEXT`)."""
    try:
        _, content_type = choose_encoder(accept or "")
    except Exception:  # e.g. "version=abc": prometheus_client raises, a scrape must not
        return TEXT
    return Representation(content_type, content_type.startswith("application/openmetrics-text"))


def render(registry: CollectorRegistry, representation: Representation) -> bytes:
    """The exposition of ``registry`` in ``representation``."""
    encoder: Callable[[Collector], bytes]
    if representation == TEXT:
        encoder = generate_latest
    else:
        encoder, _ = choose_encoder(representation.content_type)
    return encoder(registry)
