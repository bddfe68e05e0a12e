"""Upstream's metrics test scenarios (tests/test_recorder_upstream.py) again, with the Recorder
over ``PrometheusBackend(registry, multiprocess_dir=...)``: the same calls, the same expected
families, read back through the merged exposition of the directory."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder

from . import test_recorder_upstream as single_process

# Every scenario of the single-process module that records through the ``recorder`` fixture,
# collected here too, with this module's fixture.
globals().update(
    {
        name: test
        for name, test in vars(single_process).items()
        if name.startswith("test_") and "recorder" in inspect.signature(test).parameters
    }
)


@pytest.fixture
def recorder(registry: CollectorRegistry, tmp_path: Path) -> Recorder:
    """A Recorder writing to a memory-mapped file in a directory of its own."""
    return Recorder(PrometheusBackend(registry, multiprocess_dir=tmp_path))
