"""FileWatch: the one "re-read the file when it changes" helper (token, TLS, service account)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inference_metrics.net.watch import TokenFile, TokenFileError
from inference_metrics.server.watch import FileWatch


def test_a_file_is_read_once_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"one")
    watch = FileWatch(path)
    assert watch.read() == (b"one", True)
    assert watch.read() == (b"one", False)
    replacement = tmp_path / "token.new"
    replacement.write_bytes(b"two")
    os.replace(replacement, path)  # a new inode, as a Secret volume swaps it
    assert watch.read() == (b"two", True)


def test_a_failed_read_is_retried_and_reported_changed_when_it_works(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"one")
    watch = FileWatch(path)
    watch.read()
    path.unlink()
    path.mkdir()  # stat works, reading does not
    for _ in range(2):
        with pytest.raises(IsADirectoryError):
            watch.read()
    path.rmdir()
    path.write_bytes(b"one")
    assert watch.read() == (b"one", True)  # the same bytes: the caller lost them, so changed


def test_refresh_rereads_an_unchanged_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"one")
    for refresh, reread in ((None, False), (3600.0, False), (0.0, True)):
        watch = FileWatch(path, refresh=refresh)
        signature = watch.changed()
        assert signature is not None
        watch.loaded(signature)
        assert (watch.changed() == signature) is reread


def test_check_interval_spares_the_stat(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(b"c")
    key.write_bytes(b"k")
    for interval, seen in ((3600.0, False), (0.0, True)):
        watch = FileWatch(cert, key, check_interval=interval)
        first = watch.changed()
        assert first is not None
        watch.loaded(first)
        key.write_bytes(key.read_bytes() + b"!")
        assert (watch.changed() is not None) is seen


def test_a_watch_needs_a_path() -> None:
    with pytest.raises(ValueError, match="path"):
        FileWatch()


# --- TokenFile: a bearer token that rotates (the review client, discovery, the pool monitor) ---


def test_a_rotated_token_is_read_at_the_next_look(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-token\n")
    token = TokenFile(path, check_interval=0.0)
    assert token.read() == "first-token"
    replacement = tmp_path / "token.new"
    replacement.write_text("second-token\n")
    os.replace(replacement, path)
    assert token.header() == ("Authorization", "Bearer second-token")


@pytest.mark.parametrize("content", ["", "\n", "two words\n", "sec\r\nX-Injected: 1\n", "sëcret"])
def test_a_file_without_a_single_visible_token_is_refused_without_quoting_it(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "token"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TokenFileError, match="holds no single token") as refused:
        TokenFile(path).read()
    # The message names the file; its path (pytest's numbered tmp dir) may hold any short part.
    message = str(refused.value).replace(str(path), "<path>")
    for part in content.split():
        assert part not in message


def test_an_unreadable_token_file_is_an_error_naming_it_until_it_is_readable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    token = TokenFile(path)
    with pytest.raises(TokenFileError, match=f"cannot read the bearer token file {path}: No such"):
        token.read()
    path.write_text("back-again")
    assert token.read() == "back-again"
