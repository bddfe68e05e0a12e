"""What reading the current OpenTelemetry span costs a record call when exemplars are on.

With exemplars on, a histogram observation asks for the current span (``span_reader()``'s
function: OpenTelemetry's ``get_current_span``, its span context, the sampled flag). Timed per
call, each case alone and interleaved:

* the lookup **outside any span**, **inside an unsampled span** and **inside a sampled span**;
* inside a sampled span, what a record call would add: the lookup, ``time.time()`` and the
  ``(value, ids, timestamp)`` kept for the fold (``ExemplarSlots.offer_span`` keeps the ids and
  makes the exemplar only when it is read); and, to show why it is deferred, the lookup plus
  the exemplar made at once (``trace_exemplar``: checks, two hex formats, a named tuple);
* for scale: the store's ``HistogramSeries.observe`` (what one observation costs without
  exemplars), and the hand-written prometheus_client equivalent inside a sampled span:
  ``get_current_span().get_span_context()``, OpenTelemetry's ``format_trace_id`` /
  ``format_span_id`` and ``Histogram.observe(value, exemplar={...})``, against which the last
  column is a ratio.

Run: ``.venv/bin/python -m benchmarks.bench_exemplars`` (``--number N``, ``--rounds R``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from opentelemetry.trace import format_span_id, format_trace_id
from prometheus_client import CollectorRegistry, Histogram

from inference_metrics import CATALOG
from inference_metrics.backends.exemplars import span_reader, trace_exemplar
from inference_metrics.backends.store import HistogramSeries, Labels

from .common import best_per_call

VALUE = 0.42


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000, help="calls per timing run")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (best kept)")
    args = parser.parse_args()

    read = span_reader()
    buckets = CATALOG["inference_model_request_duration_seconds"].buckets
    assert buckets is not None
    series = HistogramSeries(Labels("", "", ""), buckets)
    hand = Histogram("latency", "L.", buckets=buckets, registry=CollectorRegistry())
    sampled = TracerProvider(sampler=ALWAYS_ON).get_tracer("bench")
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("bench")

    kept: list[tuple[float, tuple[int, int], float]] = []

    def lookup_and_keep() -> None:
        ids = read()
        if ids is not None:
            kept.append((VALUE, ids, time.time()))
            if len(kept) >= 256:
                kept.clear()

    def lookup_and_exemplar() -> None:
        ids = read()
        if ids is not None:
            trace_exemplar(ids, VALUE, time.time())

    def hand_written() -> None:
        context = trace.get_current_span().get_span_context()
        if context.trace_flags.sampled:
            hand.observe(
                VALUE,
                exemplar={
                    "trace_id": format_trace_id(context.trace_id),
                    "span_id": format_span_id(context.span_id),
                },
            )
        else:
            hand.observe(VALUE)

    def observe() -> None:
        series.observe(VALUE)

    timed: dict[str, float] = {}

    def run(label: str, cases: dict[str, Callable[[], object]]) -> None:
        best = best_per_call(cases, rounds=args.rounds, number=args.number)
        timed.update({f"{label}: {name}": seconds for name, seconds in best.items()})

    run("outside any span", {"lookup": read})
    with unsampled.start_as_current_span("request"):
        run("inside an unsampled span", {"lookup": read})
    with sampled.start_as_current_span("request"):
        run(
            "inside a sampled span",
            {
                "lookup": read,
                "lookup + ids and time kept for the fold": lookup_and_keep,
                "lookup + exemplar made at once": lookup_and_exemplar,
                "store `observe`, no exemplar": observe,
                "hand-written prometheus_client observe with exemplar": hand_written,
            },
        )
    base = timed["inside a sampled span: hand-written prometheus_client observe with exemplar"]
    print(f"## the span lookup per call (best of {args.rounds} rounds x 3 x {args.number})")
    print("| case | per call | x hand-written observe with exemplar |")
    print("|---|---:|---:|")
    for name, seconds in timed.items():
        print(f"| {name} | {seconds * 1e9:.0f} ns | {seconds / base:.3f} |")


if __name__ == "__main__":
    main()
