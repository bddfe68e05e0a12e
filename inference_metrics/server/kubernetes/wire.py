"""The review objects as the API server sends and takes them: TokenReview, SubjectAccessReview.

Pure data and JSON checks; no I/O. Anything malformed is a :class:`ReviewError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACCESS_REVIEW_PATH",
    "TOKEN_REVIEW_PATH",
    "AccessReview",
    "ReviewError",
    "TokenReview",
    "UserInfo",
    "access_review_body",
    "parse_access_review",
    "parse_token_review",
    "token_review_body",
]

TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 (a URL path)
ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


class ReviewError(Exception):
    """A review could not be made (network, timeout, HTTP error, malformed reply)."""


@dataclass(frozen=True)
class UserInfo:
    """The user a TokenReview authenticated (hashable: it keys the access cache)."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def from_json(cls, data: object) -> UserInfo:
        if not isinstance(data, dict):
            raise ReviewError("TokenReview status.user is not an object")
        username = data.get("username", "")
        uid = data.get("uid", "")
        groups = data.get("groups") or []
        extra = data.get("extra") or {}
        if not isinstance(username, str) or not isinstance(uid, str):
            raise ReviewError("TokenReview status.user has a malformed username or uid")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ReviewError("TokenReview status.user.groups is not a list of strings")
        if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(i, str) for i in v)
            for k, v in extra.items()
        ):
            raise ReviewError("TokenReview status.user.extra is not a map of string lists")
        return cls(
            username=username,
            uid=uid,
            groups=tuple(groups),
            extra=tuple(sorted((k, tuple(v)) for k, v in extra.items())),
        )

    def to_spec(self) -> dict[str, Any]:
        """The user fields of a SubjectAccessReview spec."""
        return {
            "user": self.username,
            "groups": list(self.groups),
            "uid": self.uid,
            "extra": {key: list(values) for key, values in self.extra},
        }


@dataclass(frozen=True)
class TokenReview:
    """A TokenReview's status."""

    authenticated: bool
    user: UserInfo | None
    audiences: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class AccessReview:
    """A SubjectAccessReview's status."""

    allowed: bool
    denied: bool = False
    reason: str = ""
    evaluation_error: str = ""


def token_review_body(token: str, audiences: Sequence[str] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences:
        spec["audiences"] = list(audiences)
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}


def access_review_body(user: UserInfo, path: str, verb: str) -> dict[str, Any]:
    spec = user.to_spec()
    spec["nonResourceAttributes"] = {"path": path, "verb": verb}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def _status(reply: Any, kind: str) -> dict[str, Any]:
    if not isinstance(reply, dict) or reply.get("kind") != kind:
        raise ReviewError(f"API server answered something other than a {kind}")
    status = reply.get("status", {})
    if not isinstance(status, dict):
        raise ReviewError(f"{kind} status is not an object")
    return status


def parse_token_review(reply: Any) -> TokenReview:
    """A TokenReview reply's status (``error`` as sent: the caller redacts the token)."""
    status = _status(reply, "TokenReview")
    authenticated = status.get("authenticated", False) is True
    user = UserInfo.from_json(status.get("user", {})) if authenticated else None
    audiences = status.get("audiences") or []
    error = status.get("error", "")
    return TokenReview(
        authenticated=authenticated,
        user=user,
        audiences=tuple(a for a in audiences if isinstance(a, str))
        if isinstance(audiences, list)
        else (),
        error=error if isinstance(error, str) else "",
    )


def parse_access_review(reply: Any) -> AccessReview:
    status = _status(reply, "SubjectAccessReview")
    reason = status.get("reason", "")
    evaluation_error = status.get("evaluationError", "")
    return AccessReview(
        allowed=status.get("allowed", False) is True,
        denied=status.get("denied", False) is True,
        reason=reason if isinstance(reason, str) else "",
        evaluation_error=evaluation_error if isinstance(evaluation_error, str) else "",
    )
