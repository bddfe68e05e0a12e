"""Upstream's own metrics test scenarios, through ``Recorder(PrometheusBackend(...))``, checked
on the parsed text exposition: GIE's seed scenarios (reference, section 1) written out below, and
llm-d-router's metrics_test.go replayed from data against its golden files (last section).

Like upstream's golden-file comparison, families are compared parsed (names, HELP, TYPE, label
sets, values), so ``le="1"`` vs ``le="1.0"`` and sample order do not matter. The expected values
are written out here (and computed from upstream's bucket bounds in tests/upstream_facts.py),
never taken from the library.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from inspect import Parameter

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.schemas import get_schema

from . import upstream_facts as up
from .expo import Family, parse_text
from .upstream_functions import FUNCTION_BY_METHOD, FUNCTIONS, Function
from .upstream_replay import assert_check, assert_matches_golden
from .upstream_scenarios import SCENARIOS, Call, Check, Golden, Scenario, Step

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode("utf-8")


def check_family(text: str, name: str, expected: Samples) -> Family:
    """``name`` is exposed with upstream's HELP and TYPE and exactly the ``expected`` samples."""
    seed = up.SEED_BY_NAME[name]
    # The text format names a counter family with its _total, as Go does.
    assert f"# HELP {name} {up.ALPHA}{seed.help}\n" in text
    assert f"# TYPE {name} {seed.type}\n" in text
    family = parse_text(text)[name]
    assert family.type == seed.type
    assert family.documentation == up.ALPHA + seed.help
    assert family.samples == pytest.approx(expected, rel=1e-12, abs=1e-12)
    return family


def counter(name: str, values: dict[tuple[str, ...], float], labels: tuple[str, ...]) -> Samples:
    return {
        (name, frozenset(zip(labels, key, strict=True))): value for key, value in values.items()
    }


def model(m: str, t: str) -> dict[str, str]:
    return {"model_name": m, "target_model_name": t}


def bucket(family: Family, bound: str, **labels: str) -> float:
    return family.value(family.name + "_bucket", le=repr(float(bound)), **labels)


# --- counter + request sizes -------------------------------------------------------------------


def test_request_counter_and_request_sizes(registry: CollectorRegistry, recorder: Recorder) -> None:
    requests = [("m10", "t10", 1200), ("m10", "t10", 500), ("m10", "t11", 2480), ("m20", "t20", 80)]
    for m, t, size in requests:
        recorder.record_request_counter(m, t)
        recorder.record_request_size(m, t, size)
    text = exposition(registry)

    # Only the two families recorded into are exposed (Go drops families with no samples).
    assert set(parse_text(text)) == {up.REQUEST_TOTAL, up.REQUEST_SIZES}

    check_family(
        text,
        up.REQUEST_TOTAL,
        counter(
            up.REQUEST_TOTAL,
            {("m10", "t10"): 2, ("m10", "t11"): 1, ("m20", "t20"): 1},
            up.MODEL,
        ),
    )
    sizes = check_family(
        text,
        up.REQUEST_SIZES,
        {
            **up.expected_histogram(
                up.REQUEST_SIZES, up.REQUEST_SIZE_BUCKETS, [1200, 500], **model("m10", "t10")
            ),
            **up.expected_histogram(
                up.REQUEST_SIZES, up.REQUEST_SIZE_BUCKETS, [2480], **model("m10", "t11")
            ),
            **up.expected_histogram(
                up.REQUEST_SIZES, up.REQUEST_SIZE_BUCKETS, [80], **model("m20", "t20")
            ),
        },
    )
    # The reference's words for m10/t10: 0 up to le=256, 1 at 512 and 1024, 2 from 2048.
    labels = model("m10", "t10")
    for bound in ("64", "128", "256"):
        assert bucket(sizes, bound, **labels) == 0
    for bound in ("512", "1024"):
        assert bucket(sizes, bound, **labels) == 1
    for bound in ("2048", "4096", "1073741824", "inf"):
        assert bucket(sizes, bound, **labels) == 2
    assert sizes.value(up.REQUEST_SIZES + "_sum", **labels) == 1700
    assert sizes.value(up.REQUEST_SIZES + "_count", **labels) == 2
    assert bucket(sizes, "128", **model("m20", "t20")) == 1
    assert bucket(sizes, "64", **model("m20", "t20")) == 0


# --- errors ------------------------------------------------------------------------------------


def test_request_errors(registry: CollectorRegistry, recorder: Recorder) -> None:
    recorder.record_request_error("m10", "t10", "Internal")
    recorder.record_request_error("m10", "t10", "Internal")
    recorder.record_request_error("m10", "t11", "ModelServerError")
    recorder.record_request_error("m20", "t20", "InferencePoolResourceExhausted")
    text = exposition(registry)
    assert set(parse_text(text)) == {up.REQUEST_ERROR_TOTAL}
    check_family(
        text,
        up.REQUEST_ERROR_TOTAL,
        counter(
            up.REQUEST_ERROR_TOTAL,
            {
                ("m10", "t10", "Internal"): 2,
                ("m10", "t11", "ModelServerError"): 1,
                ("m20", "t20", "InferencePoolResourceExhausted"): 1,
            },
            (*up.MODEL, "error_code"),
        ),
    )


def test_an_empty_error_code_counts_nothing(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    recorder.record_request_error("m10", "t10", "")
    assert exposition(registry) == ""
    recorder.record_request_error("m10", "t10", "Internal")
    before = exposition(registry)
    recorder.record_request_error("m10", "t10", "")
    recorder.record_request_error("m99", "t99", "")
    assert exposition(registry) == before
    family = parse_text(before)[up.REQUEST_ERROR_TOTAL]
    assert list(family.samples.values()) == [1]


def test_errors_before_the_model_is_known_are_counted_with_empty_labels(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    recorder.record_request_error("", "", "BadRequest")
    check_family(
        exposition(registry),
        up.REQUEST_ERROR_TOTAL,
        counter(up.REQUEST_ERROR_TOTAL, {("", "", "BadRequest"): 1}, (*up.MODEL, "error_code")),
    )


# --- latencies ---------------------------------------------------------------------------------


def test_request_latencies(registry: CollectorRegistry, recorder: Recorder) -> None:
    received = 1234.5  # a monotonic timestamp
    pairs = [
        ("m10", "t10", received, received + 0.010),
        ("m10", "t10", received, received + 1.600),
        ("m10", "t11", received, received + 0.060),
        ("m20", "t20", received, received + 0.120),
    ]
    observed: dict[tuple[str, str], list[float]] = {}
    for m, t, start, end in pairs:
        assert recorder.record_request_latency(m, t, start, end) is True
        observed.setdefault((m, t), []).append(end - start)
    text = exposition(registry)
    assert set(parse_text(text)) == {up.REQUEST_DURATION}
    expected: Samples = {}
    for (m, t), values in observed.items():
        expected.update(
            up.expected_histogram(up.REQUEST_DURATION, up.DURATION_BUCKETS, values, **model(m, t))
        )
    family = check_family(text, up.REQUEST_DURATION, expected)

    labels = model("m10", "t10")
    assert family.value(up.REQUEST_DURATION + "_sum", **labels) == pytest.approx(1.61)
    assert family.value(up.REQUEST_DURATION + "_count", **labels) == 2
    assert bucket(family, "0.005", **labels) == 0
    assert bucket(family, "0.025", **labels) == 1
    assert bucket(family, "1.5", **labels) == 1
    assert bucket(family, "2", **labels) == 2
    assert bucket(family, "0.05", **model("m10", "t11")) == 0
    assert bucket(family, "0.1", **model("m10", "t11")) == 1
    assert bucket(family, "0.1", **model("m20", "t20")) == 0
    assert bucket(family, "0.2", **model("m20", "t20")) == 1


@pytest.mark.parametrize(("received", "completed"), [(10.0, 9.99), (10.0, 10.0), (5, 0)])
def test_a_latency_that_does_not_move_forward_records_nothing(
    registry: CollectorRegistry,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    received: float,
    completed: float,
) -> None:
    assert recorder.record_request_latency("m10", "t10", 1.0, 1.5) is True
    before = exposition(registry)
    with caplog.at_level(logging.ERROR, logger="inference_metrics"):
        assert recorder.record_request_latency("m10", "t10", received, completed) is False
        assert recorder.record_request_latency("new", "new", received, completed) is False
    assert exposition(registry) == before
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "not recorded" in errors[0].getMessage()


def test_a_latency_that_never_moved_forward_exposes_no_family(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    assert recorder.record_request_latency("m10", "t10", 2.0, 1.0) is False
    assert exposition(registry) == ""


# --- response size and tokens ------------------------------------------------------------------


def test_response_sizes_and_tokens(registry: CollectorRegistry, recorder: Recorder) -> None:
    responses = [
        ("m10", "t10", 1200, 10, 100),
        ("m10", "t10", 500, 20, 200),
        ("m10", "t11", 2480, 30, 300),
        ("m20", "t20", 80, 40, 400),
    ]
    by_series: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for m, t, size, prompt, completion in responses:
        recorder.record_response_size(m, t, size)
        recorder.record_input_tokens(m, t, prompt)
        recorder.record_output_tokens(m, t, completion)
        by_series.setdefault((m, t), []).append((size, prompt, completion))
    text = exposition(registry)
    assert set(parse_text(text)) == {up.RESPONSE_SIZES, up.INPUT_TOKENS, up.OUTPUT_TOKENS}

    for index, (name, buckets) in enumerate(
        [
            (up.RESPONSE_SIZES, up.RESPONSE_SIZE_BUCKETS),
            (up.INPUT_TOKENS, up.INPUT_TOKEN_BUCKETS),
            (up.OUTPUT_TOKENS, up.OUTPUT_TOKEN_BUCKETS),
        ]
    ):
        expected: Samples = {}
        for (m, t), rows in by_series.items():
            values = [row[index] for row in rows]
            expected.update(up.expected_histogram(name, buckets, values, **model(m, t)))
        check_family(text, name, expected)

    families = parse_text(text)
    labels = model("m10", "t10")
    sizes = families[up.RESPONSE_SIZES]
    inputs = families[up.INPUT_TOKENS]
    outputs = families[up.OUTPUT_TOKENS]
    assert [bucket(sizes, b, **labels) for b in ("256", "512", "1024", "2048", "inf")] == [
        0,
        1,
        1,
        2,
        2,
    ]
    assert sizes.value(up.RESPONSE_SIZES + "_sum", **labels) == 1700
    assert [bucket(inputs, b, **labels) for b in ("8", "16", "32")] == [0, 1, 2]
    assert inputs.value(up.INPUT_TOKENS + "_sum", **labels) == 30
    assert [bucket(outputs, b, **labels) for b in ("64", "128", "256")] == [0, 1, 2]
    assert outputs.value(up.OUTPUT_TOKENS + "_sum", **labels) == 300
    assert outputs.value(up.OUTPUT_TOKENS + "_count", **model("m20", "t20")) == 1
    # 32778, not 32768, is the bound exposed.
    assert bucket(sizes, "32778", **labels) == 2
    assert (
        "inference_model_response_sizes_bucket",
        frozenset({**labels, "le": "32768.0"}.items()),
    ) not in sizes.samples


def test_zero_tokens_are_not_observed_but_zero_sizes_are(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    recorder.record_input_tokens("m", "t", 0)
    recorder.record_output_tokens("m", "t", 0)
    recorder.record_input_tokens("m", "t", 0.0)
    assert exposition(registry) == ""

    recorder.record_response_size("m", "t", 0)
    recorder.record_request_size("m", "t", 0)
    text = exposition(registry)
    assert set(parse_text(text)) == {up.RESPONSE_SIZES, up.REQUEST_SIZES}
    check_family(
        text,
        up.RESPONSE_SIZES,
        up.expected_histogram(up.RESPONSE_SIZES, up.RESPONSE_SIZE_BUCKETS, [0], **model("m", "t")),
    )
    family = check_family(
        text,
        up.REQUEST_SIZES,
        up.expected_histogram(up.REQUEST_SIZES, up.REQUEST_SIZE_BUCKETS, [0], **model("m", "t")),
    )
    assert bucket(family, "64", **model("m", "t")) == 1
    assert family.value(up.REQUEST_SIZES + "_sum", **model("m", "t")) == 0


def test_a_value_equal_to_a_bound_falls_in_that_bucket(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    recorder.record_output_tokens("m", "t", 8)
    recorder.record_response_size("m", "t", 32778)
    families = parse_text(exposition(registry))
    labels = model("m", "t")
    assert bucket(families[up.OUTPUT_TOKENS], "1", **labels) == 0
    assert bucket(families[up.OUTPUT_TOKENS], "8", **labels) == 1
    assert bucket(families[up.RESPONSE_SIZES], "16384", **labels) == 0
    assert bucket(families[up.RESPONSE_SIZES], "32778", **labels) == 1


# --- pools -------------------------------------------------------------------------------------


def test_pool_gauges(registry: CollectorRegistry, recorder: Recorder) -> None:
    recorder.record_pool_kv_cache_utilization("p1", 0.3)
    recorder.record_pool_queue_size("p1", 0.4)
    text = exposition(registry)
    assert set(parse_text(text)) == {up.POOL_KV_CACHE, up.POOL_QUEUE_SIZE}
    assert 'inference_pool_average_kv_cache_utilization{name="p1"} 0.3\n' in text
    assert 'inference_pool_average_queue_size{name="p1"} 0.4\n' in text
    check_family(text, up.POOL_KV_CACHE, counter(up.POOL_KV_CACHE, {("p1",): 0.3}, ("name",)))
    check_family(text, up.POOL_QUEUE_SIZE, counter(up.POOL_QUEUE_SIZE, {("p1",): 0.4}, ("name",)))


def test_pool_gauges_are_set_not_added(registry: CollectorRegistry, recorder: Recorder) -> None:
    recorder.record_pool_queue_size("p1", 7)
    recorder.record_pool_queue_size("p1", 2.5)
    recorder.record_pool_queue_size("p2", 0)
    check_family(
        exposition(registry),
        up.POOL_QUEUE_SIZE,
        counter(up.POOL_QUEUE_SIZE, {("p1",): 2.5, ("p2",): 0}, ("name",)),
    )


def test_nothing_recorded_exposes_nothing(registry: CollectorRegistry) -> None:
    Recorder(PrometheusBackend(registry))
    assert exposition(registry) == ""


# --- llm-d-router's own tests, replayed (tests/upstream_scenarios.py) -----------------------------
# Each scenario of upstream's metrics_test.go makes its calls on a Recorder with the llm-d-router
# schema and compares the exposition with upstream's golden files (and single values) exactly.
# Calls are named by issue 21's rule; until the Recorder has a method by that name and
# parameters, a call goes to today's method that records the same (_TODAY). Scenarios with a call
# that has neither are expected to fail for that reason only (strict: a scenario that passes, or
# fails otherwise, fails the suite, so PENDING shrinks as the calls arrive).

_TODAY: dict[str, Callable[..., object]] = {
    "record_request_counter": lambda r, m, t, f, p: r.record_request_counter(
        m, t, fairness_id=f, priority=p
    ),
    "record_request_err_counter": lambda r, m, t, f, p, code: r.record_request_error(
        m, t, code, fairness_id=f, priority=p
    ),
    "record_request_sizes": lambda r, m, t, f, p, size: r.record_request_size(
        m, t, size, fairness_id=f, priority=p
    ),
    "record_request_latencies": lambda r, m, t, f, p, start, end: r.record_request_latency(
        m, t, start, end, fairness_id=f, priority=p
    ),
    "record_response_sizes": lambda r, m, t, f, p, size: r.record_response_size(
        m, t, size, fairness_id=f, priority=p
    ),
    "record_input_tokens": lambda r, m, t, f, p, size: r.record_input_tokens(
        m, t, size, fairness_id=f, priority=p
    ),
    "record_output_tokens": lambda r, m, t, f, p, size: r.record_output_tokens(
        m, t, size, fairness_id=f, priority=p
    ),
    "inc_running_requests": lambda r, m, t, f, p: r.record_running_request_started(
        m, t, fairness_id=f, priority=p
    ),
    "dec_running_requests": lambda r, m, t, f, p: r.record_running_request_finished(
        m, t, fairness_id=f, priority=p
    ),
    "record_inference_pool_avg_kv_cache": lambda r, n, v: r.record_pool_kv_cache_utilization(n, v),
    "record_inference_pool_avg_queue_size": lambda r, n, v: r.record_pool_queue_size(n, v),
    "record_inference_pool_avg_running_requests": (
        lambda r, n, v: r.record_pool_average_running_requests(n, v)
    ),
    "record_inference_pool_std_dev_kv_cache": (
        lambda r, n, v: r.record_pool_std_dev_kv_cache_utilization(n, v)
    ),
    "record_inference_pool_std_dev_queue_size": (
        lambda r, n, v: r.record_pool_std_dev_queue_size(n, v)
    ),
    "record_inference_pool_std_dev_running_requests": (
        lambda r, n, v: r.record_pool_std_dev_running_requests(n, v)
    ),
    "record_inference_pool_ready_pods": lambda r, n, v: r.record_pool_ready_pods(n, v),
    "record_inference_extension_info": lambda r, c, b: r.record_extension_info(c, b),
}


def _follows_rule(method: str, cls: type = Recorder) -> bool:
    """Whether ``cls.<method>`` (the Recorder's) takes issue 21's parameters, in order,
    positional-or-keyword (options of ours may follow: keyword-only, with defaults)."""
    found = getattr(cls, method, None)
    if found is None:
        return False
    params = list(inspect.signature(found).parameters.values())[1:]
    expected = [p.name for p in FUNCTION_BY_METHOD[method].params]
    rule, extra = params[: len(expected)], params[len(expected) :]
    return (
        [p.name for p in rule] == expected
        and all(p.kind is Parameter.POSITIONAL_OR_KEYWORD for p in rule)
        and all(p.kind is Parameter.KEYWORD_ONLY and p.default is not p.empty for p in extra)
    )


def _missing(scenario: Scenario) -> list[str]:
    calls = {c.method for step in scenario.steps for c in step.calls}
    return sorted(m for m in calls if not _follows_rule(m) and m not in _TODAY)


class NotYetRecordable(Exception):
    """The Recorder has no call for one of upstream's functions yet."""


def _invoke(recorder: Recorder, call: Call) -> object:
    if _follows_rule(call.method):
        return getattr(recorder, call.method)(*call.args, **call.kwargs)
    if call.method not in _TODAY:
        raise NotYetRecordable(f"issue 21: the Recorder has no {call.method} yet")
    return _TODAY[call.method](recorder, *call.args, **call.kwargs)


#: Scenarios with a call the Recorder cannot make yet: none since issue 21 (a later upstream test
#: with a call the Recorder lacks goes here until it has one).
PENDING: frozenset[str] = frozenset()


def _replayed(scenario: Scenario) -> object:
    if scenario.test not in PENDING:
        return pytest.param(scenario, id=scenario.test)
    reason = "issue 21: no Recorder call yet for " + ", ".join(_missing(scenario))
    return pytest.param(
        scenario,
        id=scenario.test,
        marks=pytest.mark.xfail(strict=True, reason=reason, raises=NotYetRecordable),
    )


@pytest.mark.parametrize("scenario", [_replayed(s) for s in SCENARIOS])
def test_upstream_s_scenario_matches_its_golden_files_under_the_llm_d_router_schema(
    registry: CollectorRegistry, scenario: Scenario
) -> None:
    recorder = Recorder(PrometheusBackend(registry), schema="llm-d-router")
    for step in scenario.steps:
        families = _replay(recorder, registry, step)
        for golden in step.goldens:
            assert_matches_golden(families, golden)
        for check in step.checks:
            assert_check(families, check)


def _replay(recorder: Recorder, registry: CollectorRegistry, step: Step) -> dict[str, Family]:
    """Make the step's calls (checking what upstream's test says they return); the families
    exposed then."""
    for call in step.calls:
        returned = _invoke(recorder, call)
        if call.returns is not None:
            assert returned is call.returns, call
    return parse_text(exposition(registry))


# --- the same scenarios under gie-v1.5 ------------------------------------------------------------
# GIE v1.5.0 exposes the deprecated twins' names as its own metrics, without llm-d-router's
# "[Deprecated: Use ...]" note (tests/data/upstream/gie-v1.5.0/ holds GIE's own golden files, which
# tests/test_upstream_facts.py checks are llm-d-router's without the note). So every scenario that
# compares a name gie-v1.5 shows is replayed under gie-v1.5 against those comparisons. GIE's pool
# saturation is not the twin (no stage label, its own HELP): see the test after this one.

GIE_V15_NAMES = frozenset(view.spec.name for view in get_schema("gie-v1.5"))
GIE_V15_APART = frozenset({"inference_extension_flow_control_pool_saturation"})


def _gie_v15_compared(step: Step) -> tuple[list[Golden], list[Check]]:
    names = GIE_V15_NAMES - GIE_V15_APART
    return (
        [g for g in step.goldens if g.metric in names],
        [c for c in step.checks if c.metric in names],
    )


GIE_V15_SCENARIOS = [s for s in SCENARIOS if any(any(_gie_v15_compared(step)) for step in s.steps)]


@pytest.mark.parametrize("scenario", GIE_V15_SCENARIOS, ids=[s.test for s in GIE_V15_SCENARIOS])
def test_upstream_s_scenario_matches_its_golden_files_under_the_gie_v15_schema(
    registry: CollectorRegistry, scenario: Scenario
) -> None:
    recorder = Recorder(PrometheusBackend(registry), schema="gie-v1.5")
    for step in scenario.steps:
        families = _replay(recorder, registry, step)
        assert set(families) <= GIE_V15_NAMES  # nothing of llm-d-router's own names
        goldens, checks = _gie_v15_compared(step)
        for golden in goldens:
            assert_matches_golden(families, golden, deprecation_note=False)
        for check in checks:
            assert_check(families, check)


def test_gie_v15_pool_saturation_shows_the_effective_stage_only(
    registry: CollectorRegistry,
) -> None:
    """upstream's TestFlowControlPoolSaturationMetric under gie-v1.5: GIE v1.5.0's gauge has no
    stage; it shows the stage that gates dispatch, and a deletion of another stage leaves it."""
    recorder = Recorder(PrometheusBackend(registry), schema="gie-v1.5")
    name = "inference_extension_flow_control_pool_saturation"
    saturation = next(s for s in SCENARIOS if s.test == "TestFlowControlPoolSaturationMetric")
    for step in saturation.steps:
        family = _replay(recorder, registry, step)[name]
        assert family.documentation == (
            "[ALPHA] Current saturation level of the inference pool (0.0 = empty, 1.0 = fully "
            "saturated)."
        )
        assert family.samples == {(name, frozenset({("inference_pool", "test-pool")})): 0.5}
    recorder.delete_flow_control_pool_saturation("test-pool", "prefill")
    assert name in parse_text(exposition(registry))
    recorder.delete_flow_control_pool_saturation("test-pool", "effective")
    assert name not in parse_text(exposition(registry))


class _RuleShaped:
    def record_scheduler_e2e_latency(self, duration: float, *, option: int = 0) -> None: ...
    def record_request_processing_latency(self, *, duration: float) -> None: ...
    def record_response_processing_latency(self, seconds: float) -> None: ...
    def record_flow_control_dispatch_cycle_duration(self, duration: float, option: int) -> None: ...


def test_a_method_follows_the_rule_by_its_parameters_names_order_and_kinds() -> None:
    assert _follows_rule("record_scheduler_e2e_latency", _RuleShaped)
    assert not _follows_rule("record_request_processing_latency", _RuleShaped)  # keyword-only
    assert not _follows_rule("record_response_processing_latency", _RuleShaped)  # another name
    assert not _follows_rule("record_flow_control_dispatch_cycle_duration", _RuleShaped)  # extra
    assert not _follows_rule("record_plugin_processing_latency", _RuleShaped)  # absent


def test_the_pending_scenarios_are_those_with_a_call_the_recorder_lacks() -> None:
    assert {s.test for s in SCENARIOS if _missing(s)} == PENDING


def test_each_of_today_s_stand_ins_is_the_recorder_method_the_facts_name() -> None:
    assert set(_TODAY) == {f.method for f in FUNCTIONS if f.today is not None}
    for function in FUNCTIONS:
        if function.today is not None:
            assert callable(getattr(Recorder, function.today))


def test_a_replayed_golden_file_catches_a_different_value(registry: CollectorRegistry) -> None:
    """The replay can fail: one request size off, and upstream's golden file no longer matches."""
    recorder = Recorder(PrometheusBackend(registry), schema="llm-d-router")
    scenario = SCENARIOS[0]
    for call in scenario.steps[0].calls:
        args = call.args
        if call.method == "record_request_sizes" and args[-1] == 80:
            args = (*args[:-1], 8000)
        _invoke(recorder, call._replace(args=args))
    golden = next(
        g for g in scenario.steps[0].goldens if g.metric == "llm_d_epp_request_size_bytes"
    )
    with pytest.raises(AssertionError):
        assert_matches_golden(parse_text(exposition(registry)), golden)


#: Recording functions whose rule-named Recorder method is not there yet: none since issue 21.
PENDING_METHODS: frozenset[str] = frozenset()


@pytest.mark.parametrize(
    "function",
    [
        pytest.param(
            f,
            id=f.method,
            marks=[pytest.mark.xfail(strict=True, reason=f"issue 21: no Recorder.{f.method} yet")]
            if f.method in PENDING_METHODS
            else [],
        )
        for f in FUNCTIONS
    ],
)
def test_the_recorder_has_the_rule_s_method_for_each_upstream_function(function: Function) -> None:
    assert _follows_rule(function.method), (function.method, [p.name for p in function.params])
