"""Names kept for code written before the catalogue became measures, quantities and views.

Each still works and warns (``DeprecationWarning``) when it is looked up: ``Role``,
``SchemaMetric``, ``ROLE_LABELS``, ``LABEL_INPUTS`` (from :mod:`inference_metrics.schemas`), and
``ModelRow``, ``ErrorRow``, ``RunningRow``, ``PoolRow``, ``PodRow``, ``InfoRow``, ``GroupLayout``,
``Layouts``, ``layouts_for``, ``CATALOG_LAYOUTS``, ``check_label_value`` (from
:mod:`inference_metrics.recorder`). A role is a quantity now (the member of the same name in
:mod:`inference_metrics.quantities`); a row class and its layout described what the Recorder now
computes from the views: they describe the same placement as before, for the old quantities, and
the Recorder no longer reads them.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import quantities
from .quantities import Quantity
from .spec import MetricSpec
from .validation import label_value

__all__ = ["Role", "quantity_of", "role_of"]


class Role(enum.Enum):
    """Deprecated: the recording event a metric was fed from; use a
    :class:`~inference_metrics.quantities.Quantity` (the one of the same name)."""

    REQUEST_TOTAL = "request_total"
    REQUEST_ERROR_TOTAL = "request_error_total"
    REQUEST_DURATION = "request_duration"
    REQUEST_SIZE = "request_size"
    RESPONSE_SIZE = "response_size"
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    CACHED_TOKENS = "cached_tokens"
    RUNNING_REQUESTS = "running_requests"
    NTPOT = "ntpot"
    TTFT = "ttft"
    TPOT = "tpot"
    ITL = "itl"
    POOL_KV_CACHE = "pool_kv_cache_utilization"
    POOL_QUEUE_SIZE = "pool_queue_size"
    POOL_RUNNING_REQUESTS = "pool_running_requests"
    POOL_READY = "pool_ready"
    POOL_STD_DEV_KV_CACHE = "pool_std_dev_kv_cache_utilization"
    POOL_STD_DEV_QUEUE_SIZE = "pool_std_dev_queue_size"
    POOL_STD_DEV_RUNNING_REQUESTS = "pool_std_dev_running_requests"
    POOL_ENDPOINT_QUEUE_SIZE = "pool_endpoint_queue_size"
    INFO = "info"


def quantity_of(role: object) -> Quantity:
    """The quantity a role stood for."""
    if not isinstance(role, Role):
        raise TypeError(f"expected a Quantity (or a deprecated Role), got {role!r}")
    found: Quantity = getattr(quantities, role.name)
    return found


def role_of(quantity: Quantity) -> Role | None:
    """The role that stood for ``quantity`` (None for quantities added since)."""
    for role in Role:
        if getattr(quantities, role.name) is quantity:
            return role
    return None


#: Every label a role's metric could use, and the recording input it takes its value from.
LABEL_INPUTS: dict[str, str] = {
    "model_name": "model_name",
    "target_model_name": "target_model_name",
    "fairness_id": "fairness_id",
    "priority": "priority",
    "error_code": "error_code",
    "streaming": "streaming",
    "name": "pool_name",
    "model_server_pod": "pod_name",
    "model_server_endpoint": "pod_name",
    "commit": "commit",
    "build_ref": "build_ref",
}
_REQUEST = frozenset(("model_name", "target_model_name", "fairness_id", "priority"))
_POOL = frozenset(("name",))
ROLE_LABELS: dict[Role, frozenset[str]] = {
    **{role: _REQUEST for role in Role},
    Role.REQUEST_ERROR_TOTAL: _REQUEST | {"error_code"},
    Role.TTFT: _REQUEST | {"streaming"},
    **{role: _POOL for role in Role if role.value.startswith("pool_")},
    Role.POOL_ENDPOINT_QUEUE_SIZE: frozenset(("name", "model_server_pod", "model_server_endpoint")),
    Role.INFO: frozenset(("commit", "build_ref")),
}


def schema_metric(role: Role, spec: MetricSpec, deprecated_twin: bool = False) -> Any:
    """Deprecated ``SchemaMetric(role, spec, deprecated_twin)``: the equivalent View (a TTFT
    without a ``streaming`` label kept streamed responses only, as it did)."""
    from .schemas.base import View

    if not isinstance(role, Role):
        raise TypeError(f"role must be a Role, got {role!r}")
    where = {"streaming": "true"} if role is Role.TTFT and "streaming" not in spec.labels else {}
    return View(quantity_of(role), spec, deprecated_twin, where=where)


# --- the Recorder's former row classes and layouts ------------------------------------------------


class _Row:
    __slots__ = ()


class ModelRow(_Row):
    """Deprecated: the series of one request label set, one field per role."""

    __slots__ = (
        "input_tokens",
        "inter_token_latency",
        "normalized_time_per_output_token",
        "output_tokens",
        "prompt_cached_tokens",
        "request_duration",
        "request_sizes",
        "request_total",
        "request_tpot",
        "request_ttft",
        "request_ttft_unstreamed",
        "response_sizes",
    )


class ErrorRow(_Row):
    """Deprecated: the series of one request label set and error code."""

    __slots__ = ("request_error_total",)


class RunningRow(_Row):
    """Deprecated: the running-request series of one request label set."""

    __slots__ = ("running_requests",)


class PoolRow(_Row):
    """Deprecated: the series of one pool."""

    __slots__ = (
        "average_kv_cache_utilization",
        "average_queue_size",
        "average_running_requests",
        "ready_pods",
        "std_dev_kv_cache_utilization",
        "std_dev_queue_size",
        "std_dev_running_requests",
    )


class PodRow(_Row):
    """Deprecated: the series of one model server of a pool."""

    __slots__ = ("per_pod_queue_size",)


class InfoRow(_Row):
    """Deprecated: the series of one build."""

    __slots__ = ("extension_info",)


@dataclass(frozen=True)
class GroupLayout:
    """Deprecated: which specs each field of a row held (see
    :mod:`inference_metrics.measures` for what replaced it)."""

    row: type[_Row]
    inputs: tuple[str, ...]
    fields: Mapping[str, tuple[MetricSpec, ...]]
    constants: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.fields) != set(self.row.__slots__):
            raise ValueError(
                f"{self.row.__name__} has the fields {sorted(self.row.__slots__)}, "
                f"got specs for {sorted(self.fields)}"
            )
        for name, specs in self.fields.items():
            fixed = self.constants.get(name, {})
            for spec in specs:
                unknown = [
                    label
                    for label in spec.labels
                    if label not in fixed and LABEL_INPUTS.get(label) not in self.inputs
                ]
                if unknown:
                    raise ValueError(
                        f"{spec.name} has labels {unknown} that the {self.row.__name__} "
                        f"inputs {self.inputs} cannot fill"
                    )

    def specs(self) -> tuple[MetricSpec, ...]:
        return tuple(dict.fromkeys(spec for specs in self.fields.values() for spec in specs))


@dataclass(frozen=True)
class Layouts:
    """Deprecated: one layout per former group of the Recorder."""

    models: GroupLayout
    errors: GroupLayout
    running: GroupLayout
    pools: GroupLayout
    pods: GroupLayout
    info: GroupLayout

    def groups(self) -> tuple[GroupLayout, ...]:
        return (self.models, self.errors, self.running, self.pools, self.pods, self.info)

    def specs(self) -> tuple[MetricSpec, ...]:
        return tuple(dict.fromkeys(spec for group in self.groups() for spec in group.specs()))


_REQUEST_INPUTS = ("model_name", "target_model_name", "fairness_id", "priority")
_FIELD_ROLES: dict[type[_Row], dict[str, Role]] = {
    ModelRow: {
        "request_total": Role.REQUEST_TOTAL,
        "request_duration": Role.REQUEST_DURATION,
        "request_sizes": Role.REQUEST_SIZE,
        "response_sizes": Role.RESPONSE_SIZE,
        "input_tokens": Role.INPUT_TOKENS,
        "output_tokens": Role.OUTPUT_TOKENS,
        "normalized_time_per_output_token": Role.NTPOT,
        "request_ttft": Role.TTFT,
        "request_ttft_unstreamed": Role.TTFT,
        "request_tpot": Role.TPOT,
        "prompt_cached_tokens": Role.CACHED_TOKENS,
        "inter_token_latency": Role.ITL,
    },
    ErrorRow: {"request_error_total": Role.REQUEST_ERROR_TOTAL},
    RunningRow: {"running_requests": Role.RUNNING_REQUESTS},
    PoolRow: {
        "average_kv_cache_utilization": Role.POOL_KV_CACHE,
        "average_queue_size": Role.POOL_QUEUE_SIZE,
        "ready_pods": Role.POOL_READY,
        "average_running_requests": Role.POOL_RUNNING_REQUESTS,
        "std_dev_kv_cache_utilization": Role.POOL_STD_DEV_KV_CACHE,
        "std_dev_queue_size": Role.POOL_STD_DEV_QUEUE_SIZE,
        "std_dev_running_requests": Role.POOL_STD_DEV_RUNNING_REQUESTS,
    },
    PodRow: {"per_pod_queue_size": Role.POOL_ENDPOINT_QUEUE_SIZE},
    InfoRow: {"extension_info": Role.INFO},
}
_STREAMED = {
    "request_ttft": {"streaming": "true"},
    "request_ttft_unstreamed": {"streaming": "false"},
}


def _layout(row: type[_Row], inputs: tuple[str, ...], views: Sequence[Any]) -> GroupLayout:
    fields: dict[str, tuple[MetricSpec, ...]] = {}
    for name, role in _FIELD_ROLES[row].items():
        specs = tuple(v.spec for v in views if role_of(v.quantity) is role)
        if name == "request_ttft_unstreamed":
            specs = tuple(spec for spec in specs if "streaming" in spec.labels)
        fields[name] = specs
    return GroupLayout(row, inputs, fields, dict(_STREAMED) if row is ModelRow else {})


def layouts_for(schemas: Sequence[Any]) -> Layouts:
    """Deprecated: the former groups and fields of ``schemas`` (combined)."""
    from .schemas.base import combine

    views = combine(schemas)
    return Layouts(
        models=_layout(ModelRow, _REQUEST_INPUTS, views),
        errors=_layout(ErrorRow, (*_REQUEST_INPUTS, "error_code"), views),
        running=_layout(RunningRow, _REQUEST_INPUTS, views),
        pools=_layout(PoolRow, ("pool_name",), views),
        pods=_layout(PodRow, ("pool_name", "pod_name"), views),
        info=_layout(InfoRow, ("commit", "build_ref"), views),
    )


def check_label_value(name: str, value: object, max_length: int) -> str:
    """Deprecated: :func:`inference_metrics.validation.label_value`."""
    return label_value(name, value, max_length)


# --- lookups through the modules that exported these names ---------------------------------------

_SCHEMAS = {
    "Role": lambda: Role,
    "SchemaMetric": lambda: schema_metric,
    "ROLE_LABELS": lambda: ROLE_LABELS,
    "LABEL_INPUTS": lambda: LABEL_INPUTS,
    "ROLE_KINDS": lambda: {role: quantity_of(role).kind for role in Role},
}
_RECORDER = {
    "ModelRow": lambda: ModelRow,
    "ErrorRow": lambda: ErrorRow,
    "RunningRow": lambda: RunningRow,
    "PoolRow": lambda: PoolRow,
    "PodRow": lambda: PodRow,
    "InfoRow": lambda: InfoRow,
    "GroupLayout": lambda: GroupLayout,
    "Layouts": lambda: Layouts,
    "layouts_for": lambda: layouts_for,
    "CATALOG_LAYOUTS": lambda: _catalog_layouts(),
    "check_label_value": lambda: check_label_value,
}
_REPLACEMENTS = {
    "Role": "inference_metrics.quantities (a Quantity per role, of the same name)",
    "SchemaMetric": "inference_metrics.schemas.View",
    "ROLE_LABELS": "View (a view's labels are checked against its quantity's calls)",
    "LABEL_INPUTS": "inference_metrics.measures.Group.aliases",
    "ROLE_KINDS": "Quantity.kind",
    "check_label_value": "inference_metrics.validation.label_value",
}


def _catalog_layouts() -> Layouts:
    from .schemas import DEFAULT_SCHEMA

    return layouts_for((DEFAULT_SCHEMA,))


def _lookup(table: Mapping[str, Any], module: str, name: str) -> object:
    factory = table.get(name)
    if factory is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    replacement = _REPLACEMENTS.get(
        name, "inference_metrics.measures and inference_metrics.schemas.View"
    )
    warnings.warn(
        f"{module}.{name} is deprecated; use {replacement} (see docs/schemas.md)",
        DeprecationWarning,
        stacklevel=3,
    )
    return factory()


def schemas_attribute(module: str, name: str) -> object:
    return _lookup(_SCHEMAS, module, name)


def recorder_attribute(module: str, name: str) -> object:
    return _lookup(_RECORDER, module, name)
