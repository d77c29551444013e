"""WebSocket actions: ``sendMessage``, ``receipt``, ``typing``, ``ping`` and ``$default``
(``chatflow.api.websocket``: each frame's answer, and the session checked on every frame)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.composition import Composition
from chatflow.observability import logger
from chatflow.settings import AwsSettings, CursorSettings, RealtimeSettings, SendLimitSettings, TableSettings

deps = Composition().require(AwsSettings, TableSettings, CursorSettings, RealtimeSettings, SendLimitSettings)


@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=APIGatewayWebSocketEvent)
def lambda_handler(event: APIGatewayWebSocketEvent, context: LambdaContext) -> dict[str, Any]:
    request = event.request_context
    authorizer = request.get("authorizer") or {}
    deps.websocket_actions().on_frame(
        request.route_key,
        request.connection_id,
        str(authorizer.get("phoneNumber", "")),
        str(authorizer.get("tokenHash", "")),
        event.body,
    )
    return {"statusCode": 200}
