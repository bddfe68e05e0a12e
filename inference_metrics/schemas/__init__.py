"""Metric schemas: which exposed metrics the same recording calls feed.

* ``gie-v0.3`` (the default): the seed's names, ``inference_model_*`` (:mod:`.gie_v03`);
* ``gie-v1.5``: GIE v1.5.0's ``inference_objective_*`` (:mod:`.gie_v15`);
* ``llm-d-router``: ``llm_d_epp_*`` plus the GIE names as deprecated twins (:mod:`.llm_d_router`);
  ``llm-d-router-without-deprecated`` is the same without the twins.

A schema is a set of views (:class:`View`): each gives one quantity
(:mod:`inference_metrics.quantities`) an exposed name, HELP, labels and buckets. Several schemas
can be recorded at once (a migration): :func:`resolve` turns names into schemas and
:func:`~.base.combine` refuses two schemas defining one name differently. The OpenTelemetry GenAI
metrics are a schema too (:func:`.genai.genai_schema`), for an OpenTelemetry backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import gie_v03, gie_v15, llm_d_router
from .base import Schema, View, combine

__all__ = [
    "DEFAULT_SCHEMA",
    "SCHEMAS",
    "Schema",
    "View",
    "combine",
    "get_schema",
    "resolve",
]

#: Every named schema, in the order the docs list them.
SCHEMAS: dict[str, Schema] = {
    schema.name: schema
    for schema in (
        gie_v03.SCHEMA,
        gie_v15.SCHEMA,
        llm_d_router.SCHEMA,
        llm_d_router.SCHEMA.without_deprecated_twins(),
    )
}
DEFAULT_SCHEMA = gie_v03.SCHEMA


def get_schema(name: str) -> Schema:
    """The schema called ``name``; ValueError listing the known names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"schema must be a schema name (str) or a Schema, got {name!r}")
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ValueError(f"unknown schema {name!r}; known schemas: {', '.join(SCHEMAS)}") from None


def resolve(schema: str | Schema | Sequence[str | Schema]) -> tuple[Schema, ...]:
    """One schema, a name, or several of either, as a non-empty tuple of distinct schemas."""
    items: Sequence[str | Schema] = (schema,) if isinstance(schema, (str, Schema)) else schema
    if isinstance(items, (bytes, bytearray)) or not isinstance(items, Sequence):
        raise TypeError(f"schema must be a name, a Schema, or a sequence of them, got {schema!r}")
    schemas = tuple(item if isinstance(item, Schema) else get_schema(item) for item in items)
    if not schemas:
        raise ValueError("schema must name at least one schema, got an empty sequence")
    names = [s.name for s in schemas]
    if len(set(names)) != len(names):
        raise ValueError(f"schema lists one schema twice: {names}")
    combine(schemas)  # a clash is an error now, not at the first recording
    return schemas


def __getattr__(name: str) -> Any:
    # Role, SchemaMetric, ROLE_LABELS, LABEL_INPUTS: deprecated, still there (with a warning).
    from .. import _deprecated

    return _deprecated.schemas_attribute(__name__, name)
