"""Stream records decoded into the changes they mean (adapters/streams.py): the tables' key
layouts stay in the adapters, the functions and services see ``application.changes``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from chatflow.adapters.streams import chat_change, connection_change, realtime_change, sms_change
from chatflow.application.changes import (
    ChatChanged,
    ConnectionExpired,
    MessageStored,
    PresenceChanged,
    SmsRecordChanged,
)
from tests.fakes import EPOCH

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sample(name: str) -> DynamoDBRecord:
    return DynamoDBRecord(json.loads((EVENTS / f"{name}.json").read_text())["Records"][0])


def record(
    event: str, keys: dict[str, str], old: dict[str, Any] | None, new: dict[str, Any] | None
) -> DynamoDBRecord:
    stream: dict[str, Any] = {"Keys": {k: {"S": v} for k, v in keys.items()}, "SequenceNumber": "7"}
    if old is not None:
        stream["OldImage"] = old
    if new is not None:
        stream["NewImage"] = new
    return DynamoDBRecord({"eventID": "e-7", "eventName": event, "dynamodb": stream})


def test_given_a_chat_meta_record_when_decoded_then_it_is_the_chat_before_and_after() -> None:
    change = chat_change(sample("chat_activity_stream"))

    assert isinstance(change, ChatChanged)
    assert change.old is not None
    assert change.new is not None
    assert change.new.chat_id == change.old.chat_id


def test_given_a_new_message_record_when_decoded_then_it_is_the_stored_message() -> None:
    change = chat_change(sample("chat_activity_message_insert"))

    assert isinstance(change, MessageStored)
    assert change.message.seq == 1


def test_given_a_changed_message_record_when_decoded_then_it_means_nothing() -> None:
    raw = sample("chat_activity_message_insert").raw_event
    modified = DynamoDBRecord({**raw, "eventName": "MODIFY"})

    assert chat_change(modified) is None


def test_given_a_connection_deleted_by_the_ttl_when_decoded_then_it_is_an_expired_connection() -> None:
    old = {"PK": {"S": "CONN#abc="}, "SK": {"S": "CONN"}, "phoneNumber": {"S": "+14155550101"}}

    change = connection_change(record("REMOVE", {"PK": "CONN#abc=", "SK": "CONN"}, old, None), EPOCH)

    assert change == ConnectionExpired("+14155550101", "abc=")


def test_given_a_presence_record_when_decoded_then_it_is_the_presence_before_and_after() -> None:
    until = {"N": str(int(EPOCH.timestamp() * 1000) + 60_000)}
    old = {"PK": {"S": "USER#+14155550101"}, "SK": {"S": "PRESENCE"}, "connections": {"M": {}}}
    new = {"PK": {"S": "USER#+14155550101"}, "SK": {"S": "PRESENCE"}, "connections": {"M": {"a1": until}}}
    keys = {"PK": "USER#+14155550101", "SK": "PRESENCE"}

    change = realtime_change(record("MODIFY", keys, old, new), EPOCH)

    assert isinstance(change, PresenceChanged)
    assert change.old is not None
    assert (change.old.online, change.new.online, change.new.connections) == (False, True, ("a1",))


def test_given_a_command_record_when_decoded_then_it_is_its_snapshot_before_and_after() -> None:
    change = sms_change(sample("sms_events_stream"))

    assert isinstance(change, SmsRecordChanged)
    assert change.old is not None
    assert change.new is not None
    assert (change.old.status, change.new.status) == ("sending", "sent")
    assert change.sequence_number == "111100000000000012345678"
    assert change.rejected is None


def test_given_a_new_rejection_record_when_decoded_then_it_is_the_rejection() -> None:
    new = {
        "PK": {"S": "REJ#1"},
        "SK": {"S": "REJ"},
        "reason": {"S": "no destination"},
        "body": {"S": "{}"},
        "at": {"S": "2026-01-01T12:00:00.000Z"},
    }

    change = sms_change(record("INSERT", {"PK": "REJ#1", "SK": "REJ"}, None, new))

    assert change.rejected is not None
    assert (change.rejected.reason, change.new) == ("no destination", None)
