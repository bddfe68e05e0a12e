"""The cost of a schema: one whole request under ``llm-d-router`` against hand-written code.

Under ``llm-d-router`` the six parity updates of a request (counter, request size, latency,
response size, input and output tokens) go to the ``llm_d_epp_*`` metrics (labels model, target,
fairness id, priority) and to their deprecated GIE twins (model, target, and priority on the
counter): twelve updates. The hand-written equivalent is the same twelve updates with
prometheus_client's ``labels()`` API, as an application emitting both names would write them. Both
sides record the same values, checked first (same families, same samples); the Recorder also
bounds the fairness id and priority values, which the hand-written code does not.

Run: ``.venv/bin/python -m benchmarks.bench_schemas`` (``--number N`` requests per timing run,
``--rounds R`` interleaved rounds; each case keeps its best run).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.schemas import get_schema
from inference_metrics.spec import MetricSpec

from .common import (
    COMPLETED,
    INPUT_TOKENS,
    MODEL,
    OUTPUT_TOKENS,
    RECEIVED,
    REQUEST_SIZE,
    RESPONSE_SIZE,
    TARGET,
    best_per_call,
    print_per_request,
    samples,
)

FAIRNESS_ID, PRIORITY = "tenant-a", 1
SCHEMA = get_schema("llm-d-router")


class HandWritten:
    """The twelve metrics of a request under llm-d-router, written with prometheus_client."""

    def __init__(self, registry: CollectorRegistry) -> None:
        specs = {spec.name: spec for spec in SCHEMA.catalog}

        def counter(name: str) -> Counter:
            spec: MetricSpec = specs[name]
            return Counter(name, spec.documentation, list(spec.labels), registry=registry)

        def histogram(name: str) -> Histogram:
            spec: MetricSpec = specs[name]
            assert spec.buckets is not None
            return Histogram(
                name,
                spec.documentation,
                list(spec.labels),
                buckets=spec.buckets,
                registry=registry,
            )

        self.total = counter("llm_d_epp_request_total")
        self.total_twin = counter("inference_objective_request_total")
        self.duration = histogram("llm_d_epp_request_duration_seconds")
        self.duration_twin = histogram("inference_objective_request_duration_seconds")
        self.size = histogram("llm_d_epp_request_size_bytes")
        self.size_twin = histogram("inference_objective_request_sizes")
        self.response = histogram("llm_d_epp_response_size_bytes")
        self.response_twin = histogram("inference_objective_response_sizes")
        self.input = histogram("llm_d_epp_request_input_tokens")
        self.input_twin = histogram("inference_objective_input_tokens")
        self.output = histogram("llm_d_epp_request_output_tokens")
        self.output_twin = histogram("inference_objective_output_tokens")

    def request(self) -> None:
        m, t, f, p = MODEL, TARGET, FAIRNESS_ID, str(PRIORITY)
        self.total.labels(m, t, f, p).inc()
        self.total_twin.labels(m, t, p).inc()
        self.size.labels(m, t, f, p).observe(REQUEST_SIZE)
        self.size_twin.labels(m, t).observe(REQUEST_SIZE)
        if COMPLETED > RECEIVED:
            self.duration.labels(m, t, f, p).observe(COMPLETED - RECEIVED)
            self.duration_twin.labels(m, t).observe(COMPLETED - RECEIVED)
        self.response.labels(m, t, f, p).observe(RESPONSE_SIZE)
        self.response_twin.labels(m, t).observe(RESPONSE_SIZE)
        if INPUT_TOKENS > 0:
            self.input.labels(m, t, f, p).observe(INPUT_TOKENS)
            self.input_twin.labels(m, t).observe(INPUT_TOKENS)
        if OUTPUT_TOKENS > 0:
            self.output.labels(m, t, f, p).observe(OUTPUT_TOKENS)
            self.output_twin.labels(m, t).observe(OUTPUT_TOKENS)


def recorder_request(recorder: Recorder) -> Callable[[], None]:
    f, p = FAIRNESS_ID, PRIORITY

    def request() -> None:
        recorder.record_request_counter(MODEL, TARGET, fairness_id=f, priority=p)
        recorder.record_request_size(MODEL, TARGET, REQUEST_SIZE, fairness_id=f, priority=p)
        recorder.record_request_latency(
            MODEL, TARGET, RECEIVED, COMPLETED, fairness_id=f, priority=p
        )
        recorder.record_response_size(MODEL, TARGET, RESPONSE_SIZE, fairness_id=f, priority=p)
        recorder.record_input_tokens(MODEL, TARGET, INPUT_TOKENS, fairness_id=f, priority=p)
        recorder.record_output_tokens(MODEL, TARGET, OUTPUT_TOKENS, fairness_id=f, priority=p)

    return request


def check_same_data() -> None:
    ours, hand = CollectorRegistry(), CollectorRegistry()
    recorder_request(Recorder(PrometheusBackend(ours), schema=SCHEMA))()
    HandWritten(hand).request()
    assert samples(ours) == samples(hand), samples(ours) ^ samples(hand)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="requests per timing run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    check_same_data()

    hand = HandWritten(CollectorRegistry())
    cases: dict[str, Callable[[], None]] = {
        "hand-written `labels()`, 12 updates": hand.request,
        "`Recorder(schema='llm-d-router')`, 6 parity calls": recorder_request(
            Recorder(PrometheusBackend(CollectorRegistry()), schema=SCHEMA)
        ),
        "`Recorder(schema='llm-d-router-without-deprecated')`, the same": recorder_request(
            Recorder(
                PrometheusBackend(CollectorRegistry()), schema=SCHEMA.without_deprecated_twins()
            )
        ),
        "`Recorder()` (gie-v0.3), the same 6 calls": recorder_request(
            Recorder(PrometheusBackend(CollectorRegistry()))
        ),
    }
    best = best_per_call(cases, rounds=args.rounds, number=args.number)
    rounds = f"best of {args.rounds} rounds x 3 x {args.number}"
    title = f"## one whole request under llm-d-router ({rounds})"
    print_per_request(title, best, "hand-written `labels()`, 12 updates")


if __name__ == "__main__":
    main()
