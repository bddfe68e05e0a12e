"""Series removal: a pool or a pod that is gone leaves the exposition of every backend and frees
its slot in the Recorder's bound; other series are untouched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from inference_metrics import (
    CATALOG,
    FanoutBackend,
    NoopBackend,
    OpenTelemetryBackend,
    PrometheusBackend,
    Recorder,
)
from inference_metrics.backends import UnsupportedOperation
from inference_metrics.exposition import TEXT, render

from .expo import parse_registry

POOL_METRICS = [spec.name for spec in CATALOG if spec.labels == ("name",)]
PER_POD = "inference_pool_per_pod_queue_size"


@pytest.fixture
def otel_registry() -> Iterator[tuple[OpenTelemetryBackend, CollectorRegistry]]:
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(
        disable_target_info=True, scope_info_enabled=False, registry=registry
    )
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield OpenTelemetryBackend(provider), registry
    provider.shutdown()


def record_pools(recorder: Recorder, *pools: str) -> None:
    for pool in pools:
        recorder.record_pool_kv_cache_utilization(pool, 0.5)
        recorder.record_pool_queue_size(pool, 3)
        recorder.record_pool_ready_pods(pool, 2)
        recorder.record_pool_average_running_requests(pool, 1.5)
        recorder.record_pool_per_pod_queue_size(pool, "pod-a", 4)
        recorder.record_pool_per_pod_queue_size(pool, "pod-b", 5)


def names_of(registry: CollectorRegistry, metric: str) -> set[str]:
    family = parse_registry(registry).get(metric)
    if family is None:
        return set()
    return {dict(labels)["name"] for _, labels in family.samples}


def pods_of(registry: CollectorRegistry) -> set[tuple[str, str]]:
    family = parse_registry(registry).get(PER_POD)
    if family is None:
        return set()
    return {(dict(k)["name"], dict(k)["model_server_pod"]) for _, k in family.samples}


def test_remove_pool_drops_the_pool_from_every_pool_metric(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    record_pools(recorder, "gone", "kept")
    recorder.remove_pool("gone")
    for metric in POOL_METRICS:
        assert names_of(registry, metric) == {"kept"}, metric
    # per-pod series are removed pod by pod
    assert pods_of(registry) == {(p, pod) for p in ("gone", "kept") for pod in ("pod-a", "pod-b")}


def test_remove_pod_drops_only_that_pods_series(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    record_pools(recorder, "p")
    recorder.remove_pod("p", "pod-a")
    assert pods_of(registry) == {("p", "pod-b")}
    assert names_of(registry, "inference_pool_ready_pods") == {"p"}


def test_our_writer_stops_rendering_a_removed_series(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    record_pools(recorder, "gone", "kept")
    render(registry, TEXT)  # the removed series had cached lines
    recorder.remove_pool("gone")
    recorder.remove_pod("gone", "pod-a")
    recorder.remove_pod("gone", "pod-b")
    text = render(registry, TEXT).decode()
    assert '"gone"' not in text
    assert text.encode() == generate_latest(registry)


def test_a_removed_pool_recorded_again_starts_afresh(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    record_pools(recorder, "p")
    recorder.remove_pool("p")
    recorder.record_pool_ready_pods("p", 7)
    families = parse_registry(registry)
    assert families["inference_pool_ready_pods"].value("inference_pool_ready_pods", name="p") == 7
    assert "inference_pool_average_queue_size" not in families


def test_removal_frees_the_slot_in_the_series_bound(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry), max_series=2)
    record_pools(recorder, "a", "b")
    recorder.remove_pool("a")
    recorder.record_pool_ready_pods("c", 1)  # takes a's slot instead of overflowing
    assert names_of(registry, "inference_pool_ready_pods") == {"b", "c"}
    assert recorder.series_count(CATALOG["inference_pool_ready_pods"]) == 2


def test_removing_what_was_never_recorded_changes_nothing(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    record_pools(recorder, "p")
    before = generate_latest(registry)
    recorder.remove_pool("never")
    recorder.remove_pod("p", "never")
    recorder.remove_pod("never", "pod-a")
    assert generate_latest(registry) == before


@pytest.mark.parametrize(
    ("call", "args", "argument"),
    [
        ("remove_pool", (3,), "pool_name"),
        ("remove_pod", ("p", None), "pod_name"),
        ("remove_pod", (b"p", "pod-a"), "pool_name"),
    ],
)
def test_removal_with_a_bad_name_is_refused_and_changes_nothing(
    recorder: Recorder,
    registry: CollectorRegistry,
    call: str,
    args: tuple[object, ...],
    argument: str,
) -> None:
    record_pools(recorder, "p")
    before = generate_latest(registry)
    with pytest.raises(TypeError, match=argument):
        getattr(recorder, call)(*args)
    assert generate_latest(registry) == before


def test_otel_stops_exporting_a_removed_pool_and_pod(
    otel_registry: tuple[OpenTelemetryBackend, CollectorRegistry],
) -> None:
    backend, registry = otel_registry
    recorder = Recorder(backend)
    record_pools(recorder, "gone", "kept")
    assert names_of(registry, "inference_pool_ready_pods") == {"gone", "kept"}
    recorder.remove_pool("gone")
    recorder.remove_pod("kept", "pod-a")
    for metric in POOL_METRICS:
        assert names_of(registry, metric) == {"kept"}, metric
    assert pods_of(registry) == {("gone", "pod-a"), ("gone", "pod-b"), ("kept", "pod-b")}


def test_otel_refuses_to_remove_a_counter_series_it_would_keep_exporting(
    otel_registry: tuple[OpenTelemetryBackend, CollectorRegistry],
) -> None:
    backend, _ = otel_registry
    (counter,) = backend.register([CATALOG["inference_model_request_total"]])
    counter.bind(("m", "t")).add(1)
    with pytest.raises(UnsupportedOperation, match="cannot be removed"):
        counter.remove(("m", "t"))


def test_fanout_removes_from_every_backend(
    otel_registry: tuple[OpenTelemetryBackend, CollectorRegistry],
) -> None:
    backend, otel = otel_registry
    prometheus = CollectorRegistry()
    recorder = Recorder(FanoutBackend(PrometheusBackend(prometheus), backend, NoopBackend()))
    record_pools(recorder, "gone", "kept")
    recorder.remove_pool("gone")
    for registry in (prometheus, otel):
        assert names_of(registry, "inference_pool_ready_pods") == {"kept"}


def test_noop_removal_checks_the_label_count() -> None:
    (instrument,) = NoopBackend().register([CATALOG["inference_pool_ready_pods"]])
    instrument.remove(("p",))
    with pytest.raises(ValueError, match="has labels"):
        instrument.remove(("p", "extra"))
