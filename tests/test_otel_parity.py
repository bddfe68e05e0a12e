"""Parity: for any sequence of Recorder calls, the OpenTelemetry backend seen through the SDK's
Prometheus exporter exposes the same families as the prometheus-client backend.

Both Recorders get the same calls; at every scrape (mid-sequence and at the end) the two
expositions must hold the same family names, HELP, TYPE, samples with the same label sets (``le``
compared as text, not only as numbers) and the same values. The one tolerance: a histogram's
``_sum`` after an earlier scrape may differ in its last bits, because the SDK sums the observations
since the previous scrape and then adds that to the total (documented in docs/backends.md).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from inference_metrics import CATALOG, OpenTelemetryBackend, PrometheusBackend, Recorder

from .expo import Family, parse_text

# --- the two worlds ---------------------------------------------------------------------------


@dataclass
class Pair:
    prometheus: Recorder
    prometheus_registry: CollectorRegistry
    otel: Recorder
    otel_registry: CollectorRegistry


@contextmanager
def recorder_pair(max_series: int = 1000, schema: str = "gie-v0.3") -> Iterator[Pair]:
    """A Recorder per backend; the OTel one behind a parity-configured PrometheusMetricReader."""
    prometheus_registry, otel_registry = CollectorRegistry(), CollectorRegistry()
    reader = PrometheusMetricReader(
        disable_target_info=True, scope_info_enabled=False, registry=otel_registry
    )
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        yield Pair(
            Recorder(PrometheusBackend(prometheus_registry), max_series=max_series, schema=schema),
            prometheus_registry,
            Recorder(OpenTelemetryBackend(provider), max_series=max_series, schema=schema),
            otel_registry,
        )
    finally:
        provider.shutdown()


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode("utf-8")


def raw_sample_keys(text: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """Every sample's name and labels exactly as printed (``le`` not normalised)."""
    return {
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


#: The histograms of a flow that ``delete_flow_control_flow_series`` forgets: the prometheus-client
#: backend removes their series, the OpenTelemetry SDK keeps exporting every attribute set of a
#: synchronous instrument (docs/backends.md), so after a deletion the two differ there, and there
#: only (``test_a_deleted_flow_s_histograms_stay_exported_by_opentelemetry`` checks how).
FLOW_HISTOGRAMS = tuple(
    f"{prefix}flow_control_request_{what}_duration_seconds"
    for prefix in ("llm_d_epp_", "inference_extension_")
    for what in ("queue", "enqueue")
)
Flows = AbstractSet[tuple[str, str]]


def _deleted(name: str, labels: frozenset[tuple[str, str]], flows: Flows) -> bool:
    if not name.startswith(FLOW_HISTOGRAMS):
        return False
    found = dict(labels)
    return (found.get("fairness_id"), found.get("priority")) in flows


def _without(families: dict[str, Family], flows: Flows) -> dict[str, Family]:
    kept: dict[str, Family] = {}
    for name, family in families.items():
        samples = {k: v for k, v in family.samples.items() if not _deleted(k[0], k[1], flows)}
        if samples:
            kept[name] = Family(family.name, family.type, family.documentation)
            kept[name].samples = samples
    return kept


def assert_same_exposition(
    expected_text: str, actual_text: str, deleted: Flows = frozenset()
) -> None:
    """Both expose the same families and samples (the deleted flows' histograms aside)."""
    expected = _without(parse_text(expected_text), deleted)
    actual = _without(parse_text(actual_text), deleted)
    assert sorted(actual) == sorted(expected)
    for name, family in expected.items():
        assert_same_family(family, actual[name])
    raw_actual, raw_expected = raw_sample_keys(actual_text), raw_sample_keys(expected_text)
    assert {k for k in raw_actual if not _deleted(*k, deleted)} == {
        k for k in raw_expected if not _deleted(*k, deleted)
    }


def assert_same_family(expected: Family, actual: Family) -> None:
    assert (actual.name, actual.type, actual.documentation) == (
        expected.name,
        expected.type,
        expected.documentation,
    )
    assert set(actual.samples) == set(expected.samples), expected.name
    for key, value in expected.samples.items():
        sample_name = key[0]
        if sample_name.endswith("_sum"):
            assert math.isclose(actual.samples[key], value, rel_tol=1e-12, abs_tol=1e-300), key
        else:
            assert actual.samples[key] == value, key


# --- the calls ----------------------------------------------------------------------------------

# Label values: empty (upstream counts errors with empty model names), text needing escaping in the
# exposition, non-ASCII, our own overflow marker, and now and then arbitrary text (surrogates
# included, which the Recorder refuses in both worlds alike).
labels = st.one_of(
    st.sampled_from(["", "m1", "m2", 'q"uote', "back\\slash", "new\nline", "ünï", "__overflow__"]),
    st.text(max_size=4),
)
# Amounts: integers and floats, bucket bounds exactly (an observation equal to a bound is in that
# bucket), and now and then something the Recorder refuses (negative, NaN, infinite, bool, str).
bucket_bounds = sorted({b for spec in CATALOG if spec.buckets for b in spec.buckets})
valid_amounts = st.one_of(
    st.integers(min_value=0, max_value=2**40),
    st.floats(min_value=0, max_value=1e12, allow_nan=False),
    st.sampled_from(bucket_bounds),
    st.sampled_from(bucket_bounds).map(int),
)
amounts = st.one_of(
    valid_amounts,
    valid_amounts,
    valid_amounts,
    st.sampled_from([-1, -0.5, math.nan, math.inf, True, "3"]),
)
error_codes = st.sampled_from(["", "Internal", "BadRequest", "ModelServerError", "Unknown"])


@dataclass(frozen=True)
class Call:
    method: str  # a Recorder method, "scrape", or "steps" (the calls of ``steps``, in order)
    args: tuple[object, ...]
    kwargs: tuple[tuple[str, object], ...] = ()
    #: Values fed to what the call returned (the observer of ``inter_token_latency_observer``).
    feed: tuple[object, ...] = ()
    steps: tuple[Call, ...] = ()


def call(method: str, *arguments: st.SearchStrategy[object]) -> st.SearchStrategy[Call]:
    return st.tuples(*arguments).map(lambda args: Call(method, args))


# Timestamps for whole-request events: arbitrary (often out of order), or sorted so that
# received <= first token <= completed and the TTFT/TPOT histograms see values too.
timestamps = st.one_of(amounts, st.floats(min_value=0, max_value=1e4, allow_nan=False))
ordered_times = st.lists(
    st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=3, max_size=3
).map(sorted)


@st.composite
def request_completed(draw: st.DrawFn) -> Call:
    received: object
    completed: object
    first_token: object
    if draw(st.booleans()):
        received, first_token, completed = draw(ordered_times)
    else:
        received, completed = draw(timestamps), draw(timestamps)
        first_token = draw(st.one_of(st.none(), timestamps))
    kwargs: dict[str, object] = {
        "received": received,
        "completed": completed,
        "response_size": draw(amounts),
    }
    for name in ("request_size", "input_tokens", "output_tokens", "cached_tokens"):
        if draw(st.booleans()):
            kwargs[name] = draw(amounts)
    if first_token is not None or draw(st.booleans()):
        kwargs["first_token"] = first_token
    if draw(st.booleans()):
        kwargs["streaming"] = draw(st.booleans())
    if draw(st.booleans()):
        kwargs["fairness_id"] = draw(labels)
    if draw(st.booleans()):
        kwargs["priority"] = draw(st.one_of(st.integers(-3, 3), labels))
    return Call(
        "record_request_completed", (draw(labels), draw(labels)), tuple(sorted(kwargs.items()))
    )


MODEL_AND_TARGET = (labels, labels)
priorities = st.one_of(st.integers(-3, 3), labels)
# A flow: from a small set half the time, so a deletion often meets a flow recorded before it.
FLOW = (
    st.one_of(st.sampled_from(["f1", "f2"]), labels),
    st.one_of(st.sampled_from([0, "1"]), priorities),
)
POOL_MODELS = (labels, labels, labels)
flags = st.one_of(st.booleans(), st.booleans(), st.just(1))
optional_times = st.one_of(st.none(), timestamps)
counts = st.one_of(
    st.integers(0, 2**20), st.integers(0, 2**20), st.sampled_from([-1, 1.5, True, "3"])
)
signed = st.one_of(amounts, st.floats(min_value=-10, max_value=0, allow_nan=False))
errors = st.one_of(st.none(), st.just(RuntimeError("no endpoint")), st.just("failed"))
results = st.one_of(st.none(), st.tuples(labels, labels, labels), st.just(("pod", "ns")))


@st.composite
def both_forms(draw: st.DrawFn, method: str, value: str) -> Call:
    """A call of a method with two forms: upstream's (flow positional, then the value) or the
    original one (the value third, the flow as keywords)."""
    model, target, amount = draw(labels), draw(labels), draw(amounts)
    fairness_id, priority = draw(labels), draw(priorities)
    if draw(st.booleans()):
        return Call(method, (model, target, fairness_id, priority, amount))
    kwargs: list[tuple[str, object]] = []
    if draw(st.booleans()):
        kwargs = [("fairness_id", fairness_id), ("priority", priority)]
    if draw(st.booleans()):
        return Call(method, (model, target), tuple(sorted([*kwargs, (value, amount)])))
    return Call(method, (model, target, amount), tuple(kwargs))


CALLS: dict[str, st.SearchStrategy[Call]] = {
    # upstream's per-metric calls
    "record_request_counter": call("record_request_counter", *MODEL_AND_TARGET),
    "record_request_error": call("record_request_error", *MODEL_AND_TARGET, error_codes),
    "record_request_latency": call("record_request_latency", *MODEL_AND_TARGET, amounts, amounts),
    "record_request_size": call("record_request_size", *MODEL_AND_TARGET, amounts),
    "record_response_size": call("record_response_size", *MODEL_AND_TARGET, amounts),
    "record_input_tokens": both_forms("record_input_tokens", "tokens"),
    "record_output_tokens": both_forms("record_output_tokens", "tokens"),
    "record_pool_kv_cache_utilization": call("record_pool_kv_cache_utilization", labels, amounts),
    "record_pool_queue_size": call("record_pool_queue_size", labels, amounts),
    "record_pool_ready_pods": call("record_pool_ready_pods", labels, amounts),
    "record_pool_average_running_requests": call(
        "record_pool_average_running_requests", labels, amounts
    ),
    "record_pool_per_pod_queue_size": call(
        "record_pool_per_pod_queue_size", labels, labels, amounts
    ),
    "record_extension_info": call("record_extension_info", labels, labels),
    "record_pool_std_dev_kv_cache_utilization": call(
        "record_pool_std_dev_kv_cache_utilization", labels, amounts
    ),
    "record_pool_std_dev_queue_size": call("record_pool_std_dev_queue_size", labels, amounts),
    "record_pool_std_dev_running_requests": call(
        "record_pool_std_dev_running_requests", labels, amounts
    ),
    "record_inter_token_latency": both_forms("record_inter_token_latency", "seconds"),
    "inter_token_latency_observer": st.tuples(*MODEL_AND_TARGET, st.lists(amounts, max_size=4)).map(
        lambda a: Call("inter_token_latency_observer", (a[0], a[1]), feed=tuple(a[2]))
    ),
    # whole-request events (running requests exercise a gauge's add: +1 and -1)
    "record_request_started": call("record_request_started", *MODEL_AND_TARGET, amounts),
    "record_request_completed": request_completed(),
    "record_request_failed": call("record_request_failed", *MODEL_AND_TARGET, error_codes),
    "record_running_request_started": call("record_running_request_started", labels),
    "record_running_request_finished": call("record_running_request_finished", labels),
    "record_response_parse_failure": st.just(Call("record_response_parse_failure", ())),
    # the data layer's errors (the pool monitor's), with and without a pool name
    "record_data_layer_poll_error": st.tuples(labels, labels).map(
        lambda a: Call("record_data_layer_poll_error", (a[0],), (("pool_name", a[1]),))
    ),
    "record_data_layer_extract_error": call("record_data_layer_extract_error", labels, labels),
    # series removal (a pool or pod gone): both worlds stop exposing them alike
    "remove_pool": call("remove_pool", labels),
    "remove_pod": call("remove_pod", labels, labels),
    # upstream's names for the calls above (issue 21's rule), flow positional
    "record_request_err_counter": call(
        "record_request_err_counter", *MODEL_AND_TARGET, *FLOW, error_codes
    ),
    "record_request_sizes": call("record_request_sizes", *MODEL_AND_TARGET, *FLOW, amounts),
    "record_response_sizes": call("record_response_sizes", *MODEL_AND_TARGET, *FLOW, amounts),
    "record_prompt_cached_tokens": call(
        "record_prompt_cached_tokens", *MODEL_AND_TARGET, *FLOW, amounts
    ),
    "record_request_latencies": call(
        "record_request_latencies", *MODEL_AND_TARGET, *FLOW, timestamps, timestamps
    ),
    "record_normalized_time_per_output_token": call(
        "record_normalized_time_per_output_token",
        *MODEL_AND_TARGET,
        *FLOW,
        timestamps,
        timestamps,
        amounts,
    ),
    "record_request_ttft": call(
        "record_request_ttft", *MODEL_AND_TARGET, *FLOW, flags, timestamps, optional_times
    ),
    "record_request_tpot": call(
        "record_request_tpot",
        *MODEL_AND_TARGET,
        *FLOW,
        flags,
        timestamps,
        optional_times,
        timestamps,
        amounts,
    ),
    "inc_running_requests": call("inc_running_requests", *MODEL_AND_TARGET, *FLOW),
    "dec_running_requests": call("dec_running_requests", *MODEL_AND_TARGET, *FLOW),
    **{
        name: call(name, labels, amounts)
        for name in (
            "record_inference_pool_avg_kv_cache",
            "record_inference_pool_avg_queue_size",
            "record_inference_pool_avg_running_requests",
            "record_inference_pool_std_dev_kv_cache",
            "record_inference_pool_std_dev_queue_size",
            "record_inference_pool_std_dev_running_requests",
            "record_inference_pool_ready_pods",
        )
    },
    "record_inference_extension_info": call("record_inference_extension_info", labels, labels),
    # the scheduler, plugins, processing, rewrites
    **{
        name: call(name, amounts)
        for name in (
            "record_scheduler_e2e_latency",
            "record_request_processing_latency",
            "record_response_processing_latency",
            "record_flow_control_dispatch_cycle_duration",
        )
    },
    "record_scheduler_attempt": call("record_scheduler_attempt", errors, labels, results),
    "record_plugin_processing_latency": call(
        "record_plugin_processing_latency", labels, labels, labels, amounts
    ),
    "record_plugin_data_scope_violation": call(
        "record_plugin_data_scope_violation", labels, labels, labels, labels
    ),
    "record_inference_model_rewrite_decision": call(
        "record_inference_model_rewrite_decision", labels, labels, labels
    ),
    # flow control: per request, per pool, per band, and the deletions
    "record_flow_control_request_queue_duration": call(
        "record_flow_control_request_queue_duration", *FLOW, labels, labels, labels, labels, amounts
    ),
    "record_flow_control_request_enqueue_duration": call(
        "record_flow_control_request_enqueue_duration", *FLOW, labels, amounts
    ),
    "inc_flow_control_queue_size": call("inc_flow_control_queue_size", *FLOW, *POOL_MODELS),
    "dec_flow_control_queue_size": call("dec_flow_control_queue_size", *FLOW, *POOL_MODELS),
    "add_flow_control_queue_bytes": call(
        "add_flow_control_queue_bytes", *FLOW, *POOL_MODELS, counts
    ),
    "sub_flow_control_queue_bytes": call(
        "sub_flow_control_queue_bytes", *FLOW, *POOL_MODELS, counts
    ),
    "inc_flow_control_requests_total": call(
        "inc_flow_control_requests_total", labels, priorities, labels
    ),
    "record_flow_control_pool_saturation": call(
        "record_flow_control_pool_saturation", labels, labels, amounts
    ),
    "delete_flow_control_pool_saturation": call(
        "delete_flow_control_pool_saturation", labels, labels
    ),
    "record_flow_control_stale_endpoints": call(
        "record_flow_control_stale_endpoints", labels, counts
    ),
    **{
        name: call(name, priorities, labels, amounts)
        for name in (
            "record_flow_control_capacity_utilization_requests",
            "record_flow_control_capacity_utilization_bytes",
        )
    },
    **{
        name: call(name, labels, amounts)
        for name in (
            "record_flow_control_global_capacity_utilization_requests",
            "record_flow_control_global_capacity_utilization_bytes",
            "record_flow_control_revocation_confirmation_duration",
        )
    },
    **{
        name: call(name, labels, signed)
        for name in ("record_flow_control_reclaim_target", "record_flow_control_pending_reclaim")
    },
    "record_flow_control_revocations_issued": call(
        "record_flow_control_revocations_issued", labels, priorities, counts
    ),
    "record_flow_control_revocations": call(
        "record_flow_control_revocations", labels, labels, counts
    ),
    "delete_flow_control_flow_series": call("delete_flow_control_flow_series", *FLOW),
}
# Public Recorder methods that record nothing, so parity has nothing to check for them.
NOT_RECORDING = {"series_count", "is_valid_label_value", "records"}


@st.composite
def flow_life(draw: st.DrawFn) -> Call:
    """A flow recorded, scraped, collected (``delete_flow_control_flow_series``) and maybe seen
    again: in a random sequence the deletion would almost never meet a flow recorded before it."""
    flow = (draw(FLOW[0]), draw(FLOW[1]))
    target = (draw(labels), draw(labels), draw(labels))
    outcome, amount = draw(labels), draw(valid_amounts)
    recorded = (
        Call("record_flow_control_request_queue_duration", (*flow, outcome, *target, amount)),
        Call("record_flow_control_request_enqueue_duration", (*flow, outcome, amount)),
        Call("inc_flow_control_queue_size", (*flow, *target)),
        Call("add_flow_control_queue_bytes", (*flow, *target, 512)),
    )
    again = recorded if draw(st.booleans()) else ()
    deletion = Call("delete_flow_control_flow_series", flow)
    return Call("steps", (), steps=(*recorded, Call("scrape", ()), deletion, *again))


calls = st.one_of(
    *CALLS.values(),
    st.just(Call("scrape", ())),
    flow_life(),
)


def flattened(sequence: list[Call]) -> list[Call]:
    return [
        each for step in sequence for each in (step.steps if step.method == "steps" else [step])
    ]


def outcome(method: Callable[..., object], step: Call) -> object:
    """What a call returned, or the type of what it raised."""
    try:
        result = method(*step.args, **dict(step.kwargs))
    except (TypeError, ValueError) as exc:
        return type(exc)
    if not callable(result):
        return result
    return [outcome(result, Call("", (value,))) for value in step.feed]


# --- the tests ----------------------------------------------------------------------------------


def test_every_public_recording_method_is_exercised() -> None:
    # A Recorder method added later must join CALLS, or parity goes unchecked for it.
    public = {
        name
        for name, member in inspect.getmembers(Recorder, inspect.isfunction)
        if not name.startswith("_") and name not in NOT_RECORDING
    }
    assert public == set(CALLS)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    sequence=st.lists(calls, max_size=60),
    max_series=st.sampled_from([2, 1000]),
    schema=st.sampled_from(["gie-v0.3", "gie-v1.5", "llm-d-router"]),
)
def test_otel_exposes_what_prometheus_exposes(
    sequence: list[Call], max_series: int, schema: str
) -> None:
    deleted: set[tuple[str, str]] = set()
    with recorder_pair(max_series=max_series, schema=schema) as pair:
        for step in [*flattened(sequence), Call("scrape", ())]:
            if step.method == "scrape":
                assert_same_exposition(
                    exposition(pair.prometheus_registry), exposition(pair.otel_registry), deleted
                )
                continue
            expected = outcome(getattr(pair.prometheus, step.method), step)
            actual = outcome(getattr(pair.otel, step.method), step)
            assert actual == expected, step
            if step.method == "delete_flow_control_flow_series" and expected is None:
                fairness_id, priority = step.args
                deleted.add((str(fairness_id), str(priority)))


def test_a_deleted_flow_s_histograms_stay_exported_by_opentelemetry() -> None:
    # The one difference a deletion makes (docs/backends.md): the SDK keeps every attribute set of
    # a synchronous instrument, so the flow's queue and enqueue duration histograms stay; its
    # queue gauges go, as with the prometheus-client backend.
    flow = ("tenant-a", "1")
    target = ("pool-1", "m", "t")
    with recorder_pair(schema="llm-d-router") as pair:
        for recorder in (pair.prometheus, pair.otel):
            recorder.record_flow_control_request_queue_duration(*flow, "Dispatched", *target, 0.2)
            recorder.record_flow_control_request_enqueue_duration(*flow, "Dispatched", 0.001)
            recorder.inc_flow_control_queue_size(*flow, *target)
            recorder.add_flow_control_queue_bytes(*flow, *target, 100)
            recorder.delete_flow_control_flow_series(*flow)
        prometheus = parse_text(exposition(pair.prometheus_registry))
        otel = parse_text(exposition(pair.otel_registry))
    assert sorted(prometheus) == []
    assert sorted(otel) == sorted(FLOW_HISTOGRAMS)


def test_upstream_seed_scenario_matches() -> None:
    # Upstream's own test inputs (reference section 1), run through both backends.
    with recorder_pair() as pair:
        for recorder in (pair.prometheus, pair.otel):
            for model, target, size in (
                ("m10", "t10", 1200),
                ("m10", "t10", 500),
                ("m10", "t11", 2480),
                ("m20", "t20", 80),
            ):
                recorder.record_request_counter(model, target)
                recorder.record_request_size(model, target, size)
            for model, target, code in (
                ("m10", "t10", "Internal"),
                ("m10", "t10", "Internal"),
                ("m10", "t11", "ModelServerError"),
                ("m20", "t20", "InferencePoolResourceExhausted"),
                ("", "", "BadRequest"),
            ):
                recorder.record_request_error(model, target, code)
            assert recorder.record_request_latency("m10", "t10", 100.0, 100.01)
            assert recorder.record_request_latency("m10", "t10", 100.0, 101.6)
            assert not recorder.record_request_latency("m10", "t10", 100.0, 99.0)
            recorder.record_pool_kv_cache_utilization("p1", 0.3)
            recorder.record_pool_queue_size("p1", 0.4)
        otel_text = exposition(pair.otel_registry)
        assert_same_exposition(exposition(pair.prometheus_registry), otel_text)

    families = parse_text(otel_text)
    assert families["inference_model_request_total"].value(
        "inference_model_request_total", model_name="m10", target_model_name="t10"
    ) == (2.0)
    errors = families["inference_model_request_error_total"]
    assert errors.value(
        "inference_model_request_error_total",
        model_name="",
        target_model_name="",
        error_code="BadRequest",
    ) == (1.0)
    sizes = families["inference_model_request_sizes"]
    m10 = {"model_name": "m10", "target_model_name": "t10"}
    assert sizes.value("inference_model_request_sizes_bucket", le="256.0", **m10) == 0.0
    assert sizes.value("inference_model_request_sizes_bucket", le="512.0", **m10) == 1.0
    assert sizes.value("inference_model_request_sizes_bucket", le="2048.0", **m10) == 2.0
    assert sizes.value("inference_model_request_sizes_sum", **m10) == 1700.0
    duration = families["inference_model_request_duration_seconds"]
    assert math.isclose(duration.value("inference_model_request_duration_seconds_sum", **m10), 1.61)
    assert 'inference_pool_average_kv_cache_utilization{name="p1"} 0.3' in otel_text
    assert 'le="1.073741824e+09"' in otel_text  # prometheus_client's spelling, not 1073741824.0


def test_a_token_count_so_small_that_ntpot_is_infinite_is_observed_by_neither_backend() -> None:
    # Found by hypothesis: 1.0 s / 2.2e-311 tokens overflows to inf; OpenTelemetry drops an
    # infinite observation while prometheus-client would count it into +Inf. Upstream's token
    # counts are integers, so neither records an NTPOT or TPOT that is not finite.
    with recorder_pair(schema="llm-d-router") as pair:
        for recorder in (pair.prometheus, pair.otel):
            assert recorder.record_request_completed(
                "m",
                "t",
                received=10.0,
                completed=11.0,
                first_token=10.5,
                response_size=10,
                output_tokens=2.2e-311,
            )
            assert recorder.record_request_completed(
                "m",
                "t",
                received=0.0,
                completed=1e300,
                first_token=0.0,
                response_size=10,
                output_tokens=1 + 2**-52,
            )
        prometheus_text = exposition(pair.prometheus_registry)
        assert_same_exposition(prometheus_text, exposition(pair.otel_registry))
    families = parse_text(prometheus_text)
    labels = {"model_name": "m", "target_model_name": "t"}
    ntpot = "llm_d_epp_request_ntpot_seconds"
    tpot = "llm_d_epp_request_streaming_tpot_seconds"
    assert (
        families[ntpot].value(f"{ntpot}_count", **labels, fairness_id="default-flow", priority="0")
        == 1
    )
    assert tpot not in families  # 1e300 s / 2**-52 tokens: infinite, not observed
