"""Kubernetes delegated auth for the metrics server, one idea per module.

* :mod:`.config`: where the API server is (:class:`KubernetesConfig`, in a pod or given).
* :mod:`.wire`: the TokenReview and SubjectAccessReview objects as sent and received.
* :mod:`.client`: the HTTPS client that posts them (h11 framing, bounded, token-free errors).
* :mod:`.authenticator`: :class:`KubernetesAuthenticator`, its caches and merged reviews.
"""

from .authenticator import KubernetesAuthenticator, ReviewStats
from .client import ReviewClient
from .config import IN_CLUSTER_DIR, KubernetesConfig, KubernetesConfigError
from .wire import (
    ACCESS_REVIEW_PATH,
    TOKEN_REVIEW_PATH,
    AccessReview,
    ReviewError,
    TokenReview,
    UserInfo,
)

__all__ = [
    "ACCESS_REVIEW_PATH",
    "IN_CLUSTER_DIR",
    "TOKEN_REVIEW_PATH",
    "AccessReview",
    "KubernetesAuthenticator",
    "KubernetesConfig",
    "KubernetesConfigError",
    "ReviewClient",
    "ReviewError",
    "ReviewStats",
    "TokenReview",
    "UserInfo",
]
