"""Bad input and unbounded label values.

Bad input raises TypeError/ValueError naming the argument and records nothing: the exposition is
byte-identical before and after, and no label set is bound (not even an empty series). Label sets
beyond ``max_series`` are folded into one overflow series, so no count is lost.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

import inference_metrics
from inference_metrics import CATALOG, ErrorCode, NoopBackend, PrometheusBackend, Recorder
from inference_metrics import recorder as recorder_module

from . import upstream_facts as up
from .expo import parse_registry, parse_text

Call = Callable[[Recorder, Any], object]

MODEL_SPEC = CATALOG[up.REQUEST_TOTAL]
ERROR_SPEC = CATALOG[up.REQUEST_ERROR_TOTAL]
POOL_SPEC = CATALOG[up.POOL_QUEUE_SIZE]
POD_SPEC = CATALOG["inference_pool_per_pod_queue_size"]


@pytest.fixture
def recorder(registry: CollectorRegistry) -> Recorder:
    recorder = Recorder(PrometheusBackend(registry))
    # Something in every seed family, so "nothing changed" is checked against a full exposition.
    recorder.record_request_counter("m", "t")
    recorder.record_request_size("m", "t", 100)
    recorder.record_request_latency("m", "t", 1.0, 2.0)
    recorder.record_response_size("m", "t", 100)
    recorder.record_input_tokens("m", "t", 10)
    recorder.record_output_tokens("m", "t", 10)
    recorder.record_request_error("m", "t", "Internal")
    recorder.record_pool_kv_cache_utilization("p", 0.5)
    recorder.record_pool_queue_size("p", 1)
    return recorder


def snapshot(registry: CollectorRegistry, recorder: Recorder) -> tuple[bytes, tuple[int, ...]]:
    """The exposition and how many label sets each group has bound."""
    counts = tuple(recorder.series_count(spec) for spec in (MODEL_SPEC, ERROR_SPEC, POOL_SPEC))
    return generate_latest(registry), (*counts, recorder.series_count(POD_SPEC))


# Every recording call that takes a number, with the argument the bad value goes into. Label
# values are new ones, so a call that wrongly bound its label set before failing would show.
NUMBER_CALLS: list[tuple[str, Call]] = [
    ("size", lambda r, v: r.record_request_size("new", "new", v)),
    ("size", lambda r, v: r.record_response_size("new", "new", v)),
    ("tokens", lambda r, v: r.record_input_tokens("new", "new", v)),
    ("tokens", lambda r, v: r.record_output_tokens("new", "new", v)),
    ("received", lambda r, v: r.record_request_latency("new", "new", v, 5.0)),
    ("completed", lambda r, v: r.record_request_latency("new", "new", 1.0, v)),
    ("value", lambda r, v: r.record_pool_kv_cache_utilization("new", v)),
    ("value", lambda r, v: r.record_pool_queue_size("new", v)),
    ("value", lambda r, v: r.record_pool_ready_pods("new", v)),
    ("value", lambda r, v: r.record_pool_average_running_requests("new", v)),
    ("value", lambda r, v: r.record_pool_per_pod_queue_size("new", "new", v)),
    ("request_size", lambda r, v: r.record_request_started("new", "new", v)),
]
OPTIONAL = {"request_size", "first_token", "cached_tokens"}
COMPLETED_ARGUMENTS = (
    "received",
    "completed",
    "response_size",
    "request_size",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "first_token",
)


def completed_call(argument: str) -> Call:
    def call(r: Recorder, value: Any) -> object:
        arguments: dict[str, Any] = {
            "received": 1.0,
            "completed": 2.0,
            "response_size": 10,
            "request_size": 10,
            "input_tokens": 5,
            "output_tokens": 5,
            "cached_tokens": 1,
            "first_token": 1.5,
        }
        arguments[argument] = value
        return r.record_request_completed("new", "new", **arguments)

    return call


COMPLETED_CALLS = [(argument, completed_call(argument)) for argument in COMPLETED_ARGUMENTS]
NUMBER_CALLS += COMPLETED_CALLS
NUMBER_IDS = [f"{i}-{argument}" for i, (argument, _) in enumerate(NUMBER_CALLS)]

BAD_VALUES: list[tuple[object, type[Exception]]] = [
    (-1, ValueError),
    (-0.001, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
    (10**400, ValueError),  # an int no float can hold
    (Fraction(10**400), ValueError),
    (True, TypeError),
    (False, TypeError),
    ("1", TypeError),
    (None, TypeError),
    ([1], TypeError),
    (b"1", TypeError),
    (1j, TypeError),
    (object(), TypeError),
]


# None is a valid value of record_request_completed's optional request_size, first_token and
# cached_tokens (not reported).
NONE_ALLOWED = {id(call) for argument, call in COMPLETED_CALLS if argument in OPTIONAL}
NUMBER_CASES = [
    pytest.param(argument, call, value, error, id=f"{call_id}-{repr(value)[:12]}")
    for (argument, call), call_id in zip(NUMBER_CALLS, NUMBER_IDS, strict=True)
    for value, error in BAD_VALUES
    if not (value is None and id(call) in NONE_ALLOWED)
]


@pytest.mark.parametrize(("argument", "call"), NUMBER_CALLS, ids=NUMBER_IDS)
def test_the_same_calls_with_good_numbers_do_record(
    registry: CollectorRegistry, recorder: Recorder, argument: str, call: Call
) -> None:
    # The other half of test_bad_inputs_are_refused_and_record_nothing: it would pass for calls
    # that never record at all.
    before = generate_latest(registry)
    call(recorder, 3)
    assert generate_latest(registry) != before
    assert "new" in generate_latest(registry).decode()


def test_large_but_finite_numbers_are_recorded(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry))
    recorder.record_response_size("m", "t", 2**1000)
    recorder.record_request_size("m", "t", 1e300)
    families = parse_registry(registry)
    labels = {"model_name": "m", "target_model_name": "t"}
    assert families[up.RESPONSE_SIZES].value(up.RESPONSE_SIZES + "_sum", **labels) == 2.0**1000
    assert families[up.RESPONSE_SIZES].value(up.RESPONSE_SIZES + "_count", **labels) == 1
    assert families[up.REQUEST_SIZES].value(up.REQUEST_SIZES + "_sum", **labels) == 1e300


def test_fractions_and_other_reals_are_numbers(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry))
    recorder.record_pool_queue_size("p", Fraction(1, 4))  # type: ignore[arg-type]
    families = parse_registry(registry)
    assert families[up.POOL_QUEUE_SIZE].value(up.POOL_QUEUE_SIZE, name="p") == 0.25


# --- label values ------------------------------------------------------------------------------

# (argument as named in the message, call taking the bad label value)
LABEL_CALLS: list[tuple[str, Call]] = [
    ("model_name", lambda r, v: r.record_request_counter(v, "t")),
    ("target_model_name", lambda r, v: r.record_request_counter("m", v)),
    ("model_name", lambda r, v: r.record_request_size(v, "t", 1)),
    ("target_model_name", lambda r, v: r.record_response_size("m", v, 1)),
    ("model_name", lambda r, v: r.record_input_tokens(v, "t", 1)),
    ("model_name", lambda r, v: r.record_input_tokens(v, "t", 0)),
    ("target_model_name", lambda r, v: r.record_output_tokens("m", v, 1)),
    ("model_name", lambda r, v: r.record_request_latency(v, "t", 1.0, 2.0)),
    ("model_name", lambda r, v: r.record_request_latency(v, "t", 2.0, 1.0)),
    ("model_name", lambda r, v: r.record_request_error(v, "t", "Internal")),
    ("target_model_name", lambda r, v: r.record_request_error("m", v, "Internal")),
    ("error_code", lambda r, v: r.record_request_error("m", "t", v)),
    ("error_code", lambda r, v: r.record_request_failed("m", "t", v)),
    # Errors name the argument (pool_name, pod_name), not its label (name, model_server_pod).
    ("pool_name", lambda r, v: r.record_pool_kv_cache_utilization(v, 0.5)),
    ("pool_name", lambda r, v: r.record_pool_queue_size(v, 1)),
    ("pool_name", lambda r, v: r.record_pool_ready_pods(v, 1)),
    ("pool_name", lambda r, v: r.record_pool_average_running_requests(v, 1)),
    ("pool_name", lambda r, v: r.record_pool_per_pod_queue_size(v, "pod", 1)),
    ("pod_name", lambda r, v: r.record_pool_per_pod_queue_size("p", v, 1)),
    ("commit", lambda r, v: r.record_extension_info(v, "v1")),
    ("build_ref", lambda r, v: r.record_extension_info("abc", v)),
    ("model_name", lambda r, v: r.record_running_request_started(v)),
]
LABEL_IDS = [f"{i}-{name}" for i, (name, _) in enumerate(LABEL_CALLS)]

TOO_LONG = "x" * (recorder_module.DEFAULT_MAX_LABEL_LENGTH + 1)
BAD_LABELS: list[tuple[object, type[Exception]]] = [
    (5, TypeError),
    (None, TypeError),
    (b"m", TypeError),
    (1.5, TypeError),
    (True, TypeError),
    (["m"], TypeError),  # unhashable
    (("m",), TypeError),
    ("\ud800", ValueError),  # a lone surrogate cannot be encoded as UTF-8
    ("model\udcff", ValueError),
    (TOO_LONG, ValueError),
]


LABEL_CASES = [
    pytest.param(argument, call, value, error, id=f"{call_id}-{repr(value)[:10]}")
    for (argument, call), call_id in zip(LABEL_CALLS, LABEL_IDS, strict=True)
    for value, error in BAD_LABELS
]


@pytest.mark.parametrize(("argument", "call", "value", "error"), NUMBER_CASES + LABEL_CASES)
def test_bad_inputs_are_refused_and_record_nothing(
    registry: CollectorRegistry,
    recorder: Recorder,
    argument: str,
    call: Call,
    value: object,
    error: type[Exception],
) -> None:
    before = snapshot(registry, recorder)
    with pytest.raises(error, match=f"^{argument} ") as caught:
        call(recorder, value)
    assert type(caught.value) in (TypeError, ValueError)
    assert snapshot(registry, recorder) == before


def test_an_over_long_label_value_message_gives_the_limit(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry), max_label_length=16)
    recorder.record_request_counter("x" * 16, "t")  # exactly at the limit: fine
    with pytest.raises(ValueError, match=r"^target_model_name ") as caught:
        recorder.record_request_counter("m", "y" * 17)
    assert "17" in str(caught.value)
    assert "16" in str(caught.value)
    families = parse_registry(registry)
    assert list(families[up.REQUEST_TOTAL].samples) == [
        (up.REQUEST_TOTAL, frozenset({("model_name", "x" * 16), ("target_model_name", "t")}))
    ]


def test_the_default_label_length_limit(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry))
    longest = "m" * recorder_module.DEFAULT_MAX_LABEL_LENGTH
    recorder.record_request_counter(longest, "t")
    with pytest.raises(ValueError, match=r"^model_name "):
        recorder.record_request_counter(longest + "m", "t")
    assert recorder.series_count(MODEL_SPEC) == 1
    assert recorder_module.DEFAULT_MAX_LABEL_LENGTH >= 256  # room for real model names


def test_str_subclasses_are_exposed_as_their_text(registry: CollectorRegistry) -> None:
    class Name(str):
        __slots__ = ()

        def __str__(self) -> str:
            return "not this"

    recorder = Recorder(PrometheusBackend(registry))
    recorder.record_request_error(Name("m"), "t", ErrorCode.INTERNAL)
    recorder.record_request_error("m", "t", "Internal")
    family = parse_registry(registry)[up.REQUEST_ERROR_TOTAL]
    assert family.samples == {
        (
            up.REQUEST_ERROR_TOTAL,
            frozenset(
                {("model_name", "m"), ("target_model_name", "t"), ("error_code", "Internal")}
            ),
        ): 2
    }


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"max_series": 0}, ValueError),
        ({"max_series": -1}, ValueError),
        ({"max_series": 1.5}, TypeError),
        ({"max_series": "1000"}, TypeError),
        ({"max_series": True}, TypeError),
        ({"max_label_length": 0}, ValueError),
        ({"max_label_length": None}, TypeError),
    ],
)
def test_recorder_limits_are_validated(arguments: dict[str, Any], error: type[Exception]) -> None:
    registry = CollectorRegistry()
    (argument,) = arguments
    with pytest.raises(error, match=f"^{argument} "):
        Recorder(PrometheusBackend(registry), **arguments)


@pytest.mark.parametrize("backend", [None, object(), "prometheus"])
def test_a_backend_is_required(backend: object) -> None:
    with pytest.raises(TypeError, match=r"^backend "):
        Recorder(backend)  # type: ignore[arg-type]


def test_a_registry_passed_as_the_backend_is_refused_and_left_intact() -> None:
    # A CollectorRegistry has a register() too; it must not swallow the specs as a "collector"
    # (which would break every later scrape of that registry).
    registry = CollectorRegistry()
    with pytest.raises(TypeError, match=r"PrometheusBackend\(registry\)"):
        Recorder(registry)  # type: ignore[arg-type]
    assert generate_latest(registry) == b""
    Recorder(PrometheusBackend(registry)).record_request_counter("m", "t")
    assert set(parse_registry(registry)) == {up.REQUEST_TOTAL}


# --- cardinality -------------------------------------------------------------------------------


def test_the_overflow_marker_is_exported() -> None:
    assert inference_metrics.OVERFLOW_LABEL_VALUE == recorder_module.OVERFLOW_LABEL_VALUE
    assert isinstance(recorder_module.OVERFLOW_LABEL_VALUE, str)
    assert recorder_module.OVERFLOW_LABEL_VALUE
    assert recorder_module.DEFAULT_MAX_SERIES == 1000


def label_sets(family: Any, sample: str) -> set[frozenset[tuple[str, str]]]:
    return {labels for name, labels in family.samples if name == sample}


def test_5000_models_into_1000_series_lose_no_count(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry), max_series=1000)
    n = 5000
    for i in range(n):
        model = f"model-{i}"
        recorder.record_request_counter(model, "target")
        recorder.record_request_size(model, "target", i)
        recorder.record_output_tokens(model, "target", i + 1)
        assert recorder.record_request_latency(model, "target", 0.0, 0.5)
        recorder.record_request_error(model, "target", "Internal")
        recorder.record_pool_queue_size(f"pool-{i}", 1)
    families = parse_registry(registry)
    overflow = recorder_module.OVERFLOW_LABEL_VALUE
    kept = {f"model-{i}" for i in range(1000)}

    for name, sample in [
        (up.REQUEST_TOTAL, up.REQUEST_TOTAL),
        (up.REQUEST_ERROR_TOTAL, up.REQUEST_ERROR_TOTAL),
        (up.REQUEST_SIZES, up.REQUEST_SIZES + "_count"),
        (up.OUTPUT_TOKENS, up.OUTPUT_TOKENS + "_count"),
        (up.REQUEST_DURATION, up.REQUEST_DURATION + "_count"),
    ]:
        family = families[name]
        sets = label_sets(family, sample)
        assert len(sets) == 1001, name
        models = {dict(labels)["model_name"] for labels in sets}
        assert models == kept | {overflow}, name
        # The overflow series has every label set to the marker.
        overflow_labels = next(labels for labels in sets if dict(labels)["model_name"] == overflow)
        assert set(dict(overflow_labels).values()) == {overflow}, name
        assert sum(family.samples[(sample, labels)] for labels in sets) == n, name
        assert family.samples[(sample, overflow_labels)] == n - 1000, name

    sizes = families[up.REQUEST_SIZES]
    total = sum(v for (name, _), v in sizes.samples.items() if name.endswith("_sum"))
    assert total == sum(range(n))
    # Every series' +Inf bucket equals its count.
    for labels in label_sets(sizes, up.REQUEST_SIZES + "_count"):
        inf = frozenset({*labels, ("le", "inf")})
        assert (
            sizes.samples[(up.REQUEST_SIZES + "_bucket", inf)]
            == (sizes.samples[(up.REQUEST_SIZES + "_count", labels)])
        )

    pools = families[up.POOL_QUEUE_SIZE]
    assert len(pools.samples) == 1001
    assert (up.POOL_QUEUE_SIZE, frozenset({("name", overflow)})) in pools.samples
    assert recorder.series_count(MODEL_SPEC) == 1000
    assert recorder.series_count(ERROR_SPEC) == 1000


def test_after_overflow_known_label_sets_keep_their_own_series(
    registry: CollectorRegistry,
) -> None:
    recorder = Recorder(PrometheusBackend(registry), max_series=3)
    for model in ("a", "b", "c", "d", "e"):
        recorder.record_request_counter(model, "t")
    recorder.record_request_counter("a", "t")
    recorder.record_request_counter("c", "t")
    recorder.record_request_counter("f", "t")
    recorder.record_request_counter("d", "t")  # folded before: still folded
    overflow = recorder_module.OVERFLOW_LABEL_VALUE
    family = parse_registry(registry)[up.REQUEST_TOTAL]

    def value(m: str, t: str) -> float:
        return family.value(up.REQUEST_TOTAL, model_name=m, target_model_name=t)

    assert value("a", "t") == 2
    assert value("b", "t") == 1
    assert value("c", "t") == 2
    assert value(overflow, overflow) == 4  # d, e, f, d
    assert len(family.samples) == 4
    # Bad values are refused after overflow too: validation comes before folding.
    with pytest.raises(ValueError, match=r"^model_name "):
        recorder.record_request_counter("\ud800", "t")
    with pytest.raises(TypeError, match=r"^target_model_name "):
        recorder.record_request_counter("g", 7)  # type: ignore[arg-type]
    assert parse_registry(registry)[up.REQUEST_TOTAL].samples == family.samples


def test_groups_have_separate_limits(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry), max_series=2)
    for pool in ("p1", "p2", "p3"):
        recorder.record_pool_queue_size(pool, 1)
    recorder.record_request_counter("m", "t")  # the model group is not full
    text = generate_latest(registry).decode()
    families = parse_text(text)
    overflow = recorder_module.OVERFLOW_LABEL_VALUE
    assert families[up.REQUEST_TOTAL].value(up.REQUEST_TOTAL, model_name="m", target_model_name="t")
    assert families[up.POOL_QUEUE_SIZE].value(up.POOL_QUEUE_SIZE, name=overflow) == 1
    assert overflow not in str(list(families[up.REQUEST_TOTAL].samples))


def test_limits_hold_for_any_backend() -> None:
    recorder = Recorder(NoopBackend(), max_series=10)
    for i in range(100):
        recorder.record_request_counter(str(i), "t")
    assert recorder.series_count(MODEL_SPEC) == 10


def test_label_values_round_trip_the_exposition_unchanged(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry))
    values = ['q"uote', "back\\slash", "new\nline", "ünï💡", "", "\\n", "a,b=c}"]
    for value in values:
        recorder.record_request_counter(value, value)
    family = parse_registry(registry)[up.REQUEST_TOTAL]
    assert {dict(labels)["model_name"] for _, labels in family.samples} == set(values)
    for value in values:
        assert family.value(up.REQUEST_TOTAL, model_name=value, target_model_name=value) == 1
    assert re.search(r'model_name="new\\nline"', generate_latest(registry).decode())
