"""Helpers for tests: parse an exposition into comparable data."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

Labels = frozenset[tuple[str, str]]


class Family:
    """A parsed family: name, type, HELP and samples keyed by (sample name, labels)."""

    def __init__(self, name: str, type_: str, documentation: str) -> None:
        self.name = name
        self.type = type_
        self.documentation = documentation
        self.samples: dict[tuple[str, Labels], float] = {}

    def value(self, sample_name: str, **labels: str) -> float:
        return self.samples[(sample_name, frozenset(labels.items()))]

    def __repr__(self) -> str:
        return f"Family({self.name!r}, {self.type!r}, {len(self.samples)} samples)"


def parse_text(text: str) -> dict[str, Family]:
    """Families of a text exposition keyed by exposed family name (counters with ``_total``).

    ``le`` values are normalised to floats' repr so ``le="1"`` and ``le="1.0"`` compare equal.
    """
    families: dict[str, Family] = {}
    for parsed in text_string_to_metric_families(text):
        name = parsed.name + "_total" if parsed.type == "counter" else parsed.name
        family = Family(name, parsed.type, parsed.documentation)
        for sample in parsed.samples:
            labels = dict(sample.labels)
            if "le" in labels:
                labels["le"] = repr(float(labels["le"]))
            key = (sample.name, frozenset(labels.items()))
            assert key not in family.samples, f"duplicate sample {key}"
            family.samples[key] = float(sample.value)
        families[name] = family
    return families


def parse_registry(registry: CollectorRegistry) -> dict[str, Family]:
    return parse_text(generate_latest(registry).decode("utf-8"))
