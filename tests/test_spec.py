"""MetricSpec: validation refuses what Prometheus would not accept, with a message naming the
offending part; HELP is rendered the component-base way; specs are immutable."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import Kind, MetricSpec, PrometheusBackend, Stability
from inference_metrics.spec import Naming, render_help

from .expo import parse_text


def make(**overrides: Any) -> MetricSpec:
    """A valid gauge spec with ``overrides`` applied."""
    arguments: dict[str, Any] = {
        "name": "test_metric",
        "kind": Kind.GAUGE,
        "help": "A test metric.",
        "labels": ("a", "b"),
    }
    arguments.update(overrides)
    return MetricSpec(**arguments)


def histogram(**overrides: Any) -> MetricSpec:
    return make(**{"name": "test_seconds", "kind": Kind.HISTOGRAM, "buckets": (1, 2), **overrides})


def test_a_valid_spec_keeps_what_it_was_given() -> None:
    spec = histogram(buckets=[0.5, 1, 10], labels=["model_name", "target_model_name"], unit="s")
    assert spec.name == "test_seconds"
    assert spec.kind is Kind.HISTOGRAM
    assert spec.help == "A test metric."
    # Lists are frozen into tuples and bounds become floats.
    assert spec.labels == ("model_name", "target_model_name")
    assert type(spec.labels) is tuple
    assert spec.buckets == (0.5, 1.0, 10.0)
    assert spec.buckets is not None
    assert all(type(b) is float for b in spec.buckets)
    assert spec.unit == "s"
    assert spec.stability is Stability.ALPHA
    assert spec.deprecated_since is None


def test_label_names_may_be_empty_and_start_with_one_underscore() -> None:
    assert make(labels=()).labels == ()
    assert make(labels=("_private", "a1", "A_b")).labels == ("_private", "a1", "A_b")
    assert make(name="ns:sub_metric").name == "ns:sub_metric"


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1metric",
        "metric-name",
        "metric name",
        "metric.name",
        "métrique",
        "metric\n",  # a trailing newline must not slip past a `$` anchor
        "\nmetric",
        "metric\x00",
    ],
)
def test_invalid_metric_names_are_refused_naming_the_name(name: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        make(name=name)


@pytest.mark.parametrize("name", [None, 5, b"metric"])
def test_a_metric_name_that_is_not_a_string_is_refused(name: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        make(name=name)


@pytest.mark.parametrize(
    ("kind", "name", "suffix"),
    [
        (Kind.GAUGE, "queue_bucket", "_bucket"),
        (Kind.GAUGE, "queue_count", "_count"),
        (Kind.GAUGE, "queue_sum", "_sum"),
        (Kind.GAUGE, "queue_created", "_created"),
        (Kind.HISTOGRAM, "latency_count", "_count"),
        (Kind.HISTOGRAM, "latency_bucket", "_bucket"),
        (Kind.COUNTER, "requests_created", "_created"),
        (Kind.COUNTER, "requests_sum", "_sum"),
    ],
)
def test_reserved_suffixes_are_refused(kind: Kind, name: str, suffix: str) -> None:
    extra: dict[str, Any] = {"buckets": (1,)} if kind is Kind.HISTOGRAM else {}
    with pytest.raises(ValueError, match=re.escape(repr(suffix))) as caught:
        make(name=name, kind=kind, **extra)
    assert repr(name) in str(caught.value)


def test_a_counter_name_includes_its_total() -> None:
    assert make(name="requests_total", kind=Kind.COUNTER).name == "requests_total"
    with pytest.raises(ValueError, match="_total") as caught:
        make(name="requests", kind=Kind.COUNTER)
    assert "'requests'" in str(caught.value)
    with pytest.raises(ValueError, match="_total"):
        make(name="_total", kind=Kind.COUNTER)


@pytest.mark.parametrize("kind", [Kind.GAUGE, Kind.HISTOGRAM])
def test_only_counters_end_in_total(kind: Kind) -> None:
    extra: dict[str, Any] = {"buckets": (1,)} if kind is Kind.HISTOGRAM else {}
    with pytest.raises(ValueError, match="_total") as caught:
        make(name="requests_total", kind=kind, **extra)
    assert kind.value in str(caught.value)


# --- labels ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label", ["", "1a", "a-b", "a b", "a.b", "é", "a:b", "model_name\n", "\tname", 7, None]
)
def test_invalid_label_names_are_refused_naming_the_label(label: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(label))) as caught:
        make(labels=("ok", label))
    assert "label" in str(caught.value)


@pytest.mark.parametrize("label", ["__x", "__name__", "__"])
def test_double_underscore_label_names_are_reserved(label: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(label))) as caught:
        make(labels=(label,))
    assert "reserved" in str(caught.value)


def test_le_is_reserved_on_histograms() -> None:
    with pytest.raises(ValueError, match="'le'") as caught:
        histogram(labels=("model_name", "le"))
    assert "reserved" in str(caught.value)


@pytest.mark.parametrize("kind", [Kind.GAUGE, Kind.HISTOGRAM])
def test_quantile_is_reserved(kind: Kind) -> None:
    extra: dict[str, Any] = {"name": "x_seconds", "buckets": (1,)} if kind is Kind.HISTOGRAM else {}
    with pytest.raises(ValueError, match="'quantile'") as caught:
        make(kind=kind, labels=("quantile",), **extra)
    assert "reserved" in str(caught.value)


def test_duplicate_label_names_are_refused() -> None:
    with pytest.raises(ValueError, match="'model_name'") as caught:
        make(labels=("model_name", "target_model_name", "model_name"))
    assert "twice" in str(caught.value)


def test_labels_must_be_a_sequence_of_names_not_a_string() -> None:
    with pytest.raises(ValueError, match="labels"):
        make(labels="model_name")


# --- buckets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_bucket_bounds_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite") as caught:
        histogram(buckets=(0.5, bad) if bad != -math.inf else (bad, 0.5))
    assert repr(bad) in str(caught.value)


@pytest.mark.parametrize("buckets", [(1, 1), (1, 2, 2), (2, 1), (0.5, 0.1, 1)])
def test_buckets_must_strictly_increase(buckets: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        histogram(buckets=buckets)


@pytest.mark.parametrize("buckets", [(), None])
def test_a_histogram_needs_buckets(buckets: tuple[float, ...] | None) -> None:
    with pytest.raises(ValueError, match="bucket") as caught:
        histogram(buckets=buckets)
    assert "'test_seconds'" in str(caught.value)


@pytest.mark.parametrize("bound", [True, "1", None, 1j])
def test_bucket_bounds_must_be_numbers(bound: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bound))):
        histogram(buckets=(0.5, bound))


@pytest.mark.parametrize(("kind", "name"), [(Kind.GAUGE, "g"), (Kind.COUNTER, "c_total")])
def test_only_histograms_have_buckets(kind: Kind, name: str) -> None:
    with pytest.raises(ValueError, match="only histograms have buckets") as caught:
        make(name=name, kind=kind, buckets=(1, 2))
    assert kind.value in str(caught.value)


def test_negative_and_zero_bounds_are_allowed_when_increasing() -> None:
    assert histogram(buckets=(-1, 0, 1)).buckets == (-1.0, 0.0, 1.0)


# --- other fields ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n", None])
def test_help_is_required(text: object) -> None:
    with pytest.raises(ValueError, match="help"):
        make(help=text)


@pytest.mark.parametrize(
    "version", ["1.2", "v1.2.3", "1.2.3-rc1", "1.2.3\n", "", "\u0661.\u0662.\u0663", 123]
)
def test_deprecated_since_must_be_a_version(version: object) -> None:
    with pytest.raises(ValueError, match="deprecated_since") as caught:
        make(deprecated_since=version)
    assert repr(version) in str(caught.value)


def test_kind_and_stability_must_be_enum_members() -> None:
    with pytest.raises(ValueError, match="kind"):
        make(kind="gauge")
    with pytest.raises(ValueError, match="stability"):
        make(stability="ALPHA")
    with pytest.raises(ValueError, match="unit"):
        make(unit=None)


# --- HELP --------------------------------------------------------------------------------------


def test_help_has_the_stability_prefix() -> None:
    spec = make(help="Counter of things.")
    assert render_help(spec) == "[ALPHA] Counter of things."
    assert spec.documentation == "[ALPHA] Counter of things."
    assert make(stability=Stability.STABLE).documentation == "[STABLE] A test metric."
    assert make(stability=Stability.BETA).documentation == "[BETA] A test metric."
    assert make(stability=Stability.INTERNAL).documentation == "[INTERNAL] A test metric."


def test_help_of_a_deprecated_metric() -> None:
    spec = make(help="Counter of things.", deprecated_since="1.2.0")
    assert render_help(spec) == "[ALPHA] (Deprecated since 1.2.0) Counter of things."
    assert spec.documentation == render_help(spec)
    stable = make(stability=Stability.STABLE, deprecated_since="10.20.30")
    assert stable.documentation == "[STABLE] (Deprecated since 10.20.30) A test metric."


def test_the_rendered_help_is_what_the_exposition_shows() -> None:
    registry = CollectorRegistry()
    spec = make(
        name="things_total",
        kind=Kind.COUNTER,
        help="Counter of things.",
        labels=("x",),
        deprecated_since="0.3.0",
    )
    (instrument,) = PrometheusBackend(registry).register([spec])
    instrument.bind(("y",)).add(2)
    text = generate_latest(registry).decode()
    assert "# HELP things_total [ALPHA] (Deprecated since 0.3.0) Counter of things.\n" in text
    assert "# TYPE things_total counter\n" in text
    family = parse_text(text)["things_total"]
    assert family.documentation == "[ALPHA] (Deprecated since 0.3.0) Counter of things."
    assert family.value("things_total", x="y") == 2


# --- immutability ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "other"), ("help", "other"), ("labels", ("z",)), ("documentation", "other")],
)
def test_specs_are_frozen(field: str, value: object) -> None:
    spec = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(spec, field, value)
    assert getattr(spec, field) != value


def test_specs_compare_and_hash_by_value() -> None:
    assert make() == make()
    assert hash(make()) == hash(make())
    assert make() != make(help="Another.")
    assert len({make(), make(), make(name="other")}) == 2


# --- OpenTelemetry naming and optional labels ----------------------------------------------------


def otel(**overrides: object) -> MetricSpec:
    fields: dict[str, object] = {
        "name": "gen_ai.server.request.duration",
        "kind": Kind.HISTOGRAM,
        "help": "Generative AI server request duration.",
        "labels": ("gen_ai.operation.name", "error.type"),
        "buckets": (0.01, 0.02),
        "unit": "s",
        "naming": Naming.OPENTELEMETRY,
        **overrides,
    }
    return MetricSpec(**fields)  # type: ignore[arg-type]


def test_an_opentelemetry_named_spec_keeps_its_dotted_names_and_plain_description() -> None:
    spec = otel()
    assert spec.name == "gen_ai.server.request.duration"
    assert spec.documentation == "Generative AI server request duration."  # no "[ALPHA] "


def test_dots_are_refused_in_a_prometheus_named_spec() -> None:
    with pytest.raises(ValueError, match="does not match"):
        otel(naming=Naming.PROMETHEUS)


@pytest.mark.parametrize("name", ["Gen_ai.duration", "gen ai", "1gen_ai"])
def test_an_opentelemetry_name_follows_the_sdks_rule_in_lower_case(name: str) -> None:
    with pytest.raises(ValueError, match="does not match"):
        otel(name=name)


def test_optional_labels_must_be_labels_of_the_spec() -> None:
    assert otel(optional_labels=("error.type",)).optional_labels == ("error.type",)
    with pytest.raises(ValueError, match="optional_labels"):
        otel(optional_labels=("gen_ai.request.model",))


# --- a histogram's options: its kind and its exemplars -------------------------------------------


def test_a_histograms_kind_and_exemplars_are_open_unless_it_says() -> None:
    assert (histogram().histogram, histogram().exemplars) == (None, None)
    spec = histogram(histogram="native", exemplars=True)
    assert (spec.histogram, spec.exemplars) == ("native", True)


@pytest.mark.parametrize("kind", ["Native", "exponential", "", 3])
def test_an_unknown_histogram_kind_is_refused_naming_the_choices(kind: object) -> None:
    with pytest.raises(
        ValueError, match=r"histogram must be one of \('classic', 'native', 'both'\)"
    ):
        histogram(histogram=kind)


@pytest.mark.parametrize("value", [1, "yes", 0])
def test_exemplars_must_be_a_bool_or_none(value: object) -> None:
    with pytest.raises(ValueError, match="exemplars must be True, False or None"):
        histogram(exemplars=value)


@pytest.mark.parametrize(("option", "value"), [("histogram", "native"), ("exemplars", False)])
def test_only_histograms_have_the_histogram_options(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"only histograms have the {option} option"):
        make(**{option: value})
