"""Backends: where recorded metrics go, and the contract a backend implements (:mod:`.base`)."""

from typing import TYPE_CHECKING

from .base import (
    Backend,
    Instrument,
    Series,
    SeriesBase,
    UnsupportedOperation,
    check_label_values,
    check_specs,
)
from .fanout import FanoutBackend
from .noop import NoopBackend
from .prometheus import PrometheusBackend

if TYPE_CHECKING:
    from .otel import OpenTelemetryBackend as OpenTelemetryBackend

# OpenTelemetryBackend is imported on first use (module __getattr__ below), so this package imports
# without OpenTelemetry installed. It is left out of __all__ so that `import *` never needs it.
__all__ = [
    "Backend",
    "FanoutBackend",
    "Instrument",
    "NoopBackend",
    "PrometheusBackend",
    "Series",
    "SeriesBase",
    "UnsupportedOperation",
    "check_label_values",
    "check_specs",
]


def __getattr__(name: str) -> object:
    if name == "OpenTelemetryBackend":
        from .otel import OpenTelemetryBackend  # raises ImportError naming the 'otel' extra

        return OpenTelemetryBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
