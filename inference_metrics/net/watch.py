"""Files re-read when they change: token files, TLS files, CA bundles, client certificates.

One helper for every "re-read the file when it changes" in the library: the server's token file
and certificates, the Kubernetes service account, the pool monitor's token and client TLS files
(:class:`TokenFile` and :mod:`inference_metrics.net.tls` are built on it). A change is a different
``(st_mtime_ns, st_size, st_ino)`` for any watched file, which also catches the atomic symlink
swap the kubelet does for mounted Secrets. Nothing here logs, and nothing holds a lock while
reading a file: callers decide what a failure means (fail closed, or keep the old copy).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["FileWatch", "Signature", "TokenFile", "TokenFileError"]

#: ``(st_mtime_ns, st_size, st_ino)`` of each watched file, in order.
Signature = tuple[tuple[int, int, int], ...]


class FileWatch:
    """Tells when one or more files changed, and reads a single watched file's bytes.

    ``check_interval``: look (``os.stat``) at most this often; in between, :meth:`changed`
    answers "unchanged" without a system call. ``refresh``: report a change anyway when this long
    passed since the last :meth:`loaded` (a token re-read on client-go's cadence).
    """

    def __init__(
        self,
        *paths: str | os.PathLike[str],
        check_interval: float = 0.0,
        refresh: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not paths:
            raise ValueError("FileWatch needs at least one path")
        self.paths = tuple(Path(path) for path in paths)
        self.check_interval = check_interval
        self.refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self._loaded: Signature | None = None
        self._loaded_at = -float("inf")
        self._data = b""

    def signature(self) -> Signature:
        """The files' signature now; raises ``OSError`` for a file that cannot be stat'ed."""
        out = []
        for path in self.paths:
            stat = os.stat(path)
            out.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        return tuple(out)

    def changed(self) -> Signature | None:
        """The new signature when the files changed since :meth:`loaded` (or ``refresh`` passed);
        ``None`` when unchanged or looked at less than ``check_interval`` ago.

        Raises ``OSError`` when a file cannot be stat'ed.
        """
        now = self._clock()
        with self._lock:
            if now - self._checked_at < self.check_interval:
                return None
            self._checked_at = now
            loaded, loaded_at = self._loaded, self._loaded_at
        signature = self.signature()
        stale = self.refresh is not None and now - loaded_at >= self.refresh
        return signature if signature != loaded or stale else None

    def loaded(self, signature: Signature) -> None:
        """Record that what ``signature`` describes is now in use."""
        with self._lock:
            self._loaded, self._loaded_at = signature, self._clock()

    def forget(self) -> None:
        """Treat the files as changed at the next look (after a failed read)."""
        with self._lock:
            self._loaded, self._checked_at = None, -float("inf")

    def read(self) -> tuple[bytes, bool]:
        """``(bytes, changed)`` of the (first) watched file, re-read only when it changed.

        Raises ``OSError`` when it cannot be stat'ed or read; the next call then reads again.
        """
        try:
            signature = self.changed()
            if signature is None:
                return self._data, False
            data = self.paths[0].read_bytes()
        except OSError:
            self.forget()
            raise
        with self._lock:
            changed = data != self._data or self._loaded is None
            self._data = data
        self.loaded(signature)
        return data, changed


class TokenFileError(Exception):
    """A bearer token file cannot be read or holds no single token (the message names the
    file, never its content)."""


class TokenFile:
    """A bearer token kept in a file that rotates (a service-account token, a Secret).

    Re-read through a :class:`FileWatch`: when the file changes (looked at at most every
    ``check_interval`` seconds) and every ``refresh`` seconds anyway (client-go's cadence for a
    service-account token). A token is one run of visible ASCII (no space, no line break: what
    goes into an ``Authorization`` field cannot inject another one).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        check_interval: float = 0.0,
        refresh: float | None = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._watch = FileWatch(
            self.path, check_interval=check_interval, refresh=refresh, clock=clock
        )
        self._token: str | None = None
        self._error = ""

    def read(self) -> str:
        """The current token; :class:`TokenFileError` when there is none to send."""
        try:
            data, changed = self._watch.read()
        except OSError as exc:
            failure = f"cannot read the bearer token file {self.path}: {_reason(exc)}"
        else:
            failure = ""
        if failure:
            raise TokenFileError(failure)
        if changed or (self._token is None and not self._error):
            token = data.decode("ascii", "replace").strip()
            if token and all(0x21 <= ord(char) <= 0x7E for char in token):
                self._token, self._error = token, ""
            else:
                self._token = None
                self._error = f"the bearer token file {self.path} holds no single token"
        if self._token is None:
            raise TokenFileError(self._error)
        return self._token

    def header(self) -> tuple[str, str]:
        """``("Authorization", "Bearer <token>")``; :class:`TokenFileError` as :meth:`read`."""
        return "Authorization", f"Bearer {self.read()}"


def _reason(exc: OSError) -> str:
    """The system's text for the error number (not the exception's message)."""
    return os.strerror(exc.errno) if exc.errno else type(exc).__name__
