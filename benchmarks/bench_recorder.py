"""The Recorder with the prometheus-client backend against hand-written prometheus_client code.

Two cases, each timed in one run against its hand-written equivalent, reported as ratios:

* **record**: one whole request, six updates (request counter, request size, latency, response
  size, input and output tokens), through ``Recorder(PrometheusBackend(registry))`` against the
  same six updates written with prometheus_client's ``labels()`` API, as a user would write them
  (``REQUEST_TOTAL.labels(model, target).inc()`` ...). For context, also the hand-written code with
  its six children bound once up front (``labels()`` hoisted out of the request path), and the
  event call ``Recorder.record_request_completed``.
* **record, by histogram kind and exemplars**: the six parity calls, with values that vary as a
  gateway's do (4096 requests drawn ahead: log-normal latencies around 1 s, sizes and tokens
  spread over decades; a fold's cost follows the buckets it touches), with
  ``PrometheusBackend(histograms="native")`` and ``"both"`` (the same appends; the fold also
  counts native buckets), and with ``exemplars=True`` outside any span and inside a sampled
  OpenTelemetry span (each latency observation asks for the current span; inside a sampled one
  it also keeps ``(value, ids, time)`` for the fold, which offers it to its bucket's slot), all
  interleaved with the default (classic, no exemplars) and the hand-written baseline. Inside the
  span, also the hand-written equivalent with an exemplar: ``labels()`` and the latency
  observed with ``exemplar={trace_id, span_id}`` read from the current span.
* **scrape**: ``generate_latest(registry)`` with 1000 (model, target) pairs recorded, against
  ``generate_latest`` of a registry of hand-written ``Counter``/``Histogram`` objects holding the
  same data. prometheus_client's own metrics also expose ``*_created`` series unless the
  process-wide switch is off; both settings of the switch are timed.

Run: ``.venv/bin/python -m benchmarks.bench_recorder`` (``--number N`` requests per timing run,
``--rounds R`` interleaved rounds, ``--pairs P`` for the scrape; each case keeps its best run;
``--only record`` skips the scrape).
"""

from __future__ import annotations

import argparse
import itertools
import random
from collections.abc import Callable

import prometheus_client
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import format_span_id, format_trace_id
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from inference_metrics import CATALOG, PrometheusBackend, Recorder, catalog

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
    per_call,
    recorder_request,
    same_data,
)

_MODEL_LABELS = ["model_name", "target_model_name"]


class HandWritten:
    """The seed metrics written by hand with prometheus_client, as an application would."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def histogram(spec_name: str) -> Histogram:
            spec = CATALOG[spec_name]
            assert spec.buckets is not None
            return Histogram(
                spec.name,
                spec.documentation,
                _MODEL_LABELS,
                buckets=spec.buckets,
                registry=registry,
            )

        self.request_total = Counter(
            "inference_model_request_total",
            catalog.REQUEST_TOTAL.documentation,
            _MODEL_LABELS,
            registry=registry,
        )
        self.request_error_total = Counter(
            "inference_model_request_error_total",
            catalog.REQUEST_ERROR_TOTAL.documentation,
            [*_MODEL_LABELS, "error_code"],
            registry=registry,
        )
        self.request_duration = histogram(catalog.REQUEST_DURATION.name)
        self.request_sizes = histogram(catalog.REQUEST_SIZES.name)
        self.response_sizes = histogram(catalog.RESPONSE_SIZES.name)
        self.input_tokens = histogram(catalog.INPUT_TOKENS.name)
        self.output_tokens = histogram(catalog.OUTPUT_TOKENS.name)
        self.kv_cache = Gauge(
            catalog.POOL_AVERAGE_KV_CACHE_UTILIZATION.name,
            catalog.POOL_AVERAGE_KV_CACHE_UTILIZATION.documentation,
            ["name"],
            registry=registry,
        )
        self.queue_size = Gauge(
            catalog.POOL_AVERAGE_QUEUE_SIZE.name,
            catalog.POOL_AVERAGE_QUEUE_SIZE.documentation,
            ["name"],
            registry=registry,
        )

    def request(
        self,
        model: str,
        target: str,
        received: float,
        completed: float,
        request_size: float,
        response_size: float,
        input_tokens: float,
        output_tokens: float,
    ) -> None:
        """The six updates of one request, with upstream's guards, through ``labels()``."""
        self.request_total.labels(model, target).inc()
        self.request_sizes.labels(model, target).observe(request_size)
        if completed > received:
            self.request_duration.labels(model, target).observe(completed - received)
        self.response_sizes.labels(model, target).observe(response_size)
        if input_tokens > 0:
            self.input_tokens.labels(model, target).observe(input_tokens)
        if output_tokens > 0:
            self.output_tokens.labels(model, target).observe(output_tokens)


def recorder_event(recorder: Recorder) -> Callable[[], None]:
    def request() -> None:
        recorder.record_request_started(MODEL, TARGET, REQUEST_SIZE)
        recorder.record_request_completed(
            MODEL,
            TARGET,
            received=RECEIVED,
            completed=COMPLETED,
            response_size=RESPONSE_SIZE,
            input_tokens=INPUT_TOKENS,
            output_tokens=OUTPUT_TOKENS,
        )

    return request


def labels_request(hand: HandWritten) -> Callable[[], None]:
    def request() -> None:
        hand.request(
            MODEL,
            TARGET,
            RECEIVED,
            COMPLETED,
            REQUEST_SIZE,
            RESPONSE_SIZE,
            INPUT_TOKENS,
            OUTPUT_TOKENS,
        )

    return request


def bound_children_request(hand: HandWritten) -> Callable[[], None]:
    """The hand-written code at its fastest: children bound once, outside the request path."""
    total = hand.request_total.labels(MODEL, TARGET)
    request_sizes = hand.request_sizes.labels(MODEL, TARGET)
    duration = hand.request_duration.labels(MODEL, TARGET)
    response_sizes = hand.response_sizes.labels(MODEL, TARGET)
    input_tokens = hand.input_tokens.labels(MODEL, TARGET)
    output_tokens = hand.output_tokens.labels(MODEL, TARGET)

    def request() -> None:
        total.inc()
        request_sizes.observe(REQUEST_SIZE)
        if COMPLETED > RECEIVED:
            duration.observe(COMPLETED - RECEIVED)
        response_sizes.observe(RESPONSE_SIZE)
        if INPUT_TOKENS > 0:
            input_tokens.observe(INPUT_TOKENS)
        if OUTPUT_TOKENS > 0:
            output_tokens.observe(OUTPUT_TOKENS)

    return request


def fill(recorder: Recorder, hand: HandWritten, pairs: int, seed: int = 1) -> None:
    """The same traffic into both: ``pairs`` (model, target) pairs, a few requests each."""
    rng = random.Random(seed)
    record_requests(recorder, hand, pairs, rng)
    for p in range(4):
        utilisation, queue = rng.random(), rng.randint(0, 50)
        recorder.record_pool_kv_cache_utilization(f"pool-{p}", utilisation)
        recorder.record_pool_queue_size(f"pool-{p}", queue)
        hand.kv_cache.labels(f"pool-{p}").set(utilisation)
        hand.queue_size.labels(f"pool-{p}").set(queue)


def record_requests(recorder: Recorder, hand: HandWritten, pairs: int, rng: random.Random) -> None:
    """The requests of :func:`fill` (no pool gauges): three per pair, an error every tenth."""
    for i in range(pairs):
        model = f"model-{i // 4}"
        target = f"{model}-lora-{i % 4}"
        for _ in range(3):
            received = 1000.0
            completed = received + rng.uniform(0.05, 30.0)
            sizes = (rng.randint(200, 20000), rng.randint(200, 200000))
            tokens = (rng.randint(1, 4000), rng.randint(1, 2000))
            recorder.record_request_counter(model, target)
            recorder.record_request_size(model, target, sizes[0])
            recorder.record_request_latency(model, target, received, completed)
            recorder.record_response_size(model, target, sizes[1])
            recorder.record_input_tokens(model, target, tokens[0])
            recorder.record_output_tokens(model, target, tokens[1])
            hand.request(model, target, received, completed, *sizes, *tokens)
        if i % 10 == 0:
            recorder.record_request_error(model, target, "ModelServerError")
            hand.request_error_total.labels(model, target, "ModelServerError").inc()


#: (received, completed, request size, response size, input tokens, output tokens) of a request.
Varied = tuple[float, float, float, float, float, float]


def varied_requests(count: int = 4096, seed: int = 22) -> list[Varied]:
    """``count`` requests whose numbers vary as a gateway's do."""
    rng = random.Random(seed)
    return [
        (
            1000.0,
            1000.0 + rng.lognormvariate(0.0, 1.0),
            float(int(rng.lognormvariate(7.0, 1.5))),
            float(int(rng.lognormvariate(8.0, 1.5))),
            float(1 + int(rng.lognormvariate(5.0, 1.2))),
            float(1 + int(rng.lognormvariate(5.0, 1.0))),
        )
        for _ in range(count)
    ]


def varied_parity(recorder: Recorder, requests: list[Varied]) -> Callable[[], None]:
    """The six parity calls, each request the next of ``requests`` (round and round)."""
    next_request = itertools.cycle(requests).__next__

    def request() -> None:
        received, completed, request_size, response_size, inputs, outputs = next_request()
        recorder.record_request_counter(MODEL, TARGET)
        recorder.record_request_size(MODEL, TARGET, request_size)
        recorder.record_request_latency(MODEL, TARGET, received, completed)
        recorder.record_response_size(MODEL, TARGET, response_size)
        recorder.record_input_tokens(MODEL, TARGET, inputs)
        recorder.record_output_tokens(MODEL, TARGET, outputs)

    return request


def varied_labels(
    hand: HandWritten, requests: list[Varied], traced: bool = False
) -> Callable[[], None]:
    """The hand-written six updates on the same varied requests; ``traced``: the latency with
    the current span's exemplar, read and formatted as an application would."""
    next_request = itertools.cycle(requests).__next__

    def request() -> None:
        received, completed, request_size, response_size, inputs, outputs = next_request()
        hand.request_total.labels(MODEL, TARGET).inc()
        hand.request_sizes.labels(MODEL, TARGET).observe(request_size)
        if completed > received:
            duration = hand.request_duration.labels(MODEL, TARGET)
            context = trace.get_current_span().get_span_context() if traced else None
            if context is not None and context.trace_flags.sampled:
                duration.observe(
                    completed - received,
                    exemplar={
                        "trace_id": format_trace_id(context.trace_id),
                        "span_id": format_span_id(context.span_id),
                    },
                )
            else:
                duration.observe(completed - received)
        hand.response_sizes.labels(MODEL, TARGET).observe(response_size)
        if inputs > 0:
            hand.input_tokens.labels(MODEL, TARGET).observe(inputs)
        if outputs > 0:
            hand.output_tokens.labels(MODEL, TARGET).observe(outputs)

    return request


def record_kinds(rounds: int, number: int) -> None:
    """The six parity calls by histogram kind and with exemplars, outside and inside a span."""
    requests = varied_requests()

    def parity(**options: object) -> Callable[[], None]:
        backend = PrometheusBackend(CollectorRegistry(), **options)  # type: ignore[arg-type]
        return varied_parity(Recorder(backend), requests)

    hand = HandWritten(CollectorRegistry())
    outside: dict[str, Callable[[], None]] = {
        "hand-written `labels()`, 6 updates": varied_labels(hand, requests),
        "`Recorder`, 6 parity calls (classic, no exemplars)": parity(),
        '`histograms="native"`': parity(histograms="native"),
        '`histograms="both"`': parity(histograms="both"),
        "`exemplars=True`, outside any span": parity(exemplars=True),
    }
    best = best_per_call(outside, rounds=rounds, number=number)
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("bench")
    inside: dict[str, Callable[[], None]] = {
        "hand-written `labels()`, 6 updates, in a sampled span": varied_labels(hand, requests),
        "hand-written, the latency with the span's exemplar": varied_labels(
            hand, requests, traced=True
        ),
        "`Recorder`, 6 parity calls (no exemplars), in a sampled span": parity(),
        "`exemplars=True`, in a sampled span": parity(exemplars=True),
        '`histograms="native", exemplars=True`, in a sampled span': parity(
            histograms="native", exemplars=True
        ),
    }
    with tracer.start_as_current_span("request"):
        best.update(best_per_call(inside, rounds=rounds, number=number))
    print()
    print(
        f"## record by histogram kind and exemplars, varied values (best of {rounds} rounds x 3 "
        f"x {number})"
    )
    print("| one whole request | per request | x `labels()` |")
    print("|---|---:|---:|")
    for name, seconds in best.items():
        base = best[
            "hand-written `labels()`, 6 updates, in a sampled span"
            if "span" in name and "outside" not in name
            else "hand-written `labels()`, 6 updates"
        ]
        print(_row(name, seconds, base, 1e-6, "µs"))


def _created_series(on: bool) -> None:
    """prometheus_client's process-wide ``*_created`` switch (read at every collect)."""
    if on:
        prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]
    else:
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


def _row(label: str, seconds: float, base: float, unit: float, unit_name: str) -> str:
    return f"| {label} | {seconds / unit:.1f} {unit_name} | {seconds / base:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="requests per timing run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--pairs", type=int, default=1000, help="(model, target) pairs scraped")
    parser.add_argument("--scrapes", type=int, default=2, help="scrapes per timing run")
    parser.add_argument("--only", choices=("record",), help="time the record cases only")
    args = parser.parse_args()

    recorder = Recorder(PrometheusBackend(CollectorRegistry()))
    events = Recorder(PrometheusBackend(CollectorRegistry()))
    hand = HandWritten(CollectorRegistry())
    cases: dict[str, Callable[[], None]] = {
        "hand-written `labels()`, 6 updates": labels_request(hand),
        "hand-written, children bound once": bound_children_request(hand),
        "`Recorder`, 6 parity calls": recorder_request(recorder),
        "`Recorder`, `record_request_started` + `_completed`": recorder_event(events),
    }
    best = best_per_call(cases, rounds=args.rounds, number=args.number)

    print(f"## record: one whole request (best of {args.rounds} rounds x 3 x {args.number})")
    print("| one whole request | per request | x `labels()` |")
    print("|---|---:|---:|")
    base = best["hand-written `labels()`, 6 updates"]
    for name, seconds in best.items():
        print(_row(name, seconds, base, 1e-6, "µs"))
    record_kinds(args.rounds, args.number)
    if args.only == "record":
        return

    ours_registry, hand_registry = CollectorRegistry(), CollectorRegistry()
    ours = Recorder(PrometheusBackend(ours_registry))
    hand_full = HandWritten(hand_registry)
    fill(ours, hand_full, args.pairs)
    ours_bytes = len(generate_latest(ours_registry))
    same_data(ours_registry, hand_registry)

    def scrape(registry: CollectorRegistry) -> Callable[[], object]:
        return lambda: generate_latest(registry)

    scrapes: dict[str, float] = {}
    try:
        for _ in range(args.rounds):
            _created_series(True)
            hand_created_bytes = len(generate_latest(hand_registry))
            for name, registry in (
                ("hand-written, `*_created` on (prometheus_client default)", hand_registry),
                ("`Recorder(PrometheusBackend)`", ours_registry),
            ):
                t = per_call(scrape(registry), number=args.scrapes, repeat=3)
                scrapes[name] = min(scrapes.get(name, float("inf")), t)
            _created_series(False)
            hand_bytes = len(generate_latest(hand_registry))
            name = "hand-written, `*_created` off"
            t = per_call(scrape(hand_registry), number=args.scrapes, repeat=3)
            scrapes[name] = min(scrapes.get(name, float("inf")), t)
    finally:
        _created_series(True)

    print()
    print(f"## scrape: generate_latest with {args.pairs} (model, target) pairs")
    print(
        f"(exposition bytes: ours {ours_bytes}, hand-written {hand_created_bytes} with "
        f"`*_created`, {hand_bytes} without)"
    )
    print("| `generate_latest` of | per scrape | x hand-written (`_created` off) |")
    print("|---|---:|---:|")
    base = scrapes["hand-written, `*_created` off"]
    for name, seconds in sorted(scrapes.items(), key=lambda item: -item[1]):
        print(_row(name, seconds, base, 1e-3, "ms"))


if __name__ == "__main__":
    main()
