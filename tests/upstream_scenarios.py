# ruff: noqa: E501
"""llm-d-router's ``pkg/epp/metrics/metrics_test.go`` (ebab6879, blob 6e1caf2f3fa9) as data.

Each :class:`Scenario` is one Go test (or one subtest where upstream calls ``Reset()`` per
subtest): its steps run in order on one set of metrics, each step makes its calls and then
compares, as upstream does, the registry against golden files (tests/data/upstream/
llm-d-router-v0.10.0/, each filtered to one family, as ``GatherAndCompare(..., name)``) and
against single values (``GetGaugeMetricValue``, histogram count and sum, ``CollectAndCount``).

Calls follow issue 21's rule (tests/upstream_functions.py): the Recorder method name and
upstream's arguments in upstream's order. Conversions, exactly as Go computes them:

* ``time.Duration`` -> seconds by ``Duration.Seconds()`` (:func:`go_seconds`);
* ``time.Time`` -> seconds on one clock. Upstream's tests add durations to ``time.Now()``; here
  the baseline is 0.0, so ``complete - received`` gives exactly Go's ``complete.Sub(received)
  .Seconds()`` (with a non-zero baseline the float subtraction would round differently).
  ``time.Time{}`` (the zero time) -> ``None``;
* ``errors.New(...)`` -> an ``Exception``; ``*SchedulingResult`` -> the first target endpoint of
  the primary profile as ``(name, namespace, port)``, or ``None`` when upstream passes nil.

``returns`` is what upstream's test asserts the call returns (``None``: nothing asserted, or the
function returns nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

#: Where the golden files are, under tests/.
GOLDEN_DIR = "data/upstream/llm-d-router-v0.10.0"

_NO_KWARGS: Mapping[str, object] = MappingProxyType({})


def go_seconds(nanoseconds: int) -> float:
    """Go's ``time.Duration(nanoseconds).Seconds()``: whole seconds plus the remainder / 1e9."""
    if nanoseconds < 0:
        raise ValueError(f"nanoseconds must be >= 0 here, got {nanoseconds!r}")
    seconds, rest = divmod(nanoseconds, 1_000_000_000)
    return float(seconds) + rest / 1e9


def ns(n: int) -> float:
    return go_seconds(n)


def us(n: int) -> float:
    return go_seconds(n * 1_000)


def ms(n: int) -> float:
    return go_seconds(n * 1_000_000)


class Call(NamedTuple):
    method: str
    args: tuple[object, ...]
    kwargs: Mapping[str, object] = _NO_KWARGS
    returns: bool | None = None


class Golden(NamedTuple):
    """Compare the family ``metric`` with golden file ``file`` (parsed, exactly)."""

    file: str
    metric: str


class Value(NamedTuple):
    """A counter's or gauge's value for one label set."""

    metric: str
    labels: Mapping[str, str]
    value: float


class HistogramCount(NamedTuple):
    """A histogram series' observation count (exact) and sum (within ``tolerance``, as
    upstream's ``InDelta``; ``InEpsilon`` is written as the equivalent absolute tolerance)."""

    metric: str
    labels: Mapping[str, str]
    observations: int
    sum: float
    tolerance: float


class SeriesCount(NamedTuple):
    """How many series one family has (``promtestutil.CollectAndCount``)."""

    metric: str
    series: int


Check = Value | HistogramCount | SeriesCount


class Step(NamedTuple):
    name: str  # the t.Run name ("" where upstream has none)
    calls: tuple[Call, ...]
    goldens: tuple[Golden, ...] = ()
    checks: tuple[Check, ...] = ()


class Scenario(NamedTuple):
    test: str  # "TestName" or "TestName/subtest" when upstream resets per subtest
    steps: tuple[Step, ...]


def _c(method: str, *args: object, returns: bool | None = None) -> Call:
    return Call(method, args, _NO_KWARGS, returns)


def _labels(**labels: str) -> Mapping[str, str]:
    return MappingProxyType(labels)


def _model(m: str, t: str, f: str, p: str) -> Mapping[str, str]:
    return _labels(model_name=m, target_model_name=t, fairness_id=f, priority=p)


_RESULT_POD1 = ("pod-1", "ns-1", "8080")
_RESULT_POD2 = ("pod-2", "ns-2", "9090")
_SCHEDULING_FAILURE = Exception("simulated scheduling failure")
_SCHED_DURATIONS = (us(200), us(800), us(1500), ms(3), ms(8), ms(15), ms(30), ms(75), ms(150))
_FLOW = ("pool-1", "qwen-3", "qwen-3-base")  # pool, model, target of the flow-control tests


def _attempts(name: str, calls: tuple[Call, ...], golden: str) -> Scenario:
    return Scenario(
        f"TestSchedulerAttemptsTotal/{name}",
        (
            Step(
                name,
                calls,
                (
                    Golden(golden, "inference_extension_scheduler_attempts_total"),
                    Golden("llm_d_" + golden, "llm_d_epp_scheduler_attempts_total"),
                ),
            ),
        ),
    )


def _twins(metric: str, labels: Mapping[str, str], value: float) -> tuple[Value, Value]:
    """The same value under the deprecated inference_extension_ name and the llm_d_epp_ one."""
    return Value("inference_extension_" + metric, labels, value), Value(
        "llm_d_epp_" + metric, labels, value
    )


def _requests() -> Scenario:
    reqs = (("m10", "t10", "tenant-a", 1200), ("m10", "t10", "tenant-a", 500),
            ("m10", "t11", "tenant-b", 2480), ("m20", "t20", "tenant-c", 80))  # fmt: skip
    calls: list[Call] = []
    for m, t, f, size in reqs:
        calls.append(_c("record_request_counter", m, t, f, 0))
        calls.append(_c("record_request_sizes", m, t, f, "0", size))
    return Scenario(
        "TestRecordRequestCounterandSizes",
        (
            Step(
                "multiple requests",
                tuple(calls),
                (
                    Golden("request_total_metric", "inference_objective_request_total"),
                    Golden("request_sizes_metric", "inference_objective_request_sizes"),
                    Golden("llm_d_request_total_metric", "llm_d_epp_request_total"),
                    Golden("llm_d_request_size_bytes_metric", "llm_d_epp_request_size_bytes"),
                ),
            ),
        ),
    )


def _errors() -> Scenario:
    errs = (("m10", "t10", "Internal"), ("m10", "t10", "Internal"),
            ("m10", "t11", "ModelServerError"), ("m20", "t20", "ResourceExhausted"))  # fmt: skip
    return Scenario(
        "TestRecordRequestErrorCounter",
        (
            Step(
                "multiple requests",
                tuple(_c("record_request_err_counter", m, t, "", "0", code) for m, t, code in errs),
                (
                    Golden("request_error_total_metric", "inference_objective_request_error_total"),
                    Golden("llm_d_request_error_total_metric", "llm_d_epp_request_error_total"),
                ),
            ),
        ),
    )


def _latencies() -> Scenario:
    goldens = (
        Golden("request_duration_seconds_metric", "inference_objective_request_duration_seconds"),
        Golden("llm_d_request_duration_seconds_metric", "llm_d_epp_request_duration_seconds"),
    )
    valid = (("m10", "t10", 10), ("m10", "t10", 1600), ("m10", "t11", 60), ("m20", "t20", 120))
    return Scenario(
        "TestRecordRequestLatencies",
        (
            Step(
                "multiple requests",
                tuple(
                    _c("record_request_latencies", m, t, "", "0", 0.0, ms(d), returns=True)
                    for m, t, d in valid
                ),
                goldens,
            ),
            Step(
                "invalid elapsed time",
                (
                    _c(
                        "record_request_latencies",
                        "m10",
                        "t10",
                        "",
                        "0",
                        ms(10),
                        0.0,
                        returns=False,
                    ),
                ),
                goldens,
            ),
        ),
    )


def _ntpot() -> Scenario:
    goldens = (
        Golden(
            "normalized_time_per_output_token_seconds_metric",
            "inference_objective_normalized_time_per_output_token_seconds",
        ),
        Golden(
            "llm_d_normalized_time_per_output_token_seconds_metric",
            "llm_d_epp_request_ntpot_seconds",
        ),
    )
    method = "record_normalized_time_per_output_token"
    valid = (("m10", "t10", 1000, 100), ("m10", "t10", 1600, 80),
             ("m10", "t11", 6000, 300), ("m20", "t20", 2400, 400))  # fmt: skip
    return Scenario(
        "TestRecordNormalizedTimePerOutputToken",
        (
            Step(
                "multiple requests",
                tuple(
                    _c(method, m, t, "tenant-a", "3", 0.0, ms(d), n, returns=True)
                    for m, t, d, n in valid
                ),
                goldens,
                # require.InEpsilon(0.03, sum, 0.000001): a relative error of 1e-6.
                (
                    HistogramCount(
                        "llm_d_epp_request_ntpot_seconds",
                        _model("m10", "t10", "tenant-a", "3"),
                        2,
                        0.03,
                        0.03 * 1e-6,
                    ),
                ),
            ),
            Step(
                "invalid elapsed time",
                (_c(method, "m10", "t10", "tenant-a", "3", ms(10), 0.0, 100, returns=False),),
                goldens,
            ),
            Step(
                "invalid token count",
                (_c(method, "m10", "t10", "tenant-a", "3", 0.0, ms(1000), 0, returns=False),),
                goldens,
            ),
        ),
    )


def _responses() -> Scenario:
    resps = (("m10", "t10", 1200, 10, 100, 5), ("m10", "t10", 500, 20, 200, 10),
             ("m10", "t11", 2480, 30, 300, 15), ("m20", "t20", 80, 40, 400, 20))  # fmt: skip
    calls: list[Call] = []
    for m, t, size, tokens_in, tokens_out, cached in resps:
        calls.append(_c("record_input_tokens", m, t, "", "0", tokens_in))
        calls.append(_c("record_output_tokens", m, t, "", "0", tokens_out))
        calls.append(_c("record_response_sizes", m, t, "", "0", size))
        calls.append(_c("record_prompt_cached_tokens", m, t, "", "0", cached))
    return Scenario(
        "TestRecordResponseMetrics",
        (
            Step(
                "multiple requests",
                tuple(calls),
                (
                    Golden("response_sizes_metric", "inference_objective_response_sizes"),
                    Golden("input_tokens_metric", "inference_objective_input_tokens"),
                    Golden("output_tokens_metric", "inference_objective_output_tokens"),
                    Golden("llm_d_response_size_bytes_metric", "llm_d_epp_response_size_bytes"),
                    Golden("llm_d_input_tokens_metric", "llm_d_epp_request_input_tokens"),
                    Golden("llm_d_output_tokens_metric", "llm_d_epp_request_output_tokens"),
                ),
            ),
        ),
    )


def _running() -> Scenario:
    return Scenario(
        "TestRunningRequestsMetrics",
        (
            Step(
                "basic test",
                (
                    _c("inc_running_requests", "m1", "t1", "tenant-x", "10"),
                    _c("inc_running_requests", "m1", "t1", "tenant-x", "10"),
                    _c("dec_running_requests", "m1", "t1", "tenant-x", "10"),
                    _c("inc_running_requests", "m2", "t2", "tenant-y", "20"),
                ),
                (
                    Golden("running_requests_metrics", "inference_objective_running_requests"),
                    Golden("llm_d_running_requests_metrics", "llm_d_epp_request_running"),
                ),
            ),
        ),
    )


def _pools() -> Scenario:
    return Scenario(
        "TestInferencePoolMetrics",
        (
            Step(
                "basic test",
                (
                    _c("record_inference_pool_avg_kv_cache", "p1", 0.3),
                    _c("record_inference_pool_avg_queue_size", "p1", 0.4),
                    _c("record_inference_pool_avg_running_requests", "p1", 0.5),
                    _c("record_inference_pool_std_dev_kv_cache", "p1", 0.1),
                    _c("record_inference_pool_std_dev_queue_size", "p1", 0.2),
                    _c("record_inference_pool_std_dev_running_requests", "p1", 0.3),
                ),
                (
                    Golden("kv_cache_avg_metrics", "inference_pool_average_kv_cache_utilization"),
                    Golden("queue_avg_size_metrics", "inference_pool_average_queue_size"),
                    Golden("running_requests_avg_metrics", "inference_pool_average_running_requests"),
                    Golden("llm_d_kv_cache_avg_metrics", "llm_d_epp_average_kv_cache_utilization"),
                    Golden("llm_d_queue_avg_size_metrics", "llm_d_epp_average_queue_size"),
                    Golden("llm_d_running_requests_avg_metrics", "llm_d_epp_average_running_requests"),
                    Golden("llm_d_kv_cache_std_dev_metrics", "llm_d_epp_std_dev_kv_cache_utilization"),
                    Golden("llm_d_queue_std_dev_size_metrics", "llm_d_epp_std_dev_queue_size"),
                    Golden("llm_d_running_requests_std_dev_metrics", "llm_d_epp_std_dev_running_requests"),
                ),
            ),
        ),
    )  # fmt: skip


def _plugins() -> Scenario:
    latencies = (
        ("ProfilePicker", "ProfileHandler", "PluginB", ms(200)),
        ("Filter", "TestFilter", "PluginC", ms(50)),
        ("Scorer", "TestScorer", "PluginD", ms(10)),
        ("Picker", "TestPicker", "PluginE", us(10)),
        ("Admission", "TestAdmitter", "PluginF", ms(5)),
        ("DataProducer", "TestDataProducer", "PluginG", ms(1)),
        ("RequestParsing", "TestParser", "PluginH", ms(2)),
        ("ResponseParsing", "TestParser", "PluginH", ms(8)),
    )
    return Scenario(
        "TestPluginProcessingLatencies",
        (
            Step(
                "multiple plugins",
                tuple(_c("record_plugin_processing_latency", *entry) for entry in latencies),
                (
                    Golden(
                        "plugin_processing_latencies_metric",
                        "inference_extension_plugin_duration_seconds",
                    ),
                    Golden(
                        "llm_d_plugin_processing_latencies_metric",
                        "llm_d_epp_plugin_duration_seconds",
                    ),
                ),
            ),
        ),
    )


def _scheduler_e2e() -> Scenario:
    return Scenario(
        "TestSchedulerE2ELatency",
        (
            Step(
                "multiple scheduling latencies",
                tuple(_c("record_scheduler_e2e_latency", d) for d in _SCHED_DURATIONS),
                (
                    Golden(
                        "scheduler_e2e_duration_seconds_metric",
                        "inference_extension_scheduler_e2e_duration_seconds",
                    ),
                    Golden(
                        "llm_d_scheduler_e2e_duration_seconds_metric",
                        "llm_d_epp_scheduler_e2e_duration_seconds",
                    ),
                ),
            ),
        ),
    )


def _processing(test: str, method: str, metric: str) -> Scenario:
    golden = "llm_d_" + metric.removeprefix("llm_d_epp_") + "_metric"
    return Scenario(
        test,
        (Step("", tuple(_c(method, d) for d in _SCHED_DURATIONS), (Golden(golden, metric),)),),
    )


def _dispatch_cycle() -> Scenario:
    durations = (us(50), us(150), us(300), us(800), us(1500), ms(4), ms(8), ms(15), ms(30),
                 ms(80), ms(200))  # fmt: skip
    return Scenario(
        "TestFlowControlDispatchCycleLengthMetric",
        (
            Step(
                "multiple scheduling latencies",
                tuple(_c("record_flow_control_dispatch_cycle_duration", d) for d in durations),
                (
                    Golden(
                        "flow_control_dispatch_cycle_duration_seconds_metric",
                        "inference_extension_flow_control_dispatch_cycle_duration_seconds",
                    ),
                    Golden(
                        "llm_d_flow_control_dispatch_cycle_duration_seconds_metric",
                        "llm_d_epp_flow_control_dispatch_cycle_duration_seconds",
                    ),
                ),
            ),
        ),
    )


def _enqueue() -> Scenario:
    outcomes = ("Dispatched", "NotYetFinalized", "RejectedCapacity", "RejectedOther", "EvictedTTL",
                "EvictedContextCancelled", "EvictedOther")  # fmt: skip
    durations = (us(50), ms(200), us(400), ms(15), us(1500), ms(80), ns(100),
                 us(800), ms(1000), ms(4), ms(40), ms(8), ms(500), us(150))  # fmt: skip
    priorities = ("1",) * 7 + ("2",) * 7
    return Scenario(
        "TestFlowControlEnqueueDurationMetric",
        (
            Step(
                "multiple enqueue latencies",
                tuple(
                    _c("record_flow_control_request_enqueue_duration", "default-fairness", p, o, d)
                    for p, o, d in zip(priorities, outcomes * 2, durations, strict=True)
                ),
                (
                    Golden(
                        "flow_control_enqueue_duration_seconds_metric",
                        "inference_extension_flow_control_request_enqueue_duration_seconds",
                    ),
                    Golden(
                        "llm_d_flow_control_enqueue_duration_seconds_metric",
                        "llm_d_epp_flow_control_request_enqueue_duration_seconds",
                    ),
                ),
            ),
        ),
    )


def _queue_duration() -> Scenario:
    pool, model, target = _FLOW
    records = (("user-a", "100", "Dispatched", ms(10)), ("user-a", "100", "Dispatched", ms(20)),
               ("user-b", "100", "RejectedCapacity", ms(5)), ("user-a", "50", "Dispatched", ms(100)))  # fmt: skip
    expected = (("user-a", "100", "Dispatched", 2, 0.03), ("user-b", "100", "RejectedCapacity", 1, 0.005),
                ("user-a", "50", "Dispatched", 1, 0.1))  # fmt: skip
    checks: list[Check] = []
    for fairness, priority, outcome, count, total in expected:
        labels = _labels(fairness_id=fairness, priority=priority, outcome=outcome,
                         inference_pool=pool, model_name=model, target_model_name=target)  # fmt: skip
        for prefix in ("inference_extension_", "llm_d_epp_"):
            name = prefix + "flow_control_request_queue_duration_seconds"
            checks.append(HistogramCount(name, labels, count, total, 0.00001))
    return Scenario(
        "TestFlowControlQueueDurationMetric",
        (
            Step(
                "",
                tuple(
                    _c(
                        "record_flow_control_request_queue_duration",
                        f,
                        p,
                        o,
                        pool,
                        model,
                        target,
                        d,
                    )
                    for f, p, o, d in records
                ),
                (),
                tuple(checks),
            ),
        ),
    )


def _queue_gauge(test: str, up: Call, down: Call, metric: str, value: float) -> Scenario:
    pool, model, target = _FLOW
    labels = _labels(fairness_id="user-a", priority="100", inference_pool=pool, model_name=model,
                     target_model_name=target)  # fmt: skip
    return Scenario(
        test,
        (
            Step("", (up,), (), _twins(metric, labels, value)),
            Step("", (down,), (), _twins(metric, labels, 0.0)),
        ),
    )


def _saturation() -> Scenario:
    def labels(stage: str) -> Mapping[str, str]:
        return _labels(inference_pool="test-pool", stage=stage)

    twin = "inference_extension_flow_control_pool_saturation"
    method = "record_flow_control_pool_saturation"
    return Scenario(
        "TestFlowControlPoolSaturationMetric",
        (
            Step(
                "",
                (_c(method, "test-pool", "effective", 0.5),),
                (),
                _twins("flow_control_pool_saturation", labels("effective"), 0.5),
            ),
            Step("", (_c(method, "test-pool", "prefill", 0.3),), (), (Value(twin, labels("prefill"), 0.3),)),
            Step("", (_c(method, "test-pool", "decode", 0.7),), (), (Value(twin, labels("decode"), 0.7),)),
        ),
    )  # fmt: skip


def _flow_requests() -> Scenario:
    name = "llm_d_epp_flow_control_requests_total"
    return Scenario(
        "TestFlowControlRequestsTotalMetric",
        (
            Step(
                "",
                (
                    _c("inc_flow_control_requests_total", "Dispatched", "0", "test-pool"),
                    _c("inc_flow_control_requests_total", "Dispatched", "0", "test-pool"),
                    _c("inc_flow_control_requests_total", "RejectedCapacity", "10", "test-pool"),
                ),
                (),
                (
                    Value(name, _labels(outcome="Dispatched", priority="0", inference_pool="test-pool"), 2),
                    Value(name, _labels(outcome="RejectedCapacity", priority="10", inference_pool="test-pool"), 1),
                ),
            ),
        ),
    )  # fmt: skip


def _ttft() -> Scenario:
    method = "record_request_ttft"
    name = "llm_d_epp_request_ttft_seconds"
    return Scenario(
        "TestRecordRequestTTFT",
        (
            Step(
                "valid streaming requests",
                (
                    _c(method, "m10", "t10", "tenant-a", "3", True, 0.0, ms(10), returns=True),
                    _c(method, "m10", "t10", "tenant-a", "3", True, 0.0, ms(1600), returns=True),
                    _c(method, "m20", "t20", "tenant-b", "5", False, 0.0, ms(120), returns=True),
                ),
                (),
                (
                    HistogramCount(name, _labels(**_model("m10", "t10", "tenant-a", "3"), streaming="true"), 2, 1.61, 0.001),
                    HistogramCount(name, _labels(**_model("m20", "t20", "tenant-b", "5"), streaming="false"), 1, 0.12, 0.001),
                ),
            ),
            Step("zero first token timestamp",
                 (_c(method, "m10", "t10", "tenant-a", "3", True, 0.0, None, returns=False),)),
            Step("first token before received",
                 (_c(method, "m10", "t10", "tenant-a", "3", True, ms(10), 0.0, returns=False),)),
        ),
    )  # fmt: skip


def _tpot() -> Scenario:
    method = "record_request_tpot"
    m = ("m10", "t10", "tenant-a", "3")
    return Scenario(
        "TestRecordRequestTPOT",
        (
            Step(
                "valid multi-token request",
                (_c(method, *m, True, 0.0, ms(500), ms(2000), 11, returns=True),),
                (),
                (HistogramCount("llm_d_epp_request_streaming_tpot_seconds", _model(*m), 1, 0.15, 0.001),),
            ),
            Step("non-streaming skipped without error log",
                 (_c(method, *m, False, 0.0, ms(500), ms(500), 11, returns=False),)),
            Step("single token skipped", (_c(method, *m, True, 0.0, ms(100), ms(200), 1, returns=False),)),
            Step("zero tokens skipped", (_c(method, *m, True, 0.0, ms(100), ms(200), 0, returns=False),)),
            Step("zero first token timestamp", (_c(method, *m, True, 0.0, None, ms(200), 10, returns=False),)),
            Step("first token before received",
                 (_c(method, *m, True, ms(100), 0.0, ms(200), 10, returns=False),)),
            Step("complete before first token",
                 (_c(method, *m, True, 0.0, ms(200), ms(100), 10, returns=False),)),
        ),
    )  # fmt: skip


def _itl() -> Scenario:
    method = "record_inter_token_latency"
    name = "llm_d_epp_request_streaming_itl_seconds"
    a = ("m10", "t10", "tenant-a", "3")
    return Scenario(
        "TestRecordInterTokenLatency",
        (
            Step(
                "valid observations",
                (
                    _c(method, *a, 0.05, returns=True),
                    _c(method, *a, 0.08, returns=True),
                    _c(method, *a, 0.12, returns=True),
                    _c(method, "m20", "t20", "tenant-b", "5", 0.03, returns=True),
                ),
                (),
                (
                    HistogramCount(name, _model(*a), 3, 0.25, 0.001),
                    HistogramCount(name, _model("m20", "t20", "tenant-b", "5"), 1, 0.03, 0.001),
                ),
            ),
            Step("zero latency accepted", (_c(method, *a, 0.0, returns=True),)),
            Step("negative latency rejected", (_c(method, *a, -0.01, returns=False),)),
        ),
    )  # fmt: skip


def _rewrite() -> Scenario:
    labels = _labels(
        model_rewrite_name="rewrite-rule-1", model_name="model-a", target_model="model-b"
    )
    return Scenario(
        "TestInferenceModelRewriteDecisionsTotalMetric",
        (
            Step(
                "",
                (
                    _c(
                        "record_inference_model_rewrite_decision",
                        "rewrite-rule-1",
                        "model-a",
                        "model-b",
                    ),
                ),
                (),
                _twins("model_rewrite_decisions_total", labels, 1.0),
            ),
        ),
    )


def _eviction() -> Scenario:
    pool = "pool-evict"
    return Scenario(
        "TestFlowControlEvictionMetrics",
        (
            Step(
                "",
                (
                    _c("record_flow_control_revocations_issued", pool, "10", 2),
                    _c("record_flow_control_revocations", pool, "confirmed", 1),
                    _c("record_flow_control_revocations", pool, "timed_out", 1),
                    _c("record_flow_control_reclaim_target", pool, 0.1),
                    _c("record_flow_control_pending_reclaim", pool, 0.05),
                    _c("record_flow_control_revocation_confirmation_duration", pool, ms(5)),
                ),
                (
                    Golden(
                        "llm_d_flow_control_revocations_issued_metric",
                        "llm_d_epp_flow_control_revocations_issued_total",
                    ),
                    Golden(
                        "llm_d_flow_control_revocations_metric",
                        "llm_d_epp_flow_control_revocations_total",
                    ),
                    Golden(
                        "llm_d_flow_control_reclaim_target_metric",
                        "llm_d_epp_flow_control_reclaim_target",
                    ),
                    Golden(
                        "llm_d_flow_control_pending_reclaim_metric",
                        "llm_d_epp_flow_control_pending_reclaim",
                    ),
                ),
                (SeriesCount("llm_d_epp_flow_control_revocation_confirmation_seconds", 1),),
            ),
        ),
    )


def _data_scope() -> Scenario:
    method = "record_plugin_data_scope_violation"
    calls = (
        *(_c(method, "Filter", "test-filter", "f1", "write") for _ in range(2)),
        *(_c(method, "Filter", "test-filter", "f1", "read") for _ in range(3)),
        _c(method, "DataProducer", "test-producer", "p1", "write"),
    )
    return Scenario(
        "TestRecordPluginDataScopeViolation",
        (
            Step(
                "",
                calls,
                (
                    Golden(
                        "llm_d_plugin_data_scope_violations_total_metric",
                        "llm_d_epp_plugin_data_scope_violations_total",
                    ),
                ),
            ),
        ),
    )


_POOL, _MODEL, _TARGET = _FLOW
_QUEUE = ("user-a", "100", _POOL, _MODEL, _TARGET)

#: metrics_test.go's tests, in its order.
SCENARIOS: tuple[Scenario, ...] = (
    _requests(),
    _errors(),
    _latencies(),
    _ntpot(),
    _responses(),
    _running(),
    _pools(),
    _plugins(),
    _scheduler_e2e(),
    _processing(
        "TestRequestProcessingLatency",
        "record_request_processing_latency",
        "llm_d_epp_request_processing_duration_seconds",
    ),
    _processing(
        "TestResponseProcessingLatency",
        "record_response_processing_latency",
        "llm_d_epp_response_processing_duration_seconds",
    ),
    _dispatch_cycle(),
    _enqueue(),
    _attempts(
        "success with endpoint metadata",
        (
            _c("record_scheduler_attempt", None, "modelA", _RESULT_POD1),
            _c("record_scheduler_attempt", None, "modelA", _RESULT_POD1),
        ),
        "scheduler_attempts_with_result_metrics",
    ),
    # Upstream's result has two endpoints (pod-1 first): the tuple is the first one.
    _attempts(
        "success with multiple endpoints uses first",
        (
            _c("record_scheduler_attempt", None, "modelA", _RESULT_POD1),
            _c("record_scheduler_attempt", None, "modelB", _RESULT_POD1),
        ),
        "scheduler_attempts_multiple_endpoints_metrics",
    ),
    _attempts(
        "success with different models and endpoints",
        (
            _c("record_scheduler_attempt", None, "modelA", _RESULT_POD1),
            _c("record_scheduler_attempt", None, "modelA", _RESULT_POD1),
            _c("record_scheduler_attempt", None, "modelB", _RESULT_POD2),
        ),
        "scheduler_attempts_different_models_metrics",
    ),
    _attempts(
        "mixed success and failure attempts",
        (
            *(_c("record_scheduler_attempt", None, "modelA", None) for _ in range(10)),
            *(
                _c("record_scheduler_attempt", _SCHEDULING_FAILURE, "modelA", None)
                for _ in range(5)
            ),
        ),
        "scheduler_attempts_total_metrics",
    ),
    _queue_duration(),
    _queue_gauge(
        "TestFlowControlQueueSizeMetric",
        _c("inc_flow_control_queue_size", *_QUEUE),
        _c("dec_flow_control_queue_size", *_QUEUE),
        "flow_control_queue_size",
        1.0,
    ),
    _queue_gauge(
        "TestFlowControlQueueBytesMetric",
        _c("add_flow_control_queue_bytes", *_QUEUE, 32),
        _c("sub_flow_control_queue_bytes", *_QUEUE, 32),
        "flow_control_queue_bytes",
        32.0,
    ),
    _saturation(),
    _flow_requests(),
    _ttft(),
    _tpot(),
    _itl(),
    _rewrite(),
    _eviction(),
    _data_scope(),
)

#: Golden files in the directory that metrics_test.go at ebab6879 does not read (see the README).
UNREAD = frozenset(
    {
        "llm_d_prefix_indexer_hit_bytes_metric",
        "llm_d_prefix_indexer_hit_ratio_metric",
        "llm_d_prefix_indexer_size_metric",
        "prefix_indexer_hit_bytes_metric",
        "prefix_indexer_hit_ratio_metric",
        "prefix_indexer_size_metric",
        "llm_d_request_tpot_seconds_metric",
        "llm_d_request_ttft_seconds_metric",
        "request_tpot_seconds_metric",
        "request_ttft_seconds_metric",
    }
)

#: Recording functions metrics_test.go never calls, by Recorder method.
NOT_CALLED = frozenset(
    {
        "record_inference_pool_ready_pods",
        "record_inference_extension_info",
        "delete_flow_control_pool_saturation",
        "record_flow_control_stale_endpoints",
        "record_flow_control_capacity_utilization_requests",
        "record_flow_control_capacity_utilization_bytes",
        "record_flow_control_global_capacity_utilization_requests",
        "record_flow_control_global_capacity_utilization_bytes",
        "delete_flow_control_flow_series",
        "record_data_layer_poll_error",
        "record_data_layer_extract_error",
    }
)
