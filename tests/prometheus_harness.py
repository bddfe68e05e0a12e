"""Run a real Prometheus server (``/usr/bin/prometheus``) in tests, and ask it questions.

API
---
``find_prometheus() -> str | None``
    The Prometheus binary (``$PROMETHEUS_BIN``, then ``prometheus`` on ``PATH``), or None; tests
    skip when it is missing (``.ci/setup`` installs it).

``free_port() -> int``
    A TCP port free on 127.0.0.1 right now.

``ScrapeJob(name, targets, *, ...)``
    One ``scrape_configs`` entry: ``scheme`` (http/https), ``metrics_path``, ``scrape_interval``
    (``"1s"``), ``scrape_timeout`` (default: the interval), ``bearer_token_file`` (becomes
    ``authorization: {type: Bearer, credentials_file: ...}``, re-read by Prometheus at every
    scrape), ``bearer_token`` (inline ``credentials``), ``ca_file`` / ``cert_file`` / ``key_file``
    / ``server_name`` / ``insecure_skip_verify`` (``tls_config``), ``params``, ``labels`` (static
    target labels) and ``extra`` (merged into the job as is, for anything else).
    ``to_config()`` gives the dict.

``PrometheusServer(jobs, workdir, *, rule_files=(), evaluation_interval="1s", binary=None,
extra_args=())``
    ``start(timeout=30)`` writes ``prometheus.yml`` (JSON, which is YAML) into ``workdir``, starts
    Prometheus on 127.0.0.1 and a free port with its TSDB in ``workdir/data`` and the lifecycle API
    on, and waits for ``/-/ready``. ``stop()`` terminates it (kills after 10 s). Use it as a
    context manager. ``url`` is its base URL; ``log()`` its output so far (for failure messages).

    Questions (all raise :class:`PrometheusError` with the log tail on failure):

    * ``api(path, **params)``: GET ``/api/v1/<path>``, returns ``data``.
    * ``targets(job=None)``: the active targets (dicts with ``health``, ``lastError``,
      ``scrapeUrl``, ``labels`` ...), optionally of one job.
    * ``wait_for_targets(job, health="up", timeout=30, count=1)``: polls until ``count`` targets of
      ``job`` have that health (``"up"``/``"down"``, or ``"any"`` once scraped at least once);
      returns them.
    * ``query(promql, at=None)``: instant query; returns the ``result`` list (vector samples as
      ``{"metric": {...}, "value": [ts, "str"]}``) or, for scalars, ``[{"value": [ts, "str"]}]``.
    * ``query_value(promql)``: the single value of an instant query as a float, or None when the
      result is empty; raises if there is more than one series.
    * ``wait_for_value(promql, predicate=lambda v: v > 0, timeout=30)``: polls ``query_value``
      until the predicate holds; returns the value.
    * ``query_range(promql, start, end, step)``: range query ``result``.
    * ``rules()`` / ``alerts()``: the rule groups and active alerts (with ``rule_files``).
    * ``reload()``: re-read the configuration (after editing ``jobs`` and calling
      ``write_config()``).

Example::

    job = ScrapeJob("app", [f"127.0.0.1:{port}"], bearer_token_file=token_path)
    with PrometheusServer([job], tmp_path) as prometheus:
        prometheus.wait_for_targets("app")
        assert prometheus.wait_for_value("sum(up)") == 1
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "PrometheusError",
    "PrometheusServer",
    "ScrapeJob",
    "find_prometheus",
    "free_port",
    "stop_process",
]


class PrometheusError(AssertionError):
    """Prometheus did not start, or did not answer as expected; carries its log tail."""


def find_prometheus() -> str | None:
    candidate = os.environ.get("PROMETHEUS_BIN")
    if candidate:
        return candidate if os.access(candidate, os.X_OK) else None
    return shutil.which("prometheus")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s; a no-op once it has exited."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@dataclass
class ScrapeJob:
    name: str
    targets: Sequence[str]
    scheme: str = "http"
    metrics_path: str = "/metrics"
    scrape_interval: str = "1s"
    scrape_timeout: str | None = None
    bearer_token_file: str | os.PathLike[str] | None = None
    bearer_token: str | None = None
    ca_file: str | os.PathLike[str] | None = None
    cert_file: str | os.PathLike[str] | None = None
    key_file: str | os.PathLike[str] | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    params: Mapping[str, Sequence[str]] | None = None
    labels: Mapping[str, str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_config(self) -> dict[str, Any]:
        job: dict[str, Any] = {
            "job_name": self.name,
            "scheme": self.scheme,
            "metrics_path": self.metrics_path,
            "scrape_interval": self.scrape_interval,
            "scrape_timeout": self.scrape_timeout or self.scrape_interval,
            "static_configs": [
                {
                    "targets": list(self.targets),
                    **({"labels": dict(self.labels)} if self.labels else {}),
                }
            ],
        }
        if self.bearer_token_file is not None and self.bearer_token is not None:
            raise ValueError("give bearer_token_file or bearer_token, not both")
        if self.bearer_token_file is not None:
            job["authorization"] = {
                "type": "Bearer",
                "credentials_file": str(self.bearer_token_file),
            }
        elif self.bearer_token is not None:
            job["authorization"] = {"type": "Bearer", "credentials": self.bearer_token}
        tls: dict[str, Any] = {}
        for key, value in (
            ("ca_file", self.ca_file),
            ("cert_file", self.cert_file),
            ("key_file", self.key_file),
            ("server_name", self.server_name),
        ):
            if value is not None:
                tls[key] = str(value)
        if self.insecure_skip_verify:
            tls["insecure_skip_verify"] = True
        if tls:
            job["tls_config"] = tls
        if self.params:
            job["params"] = {k: list(v) for k, v in self.params.items()}
        job.update(self.extra)
        return job


class PrometheusServer:
    def __init__(
        self,
        jobs: Sequence[ScrapeJob],
        workdir: str | os.PathLike[str],
        *,
        rule_files: Sequence[str | os.PathLike[str]] = (),
        evaluation_interval: str = "1s",
        binary: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.jobs = list(jobs)
        self.workdir = Path(workdir)
        self.rule_files = [str(p) for p in rule_files]
        self.evaluation_interval = evaluation_interval
        self.binary = binary or find_prometheus()
        self.extra_args = list(extra_args)
        self.port = 0
        self.config_path = self.workdir / "prometheus.yml"
        self.log_path = self.workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": self.rule_files,
            "scrape_configs": [job.to_config() for job in self.jobs],
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        if self.binary is None:
            raise PrometheusError("no prometheus binary (install the Debian 'prometheus' package)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self.port = free_port()
        log = open(self.log_path, "wb")  # noqa: SIM115 (owned by the process for its lifetime)
        try:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    "--log.level=info",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {self._process.returncode}:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(f"prometheus not ready within {timeout:g}s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def log(self, tail: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-tail:])

    # ------------------------------------------------------------------------------ questions

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as error:
            raise PrometheusError(f"{url}: HTTP {error.code}: {error.read()[:500]!r}") from None
        if payload.get("status") != "success":
            raise PrometheusError(f"{url}: {payload}")
        return payload["data"]

    def targets(self, job: str | None = None) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets", state="active")["activeTargets"]
        if job is None:
            return active
        return [t for t in active if t.get("labels", {}).get("job") == job]

    def wait_for_targets(
        self, job: str, health: str = "up", timeout: float = 30.0, count: int = 1
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            targets = self.targets(job)
            if health == "any":
                matching = [t for t in targets if t.get("health") in ("up", "down")]
            else:
                matching = [t for t in targets if t.get("health") == health]
            if len(matching) >= count:
                return matching
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"job {job!r}: wanted {count} target(s) {health} within {timeout:g}s, "
                    f"have {json.dumps(targets, indent=1)}\n{self.log()}"
                )
            time.sleep(0.2)

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        data = self.api("query", query=promql, time=at)
        if data["resultType"] in ("scalar", "string"):
            return [{"value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_value(self, promql: str) -> float | None:
        result = self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{promql!r} gave {len(result)} series, wanted one: {result}")
        return float(result[0]["value"][1])

    def wait_for_value(
        self,
        promql: str,
        predicate: Callable[[float], bool] = lambda value: value > 0,
        timeout: float = 30.0,
    ) -> float:
        deadline = time.monotonic() + timeout
        while True:
            value = self.query_value(promql)
            if value is not None and predicate(value):
                return value
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"{promql!r} = {value} did not satisfy the predicate within {timeout:g}s\n"
                    f"{self.log()}"
                )
            time.sleep(0.2)

    def query_range(
        self, promql: str, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, Any]]:
        data = self.api("query_range", query=promql, start=start, end=end, step=step)
        result: list[dict[str, Any]] = data["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def reload(self) -> None:
        self.write_config()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise PrometheusError(f"reload answered {response.status}\n{self.log()}")
