"""``inference-metrics serve`` and ``demo``: the guarded server from the command line."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from inference_metrics.backends.protobuf import CONTENT_TYPE as PROTOBUF_CONTENT_TYPE
from inference_metrics.catalog import SEED_METRICS
from inference_metrics.cli import main

from .client_model import decode_stream
from .expo import parse_text
from .prometheus_harness import free_port

TOKEN = "cli-demo-token-5d1f"
SERVE_LOCAL = ["serve", "--host", "127.0.0.1"]


def command() -> list[str]:
    script = Path(sys.executable).parent / "inference-metrics"
    return [str(script)] if script.exists() else [sys.executable, "-m", "inference_metrics.cli"]


class Running:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def request(
        self,
        path: str = "/metrics",
        headers: dict[str, str] | None = None,
        context: ssl.SSLContext | None = None,
    ) -> tuple[int, bytes]:
        connection: http.client.HTTPConnection
        if context is not None:
            connection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=context, timeout=10
            )
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate(timeout=5)
        return self.process.returncode, out


class Starter(Protocol):
    def __call__(self, args: Sequence[str]) -> Running: ...


@pytest.fixture
def run() -> Iterator[Starter]:
    started: list[Running] = []

    def start(args: Sequence[str]) -> Running:
        port = free_port()
        process = subprocess.Popen(
            [*command(), *args, "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        running = Running(process, port)
        started.append(running)
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                out, _ = process.communicate()
                raise AssertionError(f"exited with {process.returncode}: {out}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return running
            except OSError:
                pass
            assert time.monotonic() < deadline, "the command did not start listening"
            time.sleep(0.1)

    yield start
    for running in started:
        running.stop()


def test_demo_with_token_auth(run: Starter, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    demo = run(["demo", "--auth", "token", "--token-file", str(token_file), "--rate", "300"])
    status, body = demo.request()
    assert status == 401
    assert b"inference_model" not in body
    assert demo.request(headers={"Authorization": "Bearer wrong"})[0] == 401
    # Every seed metric gets samples from the simulated traffic.
    deadline = time.monotonic() + 20
    while True:
        status, body = demo.request(headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        families = parse_text(body.decode())
        missing = [
            s.name for s in SEED_METRICS if s.name not in families or not families[s.name].samples
        ]
        if not missing:
            break
        assert time.monotonic() < deadline, f"no samples for {missing}"
        time.sleep(0.2)
    assert demo.request("/healthz")[0] == 200
    code, out = demo.stop()
    assert code == 0
    assert "serving simulated traffic on http://127.0.0.1:" in out
    assert TOKEN not in out


def test_demo_with_native_histograms_and_exemplars_serves_them_in_protobuf(run: Starter) -> None:
    demo = run(["demo", "--histograms", "native", "--exemplars", "--rate", "300"])
    accept = {"Accept": PROTOBUF_CONTENT_TYPE}
    deadline = time.monotonic() + 20
    while True:
        status, body = demo.request(headers=accept)
        assert status == 200
        families = {family.name: family for family in decode_stream(body)}
        latency = families.get("inference_model_request_duration_seconds")
        histograms = [metric.histogram for metric in latency.metric] if latency else []
        traced = [
            dict((pair.name, pair.value) for pair in bucket.exemplar.label)
            for histogram in histograms
            for bucket in histogram.bucket
            if bucket.HasField("exemplar")
        ]
        if traced:
            break
        assert time.monotonic() < deadline, "no exemplar on the request duration"
        time.sleep(0.2)
    assert all(histogram.schema == 3 for histogram in histograms)
    assert all(re.fullmatch("[0-9a-f]{32}", labels["trace_id"]) for labels in traced)
    assert all(re.fullmatch("[0-9a-f]{16}", labels["span_id"]) for labels in traced)
    status, text = demo.request()
    assert b'inference_model_request_duration_seconds_bucket{le="+Inf"' in text
    assert demo.stop()[0] == 0


def test_serve_exposes_the_default_registry(run: Starter) -> None:
    serve = run(["serve", "--host", "127.0.0.1"])
    status, body = serve.request()
    assert status == 200
    assert b"python_info" in body  # prometheus_client's default collectors live in REGISTRY
    code, _ = serve.stop()
    assert code == 0


def test_serve_with_a_self_signed_certificate_prints_its_fingerprint(
    run: Starter, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    serve = run(
        [
            "serve",
            "--host",
            "127.0.0.1",
            "--auth",
            "token",
            "--token-file",
            str(token_file),
            "--tls-self-signed",
        ]
    )
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # checked against the printed fingerprint instead
    with (
        socket.create_connection(("127.0.0.1", serve.port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    assert serve.request(context=context)[0] == 401
    assert serve.request(headers={"Authorization": f"Bearer {TOKEN}"}, context=context)[0] == 200
    code, out = serve.stop()
    assert code == 0
    match = re.search(r"self-signed certificate SHA-256: ([0-9a-f]{64})", out)
    assert match is not None, out
    assert match.group(1) == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--auth", "token"], "--auth token needs --token-file"),
        (["demo", "--token-file", "x"], "--token-file is only used with --auth token"),
        (["demo", "--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["demo", "--tls-key", "k.pem"], "--tls-cert and --tls-key go together"),
        (["demo", "--tls-self-signed", "--tls-cert", "c", "--tls-key", "k"], "alternatives"),
        (["demo", "--client-ca-file", "ca.pem"], "--client-ca-file needs TLS"),
        (["demo", "--tls-hostname", "x"], "--tls-hostname only applies"),
        (["demo", "--kube-ca-file", "ca.pem"], "only applies with --auth kubernetes"),
        (["demo", "--auth", "none", "--kube-api-server", "https://x"], "--auth kubernetes"),
        (["serve"], "--auth is required when listening on '0.0.0.0'"),
        (["demo", "--host", "0.0.0.0"], "--auth is required"),
        (["demo", "--port", "70000"], "--port must be in 0..65535"),
        (["demo", "--rate", "0"], "--rate must be > 0"),
        (["demo", "--auth", "kubernetes", "--review-timeout", "0"], "--review-timeout"),
        (["demo", "--auth", "kubernetes"], "not running in a Kubernetes pod"),
        (["demo", "--auth", "bogus"], "invalid choice"),
        # the pool monitor's flags (docs/pool-monitor.md)
        (
            [*SERVE_LOCAL, "--endpoint", "http://127.0.0.1:8000/metrics"],
            "--endpoint needs --pool-name NAME",
        ),
        (
            [*SERVE_LOCAL, "--pool-name", "p"],
            "needs exactly one of --endpoint, --dns, --kube-service",
        ),
        (
            [*SERVE_LOCAL, "--pool-name", "p", "--endpoint", "http://a/metrics", "--dns", "a:80"],
            "got --endpoint, --dns",
        ),
        (
            [*SERVE_LOCAL, "--pool-name", "p", "--endpoint", "ftp://a/metrics"],
            "--endpoint must be an http:// or",
        ),
        ([*SERVE_LOCAL, "--pool-name", "p", "--dns", "svc"], "--dns takes NAME:PORT, got 'svc'"),
        (
            [*SERVE_LOCAL, "--pool-name", "p", "--dns", "a:80", "--queue-metric", "bad{"],
            "--queue-metric must be a metric selector",
        ),
        (
            [*SERVE_LOCAL, "--pool-name", "p", "--dns", "a:80", "--poll-interval", "0"],
            "--poll-interval must be > 0",
        ),
        ([*SERVE_LOCAL, "--pool-name", "p", "--kube-service", "vllm"], "needs --kube-namespace"),
        (
            [*SERVE_LOCAL, "--pool-name", "p", "--kube-service", "vllm", "--kube-namespace", "m"],
            "not running in a Kubernetes pod",
        ),
        (
            [
                *SERVE_LOCAL,
                "--pool-name",
                "p",
                "--dns",
                "a:80",
                "--metrics-scheme",
                "https",
                "--pool-ca-file",
                "/nope",
            ],
            "--pool-ca-file '/nope' cannot be used",
        ),
    ],
)
def test_bad_flag_combinations_exit_2(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_unreadable_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ["demo", "--auth", "token", "--token-file", str(tmp_path / "missing")],
        ["demo", "--tls-cert", str(tmp_path / "c"), "--tls-key", str(tmp_path / "k")],
    ):
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "No such file" in err


def test_a_taken_port_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--port", str(port)]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
