"""WebSocket ``$connect`` and ``$disconnect``: records and forgets the caller's connections.

``$connect`` runs after the shared Lambda authorizer accepted ``?token=`` (a bad token
never gets here); its context names the caller. Presence frames follow from the
connections table's stream (``functions/fanout``), so connecting stays one write.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters import aws
from chatflow.adapters.connection_store import DynamoConnectionRepository
from chatflow.domain.clock import utc_now
from chatflow.domain.realtime import CONNECTION_TTL
from chatflow.observability import logger
from chatflow.settings import AwsSettings, RealtimeSettings, load

AWS = load(AwsSettings)
REALTIME = load(RealtimeSettings)


@cache
def connections() -> DynamoConnectionRepository:
    return DynamoConnectionRepository(REALTIME.connections_table, aws.dynamodb(AWS.region))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event.get("requestContext") or {}
    connection_id = str(request.get("connectionId", ""))
    route = request.get("routeKey")
    if route == "$disconnect":
        owner = connections().remove(connection_id, now=utc_now())
        logger.debug("disconnected", extra={"connection_id": connection_id, "known": owner is not None})
        return {"statusCode": 200}
    phone = (request.get("authorizer") or {}).get("phoneNumber")
    if not phone:
        logger.warning("connect without an authorized caller", extra={"connection_id": connection_id})
        return {"statusCode": 401}
    now = utc_now()
    connections().add(str(phone), connection_id, now=now, expires_at=now + CONNECTION_TTL)
    logger.debug("connected", extra={"connection_id": connection_id})
    return {"statusCode": 200}
