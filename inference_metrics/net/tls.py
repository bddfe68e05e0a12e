"""TLS for every connection this library makes or takes: the minimum version, set in one place,
and client contexts rebuilt when their files change.

:func:`harden` is the one place the minimum (TLS 1.2) is set; the server's contexts
(:mod:`inference_metrics.server.tls`) and every client context go through it.
:class:`ClientContext` is the client side: the CA bundle to verify the server with (the system's
when none is given), an optional client certificate, and whether to verify at all. It watches its
files (:class:`~inference_metrics.net.watch.FileWatch`), so a rotated CA bundle (the cluster's
root CA) or client certificate (cert-manager) is used by the next new connection; a rotated pair
that does not load yet (a new certificate beside the old key) keeps the last good context.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from .watch import FileWatch

__all__ = ["MINIMUM_TLS_VERSION", "ClientContext", "ReloadingContext", "TLSFileError", "harden"]

MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2


class TLSFileError(ValueError):
    """A CA, certificate or key file that cannot be used (the message names the file)."""


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context`` with the library's minimum TLS version (1.2); returned for chaining."""
    context.minimum_version = MINIMUM_TLS_VERSION
    return context


class ReloadingContext:
    """An ``ssl.SSLContext`` that ``load`` builds from the files ``watch`` looks at, built again
    when they change; the server's (:class:`~inference_metrics.server.ServerTLS`) and the
    clients' (:class:`ClientContext`) reload through it.

    Calling it gives the context for a new connection. A rebuild that fails (a file gone, a new
    certificate beside the old key) keeps the last good context and is tried again at the next
    look; ``on_reload`` hears of each attempt (None: it worked). ``load`` failing at construction
    raises: the caller says what that means. ``watch`` None: nothing to watch, one context.
    """

    def __init__(
        self,
        load: Callable[[], ssl.SSLContext],
        watch: FileWatch | None,
        *,
        on_reload: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self._load = load
        self._watch = watch
        self._on_reload = on_reload
        #: How many times the files were loaded again after a change (tests, diagnostics).
        self.reloads = 0
        try:  # before loading: a change while loading is then seen at the next look
            signature = watch.signature() if watch is not None else ()
        except OSError:
            signature = None
        self._context = load()
        if watch is not None:
            if signature is None:
                watch.forget()
            else:
                watch.loaded(signature)

    def __call__(self) -> ssl.SSLContext:
        if self._watch is None:
            return self._context
        try:
            signature = self._watch.changed()
            if signature is None:
                return self._context
            context = self._load()
        except (OSError, ssl.SSLError, ValueError) as exc:  # ValueError: a TLSFileError
            if self._on_reload is not None:
                self._on_reload(exc)
            return self._context
        self._context = context
        self._watch.loaded(signature)
        self.reloads += 1
        if self._on_reload is not None:
            self._on_reload(None)
        return context


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return Path(value) if value else None


class ClientContext:
    """A client ``ssl.SSLContext`` from files, rebuilt when they change.

    ``ca_file``: PEM bundle to verify servers with (None: the system's trust store);
    ``cert_file``/``key_file``: a client certificate (both or neither); ``verify`` False: accept
    any server certificate (no hostname check either). ``check_interval``: look at the files at
    most this often. Raises :class:`TLSFileError` naming the file when they cannot be loaded now.
    """

    def __init__(
        self,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        cert_file: str | os.PathLike[str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        verify: bool = True,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ca_file, self.cert_file, self.key_file = (
            _path(ca_file),
            _path(cert_file),
            _path(key_file),
        )
        if bool(self.cert_file) != bool(self.key_file):
            raise TLSFileError("cert_file and key_file go together")
        self.verify = verify
        files = [p for p in (self.ca_file, self.cert_file, self.key_file) if p is not None]
        watch = FileWatch(*files, check_interval=check_interval, clock=clock) if files else None
        self._reloading = ReloadingContext(self._load, watch)

    @property
    def reloads(self) -> int:
        """How many times the files were loaded again after a change (tests, diagnostics)."""
        return self._reloading.reloads

    def _load(self) -> ssl.SSLContext:
        context = harden(ssl.create_default_context())
        if self.ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(self.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise TLSFileError(_unusable(self.ca_file, exc, "ca_file")) from None
        if self.cert_file is not None and self.key_file is not None:
            try:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
            except (OSError, ssl.SSLError) as exc:
                raise TLSFileError(_unusable(self.cert_file, exc, "cert_file/key_file")) from None
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def __call__(self) -> ssl.SSLContext:
        """The context for a new connection, rebuilt first if the files changed and load."""
        return self._reloading()


def _unusable(path: Path, exc: BaseException, what: str = "file") -> str:
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or type(exc).__name__
    elif isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
    else:
        reason = type(exc).__name__
    return f"{what} {str(path)!r} cannot be used: {reason}"
