"""``--schema``: which catalogue of metric names a command records, or prints.

``SchemaOptions().add_to(parser)`` adds a repeatable ``--schema NAME`` (recorded together;
default: the seed's names); ``SchemaOptions(several=False)`` a single one (default: every
schema). :meth:`SchemaOptions.schemas` turns the parsed arguments into the schemas, or raises
:class:`~.parsing.OptionError` when they cannot be recorded together. Shared by
``inference-metrics`` and ``examples/ext_proc/server.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..schemas import DEFAULT_SCHEMA, SCHEMAS, Schema, get_schema, resolve
from .parsing import flag_errors

__all__ = ["SchemaOptions"]


@dataclass(frozen=True)
class SchemaOptions:
    """``several``: a repeatable flag, the schemas recorded together (default: the seed's); or
    one schema (default: none, meaning every schema)."""

    several: bool = True

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        names = ", ".join(SCHEMAS)
        if self.several:
            parser.add_argument(
                "--schema",
                action="append",
                choices=tuple(SCHEMAS),
                metavar="NAME",
                help=f"metric schema to record (repeatable, recorded together; default "
                f"{DEFAULT_SCHEMA.name}): {names}",
            )
        else:
            parser.add_argument(
                "--schema",
                choices=tuple(SCHEMAS),
                metavar="NAME",
                help=f"only this schema ({names}; default: every schema)",
            )

    def schemas(self, args: argparse.Namespace) -> tuple[Schema, ...]:
        """The schemas named (argparse already refused unknown names); with ``several=False``
        an empty tuple when none was named."""
        if not self.several:
            return () if args.schema is None else (get_schema(args.schema),)
        names: list[str] = args.schema or [DEFAULT_SCHEMA.name]
        with flag_errors("--schema"):
            return resolve(names)
