"""Simulated inference traffic, so a demo exposes every metric of its schemas with plausible values.

Pure recording: no network, no sleeping. ``simulate_request`` records one request the way an
endpoint picker would (counted, sized and running when routed; then an error, or latency, TTFT,
TPOT, inter-token latencies, response size and tokens at the end, streamed or not; now and then a
body whose usage cannot be parsed); ``simulate_pools`` sets every level of the pool and endpoint
groups from its measure's record (:mod:`inference_metrics.measures`: the call that sets it and its
typical range), and counts a failed poll and a failed extraction (a flaky model server). The same
calls feed every schema, so the demo shows whatever the recorder's schemas define; a test checks
that it shows every view of every schema.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque

from . import __version__
from .measures import ENDPOINTS, POOLS, Measure
from .recorder import Recorder

__all__ = [
    "DEFAULT_MODELS",
    "FAIRNESS_IDS",
    "PRIORITIES",
    "run_traffic",
    "simulate_pools",
    "simulate_request",
]

#: (model_name, target_model_name) pairs the demo uses: a base model and a LoRA rewrite.
DEFAULT_MODELS: tuple[tuple[str, str], ...] = (
    ("llama-3-8b", "llama-3-8b"),
    ("llama-3-8b", "llama-3-8b-lora-sql"),
    ("mistral-7b", "mistral-7b"),
)
#: The tenants (``x-llm-d-inference-fairness-id``) and priorities the demo's requests carry.
FAIRNESS_IDS = ("default-flow", "tenant-a", "tenant-b")
PRIORITIES = (0, 1, -1)
#: Pods of the simulated pool.
PODS = ("vllm-0", "vllm-1", "vllm-2")
_ERRORS = ("ModelServerError", "ResourceExhausted", "Internal")
#: Requests kept running (started, not yet finished) so the running-requests gauge is not 0.
_IN_FLIGHT = 4

_Running = tuple[str, str, str, int]


def simulate_request(
    recorder: Recorder,
    rng: random.Random,
    now: float,
    in_flight: deque[_Running] | None = None,
) -> None:
    """Record one simulated request that completed at ``now`` (a monotonic timestamp).

    With ``in_flight``, the request stays counted as running until a few later ones started.
    """
    if rng.random() < 0.03:
        # Rejected before the model was known, as upstream counts a bad body.
        recorder.record_request_error("", "", "BadRequest")
        return
    model, target = rng.choice(DEFAULT_MODELS)
    fairness_id, priority = rng.choice(FAIRNESS_IDS), rng.choice(PRIORITIES)
    request_size = int(rng.lognormvariate(7.5, 1.0))
    recorder.record_request_started(
        model, target, request_size, fairness_id=fairness_id, priority=priority
    )
    recorder.record_running_request_started(
        model, target, fairness_id=fairness_id, priority=priority
    )
    if in_flight is None:
        finish: list[_Running] = [(model, target, fairness_id, priority)]
    else:
        in_flight.append((model, target, fairness_id, priority))
        finish = [in_flight.popleft() for _ in range(max(0, len(in_flight) - _IN_FLIGHT))]
    try:
        if rng.random() < 0.05:
            recorder.record_request_failed(
                model, target, rng.choice(_ERRORS), fairness_id=fairness_id, priority=priority
            )
            return
        input_tokens = max(1, request_size // 4)
        output_tokens = max(1, int(rng.lognormvariate(5.0, 0.8)))
        parsed = rng.random() >= 0.02
        if not parsed:
            # A body whose usage could not be read: counted, recorded without tokens.
            recorder.record_response_parse_failure()
        ttft = rng.uniform(0.05, 0.6)
        per_token = rng.uniform(0.01, 0.03)
        received = now - ttft - per_token * (output_tokens - 1) - 0.001
        streaming = rng.random() < 0.7
        if streaming:
            for _ in range(min(output_tokens - 1, 8)):  # one chunk every few tokens
                recorder.record_inter_token_latency(
                    model,
                    target,
                    per_token * rng.uniform(0.5, 1.5),
                    fairness_id=fairness_id,
                    priority=priority,
                )
        recorder.record_request_completed(
            model,
            target,
            received=received,
            completed=now,
            response_size=200 + output_tokens * 4,
            input_tokens=input_tokens if parsed else 0,
            output_tokens=output_tokens if parsed else 0,
            cached_tokens=input_tokens // 2 if parsed and rng.random() < 0.5 else 0,
            first_token=received + ttft if streaming else None,
            streaming=streaming,
            fairness_id=fairness_id,
            priority=priority,
        )
    finally:
        for m, t, f, p in finish:
            recorder.record_running_request_finished(m, t, fairness_id=f, priority=p)


def _level(rng: random.Random, measure: Measure) -> float:
    low, high = measure.typical or (0.0, 1.0)
    if type(low) is int and type(high) is int:
        return rng.randint(low, high)
    return round(rng.uniform(low, high), 3)


def simulate_pools(
    recorder: Recorder, rng: random.Random, pool_name: str = "vllm-llama3-8b"
) -> None:
    """Set every pool level (averages, standard deviations, ready pods) and every pod's queue, each
    through the call its measure names, and count one failed poll and one failed extraction."""
    for measure in POOLS.measures:
        getattr(recorder, measure.calls[0])(pool_name, _level(rng, measure))
    for pod in PODS:
        for measure in ENDPOINTS.measures:
            getattr(recorder, measure.calls[0])(pool_name, pod, _level(rng, measure))
    recorder.record_data_layer_poll_error("metrics-data-source", pool_name=pool_name)
    recorder.record_data_layer_extract_error(
        "metrics-data-source", "core-metrics-extractor", pool_name=pool_name
    )


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
    recorder.record_extension_info("demo", f"inference-metrics-{__version__}")
    simulate_pools(recorder, rng)
    in_flight: deque[_Running] = deque()
    interval = 1.0 / rate
    last_pools = time.monotonic()
    while not stop.wait(interval):
        now = time.monotonic()
        simulate_request(recorder, rng, now, in_flight)
        if now - last_pools >= 5.0:
            simulate_pools(recorder, rng)
            last_pools = now
