"""Publishes the SMS events from the SMS table's stream (the transactional outbox).

Every change of a command's record becomes the events it means (``SmsSent``,
``SmsFailed``, ``SmsExpired``, ``SmsDelivered`` / ``SmsUndelivered``; a rejection record
gives ``SmsRejected``), each with its ``occurredAt`` and per-command ``sequence``
(``chatflow.domain.sms_events``): exactly once per change in normal operation, at least
once when a publish is retried.

The events of a whole batch of records go out together, ten per ``PutEvents`` call (the
adapter checks ``FailedEntryCount`` and re-sends failed entries). Powertools' batch
processor handles one record at a time, which would make one call per record, so this
handler reports partial failures itself: when a group cannot be published, the batch is
retried from the first record of that group (records before it are done; events of that
group that did go out may be published twice, never lost).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters.events import EventBridgePublisher
from chatflow.adapters.sms_store import rejection, snapshot
from chatflow.domain.sms_events import BusEvent, events_between, rejected_event
from chatflow.errors import ChatFlowError
from chatflow.observability import logger, metrics
from chatflow.settings import SmsEventsSettings, load

SETTINGS = load(SmsEventsSettings)
PUT_EVENTS_BATCH = 10


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


def _publish(group: list[BusEvent]) -> None:
    publisher().publish(group)
    for event in group:
        metrics.add_metric(name=event.detail_type, unit="Count", value=1)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    group: list[BusEvent] = []
    group_start: str | None = None  # sequence number of the group's first record
    for record in event.get("Records") or []:
        raw = record.get("dynamodb") or {}
        events = events_of(raw, str(record.get("eventID")))
        if not events:
            continue
        if group_start is None:
            group_start = str(raw.get("SequenceNumber"))
        group.extend(events)
        if len(group) >= PUT_EVENTS_BATCH:
            if not _flushed(group, group_start):
                return {"batchItemFailures": [{"itemIdentifier": group_start}]}
            group, group_start = [], None
    if group and group_start is not None and not _flushed(group, group_start):
        return {"batchItemFailures": [{"itemIdentifier": group_start}]}
    return {"batchItemFailures": []}


def _flushed(group: list[BusEvent], group_start: str) -> bool:
    try:
        _publish(group)
    except ChatFlowError:
        logger.exception(
            "events not published; the batch is retried from here", extra={"record": group_start}
        )
        return False
    logger.info("published", extra={"events": [e.detail_type for e in group]})
    return True
