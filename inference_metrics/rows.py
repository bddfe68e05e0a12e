"""The Recorder's rows: a label set's bound series of every measure of a group, in one lookup.

A row is a tuple with one *feed* per measure of its group (:mod:`inference_metrics.measures`), in
the group's order: a callable taking the measure's value and handing it to every series that shows
it, each with its own operation (a histogram's ``observe``, a counter's ``add``, a gauge's ``set``
or ``add``), under every recorded schema and backend: one bound method, a fan-out over several
(two schemas, llm-d-router's twins, GenAI beside a schema), or a no-op when nothing shows it. So a
call derives each measure once, finds its row with one dictionary lookup, and calls
``row[slot](value)`` per measure; nothing is allocated per update.

:class:`SeriesGroup` owns a group's rows: ``cache`` maps a call's inputs as given to the row (the
hot path: one lookup); a miss (:meth:`SeriesGroup.bind`) validates the inputs, applies the value
caps and defaults, and finds or binds the row of the label values the group's views expose, at
most ``max_series`` of them; later new ones share one overflow row whose every label is
:data:`~inference_metrics.backends.base.OVERFLOW_LABEL_VALUE`. Inputs no view exposes do not count
towards ``max_series``. A view may show only some label sets of a group (``View.where`` on an input:
GIE's pool saturation shows the ``effective`` stage only): its binding carries the condition, and
the rows of the other label sets leave it out.

Removal: :meth:`SeriesGroup.remove` forgets one label set, :meth:`SeriesGroup.remove_matching`
every label set whose exposed inputs match some values (a flow's series, whatever their outcome,
pool or model); the series leave every backend that can remove them and the slots are free again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .backends.base import OVERFLOW_LABEL_VALUE, Instrument, UnsupportedOperation
from .measures import Group, operation
from .schemas.base import LabelSource, View
from .validation import label_value

__all__ = ["Binding", "Feed", "Row", "SeriesGroup", "ValueCap", "bindings"]

#: A measure's feed: takes the value, updates every series that shows the measure.
Feed = Callable[[float], None]
#: One label set's feeds, one per measure of the group, in the group's order.
Row = tuple[Feed, ...]


def _noop(value: float) -> None:
    """The feed of a measure no recorded view shows."""


def _fan_out(feeds: Sequence[Feed]) -> Feed:
    if not feeds:
        return _noop
    if len(feeds) == 1:
        return feeds[0]
    if len(feeds) == 2:
        first, second = feeds

        def both(value: float) -> None:
            first(value)
            second(value)

        return both
    every = tuple(feeds)

    def each(value: float) -> None:
        for feed in every:
            feed(value)

    return each


@dataclass(frozen=True, slots=True)
class Binding:
    """One view's instrument, fed one measure: the series method, where each label's value
    comes from (an index into the group's key, or a fixed value), and the key values it shows
    (``when``: (index, value) pairs a key must hold; none: every key)."""

    instrument: Instrument
    sources: tuple[LabelSource, ...]
    method: str
    when: tuple[tuple[int, str], ...] = ()

    def labels(self, values: Sequence[str]) -> tuple[str, ...]:
        return tuple(values[s] if isinstance(s, int) else s for s in self.sources)

    def shows(self, values: Sequence[str]) -> bool:
        """Whether this binding has a series for the key ``values``."""
        return all(values[index] == value for index, value in self.when)


def bindings(
    group: Group, views: Sequence[tuple[View, Instrument]]
) -> tuple[tuple[Binding, ...], ...]:
    """Per measure of ``group`` (in order), the bindings of the views that show it."""
    slots: list[list[Binding]] = [[] for _ in group.measures]
    for view, instrument in views:
        for measure in view.measures:
            if measure in group.measures:
                method = operation(measure.nature, view.quantity.kind)
                sources, when = view.label_sources(measure), view.input_filters(measure)
                binding = Binding(instrument, sources, method, when)
                slots[group.slot(measure)].append(binding)
    return tuple(tuple(each) for each in slots)


class ValueCap:
    """At most ``limit`` distinct values of one input; later new ones become the overflow."""

    __slots__ = ("_admitted", "_limit")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._admitted: set[str] = set()

    def __call__(self, value: str) -> str:  # called under the group's lock
        if value in self._admitted:
            return value
        if len(self._admitted) >= self._limit:
            return OVERFLOW_LABEL_VALUE
        self._admitted.add(value)
        return value


class SeriesGroup:
    """A group's rows, one per exposed label set, at most ``max_series`` (module docstring).

    ``slots`` are the group's bindings (:func:`bindings`); ``caps`` the value caps by input name
    (applied to this group's inputs that are capped and exposed); ``defaults`` the value an optional
    input takes when a call passes None for it (``""`` when no view gives one).
    """

    __slots__ = (
        "_by_exposed",
        "_caps",
        "_defaults",
        "_lock",
        "_max_label_length",
        "_max_series",
        "_overflow",
        "_slots",
        "_used",
        "cache",
        "group",
        "instruments",
    )

    def __init__(
        self,
        group: Group,
        slots: tuple[tuple[Binding, ...], ...],
        *,
        max_series: int,
        max_label_length: int,
        caps: Mapping[str, ValueCap],
        defaults: Mapping[str, str],
    ) -> None:
        self.group = group
        self._slots = slots
        used = sorted(
            {s for slot in slots for b in slot for s in b.sources if isinstance(s, int)}
            | {index for slot in slots for b in slot for index, _ in b.when}
        )
        self._used = tuple(used)
        self._caps = {
            index: caps[name]
            for index, name in enumerate(group.inputs)
            if name in group.capped and name in caps and index in used
        }
        self._defaults = dict(defaults)
        self._max_series = max_series
        self._max_label_length = max_label_length
        self._lock = threading.Lock()
        self._overflow: Row | None = None
        #: Per exposed label set: its row and the key values it was bound with.
        self._by_exposed: dict[tuple[str, ...], tuple[Row, tuple[str, ...]]] = {}
        self.cache: dict[object, Row] = {}
        #: Every instrument a row of this group binds.
        self.instruments = tuple(dict.fromkeys(b.instrument for slot in slots for b in slot))

    def shows(self, slot: int) -> bool:
        """Whether any recorded view shows the measure in ``slot``."""
        return bool(self._slots[slot])

    def bind(self, key: tuple[object, ...]) -> Row:
        """Slow path: validate a new key, then bind its row (or fold it into the overflow)."""
        values = list(self._checked(key))
        with self._lock:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
            for index, cap in self._caps.items():
                values[index] = cap(values[index])
            exposed = tuple(values[i] for i in self._used)
            found = self._by_exposed.get(exposed)
            if found is None:
                if len(self._by_exposed) >= self._max_series:
                    if self._overflow is None:
                        self._overflow = self._new_row((OVERFLOW_LABEL_VALUE,) * len(values))
                    return self._overflow
                row = self._new_row(values)
                self._by_exposed[exposed] = (row, tuple(values))
            else:
                row = found[0]
            if len(self.cache) < 4 * self._max_series:
                self.cache[key] = row
            return row

    def remove(self, key: tuple[object, ...]) -> None:
        """Forget a label set: its series leave every backend and its slot is free again."""
        values = self._checked(key)
        exposed = tuple(values[i] for i in self._used)
        with self._lock:
            found = self._by_exposed.pop(exposed, None)
            if found is not None:
                self._forget([found])

    def remove_matching(self, inputs: Mapping[str, object]) -> int:
        """Forget every label set whose exposed ``inputs`` (name -> value, checked as a call's
        are) equal these values; an input no view exposes matches any value. Returns how many
        label sets were forgotten. The overflow series is not one of them."""
        checked: list[tuple[int, str]] = []
        for name, value in inputs.items():
            if name not in self.group.inputs:
                raise ValueError(f"group {self.group.name} has no input {name!r}")
            index, text = self.group.inputs.index(name), self._check(name, value)
            if index in self._used:
                checked.append((index, text))
        with self._lock:
            gone = [
                exposed
                for exposed, (_, values) in self._by_exposed.items()
                if all(values[index] == value for index, value in checked)
            ]
            self._forget([self._by_exposed.pop(exposed) for exposed in gone])
        return len(gone)

    def _forget(self, rows: Sequence[tuple[Row, tuple[str, ...]]]) -> None:
        """Drop ``rows`` from the cache and their series from the backends (under the lock).
        A backend that cannot remove a kind of series (OpenTelemetry's counters and histograms)
        keeps it; its slot is free all the same."""
        if not rows:
            return
        ids = {id(row) for row, _ in rows}
        for cached in [k for k, r in self.cache.items() if id(r) in ids]:
            del self.cache[cached]
        for _, values in rows:
            for slot in self._slots:
                for binding in slot:
                    if binding.shows(values):
                        with contextlib.suppress(UnsupportedOperation):
                            binding.instrument.remove(binding.labels(values))

    def _new_row(self, values: Sequence[str]) -> Row:
        return tuple(
            _fan_out(
                [
                    getattr(b.instrument.bind(b.labels(values)), b.method)
                    for b in slot
                    if b.shows(values)
                ]
            )
            for slot in self._slots
        )

    def _checked(self, key: tuple[object, ...]) -> list[str]:
        inputs = self.group.inputs
        missing = len(inputs) - len(key)
        if 0 < missing <= len(self.group.optional):  # trailing optional inputs left out: None
            key = (*key, *(None,) * missing)
        return [self._check(n, v) for n, v in zip(inputs, key, strict=True)]

    def _check(self, name: str, value: object) -> str:
        if name in self.group.optional:
            if value is None:
                return self._defaults.get(name, "")
            if not isinstance(value, str) or not value:
                raise TypeError(f"{name} must be a non-empty string or None, got {value!r}")
        if name == "priority" and not isinstance(value, str):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"priority must be an int or a string, got {value!r}")
            return str(int(value))  # upstream: strconv.Itoa(priority)
        return label_value(name, value, self._max_label_length)

    @property
    def size(self) -> int:
        """Distinct exposed label sets bound so far, the overflow row excluded."""
        return len(self._by_exposed)
