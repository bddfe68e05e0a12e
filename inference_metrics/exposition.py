"""One render path behind every door (``MetricsServer``, the ASGI metrics app, the CLI).

``negotiate(accept)`` picks the representation from an ``Accept`` header and never raises: a
header it cannot parse falls back to the Prometheus text format 0.0.4. The protobuf exposition
(:data:`PROTOBUF`, the only one carrying native histograms) is chosen when the header ranks it
first, as Prometheus does with ``--enable-feature=native-histograms`` (or ``scrape_protocols``
listing ``PrometheusProto`` first); otherwise OpenMetrics or text, as prometheus_client picks
them. ``render(registry, representation)`` returns the body for that representation.

``render`` iterates ``registry.collect()`` (prometheus_client's public API, which also yields
``target_info`` first). The families of :class:`~inference_metrics.backends.PrometheusBackend`
(:class:`~inference_metrics.backends.writer.StoreFamily`) are written by our own writer
(``backends/writer.py``), which reuses the lines of every series not touched since the last
render; every other family (``target_info``, ``process_*``, ``python_*``, a user's own) is
rendered by prometheus_client's encoder, after ours, in the order the registry yielded them (in
protobuf: converted by :func:`~inference_metrics.backends.protobuf.encode_client_family`). The
text bytes parse to the same families and samples as ``generate_latest(registry)`` (the same
bytes, apart from the order of families). A name escaping that would change names
(``escaping=dots`` or ``values`` in the ``Accept`` header) is left to prometheus_client entirely:
it reads our families' samples as it reads any family's (never in protobuf).

The doors add what is theirs (gzip, auth, single-flight, bounds); the bytes are decided here.

Under several worker processes each process renders its own registry (see docs/backends.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from .backends.protobuf import CONTENT_TYPE as PROTOBUF_CONTENT_TYPE
from .backends.protobuf import encode_client_family
from .backends.writer import Format, StoreFamily

__all__ = ["PROTOBUF", "TEXT", "Representation", "negotiate", "render", "render_pieces"]

_UNDERSCORES: str = openmetrics.UNDERSCORES
_ALLOW_UTF8: str = openmetrics.ALLOWUTF8
# Escapings that leave legacy-valid names (every MetricSpec name and label) as they are.
_NAMES_UNCHANGED = frozenset((_UNDERSCORES, _ALLOW_UTF8))


@dataclass(frozen=True, slots=True)
class Representation:
    """What a scrape asked for: the ``Content-Type`` answered, the format, the name escaping.

    Hashable, so a server can share one render among concurrent scrapes asking for the same one.
    """

    content_type: str
    openmetrics: bool
    #: The name escaping scheme (``underscores``, ``allow-utf-8``, ``dots``, ``values``).
    escaping: str = _UNDERSCORES
    #: The delimited protobuf exposition (``openmetrics`` is then False).
    protobuf: bool = False

    @property
    def format(self) -> Format:
        """The format our writer writes for it."""
        if self.protobuf:
            return Format.PROTOBUF
        return Format.OPENMETRICS if self.openmetrics else Format.TEXT


#: Prometheus text format 0.0.4, the fallback.
TEXT = Representation(CONTENT_TYPE_PLAIN_0_0_4, openmetrics=False)
#: The delimited protobuf exposition (``io.prometheus.client.MetricFamily`` messages).
PROTOBUF = Representation(PROTOBUF_CONTENT_TYPE, openmetrics=False, protobuf=True)

_PROTOBUF_TYPE = "application/vnd.google.protobuf"
_PROTOBUF_PROTO = "io.prometheus.client.MetricFamily"


def _wants_protobuf(accept: str) -> bool:
    """Whether ``accept`` ranks the delimited protobuf exposition first: its quality above 0 and
    at least every other media range's (Prometheus lists it first when it asks for it), with a
    name escaping that keeps our names as they are."""
    best = 0.0
    protobuf = -1.0
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        values: dict[str, str] = {}
        for param in params:
            name, _, value = param.partition("=")
            values[name.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(values.get("q", "1"))
        except ValueError:
            return False
        if not 0 <= quality <= 1:  # NaN included
            return False
        if (
            media.lower() == _PROTOBUF_TYPE
            and values.get("proto") == _PROTOBUF_PROTO
            and values.get("encoding") == "delimited"
            and values.get("escaping", _UNDERSCORES) in _NAMES_UNCHANGED
        ):
            protobuf = max(protobuf, quality)
        else:
            best = max(best, quality)
    return protobuf > 0 and protobuf >= best


def negotiate(accept: str | None) -> Representation:
    """The representation for an ``Accept`` header (``None`` or unparsable: :data:`TEXT`)."""
    if accept and _wants_protobuf(accept):
        return PROTOBUF
    try:
        _, content_type = choose_encoder(accept or "")
    except Exception:  # e.g. "version=abc": prometheus_client raises, a scrape must not
        return TEXT
    if content_type == CONTENT_TYPE_PLAIN_0_0_4:
        return TEXT
    _, found, escaping = content_type.partition("escaping=")
    return Representation(
        content_type,
        content_type.startswith("application/openmetrics-text"),
        escaping.split(";")[0].strip() if found else _UNDERSCORES,
    )


class _Families(Collector):
    """Families already collected, as a collector for prometheus_client's encoders."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _encode_protobuf(collector: Collector) -> bytes:
    """Every family ``collector`` yields, as delimited protobuf ``MetricFamily`` messages."""
    return b"".join([encode_client_family(metric) for metric in collector.collect()])


def _prometheus_client_encoder(representation: Representation) -> Callable[[Collector], bytes]:
    if representation.protobuf:
        return _encode_protobuf
    if representation == TEXT:
        return generate_latest
    encoder, _ = choose_encoder(representation.content_type)
    return encoder


def render(registry: CollectorRegistry, representation: Representation) -> bytes:
    """The exposition of ``registry`` in ``representation``."""
    return b"".join(render_pieces(registry, representation)[0])


def render_pieces(
    registry: CollectorRegistry, representation: Representation
) -> tuple[list[bytes], list[int]]:
    """The exposition of ``registry`` in ``representation`` as pieces (joined, :func:`render`'s
    bytes) and one key per piece: a series' stamp (> 0; equal stamps, the very same bytes), a
    family header's (< 0, fixed per family and format), or 0 for bytes made afresh each time
    (prometheus_client's part). :mod:`.gzip_cache` reuses compressed bytes by these keys."""
    encoder = _prometheus_client_encoder(representation)
    if representation.escaping not in _NAMES_UNCHANGED:
        return [encoder(registry)], [0]
    out: list[bytes] = []
    keys: list[int] = []
    others: list[Metric] = []
    chosen = representation.format
    for family in registry.collect():
        if isinstance(family, StoreFamily):
            family.write(out, chosen, keys)
        else:
            others.append(family)
    # The others last; in OpenMetrics prometheus_client's part also ends with the "# EOF" line.
    out.append(encoder(_Families(others)))
    keys.append(0)
    return out, keys
