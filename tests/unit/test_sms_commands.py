"""The one SendSms producer: the command model's body and the SQS adapter (on a fake client)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from chatflow.adapters.batch_retry import BatchRetry
from chatflow.adapters.sms_commands import SqsSmsCommandSender
from chatflow.commands import SendSmsCommand, parse_command
from chatflow.errors import Throttled

QUEUE = "https://sqs.example/123/SendSmsQueue"


def command(n: int = 0, **fields: Any) -> SendSmsCommand:
    return SendSmsCommand(commandId=f"cmd-{n}", phoneNumber="+14155550101", text=f"hello {n}", **fields)


class FakeSqs:
    """Records each call; ``fail_ids`` lists, per SendMessageBatch call, the entry ids it fails."""

    def __init__(self, fail_ids: list[set[str]] | None = None, error: str | None = None) -> None:
        self.batches: list[list[dict[str, str]]] = []
        self.messages: list[str] = []
        self._fail_ids = list(fail_ids or [])
        self._error = error

    def send_message(self, *, QueueUrl: str, MessageBody: str) -> dict[str, Any]:
        self.messages.append(MessageBody)
        return {}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        if self._error:
            raise ClientError({"Error": {"Code": self._error, "Message": "slow down"}}, "SendMessageBatch")
        self.batches.append(Entries)
        failing = self._fail_ids.pop(0) if self._fail_ids else set()
        failed = [
            {"Id": e["Id"], "Code": "InternalError", "SenderFault": False}
            for e in Entries
            if e["Id"] in failing
        ]
        return {"Successful": [{"Id": e["Id"]} for e in Entries if e["Id"] not in failing], "Failed": failed}


def sender(sqs: FakeSqs, slept: list[float] | None = None, rounds: int = 5) -> SqsSmsCommandSender:
    retry = BatchRetry(rounds=rounds, sleep=(slept if slept is not None else []).append, jitter=lambda d: d)
    return SqsSmsCommandSender(QUEUE, client=cast("Any", sqs), retry=retry)


def test_the_body_uses_the_contracts_camel_case_names_and_leaves_out_absent_fields() -> None:
    body = command(validUntil="2026-12-03T10:00:00Z", metadata={"chatId": "c1"}).body()

    assert json.loads(body) == {
        "commandId": "cmd-0",
        "phoneNumber": "+14155550101",
        "text": "hello 0",
        "messageType": "transactional",
        "metadata": {"chatId": "c1"},
        "validUntil": "2026-12-03T10:00:00.000Z",
    }


def test_the_consumer_parses_the_body_a_producer_sent_back_to_the_same_command() -> None:
    sent = command(iccid=None, senderId="ChatFlow", metadata={"purpose": "sign-in"})

    parsed = parse_command(sent.body())

    assert SendSmsCommand.of(parsed) == sent


def test_send_puts_one_message_whose_body_is_the_command() -> None:
    sqs = FakeSqs()

    sender(sqs).send(command(1))

    assert sqs.messages == [command(1).body()]


def test_send_all_sends_batches_of_ten_in_order() -> None:
    sqs = FakeSqs()

    sender(sqs).send_all([command(n) for n in range(23)])

    assert [len(batch) for batch in sqs.batches] == [10, 10, 3]
    bodies = [entry["MessageBody"] for batch in sqs.batches for entry in batch]
    assert bodies == [command(n).body() for n in range(23)]


def test_entries_sqs_failed_are_sent_again_alone_after_a_wait() -> None:
    sqs = FakeSqs(fail_ids=[{"2", "7"}])
    slept: list[float] = []

    sender(sqs, slept).send_all([command(n) for n in range(10)])

    assert [entry["MessageBody"] for entry in sqs.batches[1]] == [command(2).body(), command(7).body()]
    assert slept == [0.05]


def test_an_entry_that_keeps_failing_raises_throttled_after_the_last_round() -> None:
    sqs = FakeSqs(fail_ids=[{"0"}] * 3)
    slept: list[float] = []

    with pytest.raises(Throttled, match="1 SendSms commands not taken after 3 attempts"):
        sender(sqs, slept, rounds=3).send_all([command(0), command(1)])

    assert (len(sqs.batches), slept) == (3, [0.05, 0.1])


def test_a_throttled_batch_call_raises_throttled() -> None:
    with pytest.raises(Throttled):
        sender(FakeSqs(error="RequestThrottled")).send_all([command(0)])
