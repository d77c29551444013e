"""docs/openapi.json is the document the API serves (``GET /v1/openapi.json``, through the
template's route and the function's handler)."""

from __future__ import annotations

import json

from local.api_docs import OPENAPI_FILE, REGENERATE, openapi_text
from tests.integration.conftest import ApiClient


def test_the_committed_openapi_document_is_the_served_one(api: ApiClient) -> None:
    # Given the stack serving its HTTP API
    # When a client asks for the OpenAPI document
    response = api.call("GET", "/v1/openapi.json")
    assert response.status == 200, response.body

    # Then the committed file is that document, pretty-printed
    served = response.raw.decode("utf-8")
    committed = OPENAPI_FILE.read_text(encoding="utf-8")
    assert json.loads(committed) == json.loads(served), f"docs/openapi.json is out of date: run {REGENERATE}"
    assert committed == openapi_text(served), (
        f"docs/openapi.json is not formatted as generated: run {REGENERATE}"
    )
