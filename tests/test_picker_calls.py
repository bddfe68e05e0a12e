"""The Recorder's calls for the picker's internals (issue 21): what each records, refuses, bounds
and deletes, through a real prometheus-client registry. Upstream's own scenarios for the same
calls are replayed in tests/test_recorder_upstream.py; these are the behaviours around them."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable

import pytest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics import quantities as q
from inference_metrics.recorder import OVERFLOW_LABEL_VALUE
from inference_metrics.schemas import Schema, View
from inference_metrics.spec import Kind, MetricSpec

from .expo import Family, parse_registry

FLOW = ("tenant-a", "1")
TARGET = ("pool-1", "m", "t")
#: The per-flow families (and twins) a flow's deletion forgets.
PER_FLOW = tuple(
    prefix + name
    for prefix in ("llm_d_epp_", "inference_extension_")
    for name in (
        "flow_control_request_queue_duration_seconds",
        "flow_control_request_enqueue_duration_seconds",
        "flow_control_queue_size",
        "flow_control_queue_bytes",
    )
)


def recorder_on(
    registry: CollectorRegistry,
    schema: str = "llm-d-router",
    *,
    max_series: int = 1000,
    max_fairness_ids: int = 100,
) -> Recorder:
    return Recorder(
        PrometheusBackend(registry),
        schema=schema,
        max_series=max_series,
        max_fairness_ids=max_fairness_ids,
    )


def record_flow(recorder: Recorder, fairness_id: str, priority: str, pool: str = "pool-1") -> None:
    """Every per-flow call once for one flow (queue held: one request, 100 bytes)."""
    target = (pool, "m", "t")
    recorder.record_flow_control_request_enqueue_duration(
        fairness_id, priority, "Dispatched", 0.001
    )
    recorder.record_flow_control_request_queue_duration(
        fairness_id, priority, "Dispatched", *target, 0.25
    )
    recorder.inc_flow_control_queue_size(fairness_id, priority, *target)
    recorder.add_flow_control_queue_bytes(fairness_id, priority, *target, 100)


def flows_of(family: Family) -> set[tuple[str, str]]:
    return {(dict(labels)["fairness_id"], dict(labels)["priority"]) for _, labels in family.samples}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return parse_registry(registry)[name].value(name, **labels)


# --- the scheduler --------------------------------------------------------------------------------


def test_a_failed_attempt_has_empty_endpoint_labels_whatever_the_result(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    recorder.record_scheduler_attempt(RuntimeError("no fit"), "m", ("pod-1", "ns", "8000"))
    labels = {"target_model_name": "m", "namespace": "", "port": ""}
    name = "llm_d_epp_scheduler_attempts_total"
    assert value(registry, name, status="failure", endpoint_name="", **labels) == 1
    twin = "inference_extension_scheduler_attempts_total"
    assert value(registry, twin, status="failure", pod_name="", **labels) == 1


def test_a_successful_attempt_carries_the_chosen_endpoint_under_both_label_names(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    recorder.record_scheduler_attempt(None, "m", ("pod-1", "ns", "8000"))
    recorder.record_scheduler_attempt(None, "m", None)
    endpoint = {"namespace": "ns", "port": "8000", "target_model_name": "m", "status": "success"}
    assert value(registry, "llm_d_epp_scheduler_attempts_total", endpoint_name="pod-1", **endpoint)
    assert value(
        registry, "inference_extension_scheduler_attempts_total", pod_name="pod-1", **endpoint
    )
    empty = {"namespace": "", "port": "", "target_model_name": "m", "status": "success"}
    assert value(registry, "llm_d_epp_scheduler_attempts_total", endpoint_name="", **empty) == 1


@pytest.mark.parametrize(
    ("err", "result", "named"),
    [
        ("failed", None, "err"),
        (None, ("pod-1", "ns"), "result"),
        (None, ["pod-1", "ns", "8000"], "result"),
        (None, ("pod-1", "ns", 8000), "result port"),
    ],
)
def test_a_bad_error_or_result_is_refused_naming_it_and_records_nothing(
    registry: CollectorRegistry, err: object, result: object, named: str
) -> None:
    recorder = recorder_on(registry)
    with pytest.raises(TypeError, match=named):
        recorder.record_scheduler_attempt(err, "m", result)  # type: ignore[arg-type]
    assert parse_registry(registry) == {}


@pytest.mark.parametrize(
    "call",
    [
        "record_scheduler_e2e_latency",
        "record_request_processing_latency",
        "record_response_processing_latency",
        "record_flow_control_dispatch_cycle_duration",
    ],
)
@pytest.mark.parametrize(
    ("duration", "error"),
    [(-0.001, ValueError), (math.nan, ValueError), (math.inf, ValueError), (True, TypeError)],
)
def test_a_bad_duration_is_refused_naming_it_and_records_nothing(
    registry: CollectorRegistry, call: str, duration: object, error: type[Exception]
) -> None:
    recorder = recorder_on(registry)
    with pytest.raises(error, match="duration"):
        getattr(recorder, call)(duration)
    assert parse_registry(registry) == {}


def test_plugin_latencies_are_kept_per_extension_point_type_and_name(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    recorder.record_plugin_processing_latency("Filter", "decode-filter", "f", 0.0003)
    recorder.record_plugin_processing_latency("Scorer", "queue-scorer", "s", 0.004)
    family = parse_registry(registry)["llm_d_epp_plugin_duration_seconds"]
    name = "llm_d_epp_plugin_duration_seconds_count"
    assert family.value(
        name, extension_point="Filter", plugin_type="decode-filter", plugin_name="f"
    )
    assert family.value(name, extension_point="Scorer", plugin_type="queue-scorer", plugin_name="s")


# --- flow control: values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("8", TypeError)]
)
def test_queue_bytes_must_be_an_int_of_zero_or_more(
    registry: CollectorRegistry, amount: object, error: type[Exception]
) -> None:
    recorder = recorder_on(registry)
    with pytest.raises(error, match="bytes"):
        recorder.add_flow_control_queue_bytes(*FLOW, *TARGET, amount)  # type: ignore[arg-type]
    with pytest.raises(error, match="bytes"):
        recorder.sub_flow_control_queue_bytes(*FLOW, *TARGET, amount)  # type: ignore[arg-type]
    assert parse_registry(registry) == {}


def test_a_negative_revocation_count_is_refused_where_upstream_panics(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    with pytest.raises(ValueError, match="n must be >= 0"):
        recorder.record_flow_control_revocations_issued("pool-1", "0", -1)
    with pytest.raises(ValueError, match="n must be >= 0"):
        recorder.record_flow_control_revocations("pool-1", "confirmed", -2)
    assert parse_registry(registry) == {}


def test_queue_size_and_bytes_go_up_and_down_and_may_go_below_zero(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    recorder.inc_flow_control_queue_size(*FLOW, *TARGET)
    recorder.add_flow_control_queue_bytes(*FLOW, *TARGET, 300)
    recorder.sub_flow_control_queue_bytes(*FLOW, *TARGET, 100)
    labels = dict(
        zip(
            ("fairness_id", "priority", "inference_pool", "model_name", "target_model_name"),
            (*FLOW, *TARGET),
            strict=True,
        )
    )
    assert value(registry, "llm_d_epp_flow_control_queue_bytes", **labels) == 200
    recorder.dec_flow_control_queue_size(*FLOW, *TARGET)
    recorder.dec_flow_control_queue_size(*FLOW, *TARGET)  # a Dec without its Inc, as upstream
    assert value(registry, "llm_d_epp_flow_control_queue_size", **labels) == -1


def test_saturation_is_not_clamped_and_a_negative_one_is_refused(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    recorder.record_flow_control_pool_saturation("pool-1", "effective", 1.75)
    name = "llm_d_epp_flow_control_pool_saturation"
    assert value(registry, name, inference_pool="pool-1", stage="effective") == 1.75
    with pytest.raises(ValueError, match="saturation"):
        recorder.record_flow_control_pool_saturation("pool-1", "effective", -0.1)
    assert value(registry, name, inference_pool="pool-1", stage="effective") == 1.75


def test_the_reclaim_target_may_be_negative(registry: CollectorRegistry) -> None:
    # saturation - ceiling: a difference of saturations, not a count.
    recorder = recorder_on(registry)
    recorder.record_flow_control_reclaim_target("pool-1", -0.05)
    assert (
        value(registry, "llm_d_epp_flow_control_reclaim_target", inference_pool="pool-1") == -0.05
    )


# --- flow control: deleting -----------------------------------------------------------------------


def test_deleting_a_flow_forgets_its_series_in_every_per_flow_metric_and_twin(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    record_flow(recorder, *FLOW)
    record_flow(recorder, *FLOW, pool="pool-2")
    record_flow(recorder, "tenant-a", "2")
    record_flow(recorder, "tenant-b", "1")
    recorder.delete_flow_control_flow_series(*FLOW)
    families = parse_registry(registry)
    for name in PER_FLOW:
        assert flows_of(families[name]) == {("tenant-a", "2"), ("tenant-b", "1")}, name


def test_a_deleted_flow_frees_its_slots_and_starts_afresh(registry: CollectorRegistry) -> None:
    recorder = recorder_on(registry, max_series=2)
    record_flow(recorder, "tenant-a", "1")
    record_flow(recorder, "tenant-b", "1")
    recorder.delete_flow_control_flow_series("tenant-a", "1")
    record_flow(recorder, "tenant-c", "1")  # takes the freed slot, not the overflow
    families = parse_registry(registry)
    for name in PER_FLOW:
        assert flows_of(families[name]) == {("tenant-b", "1"), ("tenant-c", "1")}, name
    record_flow(recorder, "tenant-a", "1")  # no slot left now: the overflow
    size = parse_registry(registry)["llm_d_epp_flow_control_queue_size"]
    assert (OVERFLOW_LABEL_VALUE, OVERFLOW_LABEL_VALUE) in flows_of(size)


def test_deleting_the_overflow_value_does_nothing(registry: CollectorRegistry) -> None:
    recorder = recorder_on(registry, max_fairness_ids=1)
    record_flow(recorder, "tenant-a", "1")
    record_flow(recorder, "tenant-b", "1")  # beyond the bound: fairness_id is the overflow
    before = parse_registry(registry)
    assert ("__overflow__", "1") in flows_of(before["llm_d_epp_flow_control_queue_size"])
    recorder.delete_flow_control_flow_series(OVERFLOW_LABEL_VALUE, "1")
    recorder.delete_flow_control_flow_series("tenant-b", "1")  # folded: no series of its own
    after = parse_registry(registry)
    for name in PER_FLOW:
        assert after[name].samples == before[name].samples, name


def test_deleting_a_flow_checks_its_labels_and_unknown_flows_change_nothing(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    record_flow(recorder, *FLOW)
    before = parse_registry(registry)
    with pytest.raises(TypeError, match="fairness_id"):
        recorder.delete_flow_control_flow_series(None, "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="priority"):
        recorder.delete_flow_control_flow_series("tenant-a", 1.5)  # type: ignore[arg-type]
    recorder.delete_flow_control_flow_series("tenant-z", "1")
    after = parse_registry(registry)
    assert {n: f.samples for n, f in after.items()} == {n: f.samples for n, f in before.items()}


def test_a_bad_flow_is_refused_even_where_no_metric_shows_flows(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry, schema="gie-v0.3")
    with pytest.raises(TypeError, match="priority"):
        recorder.delete_flow_control_flow_series("tenant-a", 1.5)  # type: ignore[arg-type]


def test_an_int_priority_deletes_the_flow_recorded_with_its_text(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    record_flow(recorder, "tenant-a", "1")
    recorder.delete_flow_control_flow_series("tenant-a", 1)  # type: ignore[arg-type]
    assert not set(PER_FLOW) & set(parse_registry(registry))


def test_deleting_a_stage_s_saturation_removes_exactly_that_series_under_both_names(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    for stage in ("prefill", "decode", "effective"):
        recorder.record_flow_control_pool_saturation("pool-1", stage, 0.5)
    recorder.record_flow_control_pool_saturation("pool-2", "prefill", 0.5)
    recorder.delete_flow_control_pool_saturation("pool-1", "prefill")
    recorder.delete_flow_control_pool_saturation("pool-9", "prefill")  # never recorded: nothing
    families = parse_registry(registry)
    for name in ("llm_d_epp_", "inference_extension_"):
        family = families[name + "flow_control_pool_saturation"]
        stages = {
            (dict(labels)["inference_pool"], dict(labels)["stage"]) for _, labels in family.samples
        }
        assert stages == {("pool-1", "decode"), ("pool-1", "effective"), ("pool-2", "prefill")}


# --- bounds ---------------------------------------------------------------------------------------


def test_fairness_ids_are_bounded_on_the_per_flow_metrics(registry: CollectorRegistry) -> None:
    recorder = recorder_on(registry, max_fairness_ids=2)
    for tenant in ("a", "b", "c"):
        record_flow(recorder, tenant, "1")
    for name in PER_FLOW:
        flows = flows_of(parse_registry(registry)[name])
        assert flows == {("a", "1"), ("b", "1"), (OVERFLOW_LABEL_VALUE, "1")}, name


E = "llm_d_epp_"
BOUNDED: dict[str, Callable[[Recorder, int], object]] = {
    E + "plugin_duration_seconds": lambda r, i: r.record_plugin_processing_latency(
        "Scorer", "s", f"p{i}", 0.001
    ),
    E + "scheduler_attempts_total": lambda r, i: r.record_scheduler_attempt(None, f"m{i}", None),
    E + "model_rewrite_decisions_total": lambda r, i: r.record_inference_model_rewrite_decision(
        "rule", f"m{i}", "t"
    ),
    E + "flow_control_requests_total": lambda r, i: r.inc_flow_control_requests_total(
        "Dispatched", "0", f"pool-{i}"
    ),
    E + "flow_control_pool_saturation": lambda r, i: r.record_flow_control_pool_saturation(
        f"pool-{i}", "effective", 0.5
    ),
    E + "flow_control_stale_endpoints": lambda r, i: r.record_flow_control_stale_endpoints(
        f"d{i}", 1
    ),
    E + "plugin_data_scope_violations_total": lambda r, i: r.record_plugin_data_scope_violation(
        "Filter", "f", f"p{i}", "read"
    ),
    E + "flow_control_revocations_total": lambda r, i: r.record_flow_control_revocations(
        f"pool-{i}", "confirmed", 1
    ),
    E + "flow_control_capacity_utilization_requests": lambda r, i: (
        r.record_flow_control_capacity_utilization_requests(str(i), "pool", 0.5)
    ),
    E + "flow_control_reclaim_target": lambda r, i: r.record_flow_control_reclaim_target(
        f"pool-{i}", 0.1
    ),
}


@pytest.mark.parametrize("metric", list(BOUNDED))
def test_max_series_bounds_every_new_group(registry: CollectorRegistry, metric: str) -> None:
    recorder = recorder_on(registry, max_series=2)
    for index in range(5):
        BOUNDED[metric](recorder, index)
    family = parse_registry(registry)[metric]
    series = {labels for name, labels in family.samples if not name.endswith("_bucket")}
    assert len({frozenset((k, v) for k, v in labels if k != "le") for labels in series}) == 3
    assert any(
        dict(labels).get(k) == OVERFLOW_LABEL_VALUE for labels in series for k in dict(labels)
    )


# --- where on an input (GIE's saturation) ---------------------------------------------------------


def test_a_view_of_some_label_sets_shows_only_them_and_keeps_the_others_apart(
    registry: CollectorRegistry,
) -> None:
    """A view without the ``stage`` label, of the ``effective`` stage only: a prefill value is not
    shown, and does not overwrite the effective one although the view's labels are the same."""
    only = Schema(
        "effective",
        "Effective",
        "The gating saturation.",
        (
            View(
                q.FLOW_CONTROL_POOL_SATURATION,
                MetricSpec("x_saturation", Kind.GAUGE, "Saturation.", ("inference_pool",)),
                where={"stage": "effective"},
            ),
        ),
    )
    recorder = Recorder(PrometheusBackend(registry), schema=only)
    recorder.record_flow_control_pool_saturation("p", "effective", 0.5)
    recorder.record_flow_control_pool_saturation("p", "prefill", 0.9)
    assert parse_registry(registry)["x_saturation"].samples == {
        ("x_saturation", frozenset({("inference_pool", "p")})): 0.5
    }


# --- upstream's forms of today's calls ------------------------------------------------------------


def test_token_counts_take_upstream_s_form_and_the_original_one_alike(
    registry: CollectorRegistry,
) -> None:
    recorder = recorder_on(registry)
    recorder.record_input_tokens("m", "t", "tenant-a", "1", 10)  # upstream's
    recorder.record_input_tokens("m", "t", 20, fairness_id="tenant-a", priority="1")  # original
    recorder.record_input_tokens("m", "t", tokens=30, fairness_id="tenant-a", priority=1)
    recorder.record_input_tokens("m", "t", fairness_id="tenant-a", priority="1", size=40)
    recorder.record_input_tokens("m", "t", "tenant-a", "1", 0)  # 0: not observed
    family = parse_registry(registry)["llm_d_epp_request_input_tokens"]
    labels = {
        "model_name": "m",
        "target_model_name": "t",
        "fairness_id": "tenant-a",
        "priority": "1",
    }
    assert family.value("llm_d_epp_request_input_tokens_count", **labels) == 4
    assert family.value("llm_d_epp_request_input_tokens_sum", **labels) == 100


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("tenant-a", "1", 10), {"tokens": 5}),
        ((10,), {"size": 5}),
        (("tenant-a",), {"fairness_id": "x", "size": 5}),
        (("tenant-a", "1", 10, 11), {}),
        (("tenant-a", "1"), {}),
    ],
)
def test_a_token_count_given_twice_or_not_at_all_is_a_type_error(
    registry: CollectorRegistry, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    recorder = recorder_on(registry)
    with pytest.raises(TypeError, match=r"record_output_tokens|fairness_id must be a string"):
        recorder.record_output_tokens("m", "t", *args, **kwargs)  # type: ignore[arg-type]
    assert parse_registry(registry) == {}


def test_inspect_shows_upstream_s_parameters_for_the_methods_with_two_forms() -> None:
    names = list(inspect.signature(Recorder.record_inter_token_latency).parameters)
    rule = ["model_name", "target_model_name", "fairness_id", "priority", "itl_seconds"]
    assert names == ["self", *rule, "seconds"]


def test_a_negative_inter_token_latency_returns_false_and_logs_in_upstream_s_form(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = recorder_on(registry)
    with caplog.at_level(logging.ERROR, logger="inference_metrics.recorder"):
        assert recorder.record_inter_token_latency("m", "t", "f", "0", -0.01) is False
    assert "itl_seconds" in caplog.text
    assert parse_registry(registry) == {}
    with pytest.raises(ValueError, match="seconds"):  # the original form refuses it, as before
        recorder.record_inter_token_latency("m", "t", -0.01)
    assert recorder.record_inter_token_latency("m", "t", "f", "0", 0.0) is True


def test_prompt_cached_tokens_observes_zero(registry: CollectorRegistry) -> None:
    recorder = recorder_on(registry)
    recorder.record_prompt_cached_tokens("m", "t", "f", "0", 0)
    name = "llm_d_epp_request_cached_tokens_count"
    labels = {"model_name": "m", "target_model_name": "t", "fairness_id": "f", "priority": "0"}
    assert parse_registry(registry)["llm_d_epp_request_cached_tokens"].value(name, **labels) == 1


def test_a_non_streamed_ttft_shows_only_where_ttft_is_labelled_streaming(
    registry: CollectorRegistry,
) -> None:
    schemas = ["gie-v0.3", "llm-d-router-without-deprecated"]
    recorder = Recorder(PrometheusBackend(registry), schema=schemas)
    assert recorder.record_request_ttft("m", "t", "f", "0", False, 1.0, 1.5) is True
    families = parse_registry(registry)
    assert "inference_model_request_ttft_seconds" not in families
    family = families["llm_d_epp_request_ttft_seconds"]
    assert {dict(labels)["streaming"] for _, labels in family.samples} == {"false"}


def test_tpot_of_a_response_that_was_not_streamed_records_nothing(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = recorder_on(registry)
    with caplog.at_level(logging.ERROR):
        assert recorder.record_request_tpot("m", "t", "f", "0", False, 0.0, 0.5, 2.0, 11) is False
    assert caplog.text == ""  # upstream: skipped without an error log
    assert "llm_d_epp_request_streaming_tpot_seconds" not in parse_registry(registry)
