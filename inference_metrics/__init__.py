"""Kubernetes Gateway API Inference Extension endpoint-picker metrics for Python."""

from .backends import Backend, Instrument, PrometheusBackend, Series, UnsupportedOperation
from .catalog import CATALOG, SEED_METRICS, Catalog
from .recorder import OVERFLOW_LABEL_VALUE, Recorder
from .spec import Kind, MetricSpec, Stability, render_help

__version__ = "0.1.0"

__all__ = [
    "CATALOG",
    "OVERFLOW_LABEL_VALUE",
    "SEED_METRICS",
    "Backend",
    "Catalog",
    "Instrument",
    "Kind",
    "MetricSpec",
    "PrometheusBackend",
    "Recorder",
    "Series",
    "Stability",
    "UnsupportedOperation",
    "__version__",
    "render_help",
]
