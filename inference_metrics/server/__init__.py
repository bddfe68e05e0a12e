"""The guarded exposition server: ``/metrics`` behind bearer-token, Kubernetes or mTLS auth.

::

    from inference_metrics.server import MetricsServer, TokenFileAuthenticator

    server = MetricsServer(auth=TokenFileAuthenticator("/etc/metrics/tokens"), port=9090)
    server.start()

See ``docs/exposition-server.md``. Only the standard library, prometheus_client and h11 are
imported here; a self-signed certificate (``ServerTLS.self_signed``) needs the ``tls`` extra.
"""

from .app import MetricsServer
from .asgi import metrics_app
from .auth import (
    Authenticator,
    AuthRequest,
    AuthResult,
    ClientCertificateAuthenticator,
    NoAuth,
    TokenFileAuthenticator,
    bearer_token,
)
from .config import DEFAULT_PORT, ServerConfig
from .headers import Headers
from .kubernetes import (
    KubernetesAuthenticator,
    KubernetesConfig,
    KubernetesConfigError,
    ReviewError,
    ReviewStats,
)
from .limits import ServerLimits
from .scrape import Renderer
from .tls import ServerTLS, TLSConfigError

__all__ = [
    "DEFAULT_PORT",
    "AuthRequest",
    "AuthResult",
    "Authenticator",
    "ClientCertificateAuthenticator",
    "Headers",
    "KubernetesAuthenticator",
    "KubernetesConfig",
    "KubernetesConfigError",
    "MetricsServer",
    "NoAuth",
    "Renderer",
    "ReviewError",
    "ReviewStats",
    "ServerConfig",
    "ServerLimits",
    "ServerTLS",
    "TLSConfigError",
    "TokenFileAuthenticator",
    "bearer_token",
    "metrics_app",
]
