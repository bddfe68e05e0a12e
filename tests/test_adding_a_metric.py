"""A metric added in one place: everything else follows from the records.

The one place is a new quantity fed by an existing measure (the output tokens a completed request
derives, summed by a counter) and its view in one schema. Nothing else is written: the test then
finds it recorded by the unchanged Recorder, exposed by the prometheus-client backend, by the
OpenTelemetry backend and by the multiprocess store, in the generated docs and on the generated
dashboard, and fed by the demo. A second test checks the demo shows every view of every shipped
schema, so no metric is left without data there.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client.registry import CollectorRegistry

from inference_metrics import Kind, MetricSpec, OpenTelemetryBackend, PrometheusBackend, Recorder
from inference_metrics import measures as m
from inference_metrics.dashboards import dashboard
from inference_metrics.exposition import TEXT, render
from inference_metrics.quantities import Panel, Quantity
from inference_metrics.reference import render_reference
from inference_metrics.schemas import SCHEMAS, Schema, View
from inference_metrics.simulate import simulate_pools, simulate_request

from .expo import parse_registry, parse_text

# --- the one place ----------------------------------------------------------------------------

OUTPUT_TOKENS_SUM = Quantity(
    "output_tokens_sum",
    Kind.COUNTER,
    (m.OUTPUT_TOKENS,),
    "Completion tokens, summed over requests.",
    Panel("Sizes and tokens"),
    "{token}",
)
NAME = "inference_objective_completion_tokens_total"
SCHEMA = dataclasses.replace(
    SCHEMAS["gie-v1.5"],
    name="gie-v1.5-plus",
    metrics=(
        *SCHEMAS["gie-v1.5"].views,
        View(
            OUTPUT_TOKENS_SUM,
            MetricSpec(
                NAME,
                Kind.COUNTER,
                "Completion tokens of every request, summed.",
                ("model_name", "target_model_name"),
                unit="{token}",
            ),
        ),
    ),
)

# ----------------------------------------------------------------------------------------------

LABELS = {"model_name": "llama", "target_model_name": "llama-lora"}


def two_requests(recorder: Recorder) -> None:
    for output_tokens in (9, 30):
        recorder.record_request_completed(
            "llama",
            "llama-lora",
            received=1.0,
            completed=2.0,
            response_size=100,
            output_tokens=output_tokens,
        )


def test_the_prometheus_backend_exposes_it() -> None:
    registry = CollectorRegistry()
    two_requests(Recorder(PrometheusBackend(registry), schema=SCHEMA))
    family = parse_registry(registry)[NAME]
    assert (family.type, family.documentation) == (
        "counter",
        "[ALPHA] Completion tokens of every request, summed.",
    )
    assert family.value(NAME, **LABELS) == 39


def test_the_multiprocess_store_exposes_it(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    backend = PrometheusBackend(registry, multiprocess_dir=tmp_path)
    try:
        two_requests(Recorder(backend, schema=SCHEMA))
        assert parse_text(render(registry, TEXT).decode())[NAME].value(NAME, **LABELS) == 39
    finally:
        backend.close()


@pytest.fixture
def otel() -> Iterator[tuple[MeterProvider, CollectorRegistry]]:
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(disable_target_info=True, registry=registry)
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        yield provider, registry
    finally:
        provider.shutdown()


def test_the_opentelemetry_backend_exposes_it(
    otel: tuple[MeterProvider, CollectorRegistry],
) -> None:
    provider, registry = otel
    two_requests(Recorder(OpenTelemetryBackend(provider), schema=SCHEMA))
    family = parse_registry(registry)[NAME]
    values = {
        frozenset((k, v) for k, v in labels if not k.startswith("otel_scope")): value
        for (_, labels), value in family.samples.items()
    }
    assert values == {frozenset(LABELS.items()): 39}


def test_the_generated_docs_list_it() -> None:
    docs = render_reference(SCHEMA)
    row = next(line for line in docs.splitlines() if line.startswith(f"| {NAME} |"))
    assert "Completion tokens of every request, summed." in row
    assert "`model_name`, `target_model_name`" in row


def test_the_generated_dashboard_shows_it() -> None:
    panels = dashboard(SCHEMA)["panels"]
    (panel,) = [p for p in panels if any(NAME in t["expr"] for t in p.get("targets", ()))]
    assert panel["targets"][0]["expr"] == (
        f"sum by(model_name, target_model_name) (rate({NAME}[$__rate_interval]))"
    )
    rows = [p["title"] for p in panels if p["type"] == "row"]
    sizes_row = panels.index(next(p for p in panels if p.get("title") == "Sizes and tokens"))
    assert panels.index(panel) > sizes_row
    assert rows.count("Sizes and tokens") == 1


def demo(recorder: Recorder, requests: int = 300) -> None:
    rng = random.Random(7)
    recorder.record_extension_info("demo", "test")
    simulate_pools(recorder, rng)
    for index in range(requests):
        simulate_request(recorder, rng, 1000.0 + index)


def test_the_demo_feeds_it() -> None:
    registry = CollectorRegistry()
    demo(Recorder(PrometheusBackend(registry), schema=SCHEMA))
    assert sum(parse_registry(registry)[NAME].samples.values()) > 0


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_the_demo_shows_every_view_of_every_schema(name: str) -> None:
    registry = CollectorRegistry()
    demo(Recorder(PrometheusBackend(registry), schema=name))
    assert set(parse_registry(registry)) == {view.spec.name for view in SCHEMAS[name]}


def test_a_schema_of_only_the_new_view_records_only_it() -> None:
    registry = CollectorRegistry()
    alone = Schema("alone", "Alone", "Only the new view.", (SCHEMA.views[-1],))
    two_requests(Recorder(PrometheusBackend(registry), schema=alone))
    assert set(parse_registry(registry)) == {NAME}
