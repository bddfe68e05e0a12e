"""Kubernetes Gateway API Inference Extension endpoint-picker metrics for Python.

What an application calls is here. What a backend author needs (``Instrument``, ``Series``,
``UnsupportedOperation``) is in :mod:`inference_metrics.backends`; ``render_help`` is in
:mod:`inference_metrics.spec`, ``Catalog`` in :mod:`inference_metrics.catalog`.
"""

from typing import TYPE_CHECKING

from .backends import Backend, FanoutBackend, NoopBackend, PrometheusBackend
from .catalog import CATALOG, SEED_METRICS
from .errors import ErrorCode
from .instrument import instrument_handler, start_request
from .lifecycle import RequestContext
from .payloads import Usage
from .recorder import OVERFLOW_LABEL_VALUE, Recorder
from .spec import Kind, MetricSpec, Stability

if TYPE_CHECKING:
    from .backends.otel import OpenTelemetryBackend as OpenTelemetryBackend

__version__ = "0.1.0"

__all__ = [
    "CATALOG",
    "OVERFLOW_LABEL_VALUE",
    "SEED_METRICS",
    "Backend",
    "ErrorCode",
    "FanoutBackend",
    "Kind",
    "MetricSpec",
    "NoopBackend",
    "PrometheusBackend",
    "Recorder",
    "RequestContext",
    "Stability",
    "Usage",
    "__version__",
    "instrument_handler",
    "start_request",
]


def __getattr__(name: str) -> object:
    # OpenTelemetryBackend is imported on first use, so this package imports without OpenTelemetry;
    # it is left out of __all__ so that `import *` never needs it.
    if name == "OpenTelemetryBackend":
        from .backends.otel import OpenTelemetryBackend  # ImportError names the 'otel' extra

        return OpenTelemetryBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
