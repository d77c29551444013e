"""Small helpers to answer with a model and a status code."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from pydantic import BaseModel


def json_response(status: int, model: BaseModel) -> Response[Any]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=model.model_dump(mode="json")
    )


def no_content() -> Response[Any]:
    return Response(status_code=204, body="")
