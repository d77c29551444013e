"""Fan-out: turns stored changes into WebSocket frames (and SMS for offline members).

Two streams feed it:
- the chats table's ``META`` items: a new message (the item holds it, with the members
  and their markers) → ``message.new`` to every open connection of every member, and an
  SMS forward to members with none; moved delivered/read markers → ``message.status``;
  a new chat or a membership change → ``chat.updated``;
- the connections table: a user's ``PRESENCE`` item going from no open connection to
  one, or back → ``presence`` to everyone who shares a chat with them; a ``CONN#`` item
  deleted by the table's TTL (its ``$disconnect`` never came) → taken out of its owner's
  presence (which then goes offline if it was the last).

Reads are bounded: the record carries the chat, so one BatchGetItem per 100 members
for their connections (plus, when members are offline, one per 100 for opt-outs). A
``GoneException`` removes exactly that connection. Records are
handled one by one with partial batch failures; a retried record may post a frame twice
(clients drop duplicates by ``messageId``/``seq``) but never sends a second SMS (the
forward budget and the command id are both per message).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters import aws
from chatflow.adapters.chat_store import DynamoChatRepository, chat_from_item
from chatflow.adapters.connection_store import (
    CONNECTION_SK,
    PRESENCE_SK,
    DynamoConnectionRepository,
    DynamoForwardLimiter,
    presence_from_item,
)
from chatflow.adapters.dynamo import from_raw
from chatflow.adapters.notifier import ApiGatewayNotifier, management_client
from chatflow.adapters.sms_commands import SqsSmsCommandSender
from chatflow.adapters.sms_store import DynamoOptOutRepository
from chatflow.api.realtime import Forwarding, RealtimeService
from chatflow.domain.clock import utc_now
from chatflow.observability import logger
from chatflow.settings import AwsSettings, ForwardingSettings, RealtimeSettings, TableSettings, load

AWS = load(AwsSettings)
TABLES = load(TableSettings)
REALTIME = load(RealtimeSettings)
FORWARDING = load(ForwardingSettings)

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@cache
def connections() -> DynamoConnectionRepository:
    return DynamoConnectionRepository(REALTIME.connections_table, aws.dynamodb(AWS.region))


@cache
def realtime() -> RealtimeService:
    client = aws.dynamodb(AWS.region)
    return RealtimeService(
        connections=connections(),
        notifier=ApiGatewayNotifier(management_client(AWS.region, REALTIME.websocket_endpoint)),
        chats=DynamoChatRepository(TABLES.chats_table, client),
        clock=utc_now,
        forwarding=Forwarding(
            sender=SqsSmsCommandSender(FORWARDING.send_sms_queue_url, region=AWS.region),
            opt_outs=DynamoOptOutRepository(FORWARDING.sms_table, client),
            limiter=DynamoForwardLimiter(REALTIME.connections_table, client),
        ),
    )


def record_handler(record: DynamoDBRecord) -> None:
    raw = record.raw_event.get("dynamodb", {})
    sort_key = raw.get("Keys", {}).get("SK", {}).get("S", "")
    old = from_raw(raw["OldImage"]) if raw.get("OldImage") else None
    new = from_raw(raw["NewImage"]) if raw.get("NewImage") else None
    if sort_key == "META":
        realtime().chat_changed(chat_from_item(old) if old else None, chat_from_item(new) if new else None)
    elif sort_key == CONNECTION_SK and old is not None and new is None:
        # DynamoDB's TTL deleted a connection whose $disconnect never came: take it out of
        # its owner's presence, whose change then tells their contacts (the filter passes
        # only deletions by the TTL service, not those of $disconnect).
        connections().forget(str(old["phoneNumber"]), str(old["PK"])[len("CONN#") :], now=utc_now())
    elif sort_key == PRESENCE_SK and new is not None:
        now = utc_now()
        realtime().presence_changed(
            presence_from_item(old, now) if old else None, presence_from_item(new, now)
        )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
