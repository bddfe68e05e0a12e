"""A pool is polled for real, or the command says at start-up what is missing (exit 2).

``inference-metrics serve --pool-name ...`` without the ``pool`` extra used to start, log
``poll failed: ModuleNotFoundError`` once a minute and serve ``inference_pool_ready_pods 0`` as if
the pool were empty. Polling now needs only the base dependencies (the library's own h11
client), and the command asks the pool package at start-up for anything beyond them
(``require_pool_extra``). The subprocesses here run the real command with imports refused as
they would be in an install without the extras.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

import inference_metrics.pool
from inference_metrics.pool import extra, require_pool_extra

from .expo import parse_text
from .model_servers import Load, ModelServer, ServersThread
from .prometheus_harness import free_port
from .test_cli_serve import Running

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "ext_proc" / "server.py"
INSTALL = "pip install 'inference-metrics[pool]'"
RUN_CLI = "from inference_metrics.cli import main; sys.exit(main(sys.argv[1:]))"
RUN_EXAMPLE = (
    f"import runpy; sys.argv[0] = {str(EXAMPLE)!r}; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def base_modules() -> set[str]:
    """The top-level modules of the base install's dependencies (pyproject.toml)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        requirement.split(">")[0].split("=")[0].split("[")[0].strip().replace("-", "_").lower()
        for requirement in project["dependencies"]
    }


def base_install_only(code: str) -> list[str]:
    """A Python command line running ``code`` where every import the base install could not
    satisfy fails (modules of the standard library, ours and the base dependencies only)."""
    allowed = sorted(base_modules() | {"inference_metrics"})
    guard = (
        "import sys\n"
        "class BaseInstallOnly:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        top = name.partition('.')[0]\n"
        f"        if top in sys.stdlib_module_names or top in {allowed!r}:\n"
        "            return None\n"
        "        raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, BaseInstallOnly())\n"
    )
    return [sys.executable, "-c", guard + code]


def missing_pool_module(code: str) -> list[str]:
    """A Python command line running ``code`` as if polling needed a module (``aiohttp``) that
    is not installed."""
    setup = (
        "import sys; sys.modules['aiohttp'] = None; "
        "import inference_metrics.pool.extra as extra; extra.EXTRA_MODULES = ('aiohttp',); "
    )
    return [sys.executable, "-c", setup + code]


def test_serve_polls_a_pool_with_the_base_install_only() -> None:
    model = ModelServer("vllm-a", engines=[Load(queue=3, running=1, kv_cache=0.5)])
    port = free_port()
    with ServersThread([model]):
        args = [
            *("serve", "--host", "127.0.0.1", "--port", str(port), "--pool-name", "p"),
            *("--endpoint", f"vllm-a={model.metrics_url}"),
            *("--poll-interval", "0.05", "--aggregate-interval", "0.2"),
        ]
        process = subprocess.Popen(
            [*base_install_only(RUN_CLI), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        serve = Running(process, port)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, serve.stop()[1]
                try:
                    status, body = serve.request()
                except OSError:
                    status, body = 0, b""
                if status == 200:
                    families = parse_text(body.decode())
                    ready = families.get("inference_pool_ready_pods")
                    if ready is not None and ready.value("inference_pool_ready_pods", name="p"):
                        break
                assert time.monotonic() < deadline, body.decode()[-2000:]
                time.sleep(0.05)
            queue = families["inference_pool_per_pod_queue_size"]
            labels = {"name": "p", "model_server_pod": "vllm-a"}
            assert queue.value("inference_pool_per_pod_queue_size", **labels) == 3
        finally:
            code, out = serve.stop()
    assert code == 0, out
    assert "poll failed" not in out


def test_serve_exits_2_naming_the_extra_when_polling_needs_a_missing_module() -> None:
    result = subprocess.run(
        [
            *missing_pool_module(RUN_CLI),
            *("serve", "--host", "127.0.0.1", "--port", str(free_port())),
            *("--pool-name", "p", "--endpoint", "http://127.0.0.1:9/metrics"),
        ],
        capture_output=True,
        text=True,
        timeout=30,  # bounded: without the check the command serves until stopped
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == (
        "usage: inference-metrics serve [options] (see --help)\n"
        "inference-metrics serve: error: --pool-name: polling model servers needs the "
        f"'aiohttp' package: {INSTALL}\n"
    )
    assert result.stdout == ""


def test_the_example_picker_exits_2_naming_the_extra_when_polling_needs_a_missing_module() -> None:
    pytest.importorskip("grpc")
    result = subprocess.run(
        [
            *missing_pool_module(RUN_EXAMPLE),
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
    monkeypatch.setattr(extra, "EXTRA_MODULES", ("aiohttp",))
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(ImportError, match=r"pip install 'inference-metrics\[pool\]'") as caught:
        require_pool_extra()
    assert caught.value.name == "aiohttp"


def test_require_pool_extra_passes_when_every_module_is_there() -> None:
    require_pool_extra()


def third_party_imports(package: Path) -> set[str]:
    """Top-level names of the modules ``package``'s files import that are neither the standard
    library's, ours, nor the base install's."""
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
    return found - base_modules()


def test_the_modules_asked_for_are_what_the_pool_package_imports_beyond_the_base() -> None:
    package = Path(inference_metrics.pool.__file__).parent
    assert third_party_imports(package) == set(extra.EXTRA_MODULES)
