"""What a schema is: a catalogue of metric specs, each tied to the recording event that feeds it.

The recording calls are the same for every schema (a request started, completed, failed; a pool
gauge set). A schema says which exposed metrics each event feeds (:class:`Role`) and with which
labels. Label names are the inputs of those events (:data:`LABEL_INPUTS`), so a schema is data:
no schema needs code of its own.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..catalog import Catalog
from ..spec import Kind, MetricSpec

__all__ = [
    "LABEL_INPUTS",
    "ROLE_LABELS",
    "Role",
    "Schema",
    "SchemaMetric",
]


class Role(enum.Enum):
    """The recording event (and the quantity) a metric is fed from."""

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


#: Every label a schema may use, and the recording input it takes its value from.
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
_ENDPOINT = frozenset(("name", "model_server_pod", "model_server_endpoint"))

#: The labels each role's event can fill in (a metric uses a subset).
ROLE_LABELS: dict[Role, frozenset[str]] = {
    **{role: _REQUEST for role in Role},
    Role.REQUEST_ERROR_TOTAL: _REQUEST | {"error_code"},
    Role.TTFT: _REQUEST | {"streaming"},
    Role.POOL_KV_CACHE: _POOL,
    Role.POOL_QUEUE_SIZE: _POOL,
    Role.POOL_RUNNING_REQUESTS: _POOL,
    Role.POOL_READY: _POOL,
    Role.POOL_STD_DEV_KV_CACHE: _POOL,
    Role.POOL_STD_DEV_QUEUE_SIZE: _POOL,
    Role.POOL_STD_DEV_RUNNING_REQUESTS: _POOL,
    Role.POOL_ENDPOINT_QUEUE_SIZE: _ENDPOINT,
    Role.INFO: frozenset(("commit", "build_ref")),
}

#: The metric kind each role's event produces.
ROLE_KINDS: dict[Role, Kind] = {
    **{role: Kind.HISTOGRAM for role in Role},
    Role.REQUEST_TOTAL: Kind.COUNTER,
    Role.REQUEST_ERROR_TOTAL: Kind.COUNTER,
    **{
        role: Kind.GAUGE
        for role in Role
        if role is Role.RUNNING_REQUESTS or role is Role.INFO or role.value.startswith("pool_")
    },
}


@dataclass(frozen=True, slots=True)
class SchemaMetric:
    """One exposed metric of a schema and the role that feeds it.

    ``deprecated_twin`` marks a legacy name kept beside its replacement (llm-d-router emits the
    GIE names next to its ``llm_d_epp_*`` ones); a schema can be used without them.
    """

    role: Role
    spec: MetricSpec
    deprecated_twin: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            raise TypeError(f"role must be a Role, got {self.role!r}")
        if not isinstance(self.spec, MetricSpec):
            raise TypeError(f"spec must be a MetricSpec, got {self.spec!r}")
        allowed = ROLE_LABELS[self.role]
        unknown = [label for label in self.spec.labels if label not in allowed]
        if unknown:
            raise ValueError(
                f"metric {self.spec.name!r} ({self.role.value}) has labels {unknown} that its "
                f"recording event cannot fill in (allowed: {sorted(allowed)})"
            )
        if self.spec.kind is not ROLE_KINDS[self.role]:
            raise ValueError(
                f"metric {self.spec.name!r} is a {self.spec.kind.value}, but {self.role.value} "
                f"records a {ROLE_KINDS[self.role].value}"
            )


@dataclass(frozen=True, slots=True)
class Schema:
    """A named set of exposed metrics, each fed by one recording role."""

    name: str
    title: str
    description: str
    metrics: tuple[SchemaMetric, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"schema name must be a non-empty string, got {self.name!r}")
        Catalog(tuple(m.spec for m in self.metrics))  # refuses a name used twice

    def __iter__(self) -> Iterator[SchemaMetric]:
        return iter(self.metrics)

    @property
    def catalog(self) -> Catalog:
        """Every spec of this schema, in order."""
        return Catalog(tuple(m.spec for m in self.metrics))

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(m.role for m in self.metrics)

    def specs(self, role: Role) -> tuple[MetricSpec, ...]:
        """The specs ``role`` feeds, in schema order."""
        return tuple(m.spec for m in self.metrics if m.role is role)

    @property
    def has_deprecated_twins(self) -> bool:
        return any(m.deprecated_twin for m in self.metrics)

    def without_deprecated_twins(self) -> Schema:
        """This schema without its legacy twins (named ``<name>-without-deprecated``)."""
        if not self.has_deprecated_twins:
            return self
        return Schema(
            name=f"{self.name}-without-deprecated",
            title=f"{self.title}, without the deprecated twins",
            description=self.description,
            metrics=tuple(m for m in self.metrics if not m.deprecated_twin),
        )


def combine(schemas: Iterable[Schema]) -> tuple[SchemaMetric, ...]:
    """The metrics of several schemas recorded together; refuses one name defined twice.

    Two schemas may share a metric only when they define it identically (then it is recorded
    once); anything else would expose one family with two meanings.
    """
    merged: dict[str, SchemaMetric] = {}
    owner: dict[str, str] = {}
    for schema in schemas:
        for metric in schema:
            name = metric.spec.name
            earlier = merged.get(name)
            if earlier is None:
                merged[name] = metric
                owner[name] = schema.name
            elif earlier.spec != metric.spec or earlier.role is not metric.role:
                raise ValueError(
                    f"schemas {owner[name]!r} and {schema.name!r} both define {name!r}, "
                    "differently; record them in separate registries, or drop one (for "
                    "llm-d-router, its deprecated twins already carry the GIE v1.5 names)"
                )
    return tuple(merged.values())
