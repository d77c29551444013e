"""Lambda authorizer shared by the HTTP API and the WebSocket ``$connect`` route.

HTTP API (payload 2.0, simple responses): always lets the request through, with the
caller in the context when the bearer token is valid and an empty context otherwise;
the API functions then answer ``401`` with the contract's error body (API Gateway's
own deny would be a bare ``403``). WebSocket ``$connect``: a missing or bad
``?token=`` is refused at the handshake with a Deny policy.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerEventV2,
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponseV2,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.api.authorizer import caller_context, websocket_policy
from chatflow.composition import Composition
from chatflow.domain.sessions import bearer_token
from chatflow.errors import NotAuthenticated
from chatflow.observability import logger
from chatflow.settings import AwsSettings, IdentitySettings, TableSettings

deps = Composition().require(AwsSettings, TableSettings, IdentitySettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "methodArn" in event:
        return websocket(APIGatewayAuthorizerRequestEvent(event))
    request = APIGatewayAuthorizerEventV2(event)
    header = request.headers.get("authorization") if request.get("headers") else None
    try:
        session = deps.authentication().authenticate(bearer_token(header))
    except NotAuthenticated:
        return APIGatewayAuthorizerResponseV2(authorize=True, context={}).asdict()
    return APIGatewayAuthorizerResponseV2(authorize=True, context=caller_context(session)).asdict()


def websocket(request: APIGatewayAuthorizerRequestEvent) -> dict[str, Any]:
    try:
        session = deps.authentication().authenticate((request.query_string_parameters or {}).get("token"))
    except NotAuthenticated:
        logger.info("websocket connection refused: bad or missing token")
        return websocket_policy(request.method_arn, None)
    return websocket_policy(request.method_arn, session)
