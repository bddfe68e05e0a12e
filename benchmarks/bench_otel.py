"""One whole request through ``Recorder(OpenTelemetryBackend(provider))`` vs the raw SDK calls.

A request is six updates: request counter, request size, latency, response size, input and output
tokens. The raw side makes the same six SDK calls an application would make by hand
(``counter.add(1, attributes)`` / ``histogram.record(value, attributes)`` with one attributes dict
built up front) on identical instruments of its own provider; both providers have one
``PrometheusMetricReader`` on a private registry. Target: the Recorder costs at most 1.1x the raw
SDK. The prometheus-client, fan-out and no-op backends are timed in the same run for context.

Run: ``.venv/bin/python -m benchmarks.bench_otel`` (``--number N`` calls per timing run,
``--rounds R`` interleaved rounds; each case keeps its best run).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry

from inference_metrics import (
    CATALOG,
    FanoutBackend,
    NoopBackend,
    OpenTelemetryBackend,
    PrometheusBackend,
    Recorder,
)
from inference_metrics.backends.otel import otel_unit

from .common import (
    COMPLETED,
    INPUT_TOKENS,
    MODEL,
    OUTPUT_TOKENS,
    RECEIVED,
    REQUEST_SIZE,
    RESPONSE_SIZE,
    TARGET,
    per_call,
    recorder_request,
)


def _provider() -> MeterProvider:
    reader = PrometheusMetricReader(
        disable_target_info=True, scope_info_enabled=False, registry=CollectorRegistry()
    )
    return MeterProvider(metric_readers=[reader])


def raw_sdk_request(provider: MeterProvider) -> Callable[[], None]:
    """The same six updates as plain SDK calls on instruments shaped like the backend's."""
    meter = provider.get_meter("raw")

    def histogram(name: str) -> Histogram:
        spec = CATALOG[name]
        assert spec.buckets is not None
        return meter.create_histogram(
            name,
            unit=otel_unit(spec),
            description=spec.documentation,
            explicit_bucket_boundaries_advisory=[float(b) for b in spec.buckets],
        )

    total = CATALOG["inference_model_request_total"]
    counter = meter.create_counter(
        total.name, unit=otel_unit(total), description=total.documentation
    )
    request_sizes = histogram("inference_model_request_sizes")
    duration = histogram("inference_model_request_duration_seconds")
    response_sizes = histogram("inference_model_response_sizes")
    input_tokens = histogram("inference_model_input_tokens")
    output_tokens = histogram("inference_model_output_tokens")
    attributes = {"model_name": MODEL, "target_model_name": TARGET}

    def request() -> None:
        counter.add(1, attributes)
        request_sizes.record(REQUEST_SIZE, attributes)
        duration.record(COMPLETED - RECEIVED, attributes)
        response_sizes.record(RESPONSE_SIZE, attributes)
        input_tokens.record(INPUT_TOKENS, attributes)
        output_tokens.record(OUTPUT_TOKENS, attributes)

    return request


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--number", type=int, default=5_000, help="calls per timing run")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds (best kept)")
    args = parser.parse_args(argv)

    cases: dict[str, Callable[[], None]] = {
        "raw OpenTelemetry SDK, 6 calls": raw_sdk_request(_provider()),
        "Recorder(OpenTelemetryBackend)": recorder_request(
            Recorder(OpenTelemetryBackend(_provider()))
        ),
        "Recorder(PrometheusBackend)": recorder_request(
            Recorder(PrometheusBackend(CollectorRegistry()))
        ),
        "Recorder(FanoutBackend(prometheus, otel))": recorder_request(
            Recorder(
                FanoutBackend(
                    PrometheusBackend(CollectorRegistry()), OpenTelemetryBackend(_provider())
                )
            )
        ),
        "Recorder(NoopBackend)": recorder_request(Recorder(NoopBackend())),
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):  # interleaved, so drift of the machine hits every case alike
        for name, request in cases.items():
            best[name] = min(best[name], per_call(request, number=args.number, repeat=3))

    raw = best["raw OpenTelemetry SDK, 6 calls"]
    print(f"one whole request (6 updates), best of {args.rounds}x3 runs of {args.number} calls")
    for name, seconds in best.items():
        print(f"  {name:<44} {seconds * 1e6:8.2f} µs  {seconds / raw:5.2f}x raw SDK")
    ratio = best["Recorder(OpenTelemetryBackend)"] / raw
    verdict = "within" if ratio <= 1.1 else "OVER"
    print(f"Recorder(OpenTelemetryBackend) / raw SDK = {ratio:.3f} ({verdict} the 1.1x target)")


if __name__ == "__main__":
    main()
