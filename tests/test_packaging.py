"""The wheel: built from a clean copy of the sources, installed into a fresh virtual environment
(not the development one), its command and its py.typed marker work there."""

from __future__ import annotations

import email
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "inference_metrics"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    how: str  # "with dependencies" or the fallback used

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "inference-metrics"


def run(command: list[str | Path], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
        cwd="/",
    )


def build_wheel(tmp: Path) -> Path:
    # A clean copy: setuptools would otherwise pick up the work tree's stale build/ directory.
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / PACKAGE, source / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    dist = tmp / "dist"
    pip_wheel: list[str | Path] = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    pip_wheel += ["-w", dist, source]
    # The build backend (setuptools >= 68) comes from the package index; without one, a
    # development venv with a recent enough setuptools can build without isolation.
    attempts = []
    for extra in ([], ["--no-build-isolation"]):
        attempts.append(run([*pip_wheel, *extra]))
        wheels = sorted(dist.glob("*.whl")) if dist.exists() else []
        if wheels:
            assert len(wheels) == 1, wheels
            return wheels[0]
    pytest.fail(
        "could not build the wheel:\n"
        + "\n".join(f"{a.args}\n{a.stdout}{a.stderr}" for a in attempts)
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("packaging")
    wheel = build_wheel(tmp)
    venv = tmp / "venv"
    created = run([sys.executable, "-m", "venv", "--without-pip", venv])
    assert created.returncode == 0, created.stderr
    target = venv / "bin" / "python"
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", target, "install", "-q"]
    result = run([*pip, wheel])
    how = "with dependencies"
    if result.returncode != 0:
        # No package index: install the wheel alone, and let the dependencies (never the package
        # itself) come from the development environment's site-packages.
        fallback = run([*pip, "--no-deps", wheel])
        assert fallback.returncode == 0, result.stderr + fallback.stderr
        purelib = run([target, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
        (Path(purelib.stdout.strip()) / "_dev_dependencies.pth").write_text(
            "\n".join(site.getsitepackages()) + "\n"
        )
        how = "--no-deps with the development venv's site-packages for dependencies"
    return Installed(wheel, venv, how)


def test_the_package_is_imported_from_the_fresh_venv(installed: Installed) -> None:
    result = run(
        [installed.python, "-c", f"import {PACKAGE}, prometheus_client; print({PACKAGE}.__file__)"]
    )
    assert result.returncode == 0, result.stderr
    location = Path(result.stdout.strip()).resolve()
    assert location.is_relative_to(installed.venv.resolve()), (installed.how, location)
    assert not location.is_relative_to(ROOT)


def test_the_command_works(installed: Installed) -> None:
    assert installed.script.exists()
    help_ = run([installed.script, "--help"], timeout=60)
    assert help_.returncode == 0, help_.stderr
    assert help_.stdout.startswith("usage: inference-metrics")
    docs = run([installed.script, "docs"], timeout=60)
    assert docs.returncode == 0, docs.stderr
    assert docs.stdout == (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")


def test_py_typed_is_installed(installed: Installed) -> None:
    script = (
        "import importlib.resources as r\n"
        f"print(r.files({PACKAGE!r}).joinpath('py.typed').is_file())\n"
    )
    result = run([installed.python, "-c", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_the_wheel_holds_every_module_and_the_metadata(installed: Installed) -> None:
    sources = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / PACKAGE).rglob("*")
        if path.suffix in (".py", ".typed") and "__pycache__" not in path.parts
    }
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        packaged = {name for name in names if name.startswith(PACKAGE + "/")}
        dist_info = next(name.split("/")[0] for name in names if ".dist-info/" in name)
        metadata = email.message_from_bytes(wheel.read(f"{dist_info}/METADATA"))
        entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert packaged == sources
    assert not any(name.startswith(("tests/", "benchmarks/", "examples/")) for name in names)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert metadata["Name"] == project["name"]
    assert metadata["Version"] == project["version"]
    requires = metadata.get_all("Requires-Dist") or []
    assert any(
        r.startswith("prometheus-client") or r.startswith("prometheus_client") for r in requires
    )
    assert "inference-metrics = inference_metrics.cli:main" in entry_points
