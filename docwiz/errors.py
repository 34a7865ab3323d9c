"""The one JSON error body, and the exceptions handlers raise to produce it.

Every 4xx and 5xx answer looks like::

    {"detail": "Profile not found", "code": "not_found", "status": 404,
     "request_id": "…", "errors": [{"field": "location.zip_code",
                                     "message": "…"}]}

``errors`` is present only for validation failures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel

JSON_MEDIA_TYPE = "application/json"


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    detail: str
    code: str
    status: int
    request_id: str
    errors: list[FieldError] | None = None


class ApiError(Exception):
    """Raised by handlers and services; the middleware renders it."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"

    def __init__(self, detail: str = "Not authenticated", **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class ValidationFailed(ApiError):
    status, code = 422, "validation_error"


class TooManyRequests(ApiError):
    status, code = 429, "rate_limited"


class BadGateway(ApiError):
    status, code = 502, "bad_gateway"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"


class GatewayTimeout(ApiError):
    status, code = 504, "gateway_timeout"


_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def code_for_status(status: int) -> str:
    if status in _CODES_BY_STATUS:
        return _CODES_BY_STATUS[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_response(
    status: int,
    detail: str,
    *,
    request_id: str,
    code: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = ErrorBody(
        detail=detail,
        code=code or code_for_status(status),
        status=status,
        request_id=request_id,
        errors=list(errors) if errors is not None else None,
    )
    return web.json_response(
        body.model_dump(exclude_none=True), status=status, headers=headers
    )


def field_errors_from_pydantic(
    errors: Sequence[Mapping[str, Any]], prefix: str = ""
) -> list[FieldError]:
    """Turn pydantic's error list into fields named with dotted paths."""
    result = []
    for err in errors:
        path = ".".join(str(part) for part in err.get("loc", ()))
        field = f"{prefix}.{path}" if prefix and path else (prefix or path or "body")
        message = str(err.get("msg", "invalid value"))
        result.append(FieldError(field=field, message=message))
    return result
