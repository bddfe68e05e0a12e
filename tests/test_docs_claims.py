"""The docs agree with the code and with each other: no page says a shipped feature is missing,
every page about several worker processes says how to use the multiprocess store, every figure
the README's prose states is checked against the catalogue, and the API the docs show is the
API."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from inference_metrics import PrometheusBackend, Recorder
from inference_metrics.catalog import CATALOG
from inference_metrics.recorder import DEFAULT_MAX_SERIES
from inference_metrics.spec import MetricSpec

from .expo import parse_registry

ROOT = Path(__file__).resolve().parent.parent


def pages() -> list[Path]:
    """What a user reads: the README, docs/, the examples (their docstrings and comments)."""
    found = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found += sorted((ROOT / "examples").rglob("*.md")) + sorted((ROOT / "examples").rglob("*.py"))
    return found


@dataclass(frozen=True)
class Section:
    page: Path
    title: str
    text: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)} § {self.title}"


def sections(page: Path) -> Iterator[Section]:
    """A Markdown page by heading; a Python file whole (its docstrings and comments)."""
    text = page.read_text()
    if page.suffix != ".md":
        yield Section(page, "(file)", text)
        return
    title = "(top)"
    lines: list[str] = []
    in_code = False
    for line in text.splitlines():
        in_code ^= line.startswith("```")
        if line.startswith("#") and not in_code:
            yield Section(page, title, "\n".join(lines))
            title, lines = line.lstrip("# "), []
        else:
            lines.append(line)
    yield Section(page, title, "\n".join(lines))


def all_sections() -> list[Section]:
    return [section for page in pages() for section in sections(page)]


# --- no page says a shipped feature is missing ----------------------------------------------------

#: Phrases that say a feature is not there (yet): a page that says so of something shipped
#: contradicts the pages that document it.
DENIALS = re.compile(
    r"until\b[^.]{0,80}\b(lands|ships|is (merged|released|done|ready))\b"
    r"|\bwait for the\b"
    r"|\bnot (yet )?supported\b|\bunsupported\b"
    r"|\b(is|are) not (yet )?(available|implemented)\b"
    r"|\bnot yet (implemented|available|supported)\b"
    r"|\byet to be\b|\bcoming soon\b|\bin a (future|later) (release|version)\b|\bTODO\b",
    re.IGNORECASE,
)


def test_no_page_says_a_feature_is_not_there_yet() -> None:
    found = [
        f"{section}: {match.group(0)!r}"
        for section in all_sections()
        for match in DENIALS.finditer(section.text)
    ]
    assert found == []


@dataclass(frozen=True)
class Feature:
    """A shipped feature: how to tell it is shipped, and how pages name it."""

    name: str
    shipped: Callable[[], bool]
    named: re.Pattern[str]


def _has_parameter(function: Callable[..., object], name: str) -> bool:
    return name in inspect.signature(function).parameters


def _importable(module: str, name: str) -> bool:
    __import__(module)
    return hasattr(__import__(module, fromlist=[name]), name)


SHIPPED = [
    Feature(
        "the multiprocess store",
        lambda: _has_parameter(PrometheusBackend, "multiprocess_dir"),
        re.compile(r"multi-?process|several (worker )?(processes|workers)|--workers", re.I),
    ),
    Feature(
        "the OpenTelemetry backend",
        lambda: _importable("inference_metrics.backends.otel", "OpenTelemetryBackend"),
        re.compile(r"OpenTelemetry|OTLP"),
    ),
    Feature(
        "GenAI metrics",
        lambda: _importable("inference_metrics.genai", "GenAIRecorder"),
        re.compile(r"GenAI|gen_ai\."),
    ),
    Feature(
        "TLS and Kubernetes authentication",
        lambda: (
            _importable("inference_metrics.server", "KubernetesAuthenticator")
            and _importable("inference_metrics.server", "ServerTLS")
        ),
        re.compile(r"\bTLS\b|TokenReview|SubjectAccessReview"),
    ),
    Feature(
        "the pool monitor",
        lambda: _importable("inference_metrics.pool", "PoolMonitor"),
        re.compile(r"pool monitor|PoolMonitor", re.I),
    ),
    Feature(
        "native histograms and exemplars, in one process or several",
        lambda: (
            _has_parameter(PrometheusBackend, "histograms")
            and _has_parameter(PrometheusBackend, "exemplars")
            and _has_parameter(
                __import__(
                    "inference_metrics.backends.multiproc"
                ).backends.multiproc.MultiprocessCollector,
                "histograms",
            )
        ),
        re.compile(r"native histogram|exemplar", re.I),
    ),
    Feature(
        "streams complete at their end marker",
        lambda: (
            _importable("inference_metrics.payloads", "SSEUsageParser")
            and "ended_at" in inspect.getsource(__import__("inference_metrics.payloads").payloads)
        ),
        re.compile(r"\[DONE\]|end marker"),
    ),
]

#: Sentences that deny a feature without the tense of DENIALS (checked per feature).
FEATURE_DENIALS = re.compile(
    r"\b(does not|doesn't|do not|cannot|can't) (support|handle|merge|record)\b"
    r"|\bno support for\b|\bnot (handled|merged|recorded|shared|summed)\b[^.]{0,40}\b(yet|today)\b",
    re.IGNORECASE,
)


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n\s*\n", text) if s.strip()]


@pytest.mark.parametrize("feature", SHIPPED, ids=lambda f: f.name)
def test_no_page_denies_a_shipped_feature(feature: Feature) -> None:
    assert feature.shipped(), f"{feature.name} is listed as shipped but is not there"
    found = [
        f"{section}: {sentence.strip()!r}"
        for section in all_sections()
        for sentence in sentences(section.text)
        if feature.named.search(sentence) and FEATURE_DENIALS.search(sentence)
    ]
    assert found == []


#: A section about where several workers' metrics go: its title says so, or it says each worker
#: records into (or a scrape sees) one worker's own registry.
SEVERAL_WORKERS_TITLE = re.compile(r"several (worker )?(processes|workers)", re.I)
ONE_WORKER_EACH = re.compile(
    r"\b(each|every) (worker|process)\b[^.]{0,80}\bits own "
    r"(registry|recorder|`Recorder`|store|/metrics|`/metrics`)"
    r"|\b(records|counts)\b[^.]{0,60}\bin(to)? its own registry"
    r"|\ba scrape (sees|shows) (only )?(one|whichever) worker",
    re.I,
)


def test_every_section_about_several_workers_says_how_to_use_the_multiprocess_store() -> None:
    about = [
        section
        for section in all_sections()
        if SEVERAL_WORKERS_TITLE.search(section.title) or ONE_WORKER_EACH.search(section.text)
    ]
    assert len(about) >= 6  # the pages the multiprocess store concerns: asgi, streaming, ...
    missing = [
        str(section)
        for section in about
        if section.page.name != "multiprocess.md"
        and not re.search(r"multiprocess|multi-process", section.text, re.I)
    ]
    assert missing == []


# --- the README's figures -------------------------------------------------------------------------


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (line breaks included) as one space."""
    return " ".join(text.split())


def readme_prose(*titles: str) -> str:
    """The README's sections of these titles, without code blocks, on one line."""
    found = [s.text for s in sections(ROOT / "README.md") if s.title in titles]
    assert len(found) == len(titles), titles
    return one_line(re.sub(r"```.*?```", "", "\n".join(found), flags=re.S))


PROSE = ("Why", "Cardinality and bad input")

#: How the README names the default schema's histograms when it speaks of their buckets.
BUCKET_PHRASES = {
    "inference_model_request_sizes": "request-size",
    "inference_model_response_sizes": "response-size",
    "inference_model_input_tokens": "prompt-token",
    "inference_model_prompt_cached_tokens": "prompt-token",
    "inference_model_output_tokens": "output-token",
}


def default_specs() -> tuple[MetricSpec, ...]:
    """The catalogue the README speaks of: the default schema's metrics."""
    return tuple(CATALOG)


def phrases_holding(bound: float) -> set[str]:
    """The README's names of the default schema's histograms whose buckets hold ``bound``."""
    found = set()
    for spec in default_specs():
        if spec.buckets and bound in spec.buckets:
            assert spec.name in BUCKET_PHRASES, f"{spec.name} holds {bound}: name it in the README"
            found.add(BUCKET_PHRASES[spec.name])
    return found


def readme_bucket_claims() -> dict[int, set[str]]:
    """``... X and Y buckets hold `N``` in the README's prose: N -> {X, Y} (the names in the
    clause before "buckets hold", back to the last parenthesis or punctuation)."""
    claims: dict[int, set[str]] = {}
    for clause, bound in re.findall(r"([^(;,.]*)buckets\s+hold\s+`(\d+)`", readme_prose(*PROSE)):
        phrases = {p for p in BUCKET_PHRASES.values() if re.search(rf"\b{p}\b", clause)}
        claims.setdefault(int(bound), set()).update(phrases)
    return claims


def check_32778() -> None:
    assert readme_bucket_claims()[32778] == phrases_holding(32778.0)


def check_32768() -> None:
    assert readme_bucket_claims()[32768] == phrases_holding(32768.0)


def check_zero() -> None:
    """Sizes of 0 are observed, input and output token counts of 0 are not, a reported cached
    count is."""
    registry = CollectorRegistry()
    recorder = Recorder(PrometheusBackend(registry))
    recorder.record_request_started("m", "m", 0)
    recorder.record_request_completed(
        "m",
        "m",
        received=1.0,
        completed=2.0,
        response_size=0,
        input_tokens=0,
        output_tokens=0,
        cached_tokens=0,
    )
    families = parse_registry(registry)
    for observed in (
        "inference_model_request_sizes",
        "inference_model_response_sizes",
        "inference_model_prompt_cached_tokens",
    ):
        assert families[observed].value(observed + "_count", model_name="m", target_model_name="m")
    assert "inference_model_input_tokens" not in families
    assert "inference_model_output_tokens" not in families


def check_port() -> None:
    from inference_metrics.server import MetricsServer

    assert inspect.signature(MetricsServer).parameters["port"].default == 9090


def check_max_series() -> None:
    assert DEFAULT_MAX_SERIES == 1000
    assert inspect.signature(Recorder).parameters["max_series"].default == DEFAULT_MAX_SERIES


#: Every number the README's prose states, and the check that it is true.
FIGURES: dict[str, Callable[[], None]] = {
    "32778": check_32778,
    "32768": check_32768,
    "0": check_zero,
    "1000": check_max_series,
    "9090": check_port,
}


def test_every_figure_in_the_readmes_prose_is_checked() -> None:
    stated = set(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", readme_prose(*PROSE)))
    assert stated <= set(FIGURES), f"add a check for {sorted(stated - set(FIGURES))}"


@pytest.mark.parametrize("figure", sorted(FIGURES))
def test_a_figure_the_readme_states_is_true(figure: str) -> None:
    FIGURES[figure]()


def test_every_help_of_the_default_schema_starts_with_alpha_as_the_readme_says() -> None:
    assert "every HELP starts with `[ALPHA] `" in readme_prose("Why")
    for spec in default_specs():
        assert spec.documentation.startswith("[ALPHA] "), spec.name


def test_counters_have_no_created_series_as_the_readme_says() -> None:
    assert "counters have no `*_created` series" in readme_prose("Why")
    registry = CollectorRegistry()
    Recorder(PrometheusBackend(registry)).record_request_counter("m", "m")
    text = generate_latest(registry).decode()
    assert "inference_model_request_total" in text
    assert "_created" not in text


# --- the API the docs show ------------------------------------------------------------------------


def test_every_genai_recorder_the_docs_make_names_its_required_provider() -> None:
    from inference_metrics.genai import GenAIRecorder

    parameter = inspect.signature(GenAIRecorder).parameters["provider_name"]
    assert parameter.default is inspect.Parameter.empty
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    calls = [
        (str(section), call)
        for section in all_sections()
        for call in re.findall(r"GenAIRecorder\(([^()]*(?:\([^()]*\)[^()]*)*)\)", section.text)
    ]
    assert calls, "no page shows how to make a GenAIRecorder"
    assert [c for c in calls if "provider_name=" not in c[1]] == []
    assert "`provider_name` is required" in one_line((ROOT / "docs" / "schemas.md").read_text())


def test_the_docs_treat_the_pool_snapshot_as_the_list_it_is() -> None:
    from inference_metrics.pool import PoolMonitor

    returned = typing.get_type_hints(PoolMonitor.snapshot)["return"]
    assert typing.get_origin(returned) is list
    as_mapping = re.compile(r"snapshot\(\)\s*(\.(items|keys|values|get)\(|\[\s*['\"])")
    assert [str(s) for s in all_sections() if as_mapping.search(s.text)] == []
    pool_monitor = one_line((ROOT / "docs" / "pool-monitor.md").read_text())
    assert "`monitor.snapshot()` returns a list" in pool_monitor
