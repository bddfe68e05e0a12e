"""What a schema is: a set of views, each giving one quantity an exposed name.

The recording calls are the same for every schema (a request started, completed, failed; a pool
gauge set); what they measure is :mod:`inference_metrics.measures` and
:mod:`inference_metrics.quantities`. A :class:`View` is one exposed metric of one quantity: its
spec (name, HELP, labels, buckets, unit, stability, ``replaced_by``), whether it is a deprecated
twin, and where each label's value comes from. A :class:`Schema` is a named tuple of views, as
OpenTelemetry's Views select and rename instruments and Kubernetes component-base's opts declare a
metric: data, no code of its own.

Label values: a label takes its value from the recording input of its name, or of the name the
group's aliases give it (``name`` -> ``pool_name``), or of the name ``inputs`` gives it in the view;
or it is fixed by the view (``constants``) or by the measure (``streaming="true"`` for a streamed
TTFT). A label no call of the quantity can fill is refused when the view is made, unless the
spec marks it optional (``MetricSpec.optional_labels``: empty, which OpenTelemetry leaves out).
When a quantity reads several measures that fix an input differently (TTFT streamed and not),
the view exposes that input as a label or keeps some of them (``where={"streaming": "true"}``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..catalog import Catalog
from ..measures import Group, Measure, group_of
from ..quantities import Quantity
from ..spec import MetricSpec

__all__ = ["Schema", "View", "combine", "spec_exemplars"]

#: Where one label of a bound series gets its value: the key's input at this index, or a constant.
LabelSource = int | str


def _frozen(pairs: Mapping[str, str], what: str) -> Mapping[str, str]:
    if not isinstance(pairs, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()
    ):
        raise TypeError(f"{what} must map strings to strings, got {pairs!r}")
    return MappingProxyType(dict(pairs))


@dataclass(frozen=True, slots=True)
class View:
    """One exposed metric of one quantity, in one schema (see the module docstring).

    ``inputs``: label -> recording input, for labels named neither as their input nor by the
    group's aliases (GenAI's ``gen_ai.request.model`` -> ``model_name``). ``constants``: label ->
    the value of every series (GenAI's ``gen_ai.provider.name``). ``where``: keep only the
    quantity's measures that fix these inputs to these values and, for an input of a call's key,
    only the label sets where the call gave it this value (GIE's pool saturation has no ``stage``
    label and shows ``where={"stage": "effective"}``). ``defaults``: input -> the value
    taken when a call passes None for it (GenAI's default ``operation``). ``ours``: the name is
    this library's own, not upstream's (the docs list such metrics apart).
    """

    quantity: Quantity
    spec: MetricSpec
    deprecated_twin: bool = False
    inputs: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)
    where: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)
    ours: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.quantity, Quantity):
            raise TypeError(f"quantity must be a Quantity, got {self.quantity!r}")
        if not isinstance(self.spec, MetricSpec):
            raise TypeError(f"spec must be a MetricSpec, got {self.spec!r}")
        for name in ("inputs", "constants", "where", "defaults"):
            object.__setattr__(self, name, _frozen(getattr(self, name), name))
        spec, quantity = self.spec, self.quantity
        if spec.kind is not quantity.kind:
            raise ValueError(
                f"metric {spec.name!r} is a {spec.kind.value}, but {quantity.name} records a "
                f"{quantity.kind.value}"
            )
        unknown_constants = sorted(set(self.constants) - set(spec.labels))
        if unknown_constants:
            raise ValueError(f"metric {spec.name!r} has no labels {unknown_constants} to fix")
        if not self.measures:
            raise ValueError(
                f"metric {spec.name!r}: where={dict(self.where)} keeps none of "
                f"{quantity.name}'s measures"
            )
        for measure in self.measures:
            group = group_of(measure)
            unknown = [n for n in spec.labels if self._source(group, measure, n) is None]
            if unknown:
                allowed = sorted(
                    {*self.constants, *group.inputs, *group.aliases, *measure.constants}
                )
                raise ValueError(
                    f"metric {spec.name!r} ({quantity.name}) has labels {unknown} that its "
                    f"recording calls ({group.name}) cannot fill in (allowed: {allowed})"
                )
        exposed = {self._input(group_of(m), label) for m in self.measures for label in spec.labels}
        for measure in self.measures:
            for other in self.measures:
                for name, value in measure.constants.items():
                    if name not in exposed and other.constants.get(name, value) != value:
                        raise ValueError(
                            f"metric {spec.name!r} would merge {quantity.name}'s measures "
                            f"{measure.name} and {other.name}, which differ in {name!r}: label "
                            f"it, or keep one with where={{{name!r}: ...}}"
                        )

    @property
    def measures(self) -> tuple[Measure, ...]:
        """The quantity's measures this view shows (all, unless ``where`` keeps fewer)."""
        return tuple(
            m
            for m in self.quantity.measures
            if all(
                m.constants.get(k) == v
                for k, v in self.where.items()
                if group_of(m).input_of(k) not in group_of(m).inputs
            )
        )

    def input_filters(self, measure: Measure) -> tuple[tuple[int, str], ...]:
        """The ``where`` conditions on inputs of ``measure``'s key: (index in the key, value); a
        series of this view is bound only for a key that meets them all."""
        group = group_of(measure)
        return tuple(
            (group.inputs.index(group.input_of(name)), value)
            for name, value in self.where.items()
            if group.input_of(name) in group.inputs
        )

    def _input(self, group: Group, label: str) -> str:
        return self.inputs.get(label) or group.input_of(label)

    def _source(self, group: Group, measure: Measure, label: str) -> LabelSource | None:
        if label in self.constants:
            return self.constants[label]
        name = self._input(group, label)
        if name in group.inputs:
            return group.inputs.index(name)
        if name in measure.constants:
            return measure.constants[name]
        if label in self.spec.optional_labels:
            return ""
        return None

    def label_sources(self, measure: Measure) -> tuple[LabelSource, ...]:
        """For each label of the spec, where a series of ``measure`` gets its value: the index of
        an input in the key of the measure's group, or a fixed value."""
        group = group_of(measure)
        sources = tuple(self._source(group, measure, label) for label in self.spec.labels)
        assert None not in sources  # checked when the view was made
        return sources  # type: ignore[return-value]

    @property
    def role(self) -> object:
        """Deprecated: the :class:`Role` of this view's quantity (use :attr:`quantity`)."""
        from .._deprecated import role_of

        _warn("View.role", "View.quantity")
        return role_of(self.quantity)


@dataclass(frozen=True, slots=True)
class Schema:
    """A named set of views: the metrics the recording calls feed under this schema."""

    name: str
    title: str
    description: str
    #: The views, in order (the field keeps the name it had when a view was a SchemaMetric).
    metrics: tuple[View, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"schema name must be a non-empty string, got {self.name!r}")
        views = tuple(self.metrics)
        for view in views:
            if not isinstance(view, View):
                raise TypeError(f"a schema's views must be View, got {view!r}")
        object.__setattr__(self, "metrics", views)
        Catalog(tuple(view.spec for view in views))  # refuses a name used twice

    def __iter__(self) -> Iterator[View]:
        return iter(self.metrics)

    @property
    def views(self) -> tuple[View, ...]:
        """The views, in order (the ``metrics`` field)."""
        return self.metrics

    @property
    def catalog(self) -> Catalog:
        """Every spec of this schema, in order."""
        return Catalog(tuple(view.spec for view in self.views))

    @property
    def quantities(self) -> tuple[Quantity, ...]:
        """The quantities this schema shows, in the order of their first view."""
        return tuple(dict.fromkeys(view.quantity for view in self.views))

    def shows(self, quantity: Quantity) -> bool:
        """Whether a view of this schema shows ``quantity``."""
        return any(view.quantity is quantity for view in self.views)

    def specs(self, quantity: Quantity) -> tuple[MetricSpec, ...]:
        """The specs of ``quantity``'s views, in schema order (a Role: deprecated, the same)."""
        if not isinstance(quantity, Quantity):
            from .._deprecated import quantity_of

            _warn("Schema.specs(Role)", "Schema.specs(Quantity)")
            quantity = quantity_of(quantity)
        return tuple(view.spec for view in self.views if view.quantity is quantity)

    def view(self, quantity: Quantity) -> View | None:
        """The first current (not deprecated-twin) view of ``quantity``, or None."""
        for view in self.views:
            if view.quantity is quantity and not view.deprecated_twin:
                return view
        return None

    @property
    def roles(self) -> frozenset[object]:
        """Deprecated: the roles of this schema's views (use :attr:`quantities`)."""
        from .._deprecated import role_of

        _warn("Schema.roles", "Schema.quantities")
        return frozenset(role_of(view.quantity) for view in self.views)

    @property
    def has_deprecated_twins(self) -> bool:
        return any(view.deprecated_twin for view in self.views)

    def without_deprecated_twins(self) -> Schema:
        """This schema without its legacy twins (named ``<name>-without-deprecated``)."""
        if not self.has_deprecated_twins:
            return self
        return Schema(
            name=f"{self.name}-without-deprecated",
            title=f"{self.title}, without the deprecated twins",
            description=self.description,
            metrics=tuple(view for view in self.views if not view.deprecated_twin),
        )


def spec_exemplars(quantity: Quantity) -> bool | None:
    """What a histogram spec of ``quantity`` says about exemplars: None (the backend's setting)
    for a quantity whose observations link to their trace (the latencies), else False."""
    return None if quantity.exemplars else False


def combine(schemas: Iterable[Schema]) -> tuple[View, ...]:
    """The views of several schemas recorded together; refuses one name defined twice.

    Two schemas may share a metric only when their views of it are identical (it is then
    recorded once); anything else would expose one family with two meanings.
    """
    merged: dict[str, View] = {}
    owner: dict[str, str] = {}
    for schema in schemas:
        for view in schema:
            name = view.spec.name
            earlier = merged.get(name)
            if earlier is None:
                merged[name] = view
                owner[name] = schema.name
            elif earlier != view:
                raise ValueError(
                    f"schemas {owner[name]!r} and {schema.name!r} both define {name!r}, "
                    "differently; record them in separate registries, or drop one (for "
                    "llm-d-router, its deprecated twins already carry the GIE v1.5 names)"
                )
    return tuple(merged.values())


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated; use {new} (see docs/schemas.md)", DeprecationWarning, stacklevel=3
    )


def __getattr__(name: str) -> Any:
    from .. import _deprecated

    return _deprecated.schemas_attribute(__name__, name)
