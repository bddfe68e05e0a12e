"""The client of the two review calls: a TokenReview and a SubjectAccessReview, each one short
HTTP/1.1 exchange with the API server (:class:`~.api.KubernetesAPI`, over the library's one h11
client).

Callers bound the time (``asyncio.timeout``). Any failure is a :class:`ReviewError` whose message
never holds a token: the HTTP client's messages are its own, and text from the API server (an
error's ``message``) is redacted first and cut to length after.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ...net.client import HTTPError
from .api import TOKEN_REFRESH_SECONDS, KubernetesAPI
from .config import KubernetesConfig
from .wire import (
    ACCESS_REVIEW_PATH,
    TOKEN_REVIEW_PATH,
    AccessReview,
    ReviewError,
    TokenReview,
    UserInfo,
    access_review_body,
    parse_access_review,
    parse_token_review,
    token_review_body,
)

__all__ = ["TOKEN_REFRESH_SECONDS", "ReviewClient", "redact"]

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1 << 20
#: Characters of API-server text (an error message) kept in a ReviewError.
MAX_MESSAGE_CHARS = 200
_REDACTED = "[redacted]"


def redact(text: str, secret: str | None, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` with every occurrence of ``secret`` replaced, then cut to ``limit`` characters.

    In that order: cutting first could leave part of a secret that straddles the cut.
    """
    if secret:
        text = text.replace(secret, _REDACTED)
    return text[:limit]


class ReviewClient:
    """Posts TokenReviews and SubjectAccessReviews to the API server.

    One short HTTP/1.1 connection per call (``Connection: close``: the reviews are cached, and
    nothing stays open between them); callers bound the time.
    """

    def __init__(self, config: KubernetesConfig, *, user_agent: str | None = None) -> None:
        self.config = config
        self.api = KubernetesAPI(config, keep_alive=False, user_agent=user_agent)
        if not config.api_server.startswith("https://"):
            logger.warning(
                "Kubernetes API server %s is plain HTTP: use it only through a local proxy",
                config.api_server,
            )

    async def token_review(self, token: str, audiences: Sequence[str] = ()) -> TokenReview:
        reply = await self._post(TOKEN_REVIEW_PATH, token_review_body(token, audiences), token)
        review = parse_token_review(reply)
        if token in review.error:
            # The API server may echo the token in its error: never keep it.
            review = TokenReview(
                review.authenticated, review.user, review.audiences, redact(review.error, token)
            )
        return review

    async def access_review(self, user: UserInfo, path: str, verb: str) -> AccessReview:
        reply = await self._post(ACCESS_REVIEW_PATH, access_review_body(user, path, verb), None)
        return parse_access_review(reply)

    async def _post(self, api_path: str, body: Mapping[str, Any], secret: str | None) -> Any:
        """POST ``body`` as JSON; the decoded JSON reply. ``secret`` is redacted from errors."""
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        try:
            async with self.api.request("POST", api_path, json_body=payload) as response:
                status = response.status
                reply = await response.read(MAX_RESPONSE_BYTES)
        except HTTPError as exc:
            failure = f"API server request failed: {exc}"  # the HTTP client's own words
        else:
            failure = ""
        if failure:
            raise ReviewError(failure)
        if status not in (200, 201):
            raise ReviewError(f"API server answered HTTP {status}{_status_message(reply, secret)}")
        try:
            return json.loads(reply)
        except ValueError:
            raise ReviewError("API server answered malformed JSON") from None


def _status_message(payload: bytes, secret: str | None) -> str:
    try:
        message = json.loads(payload).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return f": {redact(message, secret)}" if isinstance(message, str) and message else ""
