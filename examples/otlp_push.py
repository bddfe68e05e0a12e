"""Push the endpoint picker's metrics over OTLP/HTTP (protobuf) to a collector.

    python examples/otlp_push.py http://127.0.0.1:4318/v1/metrics --requests 200

Records simulated traffic through ``Recorder(OpenTelemetryBackend(provider))`` and pushes it with
the SDK's periodic reader and OTLP/HTTP exporter: every ``--interval`` seconds while it runs, and
once more at shutdown. A gateway wires it the same way and simply keeps running. Temporality is
cumulative unless ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` asks otherwise. Needs the
``otlp`` extra: ``pip install 'inference-metrics[otlp]'``.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from typing import Any

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from inference_metrics import OpenTelemetryBackend, Recorder
from inference_metrics.simulate import simulate_pools, simulate_request


class ReportingExporter(OTLPMetricExporter):
    """The OTLP/HTTP exporter, remembering whether its last push got through."""

    last_push_succeeded: bool | None = None

    def export(
        self, metrics_data: MetricsData, timeout_millis: float | None = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.last_push_succeeded = result is MetricExportResult.SUCCESS
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Push EPP metrics over OTLP/HTTP (protobuf).")
    parser.add_argument("endpoint", help="OTLP/HTTP metrics URL, e.g. http://host:4318/v1/metrics")
    parser.add_argument("--requests", type=int, default=100, help="simulated requests to record")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to spread them over")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between pushes")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per push")
    parser.add_argument("--service-name", default="inference-gateway", help="resource service.name")
    parser.add_argument("--commit", default="unknown", help="inference_extension_info commit")
    parser.add_argument("--build-ref", default="otlp-push-example", help="... and build_ref")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the simulation")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    exporter = ReportingExporter(endpoint=args.endpoint, timeout=args.timeout)
    reader = PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=args.interval * 1000,
        export_timeout_millis=args.timeout * 1000,
    )
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": args.service_name}),
        shutdown_on_exit=False,
    )
    recorder = Recorder(OpenTelemetryBackend(provider))
    recorder.record_extension_info(args.commit, args.build_ref)

    rng = random.Random(args.seed)
    pause = args.duration / args.requests if args.requests else 0.0
    try:
        for _ in range(args.requests):
            simulate_request(recorder, rng, time.monotonic())
            if pause:
                time.sleep(pause)
        simulate_pools(recorder, rng)
    finally:
        provider.shutdown()  # the final push, bounded by --timeout
    if not exporter.last_push_succeeded:
        print(f"recorded {args.requests} simulated requests; pushing to {args.endpoint} FAILED")
        return 1
    print(f"recorded {args.requests} simulated requests; pushed them to {args.endpoint}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
