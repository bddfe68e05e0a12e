"""Fixtures shared by the test modules: a private registry and a Recorder over it; tracers whose
spans are all sampled, or none (exemplars).

A module that needs a recorder prepared differently defines its own ``recorder`` fixture, which
takes precedence over this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of its own per test, so no test sees another's samples."""
    return CollectorRegistry()


@pytest.fixture
def recorder(registry: CollectorRegistry) -> Recorder:
    """A Recorder with the prometheus-client backend on ``registry``."""
    return Recorder(PrometheusBackend(registry))


@pytest.fixture(scope="module")
def sampled() -> Iterator[Tracer]:
    """A tracer of the OpenTelemetry SDK whose every span is sampled."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    provider = TracerProvider(sampler=ALWAYS_ON)
    yield provider.get_tracer("test")
    provider.shutdown()


@pytest.fixture(scope="module")
def unsampled() -> Iterator[Tracer]:
    """A tracer whose spans are never sampled."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    provider = TracerProvider(sampler=ALWAYS_OFF)
    yield provider.get_tracer("test")
    provider.shutdown()
