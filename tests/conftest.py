"""Fixtures shared by the test modules: a private registry and a Recorder over it.

A module that needs a recorder prepared differently defines its own ``recorder`` fixture, which
takes precedence over this one.
"""

from __future__ import annotations

import pytest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of its own per test, so no test sees another's samples."""
    return CollectorRegistry()


@pytest.fixture
def recorder(registry: CollectorRegistry) -> Recorder:
    """A Recorder with the prometheus-client backend on ``registry``."""
    return Recorder(PrometheusBackend(registry))
