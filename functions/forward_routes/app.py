"""Records where a number's SMS replies go, from the SMS gateway's events (an EventBridge rule).

Only ``SmsSent`` events carrying ``metadata.chatId`` (forwards of chat messages) reach this
function. Each keeps, for the number, the chat and the time the provider accepted it, unless
a later forward is kept already (``chatflow.domain.sms_replies``): a duplicate or a late event
changes nothing. ``SmsWebhooksFunction`` reads it when the number texts back.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.composition import Composition
from chatflow.domain.sms_replies import route_of
from chatflow.observability import logger
from chatflow.settings import AwsSettings, ConnectionsSettings

deps = Composition().require(AwsSettings, ConnectionsSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bus_event = EventBridgeEvent(event)
    detail_type = bus_event.get("detail-type")  # absent from a malformed event: ignored below
    route = route_of(str(detail_type), bus_event.get("detail") or {})
    if route is None:
        logger.warning("not the SmsSent of a forward; ignored", extra={"detail_type": detail_type})
        return {"recorded": False}
    recorded = deps.sms_replies().record_forward(route)
    logger.info(
        "reply route",
        extra={"chat_id": route.chat_id, "sent_at": route.sent_at.isoformat(), "recorded": recorded},
    )
    return {"recorded": recorded}
