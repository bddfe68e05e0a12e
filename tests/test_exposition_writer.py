"""Our exposition writer: the same bytes as prometheus_client for the same registry, in both
formats, after any recordings and scrapes; other collectors after ours; unchanged series reused."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import Counter, Gauge, PlatformCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import CollectorRegistry

from inference_metrics import CATALOG, Kind, MetricSpec, PrometheusBackend, Recorder
from inference_metrics.backends.store import FOLD_AT
from inference_metrics.exposition import TEXT, negotiate, render

from .expo import parse_text
from .test_prometheus_backend import check_metrics, every_metric, parse_openmetrics

OPENMETRICS = negotiate("application/openmetrics-text; version=1.0.0")


def om_latest(registry: CollectorRegistry) -> bytes:
    data: bytes = openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
    return data


def assert_same_as_prometheus_client(registry: CollectorRegistry) -> None:
    assert render(registry, TEXT) == generate_latest(registry)
    assert render(registry, OPENMETRICS) == om_latest(registry)


# --- the property: any recordings, any scrapes in between ----------------------------------------

label_values = st.sampled_from(["", "m1", "m2", 'q"uote', "back\\slash", "new\nline", "ünï", "{}"])
numbers = st.one_of(
    st.integers(min_value=0, max_value=2**53),
    st.floats(min_value=0, max_value=1e15, allow_nan=False),
    st.sampled_from(sorted({b for spec in CATALOG if spec.buckets for b in spec.buckets})),
)
steps = st.one_of(
    st.tuples(st.just("request"), label_values, label_values, numbers, numbers, numbers),
    st.tuples(st.just("error"), label_values, label_values, label_values),
    st.tuples(st.just("pool"), label_values, numbers),
    st.tuples(st.just("pod"), label_values, label_values, numbers),
    st.tuples(st.just("running"), label_values, st.sampled_from([1, -1])),
    st.tuples(st.just("remove_pool"), label_values),
    st.tuples(
        st.just("scrape"),
    ),
)


def apply(recorder: Recorder, step: tuple[Any, ...]) -> None:
    kind, *args = step
    if kind == "request":
        model, target, size, tokens, seconds = args
        recorder.record_request_started(model, target, size)
        recorder.record_request_completed(
            model,
            target,
            received=1.0,
            completed=1.0 + seconds,
            response_size=size,
            input_tokens=tokens,
            output_tokens=tokens,
            cached_tokens=tokens,
            first_token=1.0 + seconds / 2,
        )
    elif kind == "error":
        recorder.record_request_failed(*args)
    elif kind == "pool":
        recorder.record_pool_ready_pods(*args)
        recorder.record_pool_queue_size(*args)
    elif kind == "pod":
        recorder.record_pool_per_pod_queue_size(*args)
    elif kind == "running":
        model, amount = args
        if amount > 0:
            recorder.record_running_request_started(model)
        else:
            recorder.record_running_request_finished(model)
    elif kind == "remove_pool":
        recorder.remove_pool(*args)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=st.lists(steps, max_size=40))
def test_every_scrape_is_byte_for_byte_prometheus_clients(sequence: list[tuple[Any, ...]]) -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    for step in [*sequence, ("scrape",)]:
        if step[0] == "scrape":
            assert_same_as_prometheus_client(registry)
        else:
            apply(recorder, step)


def test_every_catalogue_metric_renders_as_prometheus_client_renders_it(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    every_metric(recorder)
    assert {spec.name for spec in CATALOG} <= set(parse_text(render(registry, TEXT).decode()))
    assert_same_as_prometheus_client(registry)
    assert parse_openmetrics(
        render(registry, OPENMETRICS).decode()
    )  # the OpenMetrics parser agrees


def test_promtool_accepts_our_rendering(registry: CollectorRegistry, recorder: Recorder) -> None:
    every_metric(recorder)
    recorder.record_request_counter('we"ird', "new\nline\\")
    result = check_metrics(render(registry, TEXT))
    assert result.returncode == 0, result.stdout + result.stderr


def test_counts_of_a_million_and_more_print_as_prometheus_client_prints_them(
    registry: CollectorRegistry,
) -> None:
    spec = MetricSpec("big", Kind.HISTOGRAM, "Big.", buckets=(1.0,))
    (histogram,) = PrometheusBackend(registry).register([spec])
    series = histogram.bind(())
    for _ in range(1_000_001):
        series.observe(0.5)
    assert b'big_bucket{le="1.0"} 1.000001e+06\n' in render(registry, TEXT)
    assert_same_as_prometheus_client(registry)


# --- other collectors ---------------------------------------------------------------------------


def test_other_collectors_follow_ours_rendered_by_prometheus_client(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    theirs = Counter("users_own", "A user's own counter.", ["path"], registry=registry)
    theirs.labels("/").inc()
    PlatformCollector(registry=registry)  # python_info: fixed values
    recorder.record_request_counter("m", "t")
    for representation, latest in ((TEXT, generate_latest), (OPENMETRICS, om_latest)):
        body = render(registry, representation)
        ours = body.index(b"# HELP inference_model_request")
        assert ours < body.index(b"# HELP users_own") < body.index(b"# HELP python_info")
        assert sorted(body.splitlines()) == sorted(latest(registry).splitlines())
    assert render(registry, OPENMETRICS).endswith(b"\n# EOF\n")
    assert render(registry, OPENMETRICS).count(b"# EOF") == 1


def test_target_info_is_rendered(registry: CollectorRegistry, recorder: Recorder) -> None:
    registry.set_target_info({"service": "gateway"})
    recorder.record_request_counter("m", "t")
    assert b'target_info{service="gateway"} 1.0' in render(registry, TEXT)
    assert sorted(render(registry, TEXT).splitlines()) == sorted(
        generate_latest(registry).splitlines()
    )


def test_a_registry_without_our_metrics_renders_as_prometheus_client_does(
    registry: CollectorRegistry,
) -> None:
    Gauge("only_theirs", "Theirs.", registry=registry).set(3)
    assert_same_as_prometheus_client(registry)


@pytest.mark.parametrize("escaping", ["dots", "values"])
def test_escapings_that_rename_are_left_to_prometheus_client(
    registry: CollectorRegistry, recorder: Recorder, escaping: str
) -> None:
    recorder.record_request_counter("m", "t")
    for accept in (
        f"application/openmetrics-text; version=1.0.0; escaping={escaping}",
        f"text/plain; version=1.0.0; escaping={escaping}",
    ):
        representation = negotiate(accept)
        assert representation.escaping == escaping
        encoder, _ = choose_encoder(accept)
        assert render(registry, representation) == encoder(registry)


# --- negotiation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",
        "text/plain",
        "application/openmetrics-text; version=abc",
        "text/plain; version=x.y",
    ],
)
def test_an_accept_header_without_a_usable_openmetrics_version_gets_text(
    accept: str | None,
) -> None:
    assert negotiate(accept) == TEXT


def test_prometheus_3s_accept_header_gets_openmetrics_with_utf8_names() -> None:
    accept = (
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
        "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;"
        "escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    )
    representation = negotiate(accept)
    assert representation.openmetrics
    assert representation.escaping == "allow-utf-8"
    assert representation.content_type == choose_encoder(accept)[1]


@settings(max_examples=300, deadline=None)
@given(accept=st.text(max_size=80))
def test_negotiation_never_raises(accept: str) -> None:
    representation = negotiate(accept)
    assert representation.content_type


# --- incremental rendering ------------------------------------------------------------------------


def test_an_unchanged_series_is_not_formatted_again(registry: CollectorRegistry) -> None:
    (histogram,) = PrometheusBackend(registry).register([CATALOG["inference_model_request_sizes"]])
    series, other = histogram.bind(("m", "a")), histogram.bind(("m", "b"))
    series.observe(100)
    other.observe(100)
    first = render(registry, TEXT)
    lines = series.rendered  # type: ignore[attr-defined]
    assert lines is not None
    assert lines in first
    assert render(registry, TEXT) == first
    assert series.rendered is lines  # type: ignore[attr-defined]
    other.observe(5000)
    assert render(registry, TEXT) != first
    assert series.rendered is lines  # type: ignore[attr-defined]


def test_a_change_after_a_scrape_shows_in_the_next(
    registry: CollectorRegistry, recorder: Recorder
) -> None:
    recorder.record_request_size("m", "t", 100)
    recorder.record_pool_ready_pods("p", 1)
    render(registry, OPENMETRICS)
    recorder.record_request_size("m", "t", 100)
    recorder.record_pool_ready_pods("p", 2)
    assert_same_as_prometheus_client(registry)


# --- threads --------------------------------------------------------------------------------------


def test_counts_stay_exact_while_threads_record_and_scrape(registry: CollectorRegistry) -> None:
    recorder = Recorder(PrometheusBackend(registry))
    threads, requests = 4, FOLD_AT * 12 + 7  # several folds by the recording threads
    start = threading.Barrier(threads + 1)
    done = threading.Event()

    def record() -> None:
        start.wait()
        for _ in range(requests):
            recorder.record_request_started("m", "t", 100)
            recorder.record_running_request_started("m")
            recorder.record_running_request_finished("m")

    def scrape() -> None:
        start.wait()
        while not done.is_set():
            render(registry, TEXT)

    workers = [threading.Thread(target=record) for _ in range(threads)]
    scraper = threading.Thread(target=scrape)
    for thread in (*workers, scraper):
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    done.set()
    scraper.join(timeout=60)
    assert not any(thread.is_alive() for thread in (*workers, scraper))
    families = parse_text(render(registry, TEXT).decode())
    labels = {"model_name": "m", "target_model_name": "t"}
    total = families["inference_model_request_total"].value(
        "inference_model_request_total", **labels
    )
    sizes = families["inference_model_request_sizes"]
    assert total == threads * requests
    assert sizes.value("inference_model_request_sizes_count", **labels) == threads * requests
    assert math.isclose(
        sizes.value("inference_model_request_sizes_sum", **labels), 100.0 * threads * requests
    )
    running = families["inference_model_running_requests"]
    assert running.value("inference_model_running_requests", model_name="m") == 0
    assert render(registry, TEXT) == generate_latest(registry)


def test_render_reads_the_registry_through_its_public_collect() -> None:
    class WithExtra(CollectorRegistry):
        def collect(self) -> Iterator[Metric]:
            yield from super().collect()
            yield GaugeMetricFamily("extra_from_collect", "Yielded by collect() itself.", 1)

    registry = WithExtra()
    Recorder(PrometheusBackend(registry)).record_request_counter("m", "t")
    for representation, latest in ((TEXT, generate_latest), (OPENMETRICS, om_latest)):
        body = render(registry, representation)
        assert b"\nextra_from_collect 1.0\n" in body
        assert sorted(body.splitlines()) == sorted(latest(registry).splitlines())
