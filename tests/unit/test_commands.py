"""The SendSms command at the queue's edge: the contract's names, seed 004's, and validity."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chatflow.commands import InvalidCommand, command_body, parse_command


def test_a_seed_shaped_command_is_read_with_the_sqs_message_id_as_its_command_id() -> None:
    sms = parse_command(
        json.dumps({"PhoneNumber": "+1 415 555 0101", "SmsText": "Your order shipped"}), "m-1"
    )

    assert (sms.command_id, sms.to, sms.to_type, sms.text) == (
        "m-1",
        "+14155550101",
        "phone",
        "Your order shipped",
    )
    assert sms.message_type == "transactional"


def test_every_seed_synonym_is_accepted() -> None:
    body = {
        "CommandId": "c-9",
        "Iccid": "8944500102198304826",
        "SmsText": "hi",
        "SenderId": "ChatFlow",
        "MessageType": "promotional",
        "Metadata": {"campaign": "x"},
        "ValidUntil": "2026-12-03T10:00:00Z",
    }

    sms = parse_command(json.dumps(body), "m-2")

    assert (sms.command_id, sms.to, sms.to_type, sms.sender_id, sms.message_type) == (
        "c-9",
        "8944500102198304826",
        "iccid",
        "ChatFlow",
        "promotional",
    )
    assert dict(sms.metadata) == {"campaign": "x"}
    assert sms.valid_until == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_a_field_given_twice_with_different_values_is_refused_saying_which() -> None:
    body = {"commandId": "a", "CommandId": "b", "phoneNumber": "+14155550101", "text": "x"}

    with pytest.raises(InvalidCommand, match="CommandId and commandId"):
        parse_command(json.dumps(body), "m")


def test_the_same_field_under_both_names_with_one_value_is_fine() -> None:
    body = {"text": "x", "SmsText": "x", "phoneNumber": "+14155550101"}

    assert parse_command(json.dumps(body), "m").text == "x"


def test_a_command_with_no_id_anywhere_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="commandId"):
        parse_command(json.dumps({"phoneNumber": "+14155550101", "text": "x"}))


@pytest.mark.parametrize(
    ("value", "problem"),
    [("tomorrow", "ISO-8601"), ("2026-12-03T10:00:00", "time zone"), (17, "string")],
)
def test_a_bad_valid_until_is_refused_saying_what_to_send(value: object, problem: str) -> None:
    body = {"commandId": "c", "phoneNumber": "+14155550101", "text": "x", "validUntil": value}

    with pytest.raises(InvalidCommand, match=problem):
        parse_command(json.dumps(body))


def test_valid_until_in_another_zone_is_kept_as_the_same_instant() -> None:
    body = {
        "commandId": "c",
        "phoneNumber": "+14155550101",
        "text": "x",
        "validUntil": "2026-12-03T12:00:00+02:00",
    }

    assert parse_command(json.dumps(body)).valid_until == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_a_command_sent_again_reads_back_the_same() -> None:
    body = {
        "PhoneNumber": "+14155550101",
        "SmsText": "héllo",
        "SenderId": "Shop",
        "Metadata": {"k": "v"},
        "ValidUntil": "2026-12-03T10:00:00Z",
    }
    first = parse_command(json.dumps(body), "m-3")

    again = parse_command(command_body(first), "another-message-id")

    assert again == first
