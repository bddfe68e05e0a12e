"""The OpenTelemetry backend on its own: instruments, units, gauges, registration, import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import (
    CATALOG,
    Kind,
    MetricSpec,
    OpenTelemetryBackend,
    PrometheusBackend,
    Recorder,
)
from inference_metrics.backends import UnsupportedOperation
from inference_metrics.backends.otel import otel_unit

from .expo import parse_registry, parse_text


@dataclass
class World:
    provider: MeterProvider
    registry: CollectorRegistry

    def backend(self) -> OpenTelemetryBackend:
        return OpenTelemetryBackend(self.provider)

    def text(self) -> str:
        return generate_latest(self.registry).decode("utf-8")


@pytest.fixture
def world() -> Iterator[World]:
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(
        disable_target_info=True, scope_info_enabled=False, registry=registry
    )
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield World(provider, registry)
    provider.shutdown()


def spec(name: str, kind: Kind, unit: str = "", labels: tuple[str, ...] = ("a",)) -> MetricSpec:
    buckets = (1.0, 2.0) if kind is Kind.HISTOGRAM else None
    return MetricSpec(name, kind, "Help.", labels=labels, buckets=buckets, unit=unit)


# --- names, help, types and units ---------------------------------------------------------------


def test_every_catalogue_metric_is_exposed_under_its_name_help_and_type(world: World) -> None:
    instruments = world.backend().register(tuple(CATALOG))
    for instrument in instruments:
        series = instrument.bind(tuple("x" for _ in instrument.spec.labels))
        if instrument.spec.kind is Kind.HISTOGRAM:
            series.observe(1)
        else:
            series.add(1)
    families = parse_registry(world.registry)
    assert sorted(families) == sorted(CATALOG.names)
    for metric in CATALOG:
        family = families[metric.name]
        assert family.type == metric.kind.value
        assert family.documentation == metric.documentation
        assert family.documentation.startswith("[ALPHA] ")


def test_catalogue_units_keep_their_meaning_without_renaming_anything() -> None:
    units = {metric.name: otel_unit(metric) for metric in CATALOG}
    assert units["inference_model_request_duration_seconds"] == "s"
    assert units["inference_model_request_ttft_seconds"] == "s"
    assert units["inference_model_request_sizes"] == "{byte}"  # "By" would add _bytes
    assert units["inference_model_response_sizes"] == "{byte}"
    assert units["inference_model_input_tokens"] == "{token}"
    assert units["inference_model_request_total"] == "{request}"
    assert units["inference_pool_average_kv_cache_utilization"] == "1"
    assert units["inference_pool_ready_pods"] == "{pod}"


@pytest.mark.parametrize(
    ("metric", "unit"),
    [
        (spec("x_seconds", Kind.HISTOGRAM, "s"), "s"),
        (spec("x_latency", Kind.HISTOGRAM, "s"), "{second}"),
        (spec("x_bytes", Kind.HISTOGRAM, "By"), "By"),
        (spec("x_sizes", Kind.HISTOGRAM, "By"), "{byte}"),
        (spec("x_milliseconds", Kind.GAUGE, "ms"), "ms"),
        (spec("x_seconds_total", Kind.COUNTER, "s"), "s"),
        (spec("x_total", Kind.COUNTER, "s"), "{second}"),
        (spec("x_ratio", Kind.GAUGE, "1"), "1"),
        (spec("x_tokens", Kind.HISTOGRAM, "{token}"), "{token}"),
        (spec("x_percent", Kind.GAUGE, "%"), "{%}"),
        (spec("x_meters", Kind.GAUGE, "m"), "{m}"),
        (spec("x_plain", Kind.GAUGE, ""), ""),
    ],
)
def test_units_never_change_the_exposed_name(world: World, metric: MetricSpec, unit: str) -> None:
    assert otel_unit(metric) == unit
    (instrument,) = world.backend().register([metric])
    series = instrument.bind(("v",))
    if metric.kind is Kind.HISTOGRAM:
        series.observe(1)
    else:
        series.add(1)
    assert list(parse_registry(world.registry)) == [metric.name]


def test_bucket_bounds_print_as_prometheus_client_prints_them(world: World) -> None:
    (instrument,) = world.backend().register([CATALOG["inference_model_request_sizes"]])
    instrument.bind(("m", "t")).observe(100)
    text = world.text()
    assert 'le="64.0"' in text
    assert 'le="1.048576e+06"' in text
    assert 'le="1.073741824e+09"' in text
    assert "1073741824.0" not in text


# --- series -------------------------------------------------------------------------------------


def test_a_series_appears_at_its_first_update_only(world: World) -> None:
    counter, histogram, gauge = world.backend().register(
        [
            spec("c_total", Kind.COUNTER),
            spec("h", Kind.HISTOGRAM),
            spec("g", Kind.GAUGE),
        ]
    )
    counter.bind(("bound only",))
    histogram.bind(("bound only",))
    gauge.bind(("bound only",))
    assert parse_registry(world.registry) == {}
    counter.bind(("used",)).add(1)
    families = parse_registry(world.registry)
    assert list(families) == ["c_total"]
    assert list(families["c_total"].samples) == [("c_total", frozenset({("a", "used")}))]


def test_empty_label_values_are_exposed(world: World) -> None:
    (errors,) = world.backend().register([CATALOG["inference_model_request_error_total"]])
    errors.bind(("", "", "BadRequest")).add(1)
    assert (
        'inference_model_request_error_total{error_code="BadRequest",model_name="",'
        'target_model_name=""} 1.0' in world.text()
    )


def test_gauge_add_builds_on_the_last_value_set(world: World) -> None:
    (gauge,) = world.backend().register([spec("running", Kind.GAUGE)])
    series = gauge.bind(("m",))
    series.add(1)
    series.add(1)
    series.add(-1)
    assert parse_registry(world.registry)["running"].value("running", a="m") == 1.0
    series.set(10)
    series.add(-3)
    assert parse_registry(world.registry)["running"].value("running", a="m") == 7.0
    gauge.bind(("m",)).add(1)  # binding the same label set again shares the value
    assert parse_registry(world.registry)["running"].value("running", a="m") == 8.0


def test_concurrent_gauge_adds_lose_nothing(world: World) -> None:
    (gauge,) = world.backend().register([spec("running", Kind.GAUGE)])
    threads, rounds = 4, 2000
    start = threading.Barrier(threads)

    def worker() -> None:
        series = gauge.bind(("m",))
        start.wait()
        for _ in range(rounds):
            series.add(1)
            series.add(-1)
            series.add(1)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in workers)
    value = parse_registry(world.registry)["running"].value("running", a="m")
    assert value == threads * rounds


def test_operations_a_kind_lacks_are_refused(world: World) -> None:
    counter, histogram, gauge = world.backend().register(
        [spec("c_total", Kind.COUNTER), spec("h", Kind.HISTOGRAM), spec("g", Kind.GAUGE)]
    )
    with pytest.raises(UnsupportedOperation):
        counter.bind(("x",)).observe(1)
    with pytest.raises(UnsupportedOperation):
        counter.bind(("x",)).set(1)
    with pytest.raises(UnsupportedOperation):
        histogram.bind(("x",)).add(1)
    with pytest.raises(UnsupportedOperation):
        gauge.bind(("x",)).observe(1)


def test_bind_checks_the_number_of_label_values(world: World) -> None:
    (counter,) = world.backend().register([spec("c_total", Kind.COUNTER)])
    with pytest.raises(ValueError, match="c_total has labels"):
        counter.bind(("x", "y"))


# --- registration -------------------------------------------------------------------------------


def test_a_second_backend_on_the_same_provider_is_refused(world: World) -> None:
    Recorder(world.backend())
    with pytest.raises(ValueError, match="already registered on it"):
        Recorder(world.backend())


def test_close_releases_the_names(world: World) -> None:
    backend = world.backend()
    Recorder(backend)
    backend.close()
    Recorder(world.backend())


def test_unregister_releases_only_the_given_instruments(world: World) -> None:
    backend = world.backend()
    first, _ = backend.register([spec("one", Kind.GAUGE), spec("two", Kind.GAUGE)])
    backend.unregister([first])
    world.backend().register([spec("one", Kind.GAUGE)])
    with pytest.raises(ValueError, match="two"):
        world.backend().register([spec("two", Kind.GAUGE)])


def test_backends_on_different_providers_are_independent() -> None:
    providers = [MeterProvider(shutdown_on_exit=False) for _ in range(2)]
    try:
        for provider in providers:
            Recorder(OpenTelemetryBackend(provider))
    finally:
        for provider in providers:
            provider.shutdown()


@pytest.mark.parametrize("name", ["Upper_case", "colon:name", "x" * 256])
def test_names_the_sdk_would_change_or_reject_are_refused(world: World, name: str) -> None:
    backend = world.backend()
    good = spec("good", Kind.GAUGE)
    with pytest.raises(ValueError, match="cannot be an OpenTelemetry instrument"):
        backend.register([good, spec(name, Kind.GAUGE)])
    backend.register([good])  # nothing was claimed by the refused call


def test_the_same_spec_twice_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match="appears twice"):
        world.backend().register([spec("g", Kind.GAUGE), spec("g", Kind.GAUGE)])


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="meter_provider"):
        OpenTelemetryBackend(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="meter_name"):
        OpenTelemetryBackend(MeterProvider(shutdown_on_exit=False), meter_name="")


def test_the_default_provider_is_the_global_one() -> None:
    assert OpenTelemetryBackend().meter_provider is otel_metrics.get_meter_provider()


def test_the_meter_carries_the_given_scope_name(world: World) -> None:
    backend = OpenTelemetryBackend(world.provider, meter_name="my_gateway")
    assert backend.meter_name == "my_gateway"
    assert backend.meter.name == "my_gateway"


# --- residual difference: OpenTelemetry's own cardinality limit ---------------------------------


def test_otel_folds_streams_beyond_2000_into_an_overflow_series(world: World) -> None:
    # Documented in docs/backends.md: with max_series above 1999 the SDK's own limit (2000 streams
    # per instrument) adds otel_metric_overflow="true", which prometheus_client never does.
    prometheus_registry = CollectorRegistry()
    recorders = [
        Recorder(PrometheusBackend(prometheus_registry), max_series=2500),
        Recorder(world.backend(), max_series=2500),
    ]
    for recorder in recorders:
        for i in range(2001):
            recorder.record_request_counter(f"m{i}", "t")
    otel = parse_text(world.text())["inference_model_request_total"]
    prometheus = parse_registry(prometheus_registry)["inference_model_request_total"]
    assert len(prometheus.samples) == 2001
    assert len(otel.samples) == 2001
    # The 2001st stream lands in the overflow series, whose other labels are empty ...
    overflow = {"model_name": "", "target_model_name": "", "otel_metric_overflow": "true"}
    assert otel.value("inference_model_request_total", **overflow) == 1.0
    # ... and every other series gains otel_metric_overflow="" (the same series to Prometheus).
    assert otel.value(
        "inference_model_request_total",
        model_name="m0",
        target_model_name="t",
        otel_metric_overflow="",
    ) == (1.0)


# --- optional dependency ------------------------------------------------------------------------


def test_the_package_imports_without_opentelemetry() -> None:
    # A fresh interpreter in which every opentelemetry import fails, as without the extra.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None
        import inference_metrics
        from inference_metrics import *
        from inference_metrics.backends import FanoutBackend, NoopBackend, PrometheusBackend
        inference_metrics.Recorder(NoopBackend())
        for module in (inference_metrics, inference_metrics.backends):
            try:
                module.OpenTelemetryBackend
            except ImportError as exc:
                assert "inference-metrics[otel]" in str(exc), exc
            else:
                raise AssertionError("OpenTelemetryBackend imported without OpenTelemetry")
        try:
            inference_metrics.NoSuchThing
        except AttributeError:
            pass
        else:
            raise AssertionError("unknown attribute did not raise AttributeError")
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
