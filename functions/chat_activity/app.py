"""Projections of the chats table's stream: inboxes ordered by activity, and the search index.

A new message (or a membership change) changes the chat's ``META`` item; this function
moves each member's inbox entry so that ``GET /v1/chats`` lists chats by last activity
with one indexed query. A new message (an ``INSERT`` of a ``MSG#`` item) also gets its
words written to the search table for ``GET /v1/search``. Records are handled one by one
with partial batch failures; inbox writes only move forward and index writes put the same
keys again, so retries and redeliveries are harmless.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters import aws
from chatflow.adapters.chat_store import DynamoChatRepository, chat_from_item, message_from_item
from chatflow.adapters.dynamo import from_raw
from chatflow.adapters.search_store import DynamoSearchIndex
from chatflow.domain.inbox import inbox_change
from chatflow.domain.search import MessageRef, index_words
from chatflow.observability import logger
from chatflow.settings import AwsSettings, SearchSettings, TableSettings, load

AWS = load(AwsSettings)
TABLES = load(TableSettings)
SEARCH = load(SearchSettings)

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@cache
def chats() -> DynamoChatRepository:
    return DynamoChatRepository(TABLES.chats_table, aws.dynamodb(AWS.region))


@cache
def search_index() -> DynamoSearchIndex:
    return DynamoSearchIndex(SEARCH.search_table, aws.dynamodb(AWS.region))


def record_handler(record: DynamoDBRecord) -> None:
    raw = record.raw_event.get("dynamodb", {})
    sort_key = str(raw.get("Keys", {}).get("SK", {}).get("S", ""))
    if sort_key == "META":
        project_inbox(raw)
    elif sort_key.startswith("MSG#") and record.raw_event.get("eventName") == "INSERT":
        index_message(raw)


def index_message(raw: dict[str, Any]) -> None:
    message = message_from_item(from_raw(raw["NewImage"]))
    words = index_words(message.text)
    search_index().index(MessageRef.of(message), words)
    logger.debug(
        "message indexed", extra={"chat_id": message.chat_id, "seq": message.seq, "words": len(words)}
    )


def project_inbox(raw: dict[str, Any]) -> None:
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
