"""What the library's clients share, one of each: the outbound HTTP client (h11), the TLS client
context (TLS 1.2 at least, rebuilt when its files change) and the file watcher (tokens, CA bundles,
certificates). Base dependencies only.

* :mod:`.client`: :class:`~.client.HTTPClient`, for model servers' pages and the Kubernetes API.
* :mod:`.tls`: :func:`~.tls.harden` (the minimum version, for servers too) and
  :class:`~.tls.ClientContext`.
* :mod:`.watch`: :class:`~.watch.FileWatch` and :class:`~.watch.TokenFile`.
"""

from .client import HTTPClient, HTTPError, Response
from .tls import MINIMUM_TLS_VERSION, ClientContext, TLSFileError, harden
from .watch import FileWatch, Signature, TokenFile, TokenFileError

__all__ = [
    "MINIMUM_TLS_VERSION",
    "ClientContext",
    "FileWatch",
    "HTTPClient",
    "HTTPError",
    "Response",
    "Signature",
    "TLSFileError",
    "TokenFile",
    "TokenFileError",
    "harden",
]
