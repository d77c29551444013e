"""Lambda authorizer shared by the HTTP API and the WebSocket ``$connect`` route.

HTTP API (payload 2.0, simple responses): always lets the request through, with the
caller in the context when the bearer token is valid and an empty context otherwise;
the API functions then answer ``401`` with the contract's error body (API Gateway's
own deny would be a bare ``403``). WebSocket ``$connect``: a missing or bad
``?token=`` is refused at the handshake with a Deny policy.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters import aws
from chatflow.adapters.identity_store import DynamoSessionRepository, DynamoUserRepository
from chatflow.domain.clock import utc_now
from chatflow.domain.identity import IdentityService
from chatflow.domain.sessions import Session, bearer_token
from chatflow.errors import NotAuthenticated
from chatflow.observability import logger
from chatflow.settings import AwsSettings, IdentitySettings, TableSettings, load

AWS = load(AwsSettings)
TABLES = load(TableSettings)
IDENTITY = load(IdentitySettings)


@cache
def identity() -> IdentityService:
    client = aws.dynamodb(AWS.region)
    return IdentityService(
        users=DynamoUserRepository(TABLES.users_table, client),
        sessions=DynamoSessionRepository(TABLES.users_table, client),
        clock=utc_now,
        session_ttl=timedelta(days=IDENTITY.session_ttl_days),
        operators=frozenset(IDENTITY.operator_phone_numbers),
    )


def _context(session: Session) -> dict[str, str]:
    return {"phoneNumber": session.phone_number, "userId": session.user_id, "tokenHash": session.token_hash}


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "methodArn" in event:
        return _websocket(event)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        session = identity().authenticate(bearer_token(headers.get("authorization")))
    except NotAuthenticated:
        return {"isAuthorized": True, "context": {}}
    return {"isAuthorized": True, "context": _context(session)}


def _websocket(event: dict[str, Any]) -> dict[str, Any]:
    token = (event.get("queryStringParameters") or {}).get("token")
    try:
        session = identity().authenticate(token)
    except NotAuthenticated:
        logger.info("websocket connection refused: bad or missing token")
        return _policy("anonymous", "Deny", event["methodArn"], {})
    return _policy(session.user_id, "Allow", event["methodArn"], _context(session))


def _policy(principal: str, effect: str, resource: str, context: dict[str, str]) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }
