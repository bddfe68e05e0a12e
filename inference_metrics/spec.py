"""Declarative metric specifications.

A :class:`MetricSpec` is the single source of truth for one metric: its exposed name, kind, help
text, label names, histogram buckets, unit, stability level and deprecation. Everything else (the
backends, the docs table, the tests) is derived from specs, so a spec validates itself when it is
made and refuses anything Prometheus would not accept.

HELP text is rendered in one place, :func:`render_help`, the way Kubernetes component-base does it:
``[ALPHA] <help>``, or ``[ALPHA] (Deprecated since 1.2.0) <help>`` for a deprecated metric. A
metric kept beside its replacement (llm-d-router's legacy twins) reads
``[ALPHA] [Deprecated: Use <replacement>] <help>``, as llm-d-router writes it.

A spec is named for Prometheus (the default: ``[a-zA-Z_:][a-zA-Z0-9_:]*``, counters end in
``_total``) or, with ``naming=Naming.OPENTELEMETRY``, for OpenTelemetry: an instrument name with
dots (``gen_ai.server.request.duration``), attribute names with dots, the description as given (no
stability prefix: the semantic conventions carry their own status). Only an OpenTelemetry backend
takes the latter. ``optional_labels`` are labels whose empty value means "not known": an
OpenTelemetry backend leaves such an attribute out (the conventions' "conditionally required"),
Prometheus shows it empty, which PromQL reads as absent anyway.

Two options of a histogram say how a Prometheus backend exposes it (docs/native-histograms.md):
``histogram`` (one of :data:`HISTOGRAM_KINDS`) and ``exemplars`` (whether an observation made in
a sampled OpenTelemetry span carries that span's ids). None, the default of both, leaves the
choice to the backend's own setting (``PrometheusBackend(histograms=..., exemplars=...)``); the
catalogue's size and token histograms say ``exemplars=False``, its latencies leave it open.

How a spec is fed (which quantity, which labels from which recording input) is a
:class:`~inference_metrics.schemas.View`; a spec only says what is exposed.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field

__all__ = ["HISTOGRAM_KINDS", "Kind", "MetricSpec", "Naming", "Stability", "render_help"]

#: What a histogram's buckets are: ``classic`` (its ``buckets``, as every Prometheus reads them),
#: ``native`` (sparse exponential buckets, read from the protobuf exposition) or ``both``.
HISTOGRAM_KINDS = ("classic", "native", "both")

_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# OpenTelemetry's instrument-name rule (the SDK lower-cases names: only lower case is kept as is),
# and attribute names as the semantic conventions write them.
_OTEL_NAME_RE = re.compile(r"^[a-z][-_./a-z0-9]{0,254}$")
_OTEL_ATTRIBUTE_RE = re.compile(r"^[a-z_][a-z0-9_.]*$")
_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")

# Suffixes that exposition formats generate for a family's samples; a family name that already
# ends in one of them would collide with another family's samples.
_RESERVED_SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_gsum", "_gcount")


class Kind(enum.Enum):
    """The Prometheus metric type."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Naming(enum.Enum):
    """Whose naming rules a spec follows (see the module docstring)."""

    PROMETHEUS = "prometheus"
    OPENTELEMETRY = "opentelemetry"


class Stability(enum.Enum):
    """Stability levels of Kubernetes component-base metrics."""

    INTERNAL = "INTERNAL"
    ALPHA = "ALPHA"
    BETA = "BETA"
    STABLE = "STABLE"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric, as exposed.

    ``name`` is the full exposed family name (counters include their ``_total``). ``buckets`` are
    the finite histogram upper bounds, strictly increasing; ``+Inf`` is implied. ``unit`` is a UCUM
    unit as OpenTelemetry uses it (``s``, ``By``, ``{token}``, ``1``); it never changes the name.
    ``replaced_by`` names the metric that supersedes this one while both are still exposed.
    ``naming``, ``optional_labels``, ``histogram`` and ``exemplars``: see the module docstring.
    """

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    unit: str = ""
    stability: Stability = Stability.ALPHA
    deprecated_since: str | None = None
    replaced_by: str | None = None
    naming: Naming = Naming.PROMETHEUS
    optional_labels: tuple[str, ...] = ()
    histogram: str | None = None
    exemplars: bool | None = None
    documentation: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _validate(self)
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "optional_labels", tuple(self.optional_labels))
        if self.buckets is not None:
            object.__setattr__(self, "buckets", tuple(float(b) for b in self.buckets))
        object.__setattr__(self, "documentation", render_help(self))


def render_help(spec: MetricSpec) -> str:
    """The HELP text exposed for ``spec``: stability prefix, deprecation note, help (an
    OpenTelemetry-named spec: its help as given)."""
    text = spec.help
    if spec.naming is Naming.OPENTELEMETRY:
        return text
    if spec.replaced_by is not None:
        text = f"[Deprecated: Use {spec.replaced_by}] {text}"
    if spec.deprecated_since is not None:
        text = f"(Deprecated since {spec.deprecated_since}) {text}"
    return f"[{spec.stability.value}] {text}"


def _fail(spec: MetricSpec, message: str) -> ValueError:
    return ValueError(f"invalid metric spec {spec.name!r}: {message}")


def _validate(spec: MetricSpec) -> None:
    if not isinstance(spec.naming, Naming):
        raise ValueError(f"invalid metric spec {spec.name!r}: naming must be a Naming")
    otel = spec.naming is Naming.OPENTELEMETRY
    name_re = _OTEL_NAME_RE if otel else _METRIC_NAME_RE
    label_re = _OTEL_ATTRIBUTE_RE if otel else _LABEL_NAME_RE
    if not isinstance(spec.name, str) or not name_re.fullmatch(spec.name):
        raise ValueError(
            f"invalid metric spec: name {spec.name!r} does not match {name_re.pattern}"
        )
    if not isinstance(spec.kind, Kind):
        raise _fail(spec, f"kind must be a Kind, got {spec.kind!r}")
    if not isinstance(spec.stability, Stability):
        raise _fail(spec, f"stability must be a Stability, got {spec.stability!r}")
    if not isinstance(spec.help, str) or not spec.help.strip():
        raise _fail(spec, "help must be a non-empty string")
    if not isinstance(spec.unit, str):
        raise _fail(spec, f"unit must be a string, got {spec.unit!r}")
    if spec.deprecated_since is not None and (
        not isinstance(spec.deprecated_since, str)
        or not _VERSION_RE.fullmatch(spec.deprecated_since)
    ):
        raise _fail(spec, f"deprecated_since must look like 1.2.3, got {spec.deprecated_since!r}")
    if spec.replaced_by is not None and (
        not isinstance(spec.replaced_by, str)
        or not name_re.fullmatch(spec.replaced_by)
        or spec.replaced_by == spec.name
    ):
        raise _fail(spec, f"replaced_by must name another metric, got {spec.replaced_by!r}")
    _validate_labels(spec, label_re)
    _validate_buckets(spec)
    _validate_histogram_options(spec)
    if otel:
        return
    for suffix in _RESERVED_SUFFIXES:
        if spec.name.endswith(suffix):
            raise _fail(spec, f"name must not end with the reserved suffix {suffix!r}")
    if spec.kind is Kind.COUNTER:
        if not spec.name.endswith("_total") or spec.name == "_total":
            raise _fail(spec, "a counter's name must end with '_total'")
    elif spec.name.endswith("_total"):
        raise _fail(spec, f"only counters may end with '_total' (this is a {spec.kind.value})")


def _validate_labels(spec: MetricSpec, label_re: re.Pattern[str]) -> None:
    if not isinstance(spec.labels, (tuple, list)):
        raise _fail(spec, f"labels must be a tuple of strings, got {spec.labels!r}")
    seen: set[str] = set()
    for label in spec.labels:
        if not isinstance(label, str) or not label_re.fullmatch(label):
            raise _fail(spec, f"label name {label!r} does not match {label_re.pattern}")
        if label.startswith("__"):
            raise _fail(spec, f"label name {label!r} is reserved (starts with '__')")
        if label in ("le", "quantile"):
            raise _fail(spec, f"label name {label!r} is reserved for histograms and summaries")
        if label in seen:
            raise _fail(spec, f"label name {label!r} appears twice")
        seen.add(label)

    if not isinstance(spec.optional_labels, (tuple, list)) or not set(spec.optional_labels) <= seen:
        raise _fail(
            spec, f"optional_labels must be some of its labels, got {spec.optional_labels!r}"
        )


def _validate_buckets(spec: MetricSpec) -> None:
    if spec.kind is Kind.HISTOGRAM:
        if spec.buckets is None or len(spec.buckets) == 0:
            raise _fail(spec, "a histogram needs at least one bucket")
        previous = -math.inf
        for bound in spec.buckets:
            if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                raise _fail(spec, f"bucket bound {bound!r} is not a number")
            if not math.isfinite(bound):
                raise _fail(spec, f"bucket bound {bound!r} is not finite (+Inf is implied)")
            if bound <= previous:
                raise _fail(
                    spec, f"buckets must be strictly increasing ({bound!r} after {previous!r})"
                )
            previous = bound
    elif spec.buckets is not None:
        raise _fail(spec, f"only histograms have buckets (this is a {spec.kind.value})")


def _validate_histogram_options(spec: MetricSpec) -> None:
    if spec.histogram is not None and spec.histogram not in HISTOGRAM_KINDS:
        raise _fail(
            spec, f"histogram must be one of {HISTOGRAM_KINDS} or None, got {spec.histogram!r}"
        )
    if spec.exemplars is not None and not isinstance(spec.exemplars, bool):
        raise _fail(spec, f"exemplars must be True, False or None, got {spec.exemplars!r}")
    if spec.kind is not Kind.HISTOGRAM:
        for option in ("histogram", "exemplars"):
            if getattr(spec, option) is not None:
                raise _fail(
                    spec, f"only histograms have the {option} option (this is a {spec.kind.value})"
                )
