"""The pool monitor: model servers' ``/metrics`` → per-endpoint snapshot → the pool gauges.

See docs/pool-monitor.md. Polling and discovery use the library's own h11 client
(:mod:`inference_metrics.net`): base dependencies only. :func:`require_pool_extra` asks up front
for any module polling would need beyond them (none today).
"""

from .discovery import DNSDiscovery, KubernetesDiscovery, StaticDiscovery
from .endpoints import ClientTLS, Endpoint, metrics_url
from .extra import require_pool_extra
from .monitor import (
    DEFAULT_AGGREGATE_INTERVAL,
    DEFAULT_MAX_PAGE_BYTES,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_STALENESS,
    DEFAULT_TIMEOUT,
    Discovery,
    EndpointMetrics,
    MonitorCollector,
    PollError,
    PoolMonitor,
)
from .parse import Page, Sample, read_families
from .pick import (
    fresh_endpoints,
    kv_cache_scores,
    max_score_pick,
    pick_endpoint,
    queue_scores,
    score_endpoints,
)
from .profiles import DEFAULT_ENGINE, PROFILES, EngineProfile, Reading, Selector, extract

__all__ = [
    "DEFAULT_AGGREGATE_INTERVAL",
    "DEFAULT_ENGINE",
    "DEFAULT_MAX_PAGE_BYTES",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_STALENESS",
    "DEFAULT_TIMEOUT",
    "PROFILES",
    "ClientTLS",
    "DNSDiscovery",
    "Discovery",
    "Endpoint",
    "EndpointMetrics",
    "EngineProfile",
    "KubernetesDiscovery",
    "MonitorCollector",
    "Page",
    "PollError",
    "PoolMonitor",
    "Reading",
    "Sample",
    "Selector",
    "StaticDiscovery",
    "extract",
    "fresh_endpoints",
    "kv_cache_scores",
    "max_score_pick",
    "metrics_url",
    "pick_endpoint",
    "queue_scores",
    "read_families",
    "require_pool_extra",
    "score_endpoints",
]
