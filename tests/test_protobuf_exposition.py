"""The protobuf exposition through the one render path: chosen from ``Accept`` as Prometheus asks
for it, the same numbers as the text page (other collectors included), gzip'd through the cache
with each series' protobuf bytes reused while it is unchanged."""

from __future__ import annotations

import gzip
import math
import random
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import Counter, PlatformCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from prometheus_client.registry import CollectorRegistry

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.backends.protobuf import CONTENT_TYPE
from inference_metrics.exposition import PROTOBUF, TEXT, negotiate, render, render_pieces
from inference_metrics.gzip_cache import GzipCache
from inference_metrics.simulate import simulate_pools, simulate_request

from .client_model import MetricType, decode_stream
from .expo import parse_text
from .test_gzip_cache import recorded, update

# What Prometheus 2.42 sends with --enable-feature=native-histograms, and without (scrape.go).
PROMETHEUS_2_NATIVE = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
    "application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
# Prometheus 3 with PrometheusProto first in scrape_protocols (weights, escaping).
PROMETHEUS_3_PROTO = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;"
    "q=0.5,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


# --- negotiation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [PROMETHEUS_2_NATIVE, PROMETHEUS_3_PROTO, CONTENT_TYPE])
def test_prometheus_asking_for_protobuf_first_gets_it(accept: str) -> None:
    assert negotiate(accept) == PROTOBUF
    assert PROTOBUF.content_type == CONTENT_TYPE


def test_prometheus_asking_for_openmetrics_first_gets_openmetrics_as_before() -> None:
    chosen = negotiate(PROMETHEUS_2)
    assert chosen.openmetrics
    assert not chosen.protobuf


@pytest.mark.parametrize(
    "accept",
    [
        # ranked below text
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited;q=0.2,text/plain;version=0.0.4;q=0.5",
        # refused outright
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited;q=0,text/plain",
        # not the delimited MetricFamily stream
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
        "application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
        # an escaping that would rename our metrics
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited;escaping=dots",
        # a quality that is no number
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
        "encoding=delimited;q=high",
        "",
        "text/plain",
    ],
)
def test_anything_else_is_negotiated_as_before_never_protobuf(accept: str) -> None:
    chosen = negotiate(accept)
    assert not chosen.protobuf
    try:
        _, before = choose_encoder(accept)
    except Exception:
        before = CONTENT_TYPE_PLAIN_0_0_4
    assert chosen.content_type == before


@settings(max_examples=300, deadline=None)
@given(accept=st.text(max_size=200))
def test_negotiation_never_raises(accept: str) -> None:
    negotiate(accept)


# --- the page ------------------------------------------------------------------------------------


def _samples_of(data: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples a text page would show for a protobuf page, decoded independently."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in decode_stream(data):
        for metric in family.metric:
            labels = frozenset((pair.name, pair.value) for pair in metric.label)
            if family.type in (MetricType.COUNTER, MetricType.GAUGE, MetricType.UNTYPED):
                body = {
                    MetricType.COUNTER: metric.counter,
                    MetricType.GAUGE: metric.gauge,
                    MetricType.UNTYPED: metric.untyped,
                }[family.type]
                samples[(family.name, labels)] = body.value
                continue
            assert family.type == MetricType.HISTOGRAM
            histogram = metric.histogram
            for bucket in histogram.bucket:
                le = repr(float(bucket.upper_bound))
                samples[(family.name + "_bucket", labels | {("le", le)})] = bucket.cumulative_count
            inf = labels | {("le", repr(math.inf))}
            samples[(family.name + "_bucket", inf)] = histogram.sample_count
            samples[(family.name + "_count", labels)] = histogram.sample_count
            samples[(family.name + "_sum", labels)] = histogram.sample_sum
    return samples


def _text_samples(
    registry: CollectorRegistry,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The text page's samples but ``_created`` ones (protobuf sends no created timestamps)."""
    return {
        key: value
        for family in parse_text(render(registry, TEXT).decode()).values()
        for key, value in family.samples.items()
        if not key[0].endswith("_created")
    }


@pytest.mark.parametrize("histograms", ["classic", "both"])
@pytest.mark.parametrize("schema", ["gie-v0.3", "gie-v1.5", "llm-d-router"])
def test_the_protobuf_page_holds_the_numbers_of_the_text_page_other_collectors_included(
    schema: str, histograms: str
) -> None:
    registry = CollectorRegistry()
    PlatformCollector(registry=registry)
    Counter("app_events", "Events of the application.", ["kind"], registry=registry).labels(
        "x"
    ).inc(3)
    recorder = Recorder(PrometheusBackend(registry, histograms=histograms), schema=schema)
    rng = random.Random(22)
    simulate_pools(recorder, rng)
    for _ in range(60):
        simulate_request(recorder, rng, time.monotonic())
    assert _samples_of(render(registry, PROTOBUF)) == _text_samples(registry)


@pytest.mark.parametrize("histograms", ["classic", "native", "both"])
def test_every_histogram_of_a_recorder_is_one_protobuf_family_with_its_kind(
    histograms: str,
) -> None:
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry, histograms=histograms))
    rng = random.Random(5)
    for _ in range(30):
        simulate_request(recorder, rng, time.monotonic())
    histogram_families = [
        family
        for family in decode_stream(render(registry, PROTOBUF))
        if family.type == MetricType.HISTOGRAM
    ]
    assert histogram_families
    for family in histogram_families:
        for metric in family.metric:
            assert metric.histogram.HasField("schema") is (histograms != "classic")
            assert bool(metric.histogram.bucket) is (histograms != "native")


# --- gzip ----------------------------------------------------------------------------------------


def test_a_gzipped_protobuf_page_reuses_the_chunks_of_unchanged_series() -> None:
    registry, series = recorded(300)
    for one in series:
        update(one, 2.0)
    cache = GzipCache(chunk_bytes=4096)
    first = cache.render(registry, PROTOBUF)
    assert gzip.decompress(first) == render(registry, PROTOBUF)
    slot = cache._slots[PROTOBUF.format]
    before = [chunk.deflated for chunk in slot.values()]
    assert len(before) > 5
    assert cache.render(registry, PROTOBUF) == first
    update(series[150], 7.0)  # a counter: the same size, so its family's prefix stays
    body = cache.render(registry, PROTOBUF)
    after = [chunk.deflated for chunk in cache._slots[PROTOBUF.format].values()]
    assert len([new for new in after if not any(new is old for old in before)]) == 1
    assert gzip.decompress(body) == render(registry, PROTOBUF)


@settings(max_examples=30, deadline=None)
@given(
    rounds=st.lists(
        st.tuples(
            st.lists(
                st.tuples(st.integers(0, 3 * 30 - 1), st.floats(0, 1e9, allow_nan=False)),
                max_size=20,
            ),
            st.sampled_from(["text", "protobuf", "openmetrics"]),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_any_gzipped_render_decompresses_to_the_render_of_the_same_state(
    rounds: list[tuple[list[tuple[int, float]], str]],
) -> None:
    registry, series = recorded(30)
    cache = GzipCache(chunk_bytes=512)
    chosen: dict[str, Any] = {
        "text": TEXT,
        "protobuf": PROTOBUF,
        "openmetrics": negotiate("application/openmetrics-text; version=1.0.0"),
    }
    for updates, name in rounds:
        for index, amount in updates:
            update(series[index], amount)
        representation = chosen[name]
        assert gzip.decompress(cache.render(registry, representation)) == render(
            registry, representation
        )
        pieces, keys = render_pieces(registry, representation)
        assert len(pieces) == len(keys)
