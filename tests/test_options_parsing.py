"""What the options modules share: library errors renamed to flags, and one-line usage errors."""

from __future__ import annotations

import pytest

from inference_metrics.options import CommandParser, OptionError, flag_errors
from inference_metrics.options.parsing import renamed

POOL_TLS = {
    "ca_file": "--pool-ca-file",
    "cert_file": "--pool-cert-file",
    "key_file": "--pool-key-file",
    "bearer_token_file": "--pool-token-file",
    "url": "--endpoint",
}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("ca_file '/x' cannot be used: gone", "--pool-ca-file '/x' cannot be used: gone"),
        (
            "cert_file/key_file '/c' cannot be used",
            "--pool-cert-file/--pool-key-file '/c' cannot be used",
        ),
        ("bearer_token_file: cannot read /t", "--pool-token-file: cannot read /t"),
        ("url must be an http:// URL", "--endpoint must be an http:// URL"),
        ("url", "--endpoint"),
        # not a known parameter, or not at the start: the flag the values came from goes first
        ("urls must be given", "--pool-name: urls must be given"),
        ("token file '/t' holds no token", "--pool-name: token file '/t' holds no token"),
        ("the ca_file is bad", "--pool-name: the ca_file is bad"),
        ("cert_file/other 'c' is bad", "--pool-name: cert_file/other 'c' is bad"),
        # a message that names its flag already is kept
        ("--dns takes NAME:PORT, got 'x'", "--dns takes NAME:PORT, got 'x'"),
    ],
)
def test_a_library_message_names_the_flag_not_the_parameter(message: str, expected: str) -> None:
    assert renamed(message, "--pool-name", POOL_TLS) == expected


@pytest.mark.parametrize("error", [ValueError, TypeError])
def test_flag_errors_turns_value_and_type_errors_into_option_errors(
    error: type[Exception],
) -> None:
    parameters = {"poll_interval": "--poll-interval"}
    expected = r"^--poll-interval must be > 0, got 0$"
    with pytest.raises(OptionError, match=expected), flag_errors("--pool-name", parameters):
        raise error("poll_interval must be > 0, got 0")


def test_flag_errors_leaves_option_errors_and_other_exceptions_alone() -> None:
    with pytest.raises(OptionError, match=r"^--x is bad$"), flag_errors("--p", {"x": "--y"}):
        raise OptionError("--x is bad")
    with pytest.raises(FileNotFoundError), flag_errors("--pool-name"):
        raise FileNotFoundError("ca_file")


def test_a_command_parsers_error_is_one_usage_line_and_the_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = CommandParser(prog="tool run")
    parser.add_argument("--count", type=int, help="how many")
    for flag in range(40):  # enough options for argparse's own usage to take many lines
        parser.add_argument(f"--option-{flag}", metavar="VALUE")
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--count", "many"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "usage: tool run [options] (see --help)\n"
        "tool run: error: argument --count: invalid int value: 'many'\n"
    )


def test_a_command_parser_keeps_a_usage_it_is_given(capsys: pytest.CaptureFixture[str]) -> None:
    parser = CommandParser(prog="tool", usage="%(prog)s COMMAND [options]")
    with pytest.raises(SystemExit):
        parser.error("no command")
    assert capsys.readouterr().err.splitlines()[0] == "usage: tool COMMAND [options] (see --help)"
