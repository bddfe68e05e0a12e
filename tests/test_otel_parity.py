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


def assert_same_exposition(expected_text: str, actual_text: str) -> None:
    expected, actual = parse_text(expected_text), parse_text(actual_text)
    assert sorted(actual) == sorted(expected)
    for name, family in expected.items():
        assert_same_family(family, actual[name])
    assert raw_sample_keys(actual_text) == raw_sample_keys(expected_text)


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
    method: str  # a Recorder method, or "scrape"
    args: tuple[object, ...]
    kwargs: tuple[tuple[str, object], ...] = ()
    #: Values fed to what the call returned (the observer of ``inter_token_latency_observer``).
    feed: tuple[object, ...] = ()


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
CALLS: dict[str, st.SearchStrategy[Call]] = {
    # upstream's per-metric calls
    "record_request_counter": call("record_request_counter", *MODEL_AND_TARGET),
    "record_request_error": call("record_request_error", *MODEL_AND_TARGET, error_codes),
    "record_request_latency": call("record_request_latency", *MODEL_AND_TARGET, amounts, amounts),
    "record_request_size": call("record_request_size", *MODEL_AND_TARGET, amounts),
    "record_response_size": call("record_response_size", *MODEL_AND_TARGET, amounts),
    "record_input_tokens": call("record_input_tokens", *MODEL_AND_TARGET, amounts),
    "record_output_tokens": call("record_output_tokens", *MODEL_AND_TARGET, amounts),
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
    "record_inter_token_latency": call("record_inter_token_latency", *MODEL_AND_TARGET, amounts),
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
}
# Public Recorder methods that record nothing, so parity has nothing to check for them.
NOT_RECORDING = {"series_count", "is_valid_label_value", "records"}
calls = st.one_of(
    *CALLS.values(),
    st.just(Call("scrape", ())),
)


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
    schema=st.sampled_from(["gie-v0.3", "llm-d-router"]),
)
def test_otel_exposes_what_prometheus_exposes(
    sequence: list[Call], max_series: int, schema: str
) -> None:
    with recorder_pair(max_series=max_series, schema=schema) as pair:
        for step in [*sequence, Call("scrape", ())]:
            if step.method == "scrape":
                assert_same_exposition(
                    exposition(pair.prometheus_registry), exposition(pair.otel_registry)
                )
                continue
            expected = outcome(getattr(pair.prometheus, step.method), step)
            actual = outcome(getattr(pair.otel, step.method), step)
            assert actual == expected, step


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
