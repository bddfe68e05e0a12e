"""The picker's internals under llm-d-router against hand-written prometheus_client code.

Two cases, each timed in one run against its hand-written equivalent, reported as ratios:

* **flow-control cycle**: one request through the flow-control layer: its enqueue duration, queue
  size and bytes up, a dispatch cycle, queue size and bytes down, its queue duration and the
  layer's request count (8 Recorder calls, upstream's ``IncFlowControlQueueSize`` ... in the order
  upstream's controller makes them). Under ``llm-d-router`` each writes the ``llm_d_epp_*`` metric
  and its ``inference_extension_*`` twin, but the request count: 15 updates.
* **scheduler attempt**: one scheduling run: four plugins' latencies (a filter, two scorers, a
  picker), the end-to-end latency and the attempt with its chosen endpoint (6 calls, 12 updates).

The hand-written side makes the same updates with prometheus_client's ``labels()`` API, as an
application emitting both names would write them; both sides' expositions are checked equal
first. The Recorder also validates every value and bounds the fairness id and the label sets,
which the hand-written code does not. The same calls without the twins
(``llm-d-router-without-deprecated``) are timed in the same run, for context.

Run: ``.venv/bin/python -m benchmarks.bench_picker`` (``--number N`` cycles per timing run,
``--rounds R`` interleaved rounds; each case keeps its best run).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.schemas import get_schema

from .common import MODEL, TARGET, best_per_call, print_per_request, samples

SCHEMA = get_schema("llm-d-router")
FAIRNESS_ID, PRIORITY, POOL, OUTCOME = "tenant-a", "1", "pool-1", "Dispatched"
REQUEST_BYTES = 1200
ENQUEUE, DISPATCH, QUEUED = 0.00012, 0.0003, 0.042
PLUGINS = (
    ("Filter", "decode-filter", "decode-filter", 0.00004),
    ("Scorer", "queue-scorer", "queue-scorer", 0.00011),
    ("Scorer", "kv-cache-utilization-scorer", "kv-cache-utilization-scorer", 0.00009),
    ("Picker", "max-score-picker", "max-score-picker", 0.00002),
)
SCHEDULING = 0.0003
ENDPOINT = ("vllm-0", "inference", "8000")
E, X = "llm_d_epp_", "inference_extension_"


class HandWritten:
    """The picker's metrics under llm-d-router's names and their twins, with prometheus_client."""

    def __init__(self, registry: CollectorRegistry) -> None:
        specs = {spec.name: spec for spec in SCHEMA.catalog}

        def metric(name: str) -> Counter | Gauge | Histogram:
            spec = specs[name]
            labels, kind = list(spec.labels), spec.kind.value
            if kind == "counter":
                return Counter(name, spec.documentation, labels, registry=registry)
            if kind == "gauge":
                return Gauge(name, spec.documentation, labels, registry=registry)
            assert spec.buckets is not None
            return Histogram(
                name, spec.documentation, labels, buckets=spec.buckets, registry=registry
            )

        self.m: dict[str, Any] = {name: metric(name) for name in specs if _picker(name)}

    def flow_control_cycle(self) -> None:
        m, f, p, o = self.m, FAIRNESS_ID, PRIORITY, OUTCOME
        flow = (f, p, POOL, MODEL, TARGET)
        for prefix in (E, X):
            m[prefix + "flow_control_request_enqueue_duration_seconds"].labels(f, p, o).observe(
                ENQUEUE
            )
        for prefix in (E, X):
            m[prefix + "flow_control_queue_size"].labels(*flow).inc()
        for prefix in (E, X):
            m[prefix + "flow_control_queue_bytes"].labels(*flow).inc(REQUEST_BYTES)
        for prefix in (E, X):
            m[prefix + "flow_control_dispatch_cycle_duration_seconds"].observe(DISPATCH)
        for prefix in (E, X):
            m[prefix + "flow_control_queue_size"].labels(*flow).dec()
        for prefix in (E, X):
            m[prefix + "flow_control_queue_bytes"].labels(*flow).dec(REQUEST_BYTES)
        for prefix in (E, X):
            m[prefix + "flow_control_request_queue_duration_seconds"].labels(
                f, p, o, POOL, MODEL, TARGET
            ).observe(QUEUED)
        m[E + "flow_control_requests_total"].labels(o, p, POOL).inc()

    def scheduler_attempt(self) -> None:
        m = self.m
        for extension_point, plugin_type, plugin_name, took in PLUGINS:
            for prefix in (E, X):
                m[prefix + "plugin_duration_seconds"].labels(
                    extension_point, plugin_type, plugin_name
                ).observe(took)
        for prefix in (E, X):
            m[prefix + "scheduler_e2e_duration_seconds"].observe(SCHEDULING)
        for prefix in (E, X):
            m[prefix + "scheduler_attempts_total"].labels("success", TARGET, *ENDPOINT).inc()


def _picker(name: str) -> bool:
    return any(
        part in name
        for part in ("flow_control_", "plugin_duration", "scheduler_e2e", "scheduler_attempts")
    ) and not any(part in name for part in ("saturation", "capacity", "stale", "reclaim", "revoc"))


def flow_control_cycle(recorder: Recorder) -> Callable[[], None]:
    f, p, o = FAIRNESS_ID, PRIORITY, OUTCOME
    flow = (f, p, POOL, MODEL, TARGET)

    def cycle() -> None:
        recorder.record_flow_control_request_enqueue_duration(f, p, o, ENQUEUE)
        recorder.inc_flow_control_queue_size(*flow)
        recorder.add_flow_control_queue_bytes(*flow, REQUEST_BYTES)
        recorder.record_flow_control_dispatch_cycle_duration(DISPATCH)
        recorder.dec_flow_control_queue_size(*flow)
        recorder.sub_flow_control_queue_bytes(*flow, REQUEST_BYTES)
        recorder.record_flow_control_request_queue_duration(f, p, o, POOL, MODEL, TARGET, QUEUED)
        recorder.inc_flow_control_requests_total(o, p, POOL)

    return cycle


def scheduler_attempt(recorder: Recorder) -> Callable[[], None]:
    def attempt() -> None:
        for extension_point, plugin_type, plugin_name, took in PLUGINS:
            recorder.record_plugin_processing_latency(
                extension_point, plugin_type, plugin_name, took
            )
        recorder.record_scheduler_e2e_latency(SCHEDULING)
        recorder.record_scheduler_attempt(None, TARGET, ENDPOINT)

    return attempt


def check_same_data() -> None:
    """Both sides expose the same samples after one cycle and one attempt."""
    ours, hand = CollectorRegistry(), CollectorRegistry()
    recorder = Recorder(PrometheusBackend(ours), schema=SCHEMA)
    flow_control_cycle(recorder)()
    scheduler_attempt(recorder)()
    written = HandWritten(hand)
    written.flow_control_cycle()
    written.scheduler_attempt()
    assert samples(ours) == samples(hand), samples(ours) ^ samples(hand)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="cycles per timing run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    check_same_data()

    hand = HandWritten(CollectorRegistry())
    twins = Recorder(PrometheusBackend(CollectorRegistry()), schema=SCHEMA)
    alone = Recorder(
        PrometheusBackend(CollectorRegistry()), schema=SCHEMA.without_deprecated_twins()
    )
    for title, handwritten, ours, calls in (
        ("flow-control cycle", hand.flow_control_cycle, flow_control_cycle, "8 calls, 15 updates"),
        ("scheduler attempt", hand.scheduler_attempt, scheduler_attempt, "6 calls, 12 updates"),
    ):
        cases: dict[str, Callable[[], None]] = {
            "hand-written `labels()`": handwritten,
            f"`Recorder(schema='llm-d-router')`, {calls}": ours(twins),
            "`Recorder(schema='llm-d-router-without-deprecated')`, the same calls": ours(alone),
        }
        best = best_per_call(cases, rounds=args.rounds, number=args.number)
        print_per_request(
            f"## one {title} under llm-d-router (best of {args.rounds} rounds x 3 x {args.number})",
            best,
            "hand-written `labels()`",
        )
        print()


if __name__ == "__main__":
    main()
