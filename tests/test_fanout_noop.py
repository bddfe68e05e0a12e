"""The fan-out backend (several backends at once, all-or-nothing registration) and the no-op one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import (
    CATALOG,
    FanoutBackend,
    Kind,
    MetricSpec,
    NoopBackend,
    OpenTelemetryBackend,
    PrometheusBackend,
    Recorder,
)
from inference_metrics.backends import UnsupportedOperation
from inference_metrics.backends.base import Instrument
from inference_metrics.backends.noop import NoopInstrument

from .expo import parse_registry


@pytest.fixture
def provider_and_registry() -> Iterator[tuple[MeterProvider, CollectorRegistry]]:
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(
        disable_target_info=True, scope_info_enabled=False, registry=registry
    )
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield provider, registry
    provider.shutdown()


def some_traffic(recorder: Recorder) -> None:
    recorder.record_request_counter("m", "t")
    recorder.record_request_size("m", "t", 1200)
    recorder.record_request_latency("m", "t", 10.0, 10.5)
    recorder.record_response_size("m", "t", 2480)
    recorder.record_input_tokens("m", "t", 30)
    recorder.record_output_tokens("m", "t", 300)
    recorder.record_request_error("", "", "BadRequest")
    recorder.record_pool_kv_cache_utilization("pool", 0.25)
    recorder.record_pool_per_pod_queue_size("pool", "pod-1", 3)
    recorder.record_extension_info("abc123", "v0.1.0")


def registry_is_empty(registry: CollectorRegistry) -> bool:
    return generate_latest(registry) == b""


class Refusing(NoopBackend):
    """A backend that refuses every registration, as one holding a clashing name would."""

    def register(self, specs: Sequence[MetricSpec]) -> Sequence[NoopInstrument]:
        raise ValueError("refused")


class FailingUndo(NoopBackend):
    """A backend that accepts (handing out no-op instruments) but fails to undo."""

    def unregister(self, instruments: Sequence[Instrument]) -> None:
        raise RuntimeError("cannot undo")


# --- fan-out: recording -------------------------------------------------------------------------


def test_fanout_records_into_every_backend(
    provider_and_registry: tuple[MeterProvider, CollectorRegistry],
) -> None:
    provider, otel_registry = provider_and_registry
    alone, first = CollectorRegistry(), CollectorRegistry()
    some_traffic(Recorder(PrometheusBackend(alone)))
    some_traffic(Recorder(FanoutBackend(PrometheusBackend(first), OpenTelemetryBackend(provider))))
    expected = parse_registry(alone)
    assert expected  # the traffic shows
    for registry in (first, otel_registry):
        families = parse_registry(registry)
        assert sorted(families) == sorted(expected)
        for name, family in expected.items():
            assert families[name].samples == family.samples, name


def test_fanout_gauge_add_and_set_reach_every_backend() -> None:
    registries = [CollectorRegistry(), CollectorRegistry()]
    fanout = FanoutBackend(*(PrometheusBackend(r) for r in registries))
    gauge = MetricSpec("running", Kind.GAUGE, "Running.", labels=("m",))
    (instrument,) = fanout.register([gauge])
    series = instrument.bind(("a",))
    series.set(5)
    series.add(2)
    for registry in registries:
        assert parse_registry(registry)["running"].value("running", m="a") == 7.0


def test_fanout_of_one_backend_hands_out_that_backends_series() -> None:
    registry = CollectorRegistry()
    backend = PrometheusBackend(registry)
    (fanned,) = FanoutBackend(backend).register([CATALOG["inference_model_request_total"]])
    series = fanned.bind(("m", "t"))
    series.add(1)
    assert series is fanned.instruments[0].bind(("m", "t"))  # no wrapper around it
    assert parse_registry(registry)["inference_model_request_total"].value(
        "inference_model_request_total", model_name="m", target_model_name="t"
    ) == (1.0)


def test_fanout_refuses_operations_the_kind_lacks() -> None:
    fanout = FanoutBackend(PrometheusBackend(CollectorRegistry()), NoopBackend())
    (counter,) = fanout.register([CATALOG["inference_model_request_total"]])
    with pytest.raises(UnsupportedOperation):
        counter.bind(("m", "t")).observe(1)


def test_fanouts_nest() -> None:
    registries = [CollectorRegistry() for _ in range(3)]
    inner = FanoutBackend(PrometheusBackend(registries[1]), PrometheusBackend(registries[2]))
    some_traffic(Recorder(FanoutBackend(PrometheusBackend(registries[0]), inner)))
    expositions = {generate_latest(registry) for registry in registries}
    assert len(expositions) == 1
    assert expositions != {b""}


def test_fanout_needs_backends() -> None:
    with pytest.raises(ValueError, match="at least one backend"):
        FanoutBackend()
    with pytest.raises(TypeError, match=r"Backend \(register, unregister, close\)"):
        FanoutBackend(PrometheusBackend(CollectorRegistry()), object())  # type: ignore[arg-type]


# --- fan-out: all-or-nothing registration -------------------------------------------------------


def test_a_refusing_prometheus_backend_rolls_back_the_otel_one(
    provider_and_registry: tuple[MeterProvider, CollectorRegistry],
) -> None:
    provider, _ = provider_and_registry
    taken = CollectorRegistry()
    Recorder(PrometheusBackend(taken))
    with pytest.raises(ValueError, match="cannot register"):
        Recorder(FanoutBackend(PrometheusBackend(taken), OpenTelemetryBackend(provider)))
    Recorder(OpenTelemetryBackend(provider))  # the provider's names were released


def test_a_refusing_otel_backend_leaves_the_prometheus_registry_untouched(
    provider_and_registry: tuple[MeterProvider, CollectorRegistry],
) -> None:
    provider, _ = provider_and_registry
    Recorder(OpenTelemetryBackend(provider))
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match="already registered on it"):
        Recorder(FanoutBackend(PrometheusBackend(registry), OpenTelemetryBackend(provider)))
    assert registry_is_empty(registry)
    some_traffic(Recorder(PrometheusBackend(registry)))  # nothing of the fan-out is left there


def test_a_second_refusing_prometheus_backend_closes_the_first() -> None:
    free, taken = CollectorRegistry(), CollectorRegistry()
    Recorder(PrometheusBackend(taken))
    with pytest.raises(ValueError, match="cannot register"):
        Recorder(FanoutBackend(PrometheusBackend(free), PrometheusBackend(taken)))
    some_traffic(Recorder(PrometheusBackend(free)))  # the free registry holds nothing of it


def test_a_backend_whose_undo_fails_is_named_on_the_error() -> None:
    failing = FailingUndo()
    with pytest.raises(ValueError, match="refused") as caught:
        FanoutBackend(failing, Refusing()).register(tuple(CATALOG))
    assert any(
        "could not undo" in note and "cannot undo" in note for note in caught.value.__notes__
    )


def test_backends_register_in_order_and_are_undone_in_reverse() -> None:
    events: list[str] = []

    class Recording(NoopBackend):
        def __init__(self, name: str) -> None:
            self.name = name

        def register(self, specs: Sequence[MetricSpec]) -> Sequence[NoopInstrument]:
            events.append(self.name)
            return super().register(specs)

        def unregister(self, instruments: Sequence[Instrument]) -> None:
            events.append(f"undo {self.name}")

    fanout = FanoutBackend(Recording("first"), Recording("second"), Refusing(), Recording("fourth"))
    with pytest.raises(ValueError, match="refused"):
        fanout.register(tuple(CATALOG))
    assert events == ["first", "second", "undo second", "undo first"]


def test_a_backend_without_unregister_and_close_is_refused() -> None:
    class RegisterOnly:
        def register(self, specs: Sequence[MetricSpec]) -> Sequence[Instrument]:
            return NoopBackend().register(specs)

    with pytest.raises(TypeError, match=r"Backend \(register, unregister, close\)"):
        FanoutBackend(RegisterOnly())  # type: ignore[arg-type]


def test_fanout_unregister_and_close_reach_the_backends(
    provider_and_registry: tuple[MeterProvider, CollectorRegistry],
) -> None:
    provider, _ = provider_and_registry
    registry = CollectorRegistry()
    fanout = FanoutBackend(PrometheusBackend(registry), OpenTelemetryBackend(provider))
    some_traffic(Recorder(fanout))
    fanout.close()
    assert registry_is_empty(registry)
    Recorder(FanoutBackend(PrometheusBackend(registry), OpenTelemetryBackend(provider)))


# --- no-op --------------------------------------------------------------------------------------


def test_noop_accepts_every_call_and_records_nothing() -> None:
    recorder = Recorder(NoopBackend())
    some_traffic(recorder)
    assert recorder.series_count(CATALOG["inference_model_request_total"]) == 1


def test_noop_still_validates_input() -> None:
    recorder = Recorder(NoopBackend())
    with pytest.raises(ValueError, match="size"):
        recorder.record_request_size("m", "t", -1)
    with pytest.raises(TypeError, match="model_name"):
        recorder.record_request_counter(3, "t")  # type: ignore[arg-type]


def test_noop_series_refuse_operations_their_kind_lacks() -> None:
    counter, histogram, gauge = (
        instrument.bind(tuple("x" for _ in instrument.spec.labels))
        for instrument in NoopBackend().register(
            [
                CATALOG["inference_model_request_total"],
                CATALOG["inference_model_request_sizes"],
                CATALOG["inference_pool_ready_pods"],
            ]
        )
    )
    counter.add(1)
    histogram.observe(1)
    gauge.set(1)
    gauge.add(-1)
    with pytest.raises(UnsupportedOperation):
        counter.observe(1)
    with pytest.raises(UnsupportedOperation):
        histogram.add(1)
    with pytest.raises(UnsupportedOperation):
        gauge.observe(1)


def test_noop_checks_label_counts_and_duplicate_names() -> None:
    (instrument,) = NoopBackend().register([CATALOG["inference_model_request_total"]])
    with pytest.raises(ValueError, match="has labels"):
        instrument.bind(("only one",))
    spec = CATALOG["inference_model_request_total"]
    with pytest.raises(ValueError, match="appears twice"):
        NoopBackend().register([spec, spec])
