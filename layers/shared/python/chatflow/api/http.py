"""Builds the HTTP resolver every API function uses, and the checks that run before it.

Before routing: the body size (``413`` past 64 KiB) and authentication. The Lambda
authorizer only *authenticates* (it puts the caller in the request context, or nothing);
the decision is taken here, so that a missing or bad token gets the contract's ``401``
body instead of API Gateway's bare ``403``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.api.errors import domain_error_response, error_response, validation_error_response
from chatflow.errors import ChatFlowError, NotAuthenticated
from chatflow.observability import logger

MAX_BODY_BYTES = 64 * 1024

# Routes that need no bearer token (contract §0), as API Gateway route keys.
PUBLIC_ROUTES = frozenset(
    {
        "GET /v1/health",
        "GET /v1/openapi.json",
        "POST /v1/verifications",
        "POST /v1/sessions",
        "POST /v1/sms/receipts",
        "POST /v1/sms/inbound",
    }
)

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


@dataclass(frozen=True)
class Caller:
    """The authenticated user of a request, as the authorizer put it in the context."""

    phone_number: str
    user_id: str
    token_hash: str


def caller_of(router: Router) -> Caller:
    event = router.current_event.raw_event
    context = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}
    phone = context.get("phoneNumber")
    if not phone:
        raise NotAuthenticated("Sign in first: send Authorization: Bearer <token>.")
    return Caller(
        phone_number=phone, user_id=context.get("userId", ""), token_hash=context.get("tokenHash", "")
    )


def build_resolver(routers: Iterable[Router]) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[Any]:
        errors = list(exc.errors())
        if any(tuple(e.get("loc", ()))[:1] == ("response",) for e in errors):
            # Our own answer broke its model: a bug on our side, never the client's.
            logger.error("response failed validation", extra={"errors": errors})
            return error_response(500, "internal_error", "Something went wrong on our side: retry later.")
        return validation_error_response(errors)

    @app.exception_handler(ChatFlowError)
    def _domain(exc: ChatFlowError) -> Response[Any]:
        if exc.code in ("internal_error", "service_unavailable"):
            logger.warning("request failed", extra={"error_code": exc.code, "reason": exc.message})
        return domain_error_response(exc)

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side: retry later.")

    @app.not_found
    def _no_route(exc: Exception) -> Response[Any]:
        return error_response(404, "route_not_found", "No such route: see GET /v1/openapi.json for the API.")

    return app


def http_handler(app: APIGatewayHttpResolver) -> Handler:
    """The Lambda entry point: size and authentication checks, then the resolver."""

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        rejection = _reject_early(event)
        if rejection is not None:
            return proxy_result(rejection)
        return app.resolve(_as_json(event), context)

    return handler


def _reject_early(event: dict[str, Any]) -> Response[Any] | None:
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
    if len(raw) > MAX_BODY_BYTES:
        return error_response(
            413, "payload_too_large", f"The body is {len(raw)} bytes: the limit is {MAX_BODY_BYTES} (64 KiB)."
        )
    if event.get("isBase64Encoded"):
        # A binary body (API Gateway base64-encodes it): JSON is UTF-8 text, so bytes that are
        # not UTF-8 cannot be a JSON object.
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return error_response(
                400, "invalid_json", "The body is not valid JSON: send a JSON object (UTF-8)."
            )
    if event.get("routeKey", "") in PUBLIC_ROUTES:
        return None
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    if not (authorizer.get("lambda") or {}).get("phoneNumber"):
        return error_response(
            401,
            "unauthorized",
            "Sign in first: send Authorization: Bearer <token> (POST /v1/sessions gives one).",
        )
    return None


def _as_json(event: dict[str, Any]) -> dict[str, Any]:
    """Bodies are always read as JSON (the only format of the API), whatever Content-Type
    says: ``curl -d`` sends form-encoded by default, and a clear JSON error beats a
    confusing form-parsing one."""
    if not event.get("body"):
        return event
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    return event | {"headers": headers | {"content-type": "application/json"}}


def proxy_result(response: Response[Any]) -> dict[str, Any]:
    headers = {
        str(k): str(v) if not isinstance(v, list) else ",".join(v) for k, v in response.headers.items()
    }
    return {
        "statusCode": response.status_code,
        "headers": headers,
        "body": response.body,
        "isBase64Encoded": False,
    }
