"""The metric catalogue: every metric this library exposes, as data.

The first nine entries are the endpoint picker's seed metrics exactly as upstream (v0.2.0) exposes
them: names, help text, label names (``error_code`` included) and buckets, typo included: the
response-size and token buckets hold ``32778`` where ``32768`` was meant, and every upstream
version keeps it, so we keep it too, or dashboards comparing ``le`` values would disagree.

The entries after them are metrics upstream added later under the same ``inference_model_*`` and
``inference_pool_*`` names (streaming latencies, running requests, per-pod queue sizes, build
info). Every one is ALPHA, as upstream.

Exemplars (docs/native-histograms.md) link latencies to traces: the size, token and NTPOT
histograms say ``exemplars=False``; the latencies leave it to the backend.

:data:`CATALOG` is the default schema's (``gie-v0.3``) catalogue: these specs, and any the schema
adds (:mod:`inference_metrics.schemas.gie_v03`). What feeds each spec is a view
(:class:`~inference_metrics.schemas.View`) of a quantity (:mod:`inference_metrics.quantities`);
docs/schemas.md says how to add a metric.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .spec import Kind, MetricSpec, Naming

__all__ = [
    "CATALOG",
    "EXTENSION_INFO",
    "INPUT_TOKENS",
    "NORMALIZED_TIME_PER_OUTPUT_TOKEN",
    "OUTPUT_TOKENS",
    "POOL_AVERAGE_KV_CACHE_UTILIZATION",
    "POOL_AVERAGE_QUEUE_SIZE",
    "POOL_AVERAGE_RUNNING_REQUESTS",
    "POOL_PER_POD_QUEUE_SIZE",
    "POOL_READY_PODS",
    "PROMPT_CACHED_TOKENS",
    "REQUEST_DURATION",
    "REQUEST_ERROR_TOTAL",
    "REQUEST_SIZES",
    "REQUEST_TOTAL",
    "REQUEST_TPOT",
    "REQUEST_TTFT",
    "RESPONSE_SIZES",
    "RUNNING_REQUESTS",
    "SEED_METRICS",
    "Catalog",
]

MODEL_LABELS = ("model_name", "target_model_name")
POOL_LABELS = ("name",)

LATENCY_BUCKETS = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20,
    30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
)  # fmt: skip
REQUEST_SIZE_BUCKETS = tuple(64 * 2**i for i in range(25))  # 64 B .. 1 GiB
# 32778 (not 32768) is upstream's typo, kept for exposition compatibility.
RESPONSE_SIZE_BUCKETS = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536,
)  # fmt: skip
INPUT_TOKEN_BUCKETS = (
    1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072,
    262144, 524288, 1048576,
)  # fmt: skip
OUTPUT_TOKEN_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
NTPOT_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
TPOT_BUCKETS = (
    0.0005, 0.00205, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.6, 0.8, 1, 1.5, 2, 3, 4.5, 6, 12, 18, 24, 30, 36, 48, 60, 90, 120, 180, 270, 360,
)  # fmt: skip

# --- the nine seed metrics (upstream v0.2.0) ------------------------------------------------------

REQUEST_TOTAL = MetricSpec(
    name="inference_model_request_total",
    kind=Kind.COUNTER,
    help="Counter of inference model requests broken out for each model and target model.",
    labels=MODEL_LABELS,
    unit="{request}",
)
REQUEST_ERROR_TOTAL = MetricSpec(
    name="inference_model_request_error_total",
    kind=Kind.COUNTER,
    help="Counter of inference model requests errors broken out for each model and target model.",
    labels=(*MODEL_LABELS, "error_code"),
    unit="{request}",
)
REQUEST_DURATION = MetricSpec(
    name="inference_model_request_duration_seconds",
    kind=Kind.HISTOGRAM,
    help=(
        "Inference model response latency distribution in seconds for each model and target model."
    ),
    labels=MODEL_LABELS,
    buckets=LATENCY_BUCKETS,
    unit="s",
)
REQUEST_SIZES = MetricSpec(
    name="inference_model_request_sizes",
    kind=Kind.HISTOGRAM,
    help="Inference model requests size distribution in bytes for each model and target model.",
    labels=MODEL_LABELS,
    buckets=REQUEST_SIZE_BUCKETS,
    unit="By",
    exemplars=False,
)
RESPONSE_SIZES = MetricSpec(
    name="inference_model_response_sizes",
    kind=Kind.HISTOGRAM,
    help="Inference model responses size distribution in bytes for each model and target model.",
    labels=MODEL_LABELS,
    buckets=RESPONSE_SIZE_BUCKETS,
    unit="By",
    exemplars=False,
)
INPUT_TOKENS = MetricSpec(
    name="inference_model_input_tokens",
    kind=Kind.HISTOGRAM,
    help="Inference model input token count distribution for requests in each model.",
    labels=MODEL_LABELS,
    buckets=INPUT_TOKEN_BUCKETS,
    unit="{token}",
    exemplars=False,
)
OUTPUT_TOKENS = MetricSpec(
    name="inference_model_output_tokens",
    kind=Kind.HISTOGRAM,
    help="Inference model output token count distribution for requests in each model.",
    labels=MODEL_LABELS,
    buckets=OUTPUT_TOKEN_BUCKETS,
    unit="{token}",
    exemplars=False,
)
POOL_AVERAGE_KV_CACHE_UTILIZATION = MetricSpec(
    name="inference_pool_average_kv_cache_utilization",
    kind=Kind.GAUGE,
    help="The average kv cache utilization for an inference server pool.",
    labels=POOL_LABELS,
    unit="1",
)
POOL_AVERAGE_QUEUE_SIZE = MetricSpec(
    name="inference_pool_average_queue_size",
    kind=Kind.GAUGE,
    help="The average number of requests pending in the model server queue.",
    labels=POOL_LABELS,
    unit="{request}",
)

SEED_METRICS: tuple[MetricSpec, ...] = (
    REQUEST_TOTAL,
    REQUEST_ERROR_TOTAL,
    REQUEST_DURATION,
    REQUEST_SIZES,
    RESPONSE_SIZES,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    POOL_AVERAGE_KV_CACHE_UTILIZATION,
    POOL_AVERAGE_QUEUE_SIZE,
)

# --- added upstream after the seed, same naming era ----------------------------------------------

RUNNING_REQUESTS = MetricSpec(
    name="inference_model_running_requests",
    kind=Kind.GAUGE,
    help="Inference model number of running requests in each model.",
    labels=("model_name",),
    unit="{request}",
)
NORMALIZED_TIME_PER_OUTPUT_TOKEN = MetricSpec(
    name="inference_model_normalized_time_per_output_token_seconds",
    kind=Kind.HISTOGRAM,
    help=(
        "Inference model latency divided by number of output tokens in seconds for each model "
        "and target model."
    ),
    labels=MODEL_LABELS,
    buckets=NTPOT_BUCKETS,
    unit="s",
    exemplars=False,
)
REQUEST_TTFT = MetricSpec(
    name="inference_model_request_ttft_seconds",
    kind=Kind.HISTOGRAM,
    help="Inference model TTFT distribution in seconds for each model and target model.",
    labels=MODEL_LABELS,
    buckets=LATENCY_BUCKETS,
    unit="s",
)
REQUEST_TPOT = MetricSpec(
    name="inference_model_request_tpot_seconds",
    kind=Kind.HISTOGRAM,
    help="Inference model TPOT distribution in seconds for each model and target model.",
    labels=MODEL_LABELS,
    buckets=TPOT_BUCKETS,
    unit="s",
)
PROMPT_CACHED_TOKENS = MetricSpec(
    name="inference_model_prompt_cached_tokens",
    kind=Kind.HISTOGRAM,
    help="Inference model prompt cached token count distribution for requests in each model.",
    labels=MODEL_LABELS,
    buckets=INPUT_TOKEN_BUCKETS,
    unit="{token}",
    exemplars=False,
)
POOL_READY_PODS = MetricSpec(
    name="inference_pool_ready_pods",
    kind=Kind.GAUGE,
    help="The number of ready pods in the inference server pool.",
    labels=POOL_LABELS,
    unit="{pod}",
)
POOL_AVERAGE_RUNNING_REQUESTS = MetricSpec(
    name="inference_pool_average_running_requests",
    kind=Kind.GAUGE,
    help="The average number of running requests across model servers in the pool.",
    labels=POOL_LABELS,
    unit="{request}",
)
POOL_PER_POD_QUEUE_SIZE = MetricSpec(
    name="inference_pool_per_pod_queue_size",
    kind=Kind.GAUGE,
    help="The total number of requests pending in the model server queue for each underlying pod.",
    labels=("name", "model_server_pod"),
    unit="{request}",
)
EXTENSION_INFO = MetricSpec(
    name="inference_extension_info",
    kind=Kind.GAUGE,
    help="General information of the current build of Inference Extension.",
    labels=("commit", "build_ref"),
    unit="1",
)

LATER_METRICS: tuple[MetricSpec, ...] = (
    RUNNING_REQUESTS,
    NORMALIZED_TIME_PER_OUTPUT_TOKEN,
    REQUEST_TTFT,
    REQUEST_TPOT,
    PROMPT_CACHED_TOKENS,
    POOL_READY_PODS,
    POOL_AVERAGE_RUNNING_REQUESTS,
    POOL_PER_POD_QUEUE_SIZE,
    EXTENSION_INFO,
)


class Catalog:
    """An ordered, immutable collection of specs, iterable and looked up by name."""

    __slots__ = ("_by_name", "_specs")

    def __init__(self, specs: tuple[MetricSpec, ...]) -> None:
        by_name: dict[str, MetricSpec] = {}
        owners: dict[str, str] = {}
        for spec in specs:
            if not isinstance(spec, MetricSpec):
                raise TypeError(f"catalogue entries must be MetricSpec, got {spec!r}")
            if spec.name in by_name:
                raise ValueError(f"metric {spec.name!r} appears twice in the catalogue")
            by_name[spec.name] = spec
            for name in _exposed_names(spec):
                other = owners.setdefault(name, spec.name)
                if other != spec.name:
                    raise ValueError(
                        f"metrics {other!r} and {spec.name!r} would both expose {name!r}"
                    )
        self._specs = tuple(specs)
        self._by_name = by_name

    def __iter__(self) -> Iterator[MetricSpec]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> MetricSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no metric named {name!r} in the catalogue") from None

    def get(self, name: str) -> MetricSpec | None:
        return self._by_name.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)


def _exposed_names(spec: MetricSpec) -> tuple[str, ...]:
    """The family and sample names ``spec`` shows in the text and OpenMetrics formats (as
    prometheus_client's registry counts them), so two specs cannot collide there (a counter
    ``x_sum_total`` beside a histogram ``x``)."""
    if spec.naming is not Naming.PROMETHEUS:
        return (spec.name,)
    if spec.kind is Kind.COUNTER:
        base = spec.name.removesuffix("_total")
        return (base, spec.name, f"{base}_created")
    if spec.kind is Kind.HISTOGRAM:
        return tuple(spec.name + suffix for suffix in ("", "_bucket", "_count", "_sum", "_created"))
    return (spec.name,)


if TYPE_CHECKING:
    CATALOG: Catalog


def __getattr__(name: str) -> Catalog:
    # CATALOG: the default schema's specs, computed from the schema (which imports this module).
    if name == "CATALOG":
        from .schemas import DEFAULT_SCHEMA

        return DEFAULT_SCHEMA.catalog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
