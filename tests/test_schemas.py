"""Each schema's catalogue against upstream's facts written out by hand (tests/schema_facts.py)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from inference_metrics import quantities as q
from inference_metrics.catalog import CATALOG, LATER_METRICS, SEED_METRICS
from inference_metrics.schemas import (
    DEFAULT_SCHEMA,
    SCHEMAS,
    Schema,
    View,
    combine,
    get_schema,
    resolve,
)
from inference_metrics.spec import Kind, MetricSpec

from . import schema_facts as facts
from . import upstream_functions as uf


def as_facts(specs: Iterable[MetricSpec]) -> list[facts.Fact]:
    return [facts.Fact(s.name, s.kind.value, s.labels, s.documentation, s.buckets) for s in specs]


def upstreams(schema: Schema, *, twins: bool = False) -> list[facts.Fact]:
    return as_facts(v.spec for v in schema if not v.ours and v.deprecated_twin == twins)


def ours(schema: Schema) -> list[facts.Fact]:
    return as_facts(v.spec for v in schema if v.ours)


def test_the_default_schema_is_the_seed_catalogue_and_our_own_counters() -> None:
    assert DEFAULT_SCHEMA.name == "gie-v0.3"
    assert tuple(v.spec for v in DEFAULT_SCHEMA if not v.ours) == SEED_METRICS + LATER_METRICS
    assert ours(DEFAULT_SCHEMA) == list(facts.OURS_GIE)
    assert tuple(DEFAULT_SCHEMA.catalog) == tuple(CATALOG)


def test_gie_v15_is_upstreams_v150_request_pool_scheduler_and_flow_control_metrics() -> None:
    schema = get_schema("gie-v1.5")
    assert upstreams(schema) == list(uf.SCHEMA_GIE_V15)
    assert ours(schema) == list(facts.OURS_GIE)


def test_llm_d_router_metrics_are_upstreams() -> None:
    schema = get_schema("llm-d-router")
    assert upstreams(schema) == list(uf.SCHEMA_LLM_D_ROUTER)
    assert ours(schema) == list(facts.OURS_LLM_D_ROUTER)


def test_llm_d_router_deprecated_twins_read_as_upstream_emits_them() -> None:
    schema = get_schema("llm-d-router")
    assert upstreams(schema, twins=True) == list(uf.SCHEMA_LLM_D_ROUTER_TWINS)


def test_llm_d_router_without_deprecated_has_only_the_new_names() -> None:
    schema = get_schema("llm-d-router-without-deprecated")
    assert upstreams(schema) == list(uf.SCHEMA_LLM_D_ROUTER)
    assert ours(schema) == list(facts.OURS_LLM_D_ROUTER)
    assert not schema.has_deprecated_twins


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_every_schema_shows_the_request_quantities_from_the_same_calls(name: str) -> None:
    for quantity in (q.REQUEST_TOTAL, q.REQUEST_ERROR_TOTAL, q.REQUEST_DURATION, q.TTFT):
        assert SCHEMAS[name].shows(quantity), (name, quantity)


def test_an_unknown_schema_name_is_a_value_error_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown schema 'gie-v9'.*gie-v0\.3, gie-v1\.5"):
        get_schema("gie-v9")


def test_a_schema_that_is_not_a_name_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="schema must be"):
        resolve(3)  # type: ignore[arg-type]


def test_several_schemas_resolve_in_order() -> None:
    names = ["gie-v0.3", "llm-d-router-without-deprecated"]
    assert [s.name for s in resolve(names)] == names


def test_schemas_sharing_identical_metrics_combine_them_once() -> None:
    # gie-v0.3 and gie-v1.5 define the pool gauges, build info and our own counters identically.
    merged = combine(resolve(["gie-v0.3", "gie-v1.5"]))
    names = [view.spec.name for view in merged]
    # gie-v1.5: 21 request and pool views, and 10 of the scheduler and flow control (issue 21).
    assert len(names) == len(set(names)) == 21 + (21 + 10) - 6 - 3


def test_two_schemas_defining_one_name_differently_are_refused() -> None:
    # llm-d-router's twins carry the v1.5 names with a deprecation note in their HELP.
    with pytest.raises(ValueError, match="both define 'inference_objective_request_total'"):
        resolve(["gie-v1.5", "llm-d-router"])


def test_the_same_schema_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        resolve(["gie-v1.5", "gie-v1.5"])


def test_an_empty_schema_list_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        resolve([])


def test_a_metric_with_a_label_its_calls_cannot_fill_is_refused() -> None:
    spec = MetricSpec("x_total", Kind.COUNTER, "x.", ("model_name", "user"))
    with pytest.raises(ValueError, match=r"labels \['user'\]"):
        View(q.REQUEST_TOTAL, spec)


def test_a_metric_of_another_kind_than_its_quantity_is_refused() -> None:
    spec = MetricSpec("x_seconds", Kind.GAUGE, "x.", ("model_name",))
    with pytest.raises(ValueError, match="records a histogram"):
        View(q.REQUEST_DURATION, spec)


def test_a_schema_with_one_name_twice_is_refused() -> None:
    spec = MetricSpec("x_total", Kind.COUNTER, "x.", ("model_name",))
    with pytest.raises(ValueError, match="twice"):
        Schema("x", "x", "x", (View(q.REQUEST_TOTAL, spec),) * 2)


def test_a_schema_whose_metrics_would_expose_one_sample_name_twice_is_refused() -> None:
    histogram = MetricSpec("x_tokens", Kind.HISTOGRAM, "x.", ("model_name",), buckets=(1.0,))
    counter = MetricSpec("x_tokens_sum_total", Kind.COUNTER, "x.", ("model_name",))
    views = (View(q.OUTPUT_TOKENS, histogram), View(q.REQUEST_TOTAL, counter))
    with pytest.raises(ValueError, match="would both expose 'x_tokens_sum'"):
        Schema("x", "x", "x", views)


def test_a_view_that_would_merge_streamed_and_unstreamed_ttft_is_refused() -> None:
    spec = MetricSpec("x_seconds", Kind.HISTOGRAM, "x.", ("model_name",), buckets=(1.0,))
    with pytest.raises(ValueError, match="would merge"):
        View(q.TTFT, spec)
    assert [m.name for m in View(q.TTFT, spec, where={"streaming": "true"}).measures] == ["ttft"]


def test_a_view_keeping_none_of_its_quantitys_measures_is_refused() -> None:
    spec = MetricSpec("x_seconds", Kind.HISTOGRAM, "x.", ("model_name",), buckets=(1.0,))
    with pytest.raises(ValueError, match="keeps none"):
        View(q.TTFT, spec, where={"streaming": "maybe"})


def test_a_label_can_be_fixed_by_the_view_or_taken_from_a_renamed_input() -> None:
    spec = MetricSpec("x_total", Kind.COUNTER, "x.", ("model", "source"))
    view = View(q.REQUEST_TOTAL, spec, inputs={"model": "model_name"}, constants={"source": "a"})
    (measure,) = view.measures
    assert view.label_sources(measure) == (0, "a")  # the key's first input; a fixed value


def test_the_deprecated_role_and_schema_metric_still_build_views() -> None:
    from inference_metrics import schemas

    with pytest.deprecated_call(match="Role"):
        role = schemas.Role
    with pytest.deprecated_call(match="SchemaMetric"):
        schema_metric = schemas.SchemaMetric
    spec = MetricSpec("x_seconds", Kind.HISTOGRAM, "x.", ("model_name",), buckets=(1.0,))
    view = schema_metric(role.TTFT, spec)
    assert (view.quantity, dict(view.where)) == (q.TTFT, {"streaming": "true"})
    with pytest.deprecated_call(match="Schema.roles"):
        assert role.TTFT in get_schema("gie-v1.5").roles


def test_replaced_by_renders_llm_d_routers_deprecation_note() -> None:
    spec = MetricSpec("old_total", Kind.COUNTER, "Old.", replaced_by="new_total")
    assert spec.documentation == "[ALPHA] [Deprecated: Use new_total] Old."


@pytest.mark.parametrize("bad", ["", "has space", 3])
def test_replaced_by_must_name_a_metric(bad: object) -> None:
    with pytest.raises(ValueError, match="replaced_by"):
        MetricSpec("old_total", Kind.COUNTER, "Old.", replaced_by=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_only_the_latencies_leave_exemplars_to_the_backend(name: str) -> None:
    traced = {q.REQUEST_DURATION, q.TTFT, q.TPOT, q.ITL}
    for view in get_schema(name):
        if view.spec.kind is Kind.HISTOGRAM and view.spec.naming.value == "prometheus":
            expected = None if view.quantity in traced else False
            assert view.spec.exemplars is expected, view.spec.name


def test_no_catalogue_histogram_chooses_its_kind_the_backend_does() -> None:
    assert all(view.spec.histogram is None for name in SCHEMAS for view in get_schema(name))


def test_only_a_histogram_quantity_can_link_its_observations_to_traces() -> None:
    with pytest.raises(ValueError, match="True only for a histogram"):
        q.Quantity(
            "requests", Kind.COUNTER, q.REQUEST_TOTAL.measures, "Requests.", q.Panel("R"), "1", True
        )
