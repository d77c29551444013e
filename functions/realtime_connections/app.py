"""WebSocket ``$connect`` and ``$disconnect``: records and forgets the caller's connections
(``chatflow.application.connections``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.composition import Composition
from chatflow.observability import logger
from chatflow.settings import AwsSettings, ConnectionsSettings

deps = Composition().require(AwsSettings, ConnectionsSettings)


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=APIGatewayWebSocketEvent)
def lambda_handler(event: APIGatewayWebSocketEvent, context: LambdaContext) -> dict[str, Any]:
    request = event.request_context
    caller = (request.get("authorizer") or {}).get("phoneNumber")
    status = deps.websocket_connections().on_route(request.route_key, request.connection_id, caller)
    return {"statusCode": status}
