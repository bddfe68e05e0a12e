"""The example picker takes ``inference-metrics serve``'s server, pool and schema flags.

``examples/ext_proc/server.py`` builds its parser from ``inference_metrics.options`` as the
command does, under its own names for two flags (``--metrics-port``, ``--pool-endpoint``), so it
gets the same checks and the same messages naming its flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry

from inference_metrics.server import NoAuth, TokenFileAuthenticator

from .envoy_harness import load_example_server

pytest.importorskip("grpc")


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return load_example_server()


def parsed(example: ModuleType, argv: list[str]) -> argparse.Namespace:
    args: argparse.Namespace = example.parse_args(example.build_parser(), argv)
    return args


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics-port", "70000"], "--metrics-port must be in 0..65535, got 70000"),
        (["--grpc-port", "70000"], "--grpc-port must be in 0..65535, got 70000"),
        (["--host", "0.0.0.0"], "--auth is required when listening on '0.0.0.0'"),
        (["--model-rewrite", "m"], "--model-rewrite takes MODEL=TARGET, got 'm'"),
        (
            ["--pool-endpoint", "ftp://a/metrics"],
            "--pool-endpoint must be an http:// or https:// URL with a host, got 'ftp://a/metrics'",
        ),
        (
            ["--pool-endpoint", "http://a/metrics", "--poll-interval", "0"],
            "--poll-interval must be > 0 seconds, got 0.0",
        ),
        (
            ["--pool-endpoint", "http://a/metrics", "--dns", "a:80"],
            "the pool needs exactly one of --pool-endpoint, --dns, --kube-service or "
            "--kube-selector, got --pool-endpoint, --dns",
        ),
        (
            ["--metrics-token-file", "t", "--auth", "none"],
            "--metrics-token-file is short for --auth token --token-file PATH",
        ),
    ],
)
def test_a_bad_flag_exits_2_with_one_usage_line_and_an_error_naming_it(
    example: ModuleType, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        example.main(argv)
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("usage: ")
    assert lines[0].endswith(" [options] (see --help)")
    assert f": error: {message}" in lines[1]


def test_by_default_metrics_are_served_unguarded_on_loopback_and_no_pool_is_polled(
    example: ModuleType,
) -> None:
    args = parsed(example, [])
    config = example.SERVER_OPTIONS.config(args, CollectorRegistry())
    assert (config.host, config.port, type(config.auth)) == ("127.0.0.1", 9090, NoAuth)
    assert example.POOL_OPTIONS.monitor(args) is None
    assert parsed(example, ["--pool-name", "p"]).pool_name == "p"
    assert example.POOL_OPTIONS.monitor(parsed(example, ["--pool-name", "p"])) is None


def test_the_earlier_metrics_token_file_flag_still_asks_for_a_token(
    example: ModuleType, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("a-token\n")
    args = parsed(example, ["--metrics-token-file", str(tokens)])
    assert isinstance(example.SERVER_OPTIONS.authenticator(args), TokenFileAuthenticator)
    same = parsed(example, ["--auth", "token", "--token-file", str(tokens)])
    assert isinstance(example.SERVER_OPTIONS.authenticator(same), TokenFileAuthenticator)


def test_a_pool_endpoint_polls_under_the_default_pool_name(example: ModuleType) -> None:
    args = parsed(example, ["--pool-endpoint", "vllm-0=http://127.0.0.1:8000/metrics"])
    monitor = example.POOL_OPTIONS.monitor(args)
    assert monitor is not None
    assert monitor.pool_name == "default-pool"
    assert [(e.name, e.url) for e in monitor.endpoints] == [
        ("vllm-0", "http://127.0.0.1:8000/metrics")
    ]


def test_several_schemas_can_be_recorded_together(example: ModuleType) -> None:
    args = parsed(example, ["--schema", "gie-v0.3", "--schema", "gie-v1.5"])
    assert [s.name for s in example.SCHEMA_OPTIONS.schemas(args)] == ["gie-v0.3", "gie-v1.5"]
