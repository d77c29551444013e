"""DynamoDB stream records (Powertools' ``DynamoDBRecord``) decoded into the changes they mean.

The tables' key layouts (``~META``, ``MSG#``, ``CONN``, ``PRESENCE``, ``CMD#``, ``REJ#``)
are the adapters' knowledge: the functions and services see ``chatflow.application.changes``.
Each decoder imports its table's store when called: a function loads only its tables' code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from chatflow.adapters.dynamo import from_raw
from chatflow.application.changes import (
    ChatChanged,
    ChatTableChange,
    ConnectionExpired,
    ConnectionTableChange,
    MessageStored,
    PresenceChanged,
    SmsRecordChanged,
)

_CONNECTION_PREFIX = "CONN#"


def _raw(record: DynamoDBRecord) -> dict[str, Any]:
    stream = record.dynamodb
    return stream.raw_event if stream is not None else {}


def _sort_key(raw: dict[str, Any]) -> str:
    return str((raw.get("Keys") or {}).get("SK", {}).get("S", ""))


def _images(raw: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    old = from_raw(raw["OldImage"]) if raw.get("OldImage") else None
    new = from_raw(raw["NewImage"]) if raw.get("NewImage") else None
    return old, new


def chat_change(record: DynamoDBRecord) -> ChatTableChange | None:
    """A chats table record: a chat's ``~META`` item, or a new message; None for the rest."""
    from chatflow.adapters.chat_store import CHAT_SK, chat_from_item, message_from_item

    raw = _raw(record)
    sort_key = _sort_key(raw)
    if sort_key == CHAT_SK:
        old, new = _images(raw)
        return ChatChanged(chat_from_item(old) if old else None, chat_from_item(new) if new else None)
    if sort_key.startswith("MSG#") and record.event_name == DynamoDBRecordEventName.INSERT:
        return MessageStored(message_from_item(from_raw(raw["NewImage"])))
    return None


def connection_change(record: DynamoDBRecord, now: datetime) -> ConnectionTableChange | None:
    """A connections table record: a presence change, or a connection deleted by the TTL."""
    from chatflow.adapters.connection_store import CONNECTION_SK, PRESENCE_SK, presence_from_item

    raw = _raw(record)
    sort_key = _sort_key(raw)
    old, new = _images(raw)
    if sort_key == CONNECTION_SK and old is not None and new is None:
        return ConnectionExpired(str(old["phoneNumber"]), str(old["PK"])[len(_CONNECTION_PREFIX) :])
    if sort_key == PRESENCE_SK and new is not None:
        return PresenceChanged(presence_from_item(old, now) if old else None, presence_from_item(new, now))
    return None


def sms_change(record: DynamoDBRecord) -> SmsRecordChanged:
    """An SMS table record: a command's record before and after, or a new rejection."""
    from chatflow.adapters.sms_store import rejection, snapshot

    raw = _raw(record)
    old_image = raw.get("OldImage")
    return SmsRecordChanged(
        sequence_number=str(raw.get("SequenceNumber")),
        event_id=str(record.event_id),
        old=snapshot(old_image),
        new=snapshot(raw.get("NewImage")),
        rejected=rejection(raw.get("NewImage")) if not old_image else None,
    )


def realtime_change(record: DynamoDBRecord, now: datetime) -> ChatTableChange | ConnectionTableChange | None:
    """A record of either stream the fan-out reads (their sort keys do not overlap)."""
    return chat_change(record) or connection_change(record, now)
