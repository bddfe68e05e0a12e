"""Where the Kubernetes API server is and how to reach it: in a pod, or given explicitly."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["IN_CLUSTER_DIR", "KubernetesConfig", "KubernetesConfigError", "is_ipv6"]

#: Where the kubelet mounts a pod's service-account credentials.
IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubernetesConfigError(ValueError):
    """The Kubernetes API server cannot be located or its credentials cannot be read."""


def is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


@dataclass(frozen=True)
class KubernetesConfig:
    """Where the API server is and how to talk to it.

    ``api_server``: ``https://host:port`` (``http://`` only for a local ``kubectl proxy``).
    ``ca_file``: CA bundle to verify the API server (None: the system's trust store).
    ``token_file``: this server's own bearer token, re-read as it rotates (None: send none).
    """

    api_server: str
    ca_file: Path | None = None
    token_file: Path | None = None

    def __post_init__(self) -> None:
        # Accept str paths too.
        for name in ("ca_file", "token_file"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        parts = urlsplit(self.api_server)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise KubernetesConfigError(
                f"api_server must be an https:// URL with a host, got {self.api_server!r}"
            )
        if parts.query or parts.fragment:
            raise KubernetesConfigError(
                f"api_server must not have a query or fragment, got {self.api_server!r}"
            )

    @classmethod
    def in_cluster(
        cls,
        *,
        api_server: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        token_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        service_account_dir: str | os.PathLike[str] = IN_CLUSTER_DIR,
    ) -> KubernetesConfig:
        """The in-cluster configuration, each piece overridable.

        The API server is ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`` unless
        ``api_server`` is given; the CA and token are the mounted service account's unless given.
        Raises :class:`KubernetesConfigError` naming what is missing.
        """
        env = os.environ if environ is None else environ
        sa_dir = Path(service_account_dir)
        if api_server is None:
            host = env.get("KUBERNETES_SERVICE_HOST", "")
            port = env.get("KUBERNETES_SERVICE_PORT", "")
            if not host or not port:
                raise KubernetesConfigError(
                    "not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST and "
                    "KUBERNETES_SERVICE_PORT are not set): give the API server URL"
                )
            if is_ipv6(host):
                host = f"[{host}]"
            api_server = f"https://{host}:{port}"
        ca_path = Path(ca_file) if ca_file is not None else sa_dir / "ca.crt"
        token_path = Path(token_file) if token_file is not None else sa_dir / "token"
        for what, path in (("CA file", ca_path), ("token file", token_path)):
            if not os.access(path, os.R_OK):
                raise KubernetesConfigError(f"cannot read the service-account {what} {path}")
        return cls(api_server=api_server, ca_file=ca_path, token_file=token_path)
