"""Compare parsed families with upstream's golden files and single-value checks.

Shared by tests/test_upstream_facts.py (families computed from tests/upstream_functions.py) and
tests/test_recorder_upstream.py (families a Recorder exposes). A golden comparison is what
upstream's ``GatherAndCompare(registry, golden, name)`` does: both sides parsed, the one family
``name`` compared, HELP, TYPE and every sample exactly (label order and ``le`` spelling aside).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from .expo import Family, parse_text
from .upstream_scenarios import GOLDEN_DIR, Check, Golden, HistogramCount, SeriesCount, Value

GOLDEN_PATH = Path(__file__).parent / GOLDEN_DIR


@cache
def golden_text(file: str) -> str:
    return (GOLDEN_PATH / file).read_text(encoding="utf-8")


def golden_family(golden: Golden) -> Family:
    families = parse_text(golden_text(golden.file))
    assert golden.metric in families, f"{golden.file} has no family {golden.metric}"
    return families[golden.metric]


#: llm-d-router's note on a deprecated twin's HELP, which GIE v1.5.0's own metric lacks.
DEPRECATION_NOTE = re.compile(r"\[Deprecated: Use \w+\] ")


def without_deprecation_note(help_text: str) -> str:
    """A twin's HELP as GIE v1.5.0 writes the same metric: without llm-d-router's note."""
    return DEPRECATION_NOTE.sub("", help_text, count=1)


def assert_matches_golden(
    families: dict[str, Family], golden: Golden, *, deprecation_note: bool = True
) -> None:
    """``golden.metric`` is exposed as the golden file has it (``deprecation_note=False``: its
    HELP without llm-d-router's deprecation note, as GIE v1.5.0 exposes the metric)."""
    expected = golden_family(golden)
    documentation = expected.documentation
    if not deprecation_note:
        documentation = without_deprecation_note(documentation)
    assert golden.metric in families, f"{golden.metric} is not exposed ({golden.file})"
    got = families[golden.metric]
    assert (got.type, got.documentation) == (expected.type, documentation), golden.file
    assert got.samples == expected.samples, golden.file


def assert_check(families: dict[str, Family], check: Check) -> None:
    """One of upstream's single-value assertions on the exposed families."""
    assert check.metric in families, f"{check.metric} is not exposed"
    family = families[check.metric]
    if isinstance(check, SeriesCount):
        series = {labels for name, labels in family.samples if not name.endswith("_bucket")}
        assert len(series) == check.series, check
    elif isinstance(check, HistogramCount):
        labels = frozenset(check.labels.items())
        assert family.samples[(check.metric + "_count", labels)] == check.observations, check
        total = family.samples[(check.metric + "_sum", labels)]
        assert total == pytest.approx(check.sum, rel=0, abs=check.tolerance), check
    else:
        assert isinstance(check, Value)
        assert family.samples[(check.metric, frozenset(check.labels.items()))] == check.value, check
