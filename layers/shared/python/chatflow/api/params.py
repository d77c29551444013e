"""What the routers share: pagination query parameters and OpenAPI response documentation."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query

from chatflow.api.models import ErrorResponse
from chatflow.domain.pagination import MAX_LIMIT

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1-{MAX_LIMIT}")]
Cursor = Annotated[str | None, Query(max_length=2048, description="nextCursor of the previous page")]


def error_doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"model": ErrorResponse}}}


def ok_doc(model: type[Any], status: int = 200) -> dict[int, Any]:
    # Powertools documents the return type only when no responses are given: keep the 2xx.
    return {status: {"description": "OK", "content": {"application/json": {"model": model}}}}
