"""Without the ``pool`` extra, a command asked to poll a pool says so at start-up (exit 2).

It used to start, log ``poll failed: ModuleNotFoundError`` once a minute and serve
``inference_pool_ready_pods 0`` as if the pool were empty. The extra's modules are made missing
in a subprocess (``sys.modules[name] = None``, so importing them fails as when not installed),
which starts the real command.
"""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

import inference_metrics.pool
from inference_metrics.pool import require_pool_extra
from inference_metrics.pool.extra import EXTRA_MODULES

from .prometheus_harness import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "ext_proc" / "server.py"
INSTALL = "pip install 'inference-metrics[pool]'"


def without_the_extra(code: str) -> list[str]:
    """A Python command line that runs ``code`` with the pool extra's modules missing."""
    block = "; ".join(f"sys.modules[{name!r}] = None" for name in EXTRA_MODULES)
    return [sys.executable, "-c", f"import sys; {block}; {code}"]


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    code = "from inference_metrics.cli import main; sys.exit(main(sys.argv[1:]))"
    # Bounded: before the fix the command started and served forever.
    return subprocess.run(
        [*without_the_extra(code), *args], capture_output=True, text=True, timeout=30
    )


def test_serve_with_a_pool_exits_2_naming_the_extra() -> None:
    port = free_port()
    result = run_cli(
        [
            *("serve", "--host", "127.0.0.1", "--port", str(port)),
            *("--pool-name", "p", "--endpoint", "http://127.0.0.1:9/metrics"),
        ]
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == (
        "usage: inference-metrics serve [options] (see --help)\n"
        "inference-metrics serve: error: --pool-name: polling model servers needs the "
        f"'aiohttp' package: {INSTALL}\n"
    )
    assert result.stdout == ""


def test_serve_without_a_pool_needs_no_extra() -> None:
    port = free_port()
    code = "from inference_metrics.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [*without_the_extra(code), "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not start listening"
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert response.status == 200
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=15)
    assert process.returncode == 0, out


def test_the_example_picker_with_a_pool_exits_2_naming_the_extra() -> None:
    pytest.importorskip("grpc")
    code = (
        f"import runpy; sys.argv[0] = {str(EXAMPLE)!r}; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    result = subprocess.run(
        [
            *without_the_extra(code),
            *("--grpc-port", str(free_port()), "--metrics-port", str(free_port())),
            *("--pool-endpoint", "http://127.0.0.1:9/metrics"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("usage: ")
    assert lines[1].endswith(
        f"error: --pool-endpoint: polling model servers needs the 'aiohttp' package: {INSTALL}"
    )


def test_require_pool_extra_names_the_extra_when_a_module_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(ImportError, match=r"pip install 'inference-metrics\[pool\]'") as caught:
        require_pool_extra()
    assert caught.value.name == "aiohttp"


def test_require_pool_extra_passes_with_the_extra_installed() -> None:
    require_pool_extra()  # the dev environment has every extra


def third_party_imports(package: Path) -> set[str]:
    """Top-level names of the modules ``package``'s files import that are neither the standard
    library's, ours, nor the base install's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {
        requirement.split(">")[0].split("=")[0].split("[")[0].strip().replace("-", "_").lower()
        for requirement in project["dependencies"]
    }
    found: set[str] = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "inference_metrics":
                    found.add(top)
    return found - base


def test_the_extras_modules_are_what_the_pool_package_imports() -> None:
    package = Path(inference_metrics.pool.__file__).parent
    assert third_party_imports(package) == set(EXTRA_MODULES)
