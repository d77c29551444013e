"""Fan-out: turns stored changes into WebSocket frames (and SMS-forward waits for offline members).

Two streams feed it: the chats table's (``chatflow.adapters.streams.realtime_change``
decodes a chat's change) and the connections table's (a user's presence, or a connection
the TTL deleted); ``chatflow.application.realtime.RealtimeService`` says who gets what.
Records are handled one by one with partial batch failures; a retried record may post a
frame twice (clients drop duplicates by ``messageId``/``seq``) but never starts a second
wait (the forward budget is taken once per window); the wait's job, on ``ForwardsFunction``,
sends the SMS.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters.streams import realtime_change
from chatflow.composition import Composition
from chatflow.domain.clock import utc_now
from chatflow.observability import logger
from chatflow.settings import (
    AwsSettings,
    ForwardWaitSettings,
    RealtimeSettings,
    TableSettings,
)

deps = Composition().require(AwsSettings, TableSettings, RealtimeSettings, ForwardWaitSettings)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def record_handler(record: DynamoDBRecord) -> None:
    deps.fanout().on_change(realtime_change(record, utc_now()))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
