"""What the Lambda authorizer answers API Gateway: the caller's context, and the WebSocket policy."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponseWebSocket,
    parse_api_gateway_arn,
)

from chatflow.domain.sessions import Session


def caller_context(session: Session) -> dict[str, str]:
    """The request context the API functions read the caller from."""
    return {"phoneNumber": session.phone_number, "userId": session.user_id, "tokenHash": session.token_hash}


def websocket_policy(method_arn: str, session: Session | None) -> dict[str, Any]:
    """The route asked for (``$connect``) allowed for a session's user, with the caller in the
    context; denied without a session."""
    route = parse_api_gateway_arn(method_arn, is_websocket_authorizer=True).resource
    if session is None:
        response = APIGatewayAuthorizerResponseWebSocket.from_route_arn(method_arn, principal_id="anonymous")
        response.deny_route(route)
    else:
        response = APIGatewayAuthorizerResponseWebSocket.from_route_arn(
            method_arn, principal_id=session.user_id, context=caller_context(session)
        )
        response.allow_route(route)
    return response.asdict()
