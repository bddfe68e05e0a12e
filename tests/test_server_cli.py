"""The server's command-line flags: help text with defaults, and usage errors naming the command."""

from __future__ import annotations

import pytest

from inference_metrics.cli import main


@pytest.mark.parametrize(
    ("command", "flag", "default"),
    [
        ("serve", "--token-cache-ttl", "60"),
        ("serve", "--allow-cache-ttl", "300"),
        ("serve", "--deny-cache-ttl", "30"),
        ("demo", "--rate", "20"),
        ("demo", "--histograms", "classic"),
        ("serve", "--histograms", "classic"),
    ],
)
def test_flags_have_help_and_show_their_default(
    command: str, flag: str, default: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = capsys.readouterr().out
    # The flag's own entry: from its name in the options list up to the next option.
    entry = help_text.split(f"\n  {flag} ", 1)[1].split("\n  -", 1)[0]
    words = " ".join(entry.split())
    assert len(words) > 30  # a sentence, not only the metavar
    assert f"(default: {default})" in words


@pytest.mark.parametrize("command", ["demo", "serve", "docs"])
def test_an_unknown_flag_prints_the_commands_usage(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--bogus"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"usage: inference-metrics {command} ")
    assert f"inference-metrics {command}: error: unrecognized arguments: --bogus" in error
