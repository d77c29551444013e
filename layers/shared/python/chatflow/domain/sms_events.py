"""Which bus events a change of a command's record means (the transactional outbox).

The publisher sees the record before and after each change (the table's stream) and
publishes exactly the events of that change: ``SmsSent`` when it became sent,
``SmsFailed`` when it became failed, ``SmsDelivered`` / ``SmsUndelivered`` when a
receipt is recorded on a sent command (or the command becomes sent after its receipt
came first), ``SmsRejected`` when an invalid command was recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatflow.ports import BusEvent


@dataclass(frozen=True)
class CommandSnapshot:
    """A command's record at one moment, as the outbox needs it."""

    command_id: str
    status: str
    to: str = ""
    to_type: str = "phone"
    attempts: int = 0
    provider_message_id: str | None = None
    segments: int | None = None
    encoding: str | None = None
    sent_at: str | None = None
    error_code: str | None = None
    reason: str | None = None
    permanent: bool | None = None
    failed_at: str | None = None
    delivery: str | None = None
    delivery_at: str | None = None
    valid_until: str | None = None
    expired_at: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    reason: str
    body: str


def _destination(snapshot: CommandSnapshot) -> dict[str, str]:
    return {"iccid" if snapshot.to_type == "iccid" else "phoneNumber": snapshot.to}


def events_between(old: CommandSnapshot | None, new: CommandSnapshot) -> list[BusEvent]:
    events: list[BusEvent] = []
    was = old.status if old else None
    if new.status == "sent" and was != "sent":
        detail: dict[str, Any] = {
            "commandId": new.command_id,
            **_destination(new),
            "providerMessageId": new.provider_message_id,
            "segments": new.segments,
            "encoding": new.encoding,
            "attempts": new.attempts,
            "sentAt": new.sent_at,
            "metadata": dict(new.metadata),
        }
        events.append(BusEvent("SmsSent", detail, event_id=f"{new.command_id}:sent"))
    if new.status == "failed" and was != "failed":
        detail = {
            "commandId": new.command_id,
            **_destination(new),
            "errorCode": new.error_code,
            "reason": new.reason,
            "permanent": bool(new.permanent),
            "attempts": new.attempts,
            "failedAt": new.failed_at,
            "metadata": dict(new.metadata),
        }
        events.append(BusEvent("SmsFailed", detail, event_id=f"{new.command_id}:failed"))
    delivered_before = old is not None and old.status == "sent" and old.delivery is not None
    if new.status == "sent" and new.delivery is not None and not delivered_before:
        detail_type = "SmsDelivered" if new.delivery == "delivered" else "SmsUndelivered"
        detail = {
            "commandId": new.command_id,
            "providerMessageId": new.provider_message_id,
            "status": new.delivery,
            "at": new.delivery_at,
            "metadata": dict(new.metadata),
        }
        events.append(BusEvent(detail_type, detail, event_id=f"{new.command_id}:{new.delivery}"))
    return events


def rejected_event(rejection: Rejection, event_id: str) -> BusEvent:
    return BusEvent("SmsRejected", {"reason": rejection.reason, "body": rejection.body}, event_id=event_id)
