"""Error codes of the endpoint picker, as exposed in the ``error_code`` label.

The values are upstream's strings (``pkg/epp/util/error``): the latest set (``Unknown`` ..
``ResourceExhausted``) plus the seed era's ``BadConfiguration`` and
``InferencePoolResourceExhausted``, which dashboards written for upstream v0.2/v0.3 still query.
"""

from __future__ import annotations

import enum

__all__ = ["ErrorCode"]


class ErrorCode(enum.StrEnum):
    """An ``error_code`` label value; a ``str``, so it can be passed wherever a code string can."""

    UNKNOWN = "Unknown"
    BAD_REQUEST = "BadRequest"
    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    NOT_FOUND = "NotFound"
    INTERNAL = "Internal"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    MODEL_SERVER_ERROR = "ModelServerError"
    RESOURCE_EXHAUSTED = "ResourceExhausted"
    BAD_CONFIGURATION = "BadConfiguration"
    INFERENCE_POOL_RESOURCE_EXHAUSTED = "InferencePoolResourceExhausted"

    @property
    def http_status(self) -> int:
        """The HTTP status of an immediate response that ends a request with this code."""
        return _HTTP_STATUS.get(self, 500)

    @classmethod
    def from_http_status(cls, status: int) -> ErrorCode | None:
        """The code of a request answered with HTTP ``status``: None for 1xx-3xx; the code
        whose :attr:`http_status` it is (429 is ``ResourceExhausted``), else ``BadRequest`` for
        another 4xx and ``Internal`` for another 5xx (or anything else)."""
        if 100 <= status < 400:
            return None
        code = _FROM_HTTP_STATUS.get(status)
        if code is not None:
            return code
        return cls.BAD_REQUEST if 400 <= status < 500 else cls.INTERNAL


_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.RESOURCE_EXHAUSTED: 429,
    ErrorCode.INFERENCE_POOL_RESOURCE_EXHAUSTED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}
_FROM_HTTP_STATUS: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    429: ErrorCode.RESOURCE_EXHAUSTED,
    500: ErrorCode.INTERNAL,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}
