"""What the pool monitor polls: an endpoint, and how to reach it over TLS."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..net.tls import ClientContext

__all__ = ["ClientTLS", "Endpoint", "metrics_url"]


def _host_port(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def metrics_url(host: str, port: int, *, scheme: str = "http", path: str = "/metrics") -> str:
    """``scheme://host:port/path`` (IPv6 hosts in brackets)."""
    return f"{scheme}://{_host_port(host, port)}{path}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One model server of the pool.

    ``name``: the pod's name (the ``model_server_pod`` label of ``per_pod_queue_size``).
    ``url``: its metrics page, ``http://`` or ``https://``, no credentials in it.
    ``engine``: the profile that reads its page (``vllm``, ``sglang``, ...).
    ``address``: ``host:port`` a picker routes requests to (default: the URL's).
    """

    name: str
    url: str
    engine: str = "vllm"
    address: str = field(default="")

    def __post_init__(self) -> None:
        for argument in ("name", "url", "engine"):
            value = getattr(self, argument)
            if not isinstance(value, str):
                raise TypeError(
                    f"{argument} must be a string, got {type(value).__name__} {value!r}"
                )
        if not self.name:
            raise ValueError("name must not be empty")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"url must be an http:// or https:// URL with a host, got {self.url!r}"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                f"url must not carry credentials (use a bearer token file), got {parts.hostname!r}"
            )
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"url has a bad port: {self.url!r}") from None
        if not self.address:
            default = 443 if parts.scheme == "https" else 80
            object.__setattr__(self, "address", _host_port(parts.hostname, port or default))

    @classmethod
    def parse(cls, spec: str, *, engine: str = "vllm") -> Endpoint:
        """``[POD=]URL`` (the ``--endpoint`` flag); without a name, the URL's ``host:port``."""
        name, sep, url = spec.partition("=")
        if not sep or "://" in name:
            name, url = "", spec
        endpoint = cls(name or "-", url, engine=engine)
        return endpoint if name else cls(endpoint.address, url, engine=engine)


@dataclass(frozen=True)
class ClientTLS:
    """How to verify (and authenticate to) ``https://`` metrics pages, as upstream allows.

    ``ca_file``: CA bundle (None: the system's); ``cert_file``/``key_file``: a client certificate;
    ``insecure_skip_verify``: accept any server certificate (upstream's default is true; ours is
    false, so a pool on HTTPS needs a CA or this flag said out loud).
    """

    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None
    insecure_skip_verify: bool = False

    def watched(self, check_interval: float = 1.0) -> ClientContext:
        """The context as a :class:`~inference_metrics.net.tls.ClientContext`: called per new
        connection, rebuilt when the files change (a rotated client certificate or CA). A
        ``ValueError`` names the file that cannot be used now."""
        return ClientContext(
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            verify=not self.insecure_skip_verify,
            check_interval=check_interval,
        )

    def context(self) -> ssl.SSLContext:
        """The SSL context (TLS 1.2 at least); ValueError names the file that cannot be used."""
        return self.watched()()
