"""The schemas through a real prometheus-client registry: what each call exposes, per schema."""

from __future__ import annotations

import pytest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.recorder import OVERFLOW_LABEL_VALUE

from . import schema_facts as facts
from . import upstream_functions as uf
from .expo import Family, parse_registry


def record_everything(recorder: Recorder, **request: str | int) -> None:
    """One streamed and one non-streamed request, an error, every pool gauge, build info, a
    parse failure, the data layer's errors, and every call of the scheduler and flow control."""
    recorder.record_request_started("m", "t", 100, **request)  # type: ignore[arg-type]
    recorder.record_running_request_started("m", "t", **request)  # type: ignore[arg-type]
    recorder.record_inter_token_latency("m", "t", 0.02, **request)  # type: ignore[arg-type]
    recorder.record_request_completed(
        "m",
        "t",
        received=10.0,
        first_token=10.5,
        completed=12.5,
        response_size=300,
        input_tokens=20,
        output_tokens=5,
        cached_tokens=8,
        **request,  # type: ignore[arg-type]
    )
    recorder.record_request_completed(
        "m",
        "t",
        received=20.0,
        completed=23.0,
        response_size=50,
        **request,  # type: ignore[arg-type]
    )
    recorder.record_request_failed("m", "t", "Internal", **request)  # type: ignore[arg-type]
    recorder.record_running_request_finished("m", "t", **request)  # type: ignore[arg-type]
    recorder.record_pool_kv_cache_utilization("p", 0.5)
    recorder.record_pool_queue_size("p", 3)
    recorder.record_pool_average_running_requests("p", 4)
    recorder.record_pool_ready_pods("p", 2)
    recorder.record_pool_std_dev_kv_cache_utilization("p", 0.1)
    recorder.record_pool_std_dev_queue_size("p", 1.5)
    recorder.record_pool_std_dev_running_requests("p", 2.5)
    recorder.record_pool_per_pod_queue_size("p", "pod-0", 7)
    recorder.record_extension_info("abc123", "v1")
    recorder.record_response_parse_failure()
    recorder.record_data_layer_poll_error("metrics-data-source", pool_name="p")
    recorder.record_data_layer_extract_error(
        "metrics-data-source", "core-metrics-extractor", pool_name="p"
    )
    record_the_picker(recorder)


def record_the_picker(recorder: Recorder, fairness_id: str = "tenant-a") -> None:
    """Every call of the scheduler, plugins, processing, rewrites and flow control, once."""
    flow, target = (fairness_id, "2"), ("p", "m", "t")
    recorder.record_scheduler_e2e_latency(0.002)
    recorder.record_request_processing_latency(0.004)
    recorder.record_response_processing_latency(0.001)
    recorder.record_scheduler_attempt(None, "t", ("pod-0", "ns", "8000"))
    recorder.record_plugin_processing_latency("Scorer", "queue-scorer", "queue-scorer", 0.0003)
    recorder.record_plugin_data_scope_violation("Filter", "f", "f1", "read")
    recorder.record_inference_model_rewrite_decision("rule", "m", "t")
    recorder.record_flow_control_request_enqueue_duration(*flow, "Dispatched", 0.0001)
    recorder.record_flow_control_request_queue_duration(*flow, "Dispatched", *target, 0.03)
    recorder.inc_flow_control_queue_size(*flow, *target)
    recorder.add_flow_control_queue_bytes(*flow, *target, 512)
    recorder.record_flow_control_dispatch_cycle_duration(0.0002)
    recorder.inc_flow_control_requests_total("Dispatched", "2", "p")
    recorder.record_flow_control_pool_saturation("p", "effective", 0.7)
    recorder.record_flow_control_stale_endpoints("utilization-detector", 0)
    recorder.record_flow_control_capacity_utilization_requests("2", "p", 0.25)
    recorder.record_flow_control_capacity_utilization_bytes("2", "p", 0.5)
    recorder.record_flow_control_global_capacity_utilization_requests("p", 0.125)
    recorder.record_flow_control_global_capacity_utilization_bytes("p", 0.375)
    recorder.record_flow_control_revocations_issued("p", "2", 1)
    recorder.record_flow_control_revocations("p", "confirmed", 1)
    recorder.record_flow_control_reclaim_target("p", 0.1)
    recorder.record_flow_control_pending_reclaim("p", 0.05)
    recorder.record_flow_control_revocation_confirmation_duration("p", 0.02)


def exposed(schema: str, **request: str | int) -> dict[str, Family]:
    registry = CollectorRegistry()
    record_everything(Recorder(PrometheusBackend(registry), schema=schema), **request)
    return parse_registry(registry)


def label_names(family: Family) -> set[tuple[str, ...]]:
    return {tuple(sorted(k for k, _ in labels if k != "le")) for _, labels in family.samples}


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ("gie-v1.5", uf.SCHEMA_GIE_V15 + facts.OURS_GIE),
        (
            "llm-d-router",
            uf.SCHEMA_LLM_D_ROUTER + uf.SCHEMA_LLM_D_ROUTER_TWINS + facts.OURS_LLM_D_ROUTER,
        ),
        ("llm-d-router-without-deprecated", uf.SCHEMA_LLM_D_ROUTER + facts.OURS_LLM_D_ROUTER),
    ],
)
def test_every_metric_of_the_schema_is_exposed_as_upstream_exposes_it(
    schema: str, expected: tuple[facts.Fact, ...]
) -> None:
    families = exposed(schema, fairness_id="tenant-a", priority=2)
    assert sorted(families) == sorted(f.name for f in expected)
    for fact in expected:
        family = families[fact.name]
        assert (family.type, family.documentation) == (fact.type, fact.help), fact.name
        assert label_names(family) == {tuple(sorted(fact.labels))}, fact.name
        if fact.buckets is not None:
            bounds = {dict(labels)["le"] for name, labels in family.samples if "le" in dict(labels)}
            assert bounds == {repr(float(b)) for b in (*fact.buckets, float("inf"))}, fact.name


def test_llm_d_router_labels_requests_with_fairness_id_and_priority_text() -> None:
    families = exposed("llm-d-router", fairness_id="tenant-a", priority=2)
    labels = {"model_name": "m", "target_model_name": "t", "fairness_id": "tenant-a"}
    total = families["llm_d_epp_request_total"]
    assert total.value("llm_d_epp_request_total", **labels, priority="2") == 1
    # The deprecated twin keeps priority, drops fairness_id (as upstream's RecordRequestCounter).
    twin = families["inference_objective_request_total"]
    twin_labels = {"model_name": "m", "target_model_name": "t", "priority": "2"}
    assert twin.value("inference_objective_request_total", **twin_labels) == 1


def test_llm_d_router_ttft_is_streamed_or_the_whole_duration_labelled_streaming() -> None:
    ttft = exposed("llm-d-router")["llm_d_epp_request_ttft_seconds"]
    base = {"model_name": "m", "target_model_name": "t", "fairness_id": "default-flow"}
    name = "llm_d_epp_request_ttft_seconds"
    assert ttft.value(name + "_sum", **base, priority="0", streaming="true") == 0.5
    assert ttft.value(name + "_sum", **base, priority="0", streaming="false") == 3.0


def test_gie_ttft_is_only_recorded_for_streamed_responses() -> None:
    ttft = exposed("gie-v1.5")["inference_objective_request_ttft_seconds"]
    name = "inference_objective_request_ttft_seconds"
    assert ttft.value(name + "_count", model_name="m", target_model_name="t") == 1
    assert ttft.value(name + "_sum", model_name="m", target_model_name="t") == 0.5


def test_llm_d_router_streaming_tpot_and_itl() -> None:
    families = exposed("llm-d-router")
    labels = {
        "model_name": "m",
        "target_model_name": "t",
        "fairness_id": "default-flow",
        "priority": "0",
    }
    tpot = "llm_d_epp_request_streaming_tpot_seconds"
    assert families[tpot].value(tpot + "_sum", **labels) == (12.5 - 10.5) / (5 - 1)
    assert families[tpot].value(tpot + "_count", **labels) == 1
    itl = "llm_d_epp_request_streaming_itl_seconds"
    assert families[itl].value(itl + "_sum", **labels) == 0.02


def test_running_requests_go_back_to_zero_in_both_names() -> None:
    families = exposed("llm-d-router", fairness_id="f", priority=1)
    running = families["llm_d_epp_request_running"]
    assert list(running.samples.values()) == [0.0]
    assert list(families["inference_objective_running_requests"].samples.values()) == [0.0]


def test_fairness_ids_beyond_the_bound_fold_into_the_overflow_value() -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), schema="llm-d-router", max_fairness_ids=2)
    for tenant in ("a", "b", "c", "d", "a"):
        recorder.record_request_counter("m", "t", fairness_id=tenant)
    family = parse_registry(registry)["llm_d_epp_request_total"]
    values = {dict(labels)["fairness_id"]: value for (_, labels), value in family.samples.items()}
    assert values == {"a": 2, "b": 1, OVERFLOW_LABEL_VALUE: 2}


def test_priorities_beyond_the_bound_fold_into_the_overflow_value() -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), schema="gie-v1.5", max_priorities=1)
    for priority in (0, 5, -1, 0):
        recorder.record_request_counter("m", "t", priority=priority)
    family = parse_registry(registry)["inference_objective_request_total"]
    values = {dict(labels)["priority"]: value for (_, labels), value in family.samples.items()}
    assert values == {"0": 2, OVERFLOW_LABEL_VALUE: 2}


def test_inputs_a_schema_does_not_expose_do_not_use_up_its_series() -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), max_series=2)
    for tenant in ("a", "b", "c"):
        recorder.record_request_counter("m", "t", fairness_id=tenant)
    recorder.record_request_counter("n", "t")
    family = parse_registry(registry)["inference_model_request_total"]
    values = {dict(labels)["model_name"]: value for (_, labels), value in family.samples.items()}
    assert values == {"m": 3, "n": 1}


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"priority": True}, TypeError, "^priority must be an int or a string"),
        ({"priority": 1.5}, TypeError, "^priority must be an int or a string"),
        ({"fairness_id": 3}, TypeError, "^fairness_id must be a string"),
        ({"fairness_id": "x" * 2000}, ValueError, "^fairness_id is 2000 characters long"),
    ],
)
def test_bad_fairness_ids_and_priorities_are_refused_and_record_nothing(
    arguments: dict[str, object], error: type[Exception], message: str
) -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), schema="llm-d-router")
    with pytest.raises(error, match=message):
        recorder.record_request_counter("m", "t", **arguments)  # type: ignore[arg-type]
    assert parse_registry(registry) == {}


def test_two_schemas_are_recorded_from_the_same_calls() -> None:
    registry = CollectorRegistry()
    recorder = Recorder(
        PrometheusBackend(registry), schema=["gie-v0.3", "llm-d-router-without-deprecated"]
    )
    recorder.record_request_counter("m", "t", fairness_id="f", priority=1)
    families = parse_registry(registry)
    assert (
        families["inference_model_request_total"].value(
            "inference_model_request_total", model_name="m", target_model_name="t"
        )
        == 1
    )
    labels = {"model_name": "m", "target_model_name": "t", "fairness_id": "f", "priority": "1"}
    assert families["llm_d_epp_request_total"].value("llm_d_epp_request_total", **labels) == 1


def test_a_streaming_flag_that_is_not_a_bool_is_refused() -> None:
    recorder = Recorder(PrometheusBackend(CollectorRegistry()), schema="llm-d-router")
    with pytest.raises(TypeError, match=r"^streaming must be a bool"):
        recorder.record_request_completed(
            "m",
            "t",
            received=1.0,
            completed=2.0,
            response_size=1,
            streaming="yes",  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("argument", ["max_fairness_ids", "max_priorities"])
@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_value_bounds_are_validated(argument: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=f"^{argument} must be"):
        Recorder(PrometheusBackend(CollectorRegistry()), **{argument: value})  # type: ignore[arg-type]


def test_an_unknown_schema_is_refused_before_anything_is_registered() -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match="unknown schema"):
        Recorder(PrometheusBackend(registry), schema="nope")
    Recorder(PrometheusBackend(registry))  # the registry is still free


def test_removing_a_pool_removes_it_under_every_name_of_the_schema() -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry), schema="llm-d-router")
    for pool in ("gone", "kept"):
        recorder.record_pool_queue_size(pool, 1)
        recorder.record_pool_std_dev_queue_size(pool, 0.5)
        recorder.record_pool_per_pod_queue_size(pool, "pod", 2)
    recorder.remove_pool("gone")
    recorder.remove_pod("gone", "pod")
    families = parse_registry(registry)
    for name in (
        "llm_d_epp_average_queue_size",
        "inference_pool_average_queue_size",
        "llm_d_epp_std_dev_queue_size",
        "llm_d_epp_per_endpoint_queue_size",
        "inference_pool_per_pod_queue_size",
    ):
        assert {dict(labels)["name"] for _, labels in families[name].samples} == {"kept"}, name
