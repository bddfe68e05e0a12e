"""``inference-metrics docs`` is docs/metrics.md, byte for byte, and says what upstream says."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import inference_metrics
from inference_metrics.cli import main
from inference_metrics.recorder import OVERFLOW_LABEL_VALUE

from . import upstream_facts as up

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "metrics.md"
STALE = (
    "docs/metrics.md is stale: regenerate it with "
    "`.venv/bin/inference-metrics docs > docs/metrics.md` and commit the result"
)
SCRIPT = Path(sys.executable).parent / "inference-metrics"


def test_docs_command_prints_docs_metrics_md(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs"]) == 0
    captured = capsys.readouterr()
    assert captured.out.encode("utf-8") == DOCS.read_bytes(), STALE
    assert captured.err == ""


def test_the_installed_command_prints_the_same_bytes() -> None:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: install the package (bash .ci/setup)"
    result = subprocess.run(
        [str(SCRIPT), "docs"], capture_output=True, timeout=60, check=False, cwd="/"
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == DOCS.read_bytes(), STALE
    assert result.stderr == b""


@pytest.mark.parametrize("argv", [["--help"], ["docs", "--help"], ["demo", "--help"]])
def test_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: inference-metrics")


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("docs", "serve", "demo"):
        assert command in out


def test_version_is_the_packages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert capsys.readouterr().out.strip() == f"inference-metrics {project['version']}"
    assert inference_metrics.__version__ == project["version"]


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["docs", "--bogus"]])
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


# --- what the reference says, against upstream's facts -----------------------------------------


def default_schema_section() -> list[str]:
    """The lines of docs/metrics.md's section on the default schema (``gie-v0.3``)."""
    lines = DOCS.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## Schema `gie-v0.3`"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    return lines[start:end]


def bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@pytest.mark.parametrize("seed", up.SEEDS, ids=lambda seed: seed.name)
def test_each_seed_metric_has_its_row(seed: up.Seed) -> None:
    rows = [line for line in default_schema_section() if line.startswith(f"| {seed.name} |")]
    assert len(rows) == 1, seed.name
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[0] == seed.name
    assert cells[1].lower() == seed.type
    assert cells[2] == seed.help
    assert cells[3] == ", ".join(f"`{label}`" for label in seed.labels)
    assert cells[4] == "ALPHA"


@pytest.mark.parametrize("seed", [s for s in up.SEEDS if s.buckets], ids=lambda seed: seed.name)
def test_each_seed_histogram_lists_upstreams_buckets(seed: up.Seed) -> None:
    assert seed.buckets is not None
    expected = f"- `{seed.name}` ({len(seed.buckets)}): " + ", ".join(
        bound(b) for b in seed.buckets
    )
    assert expected in default_schema_section()


def test_the_docs_explain_the_typo_and_the_overflow_series() -> None:
    text = DOCS.read_text()
    assert "`32778`" in text
    assert "32768" in text
    assert f'"{OVERFLOW_LABEL_VALUE}"' in text
    assert "(default 1000)" in text
