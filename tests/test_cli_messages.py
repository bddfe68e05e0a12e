"""What ``inference-metrics`` says about a bad flag: one usage line, then the error naming flags.

argparse printed the command's whole usage (32 lines for ``serve``) before the error; the error
is now preceded by one line, ``usage: inference-metrics COMMAND [options] (see --help)``, and
says which flags are wrong in their own names, never in the Python parameters the values end up
in (``--poll-interval``, not ``poll_interval``). Exit status 2, as argparse's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from inference_metrics.cli import main

LOCAL = ("--host", "127.0.0.1")
POOL = (*LOCAL, "--pool-name", "p")


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """``(usage line, error line)`` of a command that must exit 2 writing exactly those two."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 2, captured.err  # no usage block: one line of it, then the error
    return lines[0], lines[1]


@pytest.fixture(autouse=True)
def outside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Readable files for flags that need one, and a path that does not exist."""
    (tmp_path / "ca").write_text("not checked before the URL\n")
    (tmp_path / "token").write_text("a-token\n")
    (tmp_path / "empty").write_text("# no token here\n")
    return {name: str(tmp_path / name) for name in ("ca", "token", "empty", "missing")}


SERVER_MESSAGES = [
    (
        ["serve"],
        "--auth is required when listening on '0.0.0.0' (not a loopback address): choose "
        "--auth token, --auth kubernetes, or --auth none explicitly",
    ),
    (["demo", "--auth", "token"], "--auth token needs --token-file PATH (one token per line)"),
    (["demo", "--token-file", "t"], "--token-file is only used with --auth token"),
    (["demo", "--kube-ca-file", "ca.pem"], "--kube-ca-file only applies with --auth kubernetes"),
    (
        ["demo", "--auth", "none", "--kube-api-server", "https://x", "--kube-audience", "a"],
        "--kube-api-server and --kube-audience only apply with --auth kubernetes",
    ),
    (["demo", "--tls-key", "k.pem"], "--tls-cert and --tls-key go together"),
    (
        ["demo", "--tls-self-signed", "--tls-cert", "c", "--tls-key", "k"],
        "--tls-self-signed and --tls-cert/--tls-key are alternatives: choose one",
    ),
    (["demo", "--tls-hostname", "x"], "--tls-hostname only applies with --tls-self-signed"),
    (
        ["demo", "--client-ca-file", "ca.pem"],
        "--client-ca-file needs TLS (--tls-cert/--tls-key or --tls-self-signed)",
    ),
    (["demo", "--port", "70000"], "--port must be in 0..65535, got 70000"),
    (["demo", "--review-timeout", "0"], "--review-timeout must be > 0 seconds, got 0"),
    (["demo", "--deny-cache-ttl", "-1"], "--deny-cache-ttl must be >= 0 seconds, got -1"),
    (["demo", "--rate", "0"], "--rate must be > 0 requests per second, got 0"),
    (
        ["demo", "--auth", "kubernetes"],
        "--auth kubernetes: not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT are not set): give the API server URL",
    ),
    (["demo", "--auth", "bogus"], "argument --auth: invalid choice: 'bogus' (choose from "),
    (["demo", "--port", "http"], "argument --port: invalid int value: 'http'"),
]

POOL_MESSAGES = [
    (["serve", *LOCAL, "--endpoint", "http://a/metrics"], "--endpoint needs --pool-name NAME"),
    (
        ["serve", *LOCAL, "--endpoint", "http://a/metrics", "--dns", "a:80"],
        "--endpoint and --dns need --pool-name NAME",
    ),
    (
        ["serve", *POOL],
        "--pool-name needs exactly one of --endpoint, --dns, --kube-service or "
        "--kube-selector, got none",
    ),
    (
        ["serve", *POOL, "--kube-service", "vllm", "--kube-selector", "app=vllm"],
        "--pool-name needs exactly one of --endpoint, --dns, --kube-service or "
        "--kube-selector, got --kube-service, --kube-selector",
    ),
    (
        ["serve", *POOL, "--endpoint", "ftp://a/metrics"],
        "--endpoint must be an http:// or https:// URL with a host, got 'ftp://a/metrics'",
    ),
    (["serve", *POOL, "--dns", "svc"], "--dns takes NAME:PORT, got 'svc'"),
    (["serve", *POOL, "--dns", "svc:0"], "--dns: port must be in 1..65535, got 0"),
    (
        ["serve", *POOL, "--dns", "svc:80", "--metrics-path", "metrics"],
        "--metrics-path must start with '/', got 'metrics'",
    ),
    (
        ["serve", *POOL, "--dns", "svc:80", "--queue-metric", "bad{"],
        "--queue-metric must be a metric selector like name{label=\"value\"}, got 'bad{'",
    ),
    (
        ["serve", *POOL, "--dns", "svc:80", "--poll-interval", "0"],
        "--poll-interval must be > 0 seconds, got 0.0",
    ),
    (
        ["serve", *POOL, "--dns", "svc:80", "--aggregate-interval", "-1"],
        "--aggregate-interval must be > 0 seconds, got -1.0",
    ),
    (
        ["serve", *POOL, "--dns", "svc:80", "--staleness", "0"],
        "--staleness must be > 0 seconds, got 0.0",
    ),
    (
        ["serve", *POOL, "--dns", "svc:80", "--pool-cert-file", "c.pem"],
        "--pool-cert-file and --pool-key-file go together",
    ),
    (["serve", *POOL, "--kube-service", "vllm"], "--kube-service needs --kube-namespace NS"),
    (
        ["serve", *POOL, "--kube-selector", "app=vllm", "--kube-namespace", "models"],
        "--kube-selector needs --kube-port (pods have no single port)",
    ),
    (
        ["serve", *POOL, "--kube-service", "vllm", "--kube-namespace", "models"],
        "--kube-service: not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT are not set): give the API server URL",
    ),
    (
        ["serve", *POOL, "--dns", "svc:80", "--engine", "tgi"],
        "argument --engine: invalid choice: 'tgi' (choose from ",
    ),
    (
        ["serve", *POOL, "--dns", "svc:80", "--poll-interval", "soon"],
        "argument --poll-interval: invalid float value: 'soon'",
    ),
]


@pytest.mark.parametrize(("argv", "message"), SERVER_MESSAGES + POOL_MESSAGES)
def test_a_bad_flag_is_one_usage_line_and_an_error_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    usage, error = error_of(argv, capsys)
    command = argv[0]
    assert usage == f"usage: inference-metrics {command} [options] (see --help)"
    assert error.startswith(f"inference-metrics {command}: error: {message}")
    if not message.endswith("(choose from "):
        assert error == f"inference-metrics {command}: error: {message}"


FILE_MESSAGES = [
    (
        ["demo", "--auth", "token", "--token-file", "{missing}"],
        "--token-file {missing}: No such file or directory",
    ),
    (
        ["demo", "--auth", "token", "--token-file", "{empty}"],
        "--token-file: token file '{empty}' holds no token",
    ),
    (
        ["demo", "--tls-cert", "{missing}", "--tls-key", "{missing}"],
        "--tls-cert/--tls-key: cannot load TLS files: No such file or directory: {missing}",
    ),
    (
        [
            *("demo", "--auth", "kubernetes", "--kube-api-server", "ftp://api"),
            *("--kube-ca-file", "{ca}", "--kube-token-file", "{token}"),
        ],
        "--kube-api-server must be an https:// URL with a host, got 'ftp://api'",
    ),
    (
        [
            *("serve", *POOL, "--kube-service", "vllm", "--kube-namespace", "models"),
            *("--discovery-api-server", "ftp://api", "--discovery-ca-file", "{ca}"),
            *("--discovery-token-file", "{token}"),
        ],
        "--discovery-api-server must be an https:// URL with a host, got 'ftp://api'",
    ),
    (
        [
            *("serve", *POOL, "--kube-service", "vllm", "--kube-namespace", "models"),
            *("--kube-port", "0", "--discovery-api-server", "https://api"),
            *("--discovery-ca-file", "{ca}", "--discovery-token-file", "{token}"),
        ],
        "--kube-port must be in 1..65535, got 0",
    ),
    (
        [
            *("serve", *POOL, "--dns", "svc:80", "--metrics-scheme", "https"),
            *("--pool-ca-file", "{missing}"),
        ],
        "--pool-ca-file '{missing}' cannot be used: ",
    ),
    (
        ["serve", *POOL, "--dns", "svc:80", "--pool-token-file", "{missing}"],
        "--pool-token-file: cannot read the bearer token file {missing}: ",
    ),
]


@pytest.mark.parametrize(("argv", "message"), FILE_MESSAGES)
def test_a_file_a_flag_names_that_cannot_be_used_is_an_error_naming_the_flag(
    argv: list[str], message: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    usage, error = error_of([arg.format_map(files) for arg in argv], capsys)
    assert usage == f"usage: inference-metrics {argv[0]} [options] (see --help)"
    assert error.startswith(f"inference-metrics {argv[0]}: error: {message.format_map(files)}")


def test_schemas_that_cannot_be_recorded_together_are_an_error_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, error = error_of(["demo", "--schema", "gie-v1.5", "--schema", "llm-d-router"], capsys)
    assert error.startswith("inference-metrics demo: error: --schema: ")
    assert "both define 'inference_objective_request_total'" in error


def test_a_dashboard_without_a_schema_is_an_error_naming_both_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    usage, error = error_of(["docs", "--format", "grafana"], capsys)
    assert usage == "usage: inference-metrics docs [options] (see --help)"
    assert error == "inference-metrics docs: error: --format grafana needs --schema NAME"


def test_no_command_is_one_usage_line_and_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    usage, error = error_of([], capsys)
    assert usage == "usage: inference-metrics COMMAND [options] (see --help)"
    assert error == "inference-metrics: error: the following arguments are required: COMMAND"


@pytest.mark.parametrize("command", ["serve", "demo", "docs"])
def test_help_still_lists_every_option_under_a_one_line_usage(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"usage: inference-metrics {command} [options]"
    assert lines[1] == ""
    assert any(line.strip().startswith("--schema NAME") for line in lines)


def test_exemplars_without_the_otel_extra_name_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    for command in ("demo", "serve"):
        usage, error = error_of([command, *LOCAL, "--exemplars"], capsys)
        assert usage.startswith(f"usage: inference-metrics {command}")
        assert error == (
            f"inference-metrics {command}: error: --exemplars needs the OpenTelemetry API and "
            "SDK: pip install 'inference-metrics[otel]'"
        )


def test_an_unknown_histogram_kind_is_refused_naming_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, error = error_of(["demo", "--histograms", "exponential"], capsys)
    assert "argument --histograms: invalid choice: 'exponential'" in error
