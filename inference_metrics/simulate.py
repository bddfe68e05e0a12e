"""Simulated inference traffic, so a demo exposes every seed metric with plausible values.

Pure recording: no network, no sleeping. ``simulate_request`` records one request the way an
endpoint picker would (request counted and sized when routed, latency, response size and tokens at
the end, or an error); ``simulate_pools`` sets the pool gauges.
"""

from __future__ import annotations

import random
import threading
import time

from .recorder import Recorder

__all__ = ["DEFAULT_MODELS", "run_traffic", "simulate_pools", "simulate_request"]

#: (model_name, target_model_name) pairs the demo uses: a base model and a LoRA rewrite.
DEFAULT_MODELS: tuple[tuple[str, str], ...] = (
    ("llama-3-8b", "llama-3-8b"),
    ("llama-3-8b", "llama-3-8b-lora-sql"),
    ("mistral-7b", "mistral-7b"),
)
_ERRORS = ("ModelServerError", "ResourceExhausted", "Internal")


def simulate_request(recorder: Recorder, rng: random.Random, now: float) -> None:
    """Record one simulated request that completed at ``now`` (a monotonic timestamp)."""
    if rng.random() < 0.03:
        # Rejected before the model was known, as upstream counts a bad body.
        recorder.record_request_error("", "", "BadRequest")
        return
    model, target = rng.choice(DEFAULT_MODELS)
    request_size = int(rng.lognormvariate(7.5, 1.0))
    recorder.record_request_counter(model, target)
    recorder.record_request_size(model, target, request_size)
    if rng.random() < 0.05:
        recorder.record_request_error(model, target, rng.choice(_ERRORS))
        return
    input_tokens = max(1, request_size // 4)
    output_tokens = max(1, int(rng.lognormvariate(5.0, 0.8)))
    latency = 0.05 + output_tokens * rng.uniform(0.01, 0.03)
    recorder.record_request_latency(model, target, now - latency, now)
    recorder.record_response_size(model, target, 200 + output_tokens * 4)
    recorder.record_input_tokens(model, target, input_tokens)
    recorder.record_output_tokens(model, target, output_tokens)


def simulate_pools(
    recorder: Recorder, rng: random.Random, pool_name: str = "vllm-llama3-8b"
) -> None:
    """Set the pool gauges to plausible values."""
    recorder.record_pool_kv_cache_utilization(pool_name, round(rng.uniform(0.2, 0.95), 3))
    recorder.record_pool_queue_size(pool_name, round(rng.uniform(0.0, 12.0), 2))
    recorder.record_pool_ready_pods(pool_name, 3)
    recorder.record_pool_average_running_requests(pool_name, round(rng.uniform(1.0, 30.0), 2))
    for pod in ("vllm-0", "vllm-1", "vllm-2"):
        recorder.record_pool_per_pod_queue_size(pool_name, pod, rng.randint(0, 20))


def run_traffic(
    recorder: Recorder,
    stop: threading.Event,
    *,
    rate: float = 20.0,
    seed: int | None = None,
) -> None:
    """Record simulated requests at about ``rate`` per second until ``stop`` is set."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
    rng = random.Random(seed)
    simulate_pools(recorder, rng)
    interval = 1.0 / rate
    last_pools = time.monotonic()
    while not stop.wait(interval):
        now = time.monotonic()
        simulate_request(recorder, rng, now)
        if now - last_pools >= 5.0:
            simulate_pools(recorder, rng)
            last_pools = now
