"""The OpenAPI document of every HTTP route (``GET /v1/openapi.json``).

It is generated from the same routers and models the API functions serve; building it
needs no AWS access, so no service is ever created: each router is given a factory that
refuses to make one.
"""

from __future__ import annotations

import json
from functools import cache
from typing import NoReturn

from chatflow.api.http import MAX_BODY_BYTES, PUBLIC_ROUTES, build_resolver
from chatflow.api.meta_routes import meta_router


def _documentation_only() -> NoReturn:
    raise RuntimeError("this function only documents the API; the routes run in their own functions")


@cache
def openapi_json() -> str:
    # The other areas' routers and models are loaded on the first request for the document:
    # a cold start for /v1/health does not pay for them.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    from chatflow.api.campaign_routes import campaign_router
    from chatflow.api.chat_routes import chat_router, presence_router, search_router
    from chatflow.api.identity_routes import identity_router
    from chatflow.api.sms_routes import sms_router

    documented = build_resolver(
        [
            identity_router(_documentation_only),
            chat_router(_documentation_only),
            search_router(_documentation_only),
            presence_router(_documentation_only, _documentation_only, _documentation_only),
            sms_router(_documentation_only),
            campaign_router(_documentation_only),
            meta_router(openapi_json),
        ]
    )
    document = json.loads(
        documented.get_openapi_json_schema(
            title="ChatFlow API",
            version="1.0.0",
            description="Chat, SMS gateway and SMS campaigns. Errors: {error: {code, message, details}}.",
            security_schemes={"bearerAuth": HTTPBearer(scheme="bearer")},
            security=[{"bearerAuth": []}],
        )
    )
    too_large = {
        "description": f"Body over {MAX_BODY_BYTES // 1024} KiB (payload_too_large)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            # Invalid input is answered 400 (chatflow.api.errors), never Powertools' default 422.
            responses.pop("422", None)
            # Powertools gives every answer the handler's return type as JSON; a 204 has no body.
            responses.get("204", {}).pop("content", None)
            if "requestBody" in operation:
                responses.setdefault("413", too_large)
            if f"{method.upper()} {path}" in PUBLIC_ROUTES:
                operation["security"] = []  # contract §0: these routes need no token
    return json.dumps(document)
