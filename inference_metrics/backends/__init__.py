"""Backends: where recorded metrics go."""

from .base import Backend, Instrument, Series, UnsupportedOperation
from .prometheus import PrometheusBackend

__all__ = ["Backend", "Instrument", "PrometheusBackend", "Series", "UnsupportedOperation"]
