"""Upstream's seed metrics, written out by hand from the reference document.

Nothing here is imported from ``inference_metrics``: the tests compare the library against these
facts (shared/reference/upstream-epp-metrics.md, section 1), so a change to the catalogue that
drifts from upstream fails a test instead of silently changing what both sides agree on.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

#: Every seed HELP line starts with this (k8s component-base stability prefix).
ALPHA = "[ALPHA] "

MODEL = ("model_name", "target_model_name")

REQUEST_TOTAL = "inference_model_request_total"
REQUEST_ERROR_TOTAL = "inference_model_request_error_total"
REQUEST_DURATION = "inference_model_request_duration_seconds"
REQUEST_SIZES = "inference_model_request_sizes"
RESPONSE_SIZES = "inference_model_response_sizes"
INPUT_TOKENS = "inference_model_input_tokens"
OUTPUT_TOKENS = "inference_model_output_tokens"
POOL_KV_CACHE = "inference_pool_average_kv_cache_utilization"
POOL_QUEUE_SIZE = "inference_pool_average_queue_size"

DURATION_BUCKETS = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20,
    30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
)  # fmt: skip
REQUEST_SIZE_BUCKETS = (
    64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288,
    1048576, 2097152, 4194304, 8388608, 16777216, 33554432, 67108864, 134217728, 268435456,
    536870912, 1073741824,
)  # fmt: skip
# 32778 (sic): upstream's typo for 32768, kept for exposition compatibility.
RESPONSE_SIZE_BUCKETS = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536,
)  # fmt: skip
INPUT_TOKEN_BUCKETS = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072,
    262144, 524288, 1048576,
)  # fmt: skip
OUTPUT_TOKEN_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


@dataclass(frozen=True)
class Seed:
    name: str
    type: str
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] | None = None


SEEDS: tuple[Seed, ...] = (
    Seed(
        REQUEST_TOTAL,
        "counter",
        MODEL,
        "Counter of inference model requests broken out for each model and target model.",
    ),
    Seed(
        REQUEST_ERROR_TOTAL,
        "counter",
        (*MODEL, "error_code"),
        "Counter of inference model requests errors broken out for each model and target model.",
    ),
    Seed(
        REQUEST_DURATION,
        "histogram",
        MODEL,
        "Inference model response latency distribution in seconds for each model and target model.",
        DURATION_BUCKETS,
    ),
    Seed(
        REQUEST_SIZES,
        "histogram",
        MODEL,
        "Inference model requests size distribution in bytes for each model and target model.",
        REQUEST_SIZE_BUCKETS,
    ),
    Seed(
        RESPONSE_SIZES,
        "histogram",
        MODEL,
        "Inference model responses size distribution in bytes for each model and target model.",
        RESPONSE_SIZE_BUCKETS,
    ),
    Seed(
        INPUT_TOKENS,
        "histogram",
        MODEL,
        "Inference model input token count distribution for requests in each model.",
        INPUT_TOKEN_BUCKETS,
    ),
    Seed(
        OUTPUT_TOKENS,
        "histogram",
        MODEL,
        "Inference model output token count distribution for requests in each model.",
        OUTPUT_TOKEN_BUCKETS,
    ),
    Seed(
        POOL_KV_CACHE,
        "gauge",
        ("name",),
        "The average kv cache utilization for an inference server pool.",
    ),
    Seed(
        POOL_QUEUE_SIZE,
        "gauge",
        ("name",),
        "The average number of requests pending in the model server queue.",
    ),
)
SEED_BY_NAME = {seed.name: seed for seed in SEEDS}


def le(bound: float) -> str:
    """An ``le`` label value as tests/expo.py normalises it."""
    return repr(float(bound))


def expected_histogram(
    name: str, buckets: Iterable[float], values: Iterable[float], **labels: str
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample (buckets, _count, _sum) of one histogram series, computed independently:
    an observation falls in the first bucket whose bound is >= it (bisect_left), counts are
    cumulative, ``+Inf`` holds every observation."""
    bounds = tuple(float(b) for b in buckets)
    per_bucket = [0] * (len(bounds) + 1)
    total = 0.0
    observed = 0
    for value in values:
        per_bucket[bisect_left(bounds, value)] += 1
        total += value
        observed += 1
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    running = 0
    for bound, n in zip((*bounds, float("inf")), per_bucket, strict=True):
        running += n
        key = frozenset({**labels, "le": le(bound)}.items())
        samples[(name + "_bucket", key)] = running
    assert running == observed
    plain = frozenset(labels.items())
    samples[(name + "_count", plain)] = observed
    samples[(name + "_sum", plain)] = total
    return samples
