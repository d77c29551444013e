"""Publishes the SMS events from the SMS table's stream (the transactional outbox).

Every change of a command's record becomes the events it means (``SmsSent``,
``SmsFailed``, ``SmsDelivered`` / ``SmsUndelivered``; a rejection record gives
``SmsRejected``): exactly once per change in normal operation, at least once when a
publish is retried. Records are handled in order with partial batch failures, so a
failure retries from the record that failed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters.events import EventBridgePublisher
from chatflow.adapters.sms_store import rejection, snapshot
from chatflow.domain.sms_events import events_between, rejected_event
from chatflow.observability import logger, metrics
from chatflow.ports import BusEvent
from chatflow.settings import SmsEventsSettings, load

SETTINGS = load(SmsEventsSettings)

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@cache
def publisher() -> EventBridgePublisher:
    return EventBridgePublisher(SETTINGS.event_bus_name)


def events_of(raw: dict[str, Any], event_id: str) -> list[BusEvent]:
    new_image = raw.get("NewImage")
    rejected = rejection(new_image) if not raw.get("OldImage") else None
    if rejected is not None:
        return [rejected_event(rejected, event_id)]
    new = snapshot(new_image)
    if new is None:
        return []
    return events_between(snapshot(raw.get("OldImage")), new)


def record_handler(record: DynamoDBRecord) -> None:
    events = events_of(record.raw_event.get("dynamodb", {}), str(record.event_id))
    if not events:
        return
    publisher().publish(events)
    for event in events:
        metrics.add_metric(name=event.detail_type, unit="Count", value=1)
    logger.info("published", extra={"events": [e.detail_type for e in events], "record": record.event_id})


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
