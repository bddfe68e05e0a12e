"""The catalogue against upstream's facts, written out independently in tests/upstream_facts.py."""

from __future__ import annotations

import pytest

from inference_metrics import CATALOG, SEED_METRICS, Kind, MetricSpec, Stability
from inference_metrics import catalog as catalog_module
from inference_metrics.catalog import Catalog
from inference_metrics.schemas import DEFAULT_SCHEMA

from . import upstream_facts as up


def test_the_facts_themselves_are_transcribed_right() -> None:
    # A guard on the hand-written facts: the reference gives the counts and the rules.
    assert len(up.SEEDS) == 9
    assert len(up.DURATION_BUCKETS) == 35
    assert tuple(64 * 2**i for i in range(25)) == up.REQUEST_SIZE_BUCKETS
    assert up.REQUEST_SIZE_BUCKETS[-1] == 1073741824
    assert len(up.RESPONSE_SIZE_BUCKETS) == 15
    assert len(up.INPUT_TOKEN_BUCKETS) == 19
    assert len(up.OUTPUT_TOKEN_BUCKETS) == 12


def test_the_catalogue_starts_with_the_nine_seed_metrics_in_order() -> None:
    assert [spec.name for spec in SEED_METRICS] == [seed.name for seed in up.SEEDS]
    assert list(CATALOG)[: len(up.SEEDS)] == list(SEED_METRICS)


@pytest.mark.parametrize("seed", up.SEEDS, ids=lambda seed: seed.name)
def test_each_seed_metric_is_exactly_upstreams(seed: up.Seed) -> None:
    spec = CATALOG[seed.name]
    assert spec.name == seed.name
    assert spec.kind.value == seed.type
    assert spec.help == seed.help
    assert spec.documentation == up.ALPHA + seed.help
    assert spec.labels == seed.labels
    assert spec.stability is Stability.ALPHA
    assert spec.deprecated_since is None
    if seed.buckets is None:
        assert spec.buckets is None
    else:
        assert spec.buckets == tuple(float(b) for b in seed.buckets)


def test_the_error_counter_has_the_error_code_label() -> None:
    assert CATALOG[up.REQUEST_ERROR_TOTAL].labels == (
        "model_name",
        "target_model_name",
        "error_code",
    )


@pytest.mark.parametrize("name", [up.RESPONSE_SIZES, up.INPUT_TOKENS])
def test_upstreams_32778_typo_is_kept(name: str) -> None:
    buckets = CATALOG[name].buckets
    assert buckets is not None
    assert 32778.0 in buckets
    assert 32768.0 not in buckets
    assert buckets[buckets.index(32778.0) - 1] == 16384.0
    assert buckets[buckets.index(32778.0) + 1] == 65536.0


def test_request_sizes_do_have_32768() -> None:
    buckets = CATALOG[up.REQUEST_SIZES].buckets
    assert buckets is not None
    assert 32768.0 in buckets
    assert 32778.0 not in buckets


def test_bucket_counts() -> None:
    counts = {
        name: len(spec.buckets) for name in up.SEED_BY_NAME if (spec := CATALOG[name]).buckets
    }
    assert counts == {
        up.REQUEST_DURATION: 35,
        up.REQUEST_SIZES: 25,
        up.RESPONSE_SIZES: 15,
        up.INPUT_TOKENS: 19,
        up.OUTPUT_TOKENS: 12,
    }


# --- the metrics upstream added after the seed (reference, section 3) ----------------------------


@pytest.mark.parametrize(
    ("name", "kind", "labels", "help_text"),
    [
        (
            "inference_model_running_requests",
            Kind.GAUGE,
            ("model_name",),
            "Inference model number of running requests in each model.",
        ),
        (
            "inference_model_normalized_time_per_output_token_seconds",
            Kind.HISTOGRAM,
            up.MODEL,
            "Inference model latency divided by number of output tokens in seconds for each "
            "model and target model.",
        ),
        (
            "inference_pool_ready_pods",
            Kind.GAUGE,
            ("name",),
            "The number of ready pods in the inference server pool.",
        ),
        (
            "inference_pool_average_running_requests",
            Kind.GAUGE,
            ("name",),
            "The average number of running requests across model servers in the pool.",
        ),
        (
            "inference_pool_per_pod_queue_size",
            Kind.GAUGE,
            ("name", "model_server_pod"),
            "The total number of requests pending in the model server queue for each underlying "
            "pod.",
        ),
        (
            "inference_extension_info",
            Kind.GAUGE,
            ("commit", "build_ref"),
            "General information of the current build of Inference Extension.",
        ),
        ("inference_model_request_ttft_seconds", Kind.HISTOGRAM, up.MODEL, None),
        ("inference_model_request_tpot_seconds", Kind.HISTOGRAM, up.MODEL, None),
        ("inference_model_prompt_cached_tokens", Kind.HISTOGRAM, up.MODEL, None),
    ],
)
def test_later_metrics_are_upstreams(
    name: str, kind: Kind, labels: tuple[str, ...], help_text: str | None
) -> None:
    spec = CATALOG[name]
    assert spec.kind is kind
    assert spec.labels == labels
    assert spec.stability is Stability.ALPHA
    assert spec.documentation.startswith(up.ALPHA)
    if help_text is not None:
        assert spec.help == help_text


def test_later_histogram_buckets() -> None:
    assert CATALOG["inference_model_normalized_time_per_output_token_seconds"].buckets == (
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
    )  # fmt: skip
    # "histogram, input-token buckets"
    assert CATALOG["inference_model_prompt_cached_tokens"].buckets == tuple(
        float(b) for b in up.INPUT_TOKEN_BUCKETS
    )


def test_every_catalogue_metric_uses_upstreams_prefixes_and_is_alpha() -> None:
    ours = {view.spec.name for view in DEFAULT_SCHEMA if view.ours}
    assert ours == {
        "inference_metrics_response_parse_failures_total",
        "inference_pool_datalayer_poll_errors_total",
        "inference_pool_datalayer_extract_errors_total",
    }
    for spec in CATALOG:
        prefixes = ("inference_model_", "inference_pool_", "inference_extension_")
        assert spec.name.startswith(prefixes) or spec.name in ours
        assert spec.stability is Stability.ALPHA
        assert spec.deprecated_since is None
        assert spec.documentation == f"[ALPHA] {spec.help}"


# --- the Catalog type --------------------------------------------------------------------------


def test_lookup_by_name_returns_the_module_level_spec() -> None:
    assert CATALOG[up.REQUEST_TOTAL] is catalog_module.REQUEST_TOTAL
    assert CATALOG[up.POOL_QUEUE_SIZE] is catalog_module.POOL_AVERAGE_QUEUE_SIZE
    assert CATALOG.get(up.REQUEST_DURATION) is catalog_module.REQUEST_DURATION
    assert up.REQUEST_SIZES in CATALOG
    assert "inference_model_request" not in CATALOG
    assert 42 not in CATALOG


def test_iteration_len_and_names_agree() -> None:
    specs = list(CATALOG)
    assert all(isinstance(spec, MetricSpec) for spec in specs)
    assert len(CATALOG) == len(specs) == 18 + 3  # upstream's, and this library's own three
    assert CATALOG.names == tuple(spec.name for spec in specs)
    assert len(set(CATALOG.names)) == len(specs)
    assert [CATALOG[name] for name in CATALOG.names] == specs
    # Iterating twice gives the same order.
    assert list(CATALOG) == specs


@pytest.mark.parametrize(
    "name", ["inference_model_request", "inference_objective_request_total", "", "nope"]
)
def test_an_unknown_name_is_a_key_error_naming_it(name: str) -> None:
    with pytest.raises(KeyError) as caught:
        CATALOG[name]
    message = caught.value.args[0]
    assert repr(name) in message
    assert "catalogue" in message
    assert CATALOG.get(name) is None


def test_a_catalog_refuses_duplicates_and_non_specs() -> None:
    spec = catalog_module.REQUEST_TOTAL
    with pytest.raises(ValueError, match=repr(spec.name)):
        Catalog((spec, catalog_module.REQUEST_SIZES, spec))
    with pytest.raises(TypeError, match="MetricSpec"):
        Catalog((spec, "inference_model_request_sizes"))  # type: ignore[arg-type]
    small = Catalog((spec,))
    assert list(small) == [spec]
    assert len(small) == 1


def test_two_specs_exposing_one_sample_name_are_refused() -> None:
    histogram = MetricSpec("x_tokens", Kind.HISTOGRAM, "x.", buckets=(1.0,))
    counter = MetricSpec("x_tokens_sum_total", Kind.COUNTER, "x.")
    with pytest.raises(ValueError, match="would both expose 'x_tokens_sum'"):
        Catalog((histogram, counter))
