"""The Recorder's groups and rows: every view bound in the row slot of each measure it reads."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from inference_metrics import (
    CATALOG,
    MetricSpec,
    NoopBackend,
    PrometheusBackend,
    Recorder,
    catalog,
)
from inference_metrics import measures as m
from inference_metrics import quantities as q
from inference_metrics.backends.base import Instrument
from inference_metrics.rows import bindings
from inference_metrics.schemas import SCHEMAS, Schema, View, combine

from .expo import parse_registry


class Named:
    """A stand-in instrument: only its spec matters to the bindings."""

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec

    def bind(self, label_values: tuple[str, ...]) -> object:
        raise AssertionError("not bound here")

    def remove(self, label_values: tuple[str, ...]) -> None:
        raise AssertionError("not removed here")


def placements(views: tuple[View, ...]) -> dict[str, dict[str, list[str]]]:
    """Per group, per measure: the names of the specs bound in its slot."""
    bound = [(view, Named(view.spec)) for view in views]
    found: dict[str, dict[str, list[str]]] = {}
    for group in m.GROUPS:
        slots = bindings(group, bound)  # type: ignore[arg-type]
        found[group.name] = {
            measure.name: [b.instrument.spec.name for b in slot]
            for measure, slot in zip(group.measures, slots, strict=True)
        }
    return found


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_every_view_is_bound_once_per_measure_it_reads(name: str) -> None:
    views = SCHEMAS[name].views
    bound = Counter(
        spec for slots in placements(views).values() for specs in slots.values() for spec in specs
    )
    assert bound == Counter(
        view.spec.name for view in views for _ in view.measures
    )  # TTFT under llm-d-router: twice (streamed and not)


def test_a_twin_shares_its_slot_with_its_successor() -> None:
    requests = placements(SCHEMAS["llm-d-router"].views)["requests"]
    assert requests["request"] == ["llm_d_epp_request_total", "inference_objective_request_total"]
    # Only TTFT labelled by streaming records non-streamed responses.
    assert requests["unstreamed_ttft"] == ["llm_d_epp_request_ttft_seconds"]
    assert requests["ttft"] == ["llm_d_epp_request_ttft_seconds"]


def test_the_default_schema_binds_each_catalogue_spec_in_the_group_of_its_call() -> None:
    found = placements(SCHEMAS["gie-v0.3"].views)
    assert found["requests"]["latency"] == [catalog.REQUEST_DURATION.name]
    assert found["errors"]["error"] == [catalog.REQUEST_ERROR_TOTAL.name]
    assert found["running"]["running"] == [catalog.RUNNING_REQUESTS.name]
    assert found["endpoints"]["endpoint_queue_size"] == [catalog.POOL_PER_POD_QUEUE_SIZE.name]
    assert found["requests"]["inter_token_latency"] == []  # no view of it: a no-op feed
    names = {n for slots in found.values() for specs in slots.values() for n in specs}
    assert names == set(CATALOG.names)


def test_genai_views_span_the_request_and_error_groups() -> None:
    from inference_metrics.schemas.genai import genai_schema

    found = placements(genai_schema("openai").views)
    assert found["requests"]["latency"] == ["gen_ai.server.request.duration"]
    assert found["errors"]["failure_latency"] == ["gen_ai.server.request.duration"]
    assert found["requests"]["input_tokens"] == found["requests"]["output_tokens"]


def test_a_label_set_is_looked_up_once_and_shared_by_every_call_of_its_group() -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), schema="llm-d-router")
    recorder.record_request_started("m", "t", 10)
    recorder.record_request_completed("m", "t", received=1.0, completed=2.0, response_size=5)
    recorder.record_request_failed("m", "t", "Internal")
    total = SCHEMAS["llm-d-router"].views[0].spec
    assert total.name == "llm_d_epp_request_total"
    assert recorder.series_count(total) == 1
    families = parse_registry(registry)
    assert "llm_d_epp_request_duration_seconds" in families


def test_two_views_defaulting_one_input_differently_are_refused() -> None:
    from inference_metrics.schemas.genai import genai_schema

    first, second = genai_schema("a", "chat"), genai_schema("b", "embeddings")
    renamed = tuple(
        dataclasses.replace(v, spec=dataclasses.replace(v.spec, name=v.spec.name + ".x"))
        for v in second
    )
    with pytest.raises(ValueError, match="default 'operation' differently"):
        Recorder(NoopBackend(), schema=[first, Schema("other", "o", "o", renamed)])


def test_the_deprecated_row_classes_and_layouts_still_work_and_warn() -> None:
    from inference_metrics import recorder

    with pytest.deprecated_call(match="CATALOG_LAYOUTS"):
        layouts = recorder.CATALOG_LAYOUTS
    names = Counter(
        spec.name
        for layout in layouts.groups()
        for specs in layout.fields.values()
        for spec in specs
    )
    ours = {view.spec.name for view in SCHEMAS["gie-v0.3"] if view.ours}
    assert names == Counter(name for name in CATALOG.names if name not in ours)
    with pytest.deprecated_call(match="layouts_for"):
        layouts_for = recorder.layouts_for
    models = layouts_for([SCHEMAS["llm-d-router"]]).models
    assert [s.name for s in models.fields["request_total"]] == [
        "llm_d_epp_request_total",
        "inference_objective_request_total",
    ]
    with pytest.deprecated_call(match="GroupLayout"):
        group_layout = recorder.GroupLayout
    with pytest.deprecated_call(match="PoolRow"):
        pool_row = recorder.PoolRow
    with pytest.raises(ValueError, match="PoolRow has the fields"):
        group_layout(pool_row, ("pool_name",), {"ready_pods": (catalog.POOL_READY_PODS,)})


def test_combining_the_same_views_twice_keeps_one() -> None:
    views = combine([SCHEMAS["gie-v0.3"], SCHEMAS["gie-v1.5"]])
    assert sum(view.quantity is q.POOL_KV_CACHE for view in views) == 1


def test_an_instrument_protocol_stand_in_is_enough_for_the_bindings() -> None:
    instrument: Instrument = Named(catalog.REQUEST_TOTAL)  # type: ignore[assignment]
    (slot, *_) = bindings(m.REQUESTS, [(SCHEMAS["gie-v0.3"].views[0], instrument)])
    assert [b.sources for b in slot] == [(0, 1)]  # model_name, target_model_name: key inputs
    assert [b.method for b in slot] == ["add"]


def test_a_call_without_an_operation_takes_the_views_default_and_shares_its_label_set() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from inference_metrics.genai import GenAIRecorder

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        genai = GenAIRecorder(provider, provider_name="p", default_operation="chat")
        recorder = Recorder(PrometheusBackend(CollectorRegistry()), genai=genai)
        for operation in (None, "chat"):
            recorder.record_request_completed(
                "m", "t", received=1.0, completed=2.0, response_size=1, operation=operation
            )
        recorder.record_request_counter("m", "t")  # a key without the operation at all
        (duration,) = [
            metric
            for resource in (reader.get_metrics_data() or ()).resource_metrics  # type: ignore[union-attr]
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == "gen_ai.server.request.duration"
        ]
        (point,) = duration.data.data_points
        assert (point.attributes or {})["gen_ai.operation.name"] == "chat"
        assert point.count == 2  # type: ignore[union-attr]
        assert recorder.series_count(SCHEMAS["gie-v0.3"].views[0].spec) == 1
    finally:
        provider.shutdown()
