"""Projections of the chats table's stream: inboxes ordered by activity, and the search index
(``chatflow.application.projections``). Records are handled one by one with partial batch
failures, a chat's changes in one batch folded into its first and the batch's new messages
into the first of them (``fold_batch``); both projections are idempotent, so retries and
redeliveries are harmless.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBStreamEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters.streams import chat_change
from chatflow.application.projections import fold_batch
from chatflow.composition import Composition
from chatflow.observability import logger
from chatflow.settings import AwsSettings, SearchSettings, TableSettings

deps = Composition().require(AwsSettings, TableSettings, SearchSettings)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def planned_changes(event: dict[str, Any]) -> dict[int, object]:
    """Each record's work, by the identity of its dict in the event (the batch processor hands
    each record back wrapped around that same dict): its change, what ``fold_batch`` folded
    into it, ``None`` for nothing, or the error decoding it raised (raised again when that
    record is handled, so that it alone fails)."""
    records = list(DynamoDBStreamEvent(event).records)
    decoded: list[object] = []
    for record in records:
        try:
            decoded.append(chat_change(record))
        except Exception as exc:  # a record that cannot be decoded fails alone, below
            decoded.append(exc)
    return {id(record.raw_event): work for record, work in zip(records, fold_batch(decoded), strict=True)}


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    plan = planned_changes(event)

    def record_handler(record: DynamoDBRecord) -> None:
        work = plan[id(record.raw_event)]
        if isinstance(work, Exception):
            raise work
        deps.chat_projections().on_change(work)

    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
