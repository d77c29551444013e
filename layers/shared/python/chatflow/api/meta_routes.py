"""Health and the OpenAPI document of the whole HTTP API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.api.models import HealthOut


def meta_router(openapi_json: Callable[[], str]) -> Router:
    router = Router()

    @router.get("/v1/health", tags=["meta"], summary="Liveness")
    def health() -> HealthOut:
        return HealthOut()

    @router.get("/v1/openapi.json", tags=["meta"], summary="This API's OpenAPI document")
    def openapi() -> Response[Any]:
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json())

    return router
