"""Which bus events a change of a command's record means (the transactional outbox).

The publisher sees the record before and after each change (the table's stream) and
publishes exactly the events of that change:

- ``SmsSent``, ``SmsFailed`` or ``SmsExpired`` when the command ended (became ``sent``,
  ``failed`` or ``expired``). A command ends once: a record that had ended yields no other
  end, whatever its next image says.
- ``SmsDelivered`` / ``SmsUndelivered`` when a receipt is recorded on a sent command, or
  when the command becomes sent after its receipt came first (fast providers). A receipt
  on a failed or expired command yields nothing: that command's one end is already told.
- ``SmsRejected`` when an invalid command was recorded.

Every detail carries ``occurredAt`` (when that state was reached) and ``sequence`` (its
place among the command's events: the end is 1, the receipt, which only follows a send,
is 2; a rejection is 1). A consumer orders one command's events by ``sequence``, never by
``occurredAt``: the receipt's time is the provider's clock, which may read earlier than
our ``sentAt`` for a fast delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENDED = frozenset({"sent", "failed", "expired"})
# Each state's place in a command's history; events carry it as ``sequence``.
END_SEQUENCE = 1
RECEIPT_SEQUENCE = 2
REJECTED_SEQUENCE = 1


@dataclass(frozen=True)
class BusEvent:
    """An event for the bus: ``detail_type`` (``SmsSent``...) and its JSON ``detail``."""

    detail_type: str
    detail: Mapping[str, Any]
    source: str = "chatflow.sms"
    # Identifies the event for retries of a partially failed batch.
    event_id: str = field(default="")


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
    at: str | None = None  # when the invalid command was recorded (ISO-8601)


def _destination(snapshot: CommandSnapshot) -> dict[str, str]:
    return {"iccid" if snapshot.to_type == "iccid" else "phoneNumber": snapshot.to}


def events_between(old: CommandSnapshot | None, new: CommandSnapshot) -> list[BusEvent]:
    if old is not None and old.status in ENDED:
        # The command had ended: its end was told. Only its receipt can still be news.
        receipt_is_new = old.status == new.status == "sent" and old.delivery is None
        return [_receipt(new)] if receipt_is_new and new.delivery is not None else []
    if new.status == "sent":
        return [_sent(new)] + ([_receipt(new)] if new.delivery is not None else [])
    if new.status == "failed":
        return [_failed(new)]
    if new.status == "expired":
        return [_expired(new)]
    return []


def _sent(new: CommandSnapshot) -> BusEvent:
    detail: dict[str, Any] = {
        "commandId": new.command_id,
        **_destination(new),
        "providerMessageId": new.provider_message_id,
        "segments": new.segments,
        "encoding": new.encoding,
        "attempts": new.attempts,
        "sentAt": new.sent_at,
        "metadata": dict(new.metadata),
        "occurredAt": new.sent_at,
        "sequence": END_SEQUENCE,
    }
    return BusEvent("SmsSent", detail, event_id=f"{new.command_id}:sent")


def _failed(new: CommandSnapshot) -> BusEvent:
    detail: dict[str, Any] = {
        "commandId": new.command_id,
        **_destination(new),
        "errorCode": new.error_code,
        "reason": new.reason,
        "permanent": bool(new.permanent),
        "attempts": new.attempts,
        "failedAt": new.failed_at,
        "metadata": dict(new.metadata),
        "occurredAt": new.failed_at,
        "sequence": END_SEQUENCE,
    }
    return BusEvent("SmsFailed", detail, event_id=f"{new.command_id}:failed")


def _expired(new: CommandSnapshot) -> BusEvent:
    detail: dict[str, Any] = {
        "commandId": new.command_id,
        **_destination(new),
        "validUntil": new.valid_until,
        "expiredAt": new.expired_at,
        "attempts": new.attempts,
        "metadata": dict(new.metadata),
        "occurredAt": new.expired_at,
        "sequence": END_SEQUENCE,
    }
    return BusEvent("SmsExpired", detail, event_id=f"{new.command_id}:expired")


def _receipt(new: CommandSnapshot) -> BusEvent:
    detail_type = "SmsDelivered" if new.delivery == "delivered" else "SmsUndelivered"
    detail: dict[str, Any] = {
        "commandId": new.command_id,
        "providerMessageId": new.provider_message_id,
        "status": new.delivery,
        "at": new.delivery_at,
        "metadata": dict(new.metadata),
        "occurredAt": new.delivery_at,
        "sequence": RECEIPT_SEQUENCE,
    }
    return BusEvent(detail_type, detail, event_id=f"{new.command_id}:{new.delivery}")


def rejected_event(rejection: Rejection, event_id: str) -> BusEvent:
    detail = {
        "reason": rejection.reason,
        "body": rejection.body,
        "occurredAt": rejection.at,
        "sequence": REJECTED_SEQUENCE,
    }
    return BusEvent("SmsRejected", detail, event_id=event_id)
