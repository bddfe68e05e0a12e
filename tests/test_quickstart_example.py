"""examples/quickstart.py runs as a script and exposes what it recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .expo import parse_text

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"
PAIR = {"model_name": "llama-3-8b", "target_model_name": "llama-3-8b-lora-a"}


def test_quickstart_runs_and_exposes_its_request() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=True
    )
    families = parse_text(done.stdout)
    assert (
        families["inference_model_request_total"].value("inference_model_request_total", **PAIR)
        == 1
    )
    duration = families["inference_model_request_duration_seconds"]
    assert duration.value("inference_model_request_duration_seconds_sum", **PAIR) == 1.25
    assert duration.value("inference_model_request_duration_seconds_bucket", **PAIR, le="1.25") == 1
    assert duration.value("inference_model_request_duration_seconds_bucket", **PAIR, le="1.0") == 0
    errors = families["inference_model_request_error_total"]
    assert (
        errors.value("inference_model_request_error_total", **PAIR, error_code="ModelServerError")
        == 1
    )
    queue = families["inference_pool_average_queue_size"]
    assert queue.value("inference_pool_average_queue_size", name="vllm-llama3-8b-pool") == 3
