"""Simulated inference traffic, so a demo exposes every metric of its schemas with plausible values.

Pure recording: no network, no sleeping. ``simulate_request`` records one request the way an
endpoint picker would, through every recording call of its path:

* flow control: enqueued (enqueue duration, queue size and bytes up), held for a while when the
  caller keeps a queue (``queued``), then dispatched or, now and then, rejected for capacity
  (queue duration by outcome, queue size and bytes down, the layer's request count); a short-lived
  tenant's flow is collected once idle (``delete_flow_control_flow_series``); each dispatch is a
  dispatch cycle; now and then capacity is reclaimed (revocations issued, their outcomes and
  confirmation times, the reclaim target and pending reclaim);
* scheduling: the picker's request processing, a scheduling attempt with its plugins (a filter,
  two scorers, a picker) and its end-to-end latency, now and then a failed attempt; a model rewrite
  where the target differs from the model;
* the request itself: counted, sized and running when routed; then an error, or latency, TTFT,
  TPOT, inter-token latencies, response size and tokens at the end, streamed or not, and the
  picker's response processing; now and then a body whose usage cannot be parsed.

``simulate_pools`` sets every level of the pool and endpoint groups from its measure's record
(:mod:`inference_metrics.measures`: the call that sets it and its typical range), the flow-control
layer's levels (saturation per stage, stale endpoints, capacity per band and global), and counts a
failed poll, a failed extraction and a plugin's undeclared data access; every third call the pool
has no prefill stage, whose saturation series is then deleted. The same calls feed every schema,
so the demo shows whatever the recorder's schemas define; a test checks that it shows every view
of every schema.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager

from . import __version__, measures
from .measures import ENDPOINTS, POOLS, Measure
from .recorder import Recorder

__all__ = [
    "DEFAULT_MODELS",
    "FAIRNESS_IDS",
    "POOL_NAME",
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
#: The simulated pool and its pods.
POOL_NAME = "vllm-llama3-8b"
PODS = ("vllm-0", "vllm-1", "vllm-2")
NAMESPACE = "inference"
PORT = "8000"
_ERRORS = ("ModelServerError", "ResourceExhausted", "Internal")
#: Requests kept running (started, not yet finished) so the running-requests gauge is not 0.
_IN_FLIGHT = 4
#: Requests kept queued in the flow-control layer, so its queue gauges are not 0.
_QUEUED = 6
#: A tenant whose flow comes and goes: collected (its series deleted) once idle.
BURST_TENANT = "tenant-burst"
#: The scheduler's plugins: (extension point, plugin type, plugin name), in the order they run.
PLUGINS = (
    ("Filter", "decode-filter", "decode-filter"),
    ("Scorer", "queue-scorer", "queue-scorer"),
    ("Scorer", "kv-cache-utilization-scorer", "kv-cache-utilization-scorer"),
    ("Picker", "max-score-picker", "max-score-picker"),
)
#: The rewrite rule that sends part of a model's traffic to its LoRA adapter.
REWRITE_RULE = "llama-3-8b-sql-split"
_STAGES = ("prefill", "decode")
_DETECTOR = "utilization-detector"

_Running = tuple[str, str, str, int]
#: A queued request: fairness id, priority, model, target, bytes, enqueued at.
_Queued = tuple[str, str, str, str, int, float]


def _flow_control(
    recorder: Recorder,
    rng: random.Random,
    now: float,
    request: _Queued,
    queued: deque[_Queued] | None,
) -> bool:
    """Take ``request`` through the flow-control layer; False when it is rejected for capacity.

    With ``queued``, it waits there (the queue gauges stay up) until a few later ones came."""
    fairness_id, priority, model, target, size, _ = request
    flow = (fairness_id, priority, POOL_NAME, model, target)
    rejected = rng.random() < 0.02
    outcome = "RejectedCapacity" if rejected else "Dispatched"
    recorder.record_flow_control_request_enqueue_duration(
        fairness_id, priority, outcome, rng.uniform(0.00005, 0.002)
    )
    if rejected:
        recorder.record_flow_control_request_queue_duration(
            *flow[:2], outcome, *flow[2:], rng.uniform(0.0001, 0.001)
        )
        recorder.inc_flow_control_requests_total(outcome, priority, POOL_NAME)
        return False
    recorder.inc_flow_control_queue_size(*flow)
    recorder.add_flow_control_queue_bytes(*flow, size)
    if queued is None or fairness_id == BURST_TENANT:
        leaving = [request]
    else:
        queued.append(request)
        leaving = [queued.popleft() for _ in range(max(0, len(queued) - _QUEUED))]
    for f, p, model_name, target_name, held, since in leaving:
        start = rng.uniform(0.00005, 0.0005)
        recorder.record_flow_control_dispatch_cycle_duration(start)
        waited = max(0.0, now - since) + start
        recorder.record_flow_control_request_queue_duration(
            f, p, "Dispatched", POOL_NAME, model_name, target_name, waited
        )
        recorder.dec_flow_control_queue_size(f, p, POOL_NAME, model_name, target_name)
        recorder.sub_flow_control_queue_bytes(f, p, POOL_NAME, model_name, target_name, held)
        recorder.inc_flow_control_requests_total("Dispatched", p, POOL_NAME)
    if fairness_id == BURST_TENANT:  # its only request is gone: the registry collects the flow
        recorder.delete_flow_control_flow_series(fairness_id, priority)
    if rng.random() < 0.1:
        _reclaim(recorder, rng, priority)
    return True


def _reclaim(recorder: Recorder, rng: random.Random, priority: str) -> None:
    """A reclamation decision: revocations issued for the demand band, their outcomes."""
    target = round(rng.uniform(0.01, 0.3), 3)
    recorder.record_flow_control_reclaim_target(POOL_NAME, target)
    issued = rng.randint(1, 2)
    recorder.record_flow_control_revocations_issued(POOL_NAME, priority, issued)
    recorder.record_flow_control_pending_reclaim(POOL_NAME, round(target / 2, 3))
    timed_out = int(rng.random() < 0.1)
    recorder.record_flow_control_revocations(POOL_NAME, "confirmed", issued - timed_out)
    recorder.record_flow_control_revocations(POOL_NAME, "timed_out", timed_out)
    for _ in range(issued - timed_out):
        recorder.record_flow_control_revocation_confirmation_duration(
            POOL_NAME, rng.uniform(0.01, 0.5)
        )
    recorder.record_flow_control_pending_reclaim(POOL_NAME, 0.0)


def _schedule(recorder: Recorder, rng: random.Random, model: str, target: str) -> bool:
    """The picker's request processing and one scheduling attempt with its plugins; False when
    the attempt fails (no endpoint)."""
    total = 0.0
    for extension_point, plugin_type, plugin_name in PLUGINS:
        took = rng.uniform(0.00002, 0.0008)
        total += took
        recorder.record_plugin_processing_latency(extension_point, plugin_type, plugin_name, took)
    recorder.record_scheduler_e2e_latency(total + 0.00001)
    recorder.record_request_processing_latency(total + rng.uniform(0.0005, 0.003))
    if rng.random() < 0.01:
        recorder.record_scheduler_attempt(RuntimeError("no endpoint fits"), target, None)
        return False
    endpoint = (rng.choice(PODS), NAMESPACE, PORT)
    recorder.record_scheduler_attempt(None, target, endpoint)
    if model != target:
        recorder.record_inference_model_rewrite_decision(REWRITE_RULE, model, target)
    return True


def simulate_request(
    recorder: Recorder,
    rng: random.Random,
    now: float,
    in_flight: deque[_Running] | None = None,
    *,
    queued: deque[_Queued] | None = None,
) -> None:
    """Record one simulated request that completed at ``now`` (a monotonic timestamp).

    With ``in_flight``, the request stays counted as running until a few later ones started; with
    ``queued``, it stays in the flow-control queue until a few later ones came.
    """
    if rng.random() < 0.03:
        # Rejected before the model was known, as upstream counts a bad body.
        recorder.record_request_error("", "", "BadRequest")
        return
    model, target = rng.choice(DEFAULT_MODELS)
    fairness_id, priority = rng.choice(FAIRNESS_IDS), rng.choice(PRIORITIES)
    if rng.random() < 0.01:
        fairness_id = BURST_TENANT
    request_size = int(rng.lognormvariate(7.5, 1.0))
    entered = (fairness_id, str(priority), model, target, request_size, now - 0.05)
    if not _flow_control(recorder, rng, now, entered, queued):
        recorder.record_request_error(
            model, target, "ResourceExhausted", fairness_id=fairness_id, priority=priority
        )
        return
    if not _schedule(recorder, rng, model, target):
        recorder.record_request_error(
            model, target, "ServiceUnavailable", fairness_id=fairness_id, priority=priority
        )
        return
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
                gap = per_token * rng.uniform(0.5, 1.5)
                recorder.record_inter_token_latency(model, target, fairness_id, priority, gap)
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
        recorder.record_response_processing_latency(rng.uniform(0.0001, 0.002))
    finally:
        for m, t, f, p in finish:
            recorder.record_running_request_finished(m, t, fairness_id=f, priority=p)


def _level(rng: random.Random, measure: Measure) -> float:
    low, high = measure.typical or (0.0, 1.0)
    if type(low) is int and type(high) is int:
        return rng.randint(low, high)
    return round(rng.uniform(low, high), 3)


def simulate_pools(
    recorder: Recorder, rng: random.Random, pool_name: str = POOL_NAME, *, prefill: bool = True
) -> None:
    """Set every pool level (averages, standard deviations, ready pods) and every pod's queue, each
    through the call its measure names; the flow-control layer's levels (saturation per stage,
    stale endpoints, capacity per priority band and global); count one failed poll, one failed
    extraction and one undeclared data access. Without ``prefill`` the pool has no prefill stage:
    its saturation series is deleted, as upstream's dispatch cycle does."""
    for measure in POOLS.measures:
        getattr(recorder, measure.calls[0])(pool_name, _level(rng, measure))
    for pod in PODS:
        for measure in ENDPOINTS.measures:
            getattr(recorder, measure.calls[0])(pool_name, pod, _level(rng, measure))
    recorder.record_data_layer_poll_error("metrics-data-source", pool_name=pool_name)
    recorder.record_data_layer_extract_error(
        "metrics-data-source", "core-metrics-extractor", pool_name=pool_name
    )
    recorder.record_plugin_data_scope_violation(*PLUGINS[1], "read")
    stages = {stage: _level(rng, measures.POOL_SATURATION) for stage in _STAGES}
    if not prefill:
        del stages["prefill"]
        recorder.delete_flow_control_pool_saturation(pool_name, "prefill")
    for stage, saturation in stages.items():
        recorder.record_flow_control_pool_saturation(pool_name, stage, saturation)
    recorder.record_flow_control_pool_saturation(pool_name, "effective", max(stages.values()))
    recorder.record_flow_control_stale_endpoints(
        _DETECTOR, int(_level(rng, measures.STALE_ENDPOINTS))
    )
    for priority in PRIORITIES:
        band = str(priority)
        requests, size = (
            _level(rng, measures.CAPACITY_REQUESTS),
            _level(rng, measures.CAPACITY_BYTES),
        )
        recorder.record_flow_control_capacity_utilization_requests(band, pool_name, requests)
        recorder.record_flow_control_capacity_utilization_bytes(band, pool_name, size)
    recorder.record_flow_control_global_capacity_utilization_requests(
        pool_name, _level(rng, measures.GLOBAL_CAPACITY_REQUESTS)
    )
    recorder.record_flow_control_global_capacity_utilization_bytes(
        pool_name, _level(rng, measures.GLOBAL_CAPACITY_BYTES)
    )


def run_traffic(
    recorder: Recorder,
    stop: threading.Event,
    *,
    rate: float = 20.0,
    seed: int | None = None,
    traced: Callable[[str], AbstractContextManager[object]] | None = None,
) -> None:
    """Record simulated requests at about ``rate`` per second until ``stop`` is set; with
    ``traced`` (an OpenTelemetry tracer's ``start_as_current_span``), each request inside a span
    of its own, so its latencies can carry the span's exemplar."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
    rng = random.Random(seed)
    recorder.record_extension_info("demo", f"inference-metrics-{__version__}")
    simulate_pools(recorder, rng)
    in_flight: deque[_Running] = deque()
    queued: deque[_Queued] = deque()
    interval = 1.0 / rate
    last_pools = time.monotonic()
    rounds = 0
    while not stop.wait(interval):
        now = time.monotonic()
        if traced is None:
            simulate_request(recorder, rng, now, in_flight, queued=queued)
        else:
            with traced("inference request"):
                simulate_request(recorder, rng, now, in_flight, queued=queued)
        if now - last_pools >= 5.0:
            rounds += 1
            simulate_pools(recorder, rng, prefill=rounds % 3 != 0)
            last_pools = now
