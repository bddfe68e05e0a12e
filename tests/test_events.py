"""The Recorder's request-event calls: whole requests recorded in one call."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.registry import CollectorRegistry

from inference_metrics import ErrorCode, PrometheusBackend, Recorder

from .expo import Family, parse_registry
from .test_otel_parity import assert_same_exposition, exposition, recorder_pair

M = {"model_name": "m", "target_model_name": "t"}


def value(families: dict[str, Family], name: str, sample: str = "_sum", **labels: str) -> float:
    return families[name].value(name + sample, **(labels or M))


def test_started_counts_the_request_and_its_size(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorder.record_request_started("m", "t", 300)
    fams = parse_registry(registry)
    assert value(fams, "inference_model_request_total", "") == 1
    assert value(fams, "inference_model_request_sizes") == 300
    assert value(fams, "inference_model_request_sizes", "_bucket", le="512.0", **M) == 1


def test_completed_records_every_metric_of_a_streamed_request(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorded = recorder.record_request_completed(
        "m",
        "t",
        received=10.0,
        completed=12.0,
        first_token=10.5,
        response_size=2048,
        input_tokens=100,
        output_tokens=4,
        cached_tokens=64,
    )
    assert recorded
    fams = parse_registry(registry)
    assert value(fams, "inference_model_request_duration_seconds") == 2.0
    assert value(fams, "inference_model_response_sizes") == 2048
    assert value(fams, "inference_model_input_tokens") == 100
    assert value(fams, "inference_model_output_tokens") == 4
    assert value(fams, "inference_model_prompt_cached_tokens") == 64
    assert value(fams, "inference_model_normalized_time_per_output_token_seconds") == 0.5
    assert value(fams, "inference_model_request_ttft_seconds") == 0.5
    assert value(fams, "inference_model_request_tpot_seconds") == 0.5  # 1.5 s / 3
    assert "inference_model_request_total" not in fams


def test_completed_with_request_size_also_counts_the_request(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorder.record_request_completed(
        "m", "t", received=1.0, completed=2.0, response_size=1, request_size=77
    )
    fams = parse_registry(registry)
    assert value(fams, "inference_model_request_total", "") == 1
    assert value(fams, "inference_model_request_sizes") == 77


def test_completed_zero_tokens_are_not_observed(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorder.record_request_completed("m", "t", received=1.0, completed=2.0, response_size=0)
    fams = parse_registry(registry)
    assert value(fams, "inference_model_response_sizes", "_count") == 1
    for name in (
        "inference_model_input_tokens",
        "inference_model_output_tokens",
        "inference_model_prompt_cached_tokens",
        "inference_model_normalized_time_per_output_token_seconds",
    ):
        assert name not in fams


def test_completed_not_after_received_records_sizes_but_no_latencies(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorded = recorder.record_request_completed(
        "m", "t", received=5.0, completed=5.0, first_token=5.0, response_size=9, output_tokens=3
    )
    assert recorded is False
    fams = parse_registry(registry)
    assert value(fams, "inference_model_response_sizes") == 9
    assert value(fams, "inference_model_output_tokens") == 3
    for name in (
        "inference_model_request_duration_seconds",
        "inference_model_normalized_time_per_output_token_seconds",
        "inference_model_request_ttft_seconds",
        "inference_model_request_tpot_seconds",
    ):
        assert name not in fams


def test_completed_ignores_a_first_token_outside_the_request(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorder.record_request_completed(
        "m", "t", received=1.0, completed=2.0, first_token=3.0, response_size=1, output_tokens=5
    )
    fams = parse_registry(registry)
    assert "inference_model_request_ttft_seconds" not in fams
    assert "inference_model_request_tpot_seconds" not in fams


def test_cached_tokens_of_zero_are_observed(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorder.record_request_completed(
        "m", "t", received=1.0, completed=2.0, response_size=1, cached_tokens=0
    )
    fams = parse_registry(registry)
    cached = fams["inference_model_prompt_cached_tokens"]
    assert cached.value("inference_model_prompt_cached_tokens_count", **M) == 1
    assert value(fams, "inference_model_prompt_cached_tokens") == 0


def test_cached_tokens_not_reported_observe_nothing(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorder.record_request_completed("m", "t", received=1.0, completed=2.0, response_size=1)
    assert "inference_model_prompt_cached_tokens" not in parse_registry(registry)


@pytest.mark.parametrize(
    ("argument", "bad"),
    [
        ("received", -1.0),
        ("completed", math.nan),
        ("response_size", "12"),
        ("request_size", -3),
        ("input_tokens", math.inf),
        ("output_tokens", True),
        ("cached_tokens", -1),
        ("first_token", -0.5),
    ],
)
def test_completed_with_bad_input_records_nothing(
    recorder: Recorder, registry: CollectorRegistry, argument: str, bad: object
) -> None:
    arguments: dict[str, object] = {
        "received": 1.0,
        "completed": 2.0,
        "response_size": 10,
        "request_size": 5,
        "input_tokens": 1,
        "output_tokens": 2,
        "cached_tokens": 0,
        "first_token": 1.5,
        argument: bad,
    }
    with pytest.raises((TypeError, ValueError), match=argument):
        recorder.record_request_completed("m", "t", **arguments)  # type: ignore[arg-type]
    assert parse_registry(registry) == {}


def test_completed_with_a_bad_label_records_nothing(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    with pytest.raises(TypeError, match="target_model_name"):
        recorder.record_request_completed(
            "m",
            None,  # type: ignore[arg-type]
            received=1.0,
            completed=2.0,
            response_size=1,
        )
    assert parse_registry(registry) == {}


def test_failed_counts_the_error_code(recorder: Recorder, registry: CollectorRegistry) -> None:
    recorder.record_request_failed("m", "t", ErrorCode.MODEL_SERVER_ERROR)
    fams = parse_registry(registry)
    name = "inference_model_request_error_total"
    assert fams[name].value(name, error_code="ModelServerError", **M) == 1


def test_failed_without_a_code_counts_as_unknown(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorder.record_request_failed("m", "t", "")
    fams = parse_registry(registry)
    name = "inference_model_request_error_total"
    assert fams[name].value(name, error_code="Unknown", **M) == 1


def test_running_requests_go_up_and_down(recorder: Recorder, registry: CollectorRegistry) -> None:
    recorder.record_running_request_started("m")
    recorder.record_running_request_started("m")
    recorder.record_running_request_finished("m")
    name = "inference_model_running_requests"
    assert parse_registry(registry)[name].value(name, model_name="m") == 1


def test_running_requests_skip_empty_model_names(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorder.record_running_request_started("")
    assert parse_registry(registry) == {}


def test_parse_failures_are_counted_per_recorder(recorder: Recorder) -> None:
    other = Recorder(PrometheusBackend(CollectorRegistry()))
    recorder.record_response_parse_failure()
    recorder.record_response_parse_failure()
    assert (recorder.response_parse_failures, other.response_parse_failures) == (2, 0)


@pytest.mark.parametrize(
    ("label", "valid"),
    [("m", True), ("", True), ("x" * 1025, False), ("\ud800", False), (3, False)],
)
def test_label_value_validity(recorder: Recorder, label: object, valid: bool) -> None:
    assert recorder.is_valid_label_value(label) is valid


# --- parity with the OpenTelemetry backend ---------------------------------------------------

timestamps = st.floats(min_value=0, max_value=1e6, allow_nan=False)
counts = st.integers(min_value=0, max_value=10_000)
models = st.sampled_from(["", "m1", "m2"])
no_kwargs: st.SearchStrategy[dict[str, object]] = st.just({})
# (method, positional arguments, keyword arguments)
events = st.one_of(
    st.tuples(st.just("record_request_started"), st.tuples(models, models, counts), no_kwargs),
    st.tuples(
        st.just("record_request_failed"),
        st.tuples(models, models, st.sampled_from(["", "Internal"])),
        no_kwargs,
    ),
    st.tuples(st.just("record_running_request_started"), st.tuples(models), no_kwargs),
    st.tuples(st.just("record_running_request_finished"), st.tuples(models), no_kwargs),
    st.tuples(
        st.just("record_request_completed"),
        st.tuples(models, models),
        st.fixed_dictionaries(
            {
                "received": timestamps,
                "completed": timestamps,
                "first_token": st.none() | timestamps,
                "response_size": counts,
                "input_tokens": counts,
                "output_tokens": counts,
                "cached_tokens": counts,
            }
        ),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=st.lists(events, max_size=15))
def test_event_calls_expose_the_same_through_opentelemetry(
    sequence: list[tuple[str, tuple[object, ...], dict[str, object]]],
) -> None:
    with recorder_pair() as pair:
        for recorder in (pair.prometheus, pair.otel):
            for method, args, kwargs in sequence:
                getattr(recorder, method)(*args, **kwargs)
        assert_same_exposition(exposition(pair.prometheus_registry), exposition(pair.otel_registry))
