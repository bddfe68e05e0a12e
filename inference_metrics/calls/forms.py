"""Two forms of one call: upstream's arguments and this library's original ones.

Three of the Recorder's calls already had the names upstream's naming rule gives to functions
with other parameters: ``record_input_tokens``, ``record_output_tokens`` and
``record_inter_token_latency``. They take upstream's ``(model_name, target_model_name,
fairness_id, priority, value)`` and still the original ``(model_name, target_model_name, value,
*, fairness_id=..., priority=...)``: a third positional argument alone is the value; the value
as a keyword is ``size=``/``itl_seconds=`` in upstream's form, ``tokens=``/``seconds=`` in the
original one. Their parameters are positional-or-keyword slots (``_arg3`` .. ``_arg5``) with
the flow and both value names after them (``*args`` and keyword-only parameters cost 60 to 100 ns
a call); :func:`both_forms` sorts out a call, and ``inspect.signature`` shows upstream's
parameters (:func:`show_upstream_signature`).
"""

from __future__ import annotations

import inspect
from typing import Any

from .base import DEFAULT_FAIRNESS_ID, DEFAULT_PRIORITY

__all__ = ["UNSET", "both_forms", "show_upstream_signature"]


class _Default:
    """The type of :data:`UNSET`."""

    def __repr__(self) -> str:
        return "<default>"


#: A flow argument or a slot not given (told apart from a value given twice).
UNSET: Any = _Default()
_FLOW = ("fairness_id", "priority")


def both_forms(
    method: str,
    value_name: str,
    original_name: str,
    slots: tuple[object, object, object],
    fairness_id: object,
    priority: object,
    value: object,
    original: object,
) -> tuple[Any, Any, Any, bool]:
    """The flow and the value of a call of ``method`` in either form (module docstring), and
    whether it was upstream's form. ``slots`` are the third to fifth positional arguments
    (``UNSET`` where not given); ``value``/``original`` the value given by keyword under either
    name (None: not given)."""
    args = tuple(arg for arg in slots if arg is not UNSET)
    if args != slots[: len(args)]:
        raise TypeError(f"{method}() takes its arguments in order, without gaps")
    if original is not None or (len(args) == 1 and value is None):
        if len(args) > 1 or (original is not None and (args or value is not None)):
            raise TypeError(
                f"{method}() takes ({value_name}) as its fifth argument or ({original_name}) as "
                f"its third, not both; got positional {args!r}, {value_name}={value!r}, "
                f"{original_name}={original!r}"
            )
        value = original if original is not None else args[0]
        upstream = False
    else:
        given: dict[str, object] = {"fairness_id": fairness_id, "priority": priority}
        given[value_name] = value
        for name, positional in zip((*_FLOW, value_name), args, strict=False):
            if given[name] is not (None if name == value_name else UNSET):
                raise TypeError(f"{method}() got multiple values for argument {name!r}")
            given[name] = positional
        fairness_id, priority, value = given.values()
        if value is None:
            raise TypeError(f"{method}() missing its value, {value_name} (the fifth argument)")
        upstream = True
    if fairness_id is UNSET:
        fairness_id = DEFAULT_FAIRNESS_ID
    if priority is UNSET:
        priority = DEFAULT_PRIORITY
    return fairness_id, priority, value, upstream


def _signature(value_name: str, original_name: str) -> inspect.Signature:
    """The signature ``inspect`` shows for a method with both forms: upstream's parameters, then
    the original form's value as a keyword (the positional original form is in the docs)."""
    p = inspect.Parameter
    return inspect.Signature(
        [
            p("self", p.POSITIONAL_OR_KEYWORD),
            p("model_name", p.POSITIONAL_OR_KEYWORD, annotation=str),
            p("target_model_name", p.POSITIONAL_OR_KEYWORD, annotation=str),
            p("fairness_id", p.POSITIONAL_OR_KEYWORD, default=DEFAULT_FAIRNESS_ID, annotation=str),
            p("priority", p.POSITIONAL_OR_KEYWORD, default=DEFAULT_PRIORITY, annotation=int | str),
            p(value_name, p.POSITIONAL_OR_KEYWORD, default=None, annotation=float),
            p(original_name, p.KEYWORD_ONLY, default=None, annotation=float | None),
        ]
    )


def show_upstream_signature(cls: type, name: str, value_name: str, original_name: str) -> None:
    """Make ``inspect.signature(cls.<name>)`` show upstream's parameters (the original form's
    value after them, as a keyword)."""
    vars(cls)[name].__signature__ = _signature(value_name, original_name)
