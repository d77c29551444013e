"""The SMS events of the SMS table's stream, published (the transactional outbox).

Every change of a command's record becomes the events it means (``SmsSent``,
``SmsFailed``, ``SmsExpired``, ``SmsDelivered`` / ``SmsUndelivered``; a rejection record
gives ``SmsRejected``), each with its ``occurredAt`` and per-command ``sequence``
(``chatflow.domain.sms_events``): exactly once per change in normal operation, at least
once when a publish is retried.

The events of a whole batch of records go out together, ten per ``PutEvents`` call (the
adapter checks ``FailedEntryCount`` and re-sends failed entries). A per-record batch
processor would make one call per record, so this reports partial failures itself: when
a group cannot be published, the batch is retried from the first record of that group
(records before it are done; events of that group that did go out may be published
twice, never lost).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chatflow.application.changes import SmsRecordChanged
from chatflow.domain.sms_events import BusEvent, events_between, rejected_event
from chatflow.errors import ChatFlowError
from chatflow.observability import logger, metrics
from chatflow.ports import EventPublisher

PUT_EVENTS_BATCH = 10


def events_of(change: SmsRecordChanged) -> list[BusEvent]:
    """The events one change of the SMS table means (none for most)."""
    if change.rejected is not None:
        return [rejected_event(change.rejected, change.event_id)]
    if change.new is None:
        return []
    return events_between(change.old, change.new)


class SmsOutbox:
    def __init__(self, *, publisher: Callable[[], EventPublisher]) -> None:
        self._publisher = publisher

    def publish(self, changes: Iterable[SmsRecordChanged]) -> str | None:
        """Publish the events of ``changes`` in order; the sequence number to retry from, if any."""
        group: list[BusEvent] = []
        group_start: str | None = None  # sequence number of the group's first record
        for change in changes:
            events = events_of(change)
            if not events:
                continue
            if group_start is None:
                group_start = change.sequence_number
            group.extend(events)
            if len(group) >= PUT_EVENTS_BATCH:
                if not self._flushed(group, group_start):
                    return group_start
                group, group_start = [], None
        if group and group_start is not None and not self._flushed(group, group_start):
            return group_start
        return None

    def _flushed(self, group: list[BusEvent], group_start: str) -> bool:
        try:
            self._publisher().publish(group)
        except ChatFlowError:
            logger.exception(
                "events not published; the batch is retried from here", extra={"record": group_start}
            )
            return False
        for event in group:
            metrics.add_metric(name=event.detail_type, unit="Count", value=1)
        logger.info("published", extra={"events": [e.detail_type for e in group]})
        return True
