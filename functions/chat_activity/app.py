"""Keeps every member's inbox ordered by activity, from the chats table's stream.

A new message (or a membership change) changes the chat's ``META`` item; this function
moves each member's inbox entry so that ``GET /v1/chats`` lists chats by last activity
with one indexed query. Records are handled one by one with partial batch failures, and
each write only moves forward, so retries and redeliveries are harmless.
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
from chatflow.adapters.dynamo import from_raw
from chatflow.domain.inbox import inbox_change
from chatflow.observability import logger
from chatflow.settings import AwsSettings, TableSettings, load

AWS = load(AwsSettings)
TABLES = load(TableSettings)

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@cache
def chats() -> DynamoChatRepository:
    return DynamoChatRepository(TABLES.chats_table, aws.dynamodb(AWS.region))


def record_handler(record: DynamoDBRecord) -> None:
    raw = record.raw_event.get("dynamodb", {})
    keys = raw.get("Keys", {})
    if keys.get("SK", {}).get("S") != "META":
        return
    old = chat_from_item(from_raw(raw["OldImage"])) if raw.get("OldImage") else None
    new = chat_from_item(from_raw(raw["NewImage"])) if raw.get("NewImage") else None
    change = inbox_change(old, new)
    if change is None:
        return
    chats().project_inbox(change.chat_id, change.activity, change.upsert, change.remove)
    logger.debug("inbox projected", extra={"chat_id": change.chat_id, "members": len(change.upsert)})


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
