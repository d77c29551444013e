"""``GET /v1/health`` and ``GET /v1/openapi.json`` (the document of every HTTP route)."""

from __future__ import annotations

from chatflow.api.http import build_resolver, http_handler
from chatflow.api.meta_routes import meta_router
from chatflow.api.openapi import openapi_json

app = build_resolver([meta_router(openapi_json)])
lambda_handler = http_handler(app)
