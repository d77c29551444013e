"""Projections of the chats table's stream: inboxes ordered by activity, and the search index
(``chatflow.application.projections``). Records are handled one by one with partial batch
failures; both projections are idempotent, so retries and redeliveries are harmless.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters.streams import chat_change
from chatflow.composition import Composition
from chatflow.observability import logger
from chatflow.settings import AwsSettings, SearchSettings, TableSettings

deps = Composition().require(AwsSettings, TableSettings, SearchSettings)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def record_handler(record: DynamoDBRecord) -> None:
    deps.chat_projections().on_change(chat_change(record))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
