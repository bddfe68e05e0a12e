"""TLS for the metrics server: certificate files reloaded as they change, or a self-signed one.

:class:`ServerTLS` hands the server one ``ssl.SSLContext`` per new connection. Before it does, at
most once per ``check_interval`` seconds, it compares the files' modification time, size and inode
with what it loaded; if they changed it builds a new context, so new connections get the new
certificate while open ones keep theirs. A half-written pair (new certificate, old key) fails to
load: the old context stays in use and loading is retried at the next check.

TLS 1.2 is the minimum. With ``client_ca_file`` the server asks for a client certificate and
verifies any it gets against that CA (a client without one still completes the handshake, so
kubelet probes reach /healthz; ``ClientCertificateAuthenticator`` then refuses /metrics to it).

A self-signed certificate (:meth:`ServerTLS.self_signed`) needs the ``cryptography`` package,
imported only then.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..net.tls import ReloadingContext, harden
from ..net.watch import FileWatch

__all__ = ["ServerTLS", "TLSConfigError"]

logger = logging.getLogger(__name__)


class TLSConfigError(ValueError):
    """Certificate, key or CA files that cannot be loaded."""


def _new_context(client_ca_pem: str | None) -> ssl.SSLContext:
    context = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.set_alpn_protocols(["http/1.1"])
    if client_ca_pem is not None:
        context.load_verify_locations(cadata=client_ca_pem)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class ServerTLS:
    """Server-side TLS from PEM files, reloaded when they change.

    ``cert_file`` may hold the certificate chain (leaf first); ``key_file`` the unencrypted key
    (PKCS#8 or traditional). Raises :class:`TLSConfigError` if they cannot be loaded now.
    """

    def __init__(
        self,
        cert_file: str | os.PathLike[str],
        key_file: str | os.PathLike[str],
        *,
        client_ca_file: str | os.PathLike[str] | None = None,
        check_interval: float = 1.0,
    ) -> None:
        self._setup(Path(cert_file), Path(key_file), None, client_ca_file, check_interval)

    def _setup(
        self,
        cert_file: Path | None,
        key_file: Path | None,
        pem: tuple[bytes, bytes] | None,
        client_ca_file: str | os.PathLike[str] | None,
        check_interval: float,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca_file = Path(client_ca_file) if client_ca_file is not None else None
        self.check_interval = check_interval
        #: The PEM certificate of a self-signed configuration (None for files).
        self.certificate_pem: bytes | None = pem[0] if pem is not None else None
        self._pem = pem
        paths = self._paths()
        # A self-signed configuration without a client CA watches nothing.
        watch = FileWatch(*paths, check_interval=check_interval) if paths else None
        try:
            self._reloading = ReloadingContext(self._load, watch, on_reload=self._reloaded)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise TLSConfigError(f"cannot load TLS files: {_describe(exc)}") from None

    @property
    def reloads(self) -> int:
        """How many times the files were re-loaded after a change; for tests and diagnostics."""
        return self._reloading.reloads

    def _reloaded(self, failure: BaseException | None) -> None:
        if failure is None:
            logger.info("TLS files reloaded (%s)", ", ".join(map(str, self._paths())))
            return
        logger.warning(
            "TLS files changed but do not load (%s): keeping the previous ones, retrying in %gs",
            _describe(failure),
            self.check_interval,
        )

    @property
    def client_auth(self) -> bool:
        """Whether clients are asked for a certificate."""
        return self.client_ca_file is not None

    def _paths(self) -> list[Path]:
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None]

    def _load(self) -> ssl.SSLContext:
        client_ca = self.client_ca_file.read_text("ascii") if self.client_ca_file else None
        context = _new_context(client_ca)
        if self._pem is None:
            assert self.cert_file is not None
            assert self.key_file is not None
            # ssl names no file when one is missing or unreadable: open each first, so the error
            # (an OSError with its filename) says which.
            for path in (self.cert_file, self.key_file):
                with path.open("rb"):
                    pass
            context.load_cert_chain(self.cert_file, self.key_file)
            return context
        # The ssl module loads keys from files only: a private directory, gone right after.
        cert_pem, key_pem = self._pem
        with tempfile.TemporaryDirectory(prefix="inference-metrics-tls-") as directory:
            cert_path = Path(directory, "tls.crt")
            key_path = Path(directory, "tls.key")
            cert_path.write_bytes(cert_pem)
            descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as key_out:
                key_out.write(key_pem)
            context.load_cert_chain(cert_path, key_path)
        return context

    def context(self) -> ssl.SSLContext:
        """The context for a new connection, reloaded first if the files changed."""
        return self._reloading()

    @classmethod
    def self_signed(
        cls,
        hostnames: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
        *,
        client_ca_file: str | os.PathLike[str] | None = None,
        valid_days: int = 365,
        check_interval: float = 1.0,
    ) -> ServerTLS:
        """A fresh key and self-signed certificate for ``hostnames`` (DNS names or IP addresses).

        The key stays in memory (on disk only for a moment, in a private temporary directory,
        while the ssl module loads it). ``certificate_pem`` holds the certificate for clients to
        trust. Needs the ``cryptography`` package (the ``tls`` extra).
        """
        pem = generate_self_signed(hostnames, valid_days=valid_days)
        self = cls.__new__(cls)
        self._setup(None, None, pem, client_ca_file, check_interval)
        return self

    def __repr__(self) -> str:
        source = "self-signed" if self.cert_file is None else str(self.cert_file)
        return f"ServerTLS({source!r}, client_auth={self.client_auth})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def generate_self_signed(hostnames: Sequence[str], *, valid_days: int = 365) -> tuple[bytes, bytes]:
    """``(certificate PEM, PKCS#8 key PEM)``: an ECDSA P-256 key and a certificate for
    ``hostnames`` (subject alternative names; IP addresses recognised), valid from an hour ago.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise ImportError(
            "a self-signed certificate needs the 'cryptography' package: "
            "pip install 'inference-metrics[tls]'"
        ) from None
    if not hostnames:
        raise ValueError("hostnames must name at least one DNS name or IP address")
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inference-metrics")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem
