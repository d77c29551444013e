"""The one mapping from errors to the contract's error shape and status codes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from chatflow.api.models import ErrorBody, ErrorDetail, ErrorResponse
from chatflow.errors import (
    ChatFlowError,
    Conflict,
    Forbidden,
    NotAuthenticated,
    NotFound,
    RateLimited,
    Throttled,
    ValidationFailed,
)

_STATUS: tuple[tuple[type[ChatFlowError], int], ...] = (
    (ValidationFailed, 400),
    (NotAuthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (Throttled, 503),
)


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details or None))
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(exclude_none=True),
        headers=headers,
    )


def domain_error_response(exc: ChatFlowError) -> Response[Any]:
    status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
    details = [ErrorDetail(field=d.field, message=d.message) for d in exc.details]
    headers = {"Retry-After": str(exc.retry_after_seconds)} if isinstance(exc, RateLimited) else None
    if isinstance(exc, Throttled):
        headers = {"Retry-After": "1"}
    return error_response(status, exc.code, exc.message, details, headers)


def validation_error_response(errors: list[dict[str, Any]]) -> Response[Any]:
    """Pydantic/Powertools validation errors as ``400`` with one detail per field."""
    details = [ErrorDetail(field=_field(e.get("loc", ())), message=_message(e)) for e in errors]
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "invalid_json", "The body is not valid JSON: send a JSON object.")
    return error_response(
        400,
        "validation_error",
        "The request is invalid: fix the fields listed in details and retry.",
        details,
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    if not parts:
        return "body"
    text = str(parts[0])
    for part in parts[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field: remove it"
    return str(error.get("msg", "is invalid"))
