"""Kubernetes Gateway API Inference Extension endpoint-picker metrics for Python."""

from typing import TYPE_CHECKING

from .backends import (
    Backend,
    FanoutBackend,
    Instrument,
    NoopBackend,
    PrometheusBackend,
    Series,
    UnsupportedOperation,
)
from .catalog import CATALOG, SEED_METRICS, Catalog
from .errors import ErrorCode
from .instrument import instrument_handler, start_request
from .lifecycle import RequestContext
from .payloads import Usage
from .recorder import OVERFLOW_LABEL_VALUE, Recorder
from .spec import Kind, MetricSpec, Stability, render_help

if TYPE_CHECKING:
    from .backends.otel import OpenTelemetryBackend as OpenTelemetryBackend

__version__ = "0.1.0"

__all__ = [
    "CATALOG",
    "OVERFLOW_LABEL_VALUE",
    "SEED_METRICS",
    "Backend",
    "Catalog",
    "ErrorCode",
    "FanoutBackend",
    "Instrument",
    "Kind",
    "MetricSpec",
    "NoopBackend",
    "PrometheusBackend",
    "Recorder",
    "RequestContext",
    "Series",
    "Stability",
    "UnsupportedOperation",
    "Usage",
    "__version__",
    "instrument_handler",
    "render_help",
    "start_request",
]


def __getattr__(name: str) -> object:
    # OpenTelemetryBackend is imported on first use, so this package imports without OpenTelemetry;
    # it is left out of __all__ so that `import *` never needs it.
    if name == "OpenTelemetryBackend":
        from .backends.otel import OpenTelemetryBackend  # ImportError names the 'otel' extra

        return OpenTelemetryBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
