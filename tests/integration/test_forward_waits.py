"""Forwards that wait (CONTRACT §7), through the fan-out and ForwardsFunction on moto.

A member with no open connection gets, ``ForwardAfterSeconds`` after a message, one SMS of
what they still have not read; a read cancels; a burst is one digest; one SMS per chat and
member per 10 minutes; never to an opted-out number; a job delivered twice sends once.
Most tests run with ``ForwardAfterSeconds`` 0 and end the waits when they choose
(``end_waits``); one runs with a real delay, which moto's SQS honours.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.endpoint import Endpoint
from moto import mock_aws

from chatflow.adapters.sms_store import DynamoOptOutRepository
from chatflow.domain.realtime import FORWARD_SUFFIX, FORWARD_WINDOW
from chatflow.domain.sms import segments
from local.sources import _sqs_record
from local.specs import REGION
from local.stack import InProcessStack
from tests.integration.conftest import ApiClient
from tests.integration.test_realtime import ALICE, BOB, CAROL, Sockets

DAVE = "+14155550104"


def make_stack(after: int) -> InProcessStack:
    return InProcessStack.create(parameters={"AuthMode": "phone", "ForwardAfterSeconds": str(after)})


@pytest.fixture
def stack() -> Iterator[InProcessStack]:
    with mock_aws():
        yield make_stack(0)


@pytest.fixture
def ws(stack: InProcessStack, api: ApiClient) -> Sockets:
    return Sockets(stack, api)


def sms_commands() -> list[dict[str, Any]]:
    """The SendSms commands queued since the last call (taken off the queue)."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName="SendSmsQueue")["QueueUrl"]
    commands: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            commands.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return commands


def end_waits(stack: InProcessStack) -> list[dict[str, Any]]:
    """Run the fan-out, then every wait that is over; the SMS commands that queued."""
    stack.drain_streams()
    stack.drain_queue("ForwardsFunction")
    return sms_commands()


def name(api: ApiClient, token: str, display_name: str) -> None:
    assert api.call("PATCH", "/v1/users/me", {"displayName": display_name}, token=token).status == 200


@pytest.fixture
def trip(api: ApiClient, stack: InProcessStack) -> tuple[str, str, str, str]:
    """Ana (Alice) and Ben (Bob) in the group "Trip" with Carol, who never signed in; drained."""
    alice, bob = api.sign_in(ALICE), api.sign_in(BOB)
    name(api, alice, "Ana")
    name(api, bob, "Ben")
    chat_id = api.create_group(alice, [BOB, CAROL], name="Trip")
    end_waits(stack)
    return alice, bob, chat_id, CAROL


def test_what_is_unread_when_the_wait_ends_goes_out_as_one_sms(
    api: ApiClient, stack: InProcessStack, trip: tuple[str, str, str, str]
) -> None:
    # Given Carol offline in Trip
    alice, _, chat_id, carol = trip

    # When Ana writes and the wait ends with it unread
    api.send(alice, chat_id, "see you at 8")
    stack.drain_streams()
    commands = end_waits(stack)

    # Then Carol gets one SMS (Ben, offline too, gets his own), as §3 words a single message
    [command] = [c for c in commands if c["phoneNumber"] == carol]
    assert command["text"] == "Ana: see you at 8"
    assert command["messageType"] == "transactional"
    assert command["metadata"]["chatId"] == chat_id
    valid_until = datetime.fromisoformat(command["validUntil"].replace("Z", "+00:00"))
    assert timedelta(minutes=9) < valid_until - datetime.now(UTC) <= timedelta(minutes=10)


def test_a_burst_is_one_digest_naming_the_chat_and_the_senders(
    api: ApiClient, stack: InProcessStack, trip: tuple[str, str, str, str]
) -> None:
    # Given Carol offline, and a burst by Ana and Ben handled by the fan-out one by one
    alice, bob, chat_id, carol = trip
    for token, text in ((alice, "see you at 8"), (bob, "ok"), (alice, "bring snacks")):
        api.send(token, chat_id, text)
        stack.drain_streams()

    # When the wait ends
    commands = end_waits(stack)

    # Then Carol gets one SMS for the three, naming the chat and each sender, in one segment
    [command] = [c for c in commands if c["phoneNumber"] == carol]
    assert command["text"] == "3 new messages in Trip: Ana: see you at 8 / Ben: ok / Ana: bring snacks"
    assert segments(command["text"]).count == 1
    assert command["metadata"]["chatId"] == chat_id


def test_a_long_burst_still_fits_one_segment(
    api: ApiClient, stack: InProcessStack, trip: tuple[str, str, str, str]
) -> None:
    alice, bob, chat_id, carol = trip
    for token in (alice, bob, alice, bob):
        api.send(token, chat_id, "word " * 100)
        stack.drain_streams()

    [command] = [c for c in end_waits(stack) if c["phoneNumber"] == carol]

    assert command["text"].startswith("4 new messages in Trip")
    assert command["text"].endswith(FORWARD_SUFFIX)
    assert segments(command["text"]).count == 1


def test_a_read_before_the_wait_ends_cancels_the_forward(
    api: ApiClient, stack: InProcessStack, trip: tuple[str, str, str, str]
) -> None:
    # Given Ben offline, with a wait started by Ana's two messages
    alice, bob, chat_id, _ = trip
    api.send(alice, chat_id, "first")
    api.send(alice, chat_id, "second")
    stack.drain_streams()

    # When he reads them (over HTTP, on another device) before the wait ends
    receipt = {"type": "read", "upToSeq": 2}
    assert api.call("POST", f"/v1/chats/{chat_id}/receipts", receipt, token=bob).status == 204
    commands = end_waits(stack)

    # Then he gets no SMS, and his budget is free: Ana's next message starts a new wait
    assert [c for c in commands if c["phoneNumber"] == BOB] == []
    api.send(alice, chat_id, "third")
    [command] = [c for c in end_waits(stack) if c["phoneNumber"] == BOB]
    assert command["text"] == "Ana: third"


def test_a_read_of_part_of_the_burst_forwards_only_the_rest(
    api: ApiClient, stack: InProcessStack, trip: tuple[str, str, str, str]
) -> None:
    alice, bob, chat_id, _ = trip
    for text in ("one", "two", "three"):
        api.send(alice, chat_id, text)
    stack.drain_streams()
    receipt = {"type": "read", "upToSeq": 1}
    assert api.call("POST", f"/v1/chats/{chat_id}/receipts", receipt, token=bob).status == 204

    [command] = [c for c in end_waits(stack) if c["phoneNumber"] == BOB]

    assert command["text"] == "2 new messages from Ana in Trip: two / three"


def test_a_member_online_again_when_the_wait_ends_gets_no_sms(
    api: ApiClient, stack: InProcessStack, ws: Sockets, trip: tuple[str, str, str, str]
) -> None:
    alice, _, chat_id, _ = trip
    api.send(alice, chat_id, "are you there?")
    stack.drain_streams()

    ws.open(BOB)  # the app shows it to him now

    assert [c for c in end_waits(stack) if c["phoneNumber"] == BOB] == []


def test_at_most_one_sms_per_chat_and_member_per_10_minutes(
    api: ApiClient, stack: InProcessStack, trip: tuple[str, str, str, str]
) -> None:
    # Given Ben forwarded Ana's first message
    alice, _, chat_id, _ = trip
    api.send(alice, chat_id, "first")
    assert len([c for c in end_waits(stack) if c["phoneNumber"] == BOB]) == 1

    # When she writes again within the 10 minutes, each time after the last wait ended
    for text in ("second", "third"):
        api.send(alice, chat_id, text)
        commands = end_waits(stack)

        # Then no other SMS goes out to him
        assert [c for c in commands if c["phoneNumber"] == BOB] == []


def test_an_opted_out_member_is_never_texted(
    api: ApiClient, stack: InProcessStack, trip: tuple[str, str, str, str]
) -> None:
    alice, _, chat_id, carol = trip
    DynamoOptOutRepository("SmsTable", boto3.client("dynamodb", region_name=REGION)).opt_out(
        carol, at=datetime.now(UTC)
    )

    api.send(alice, chat_id, "anyone?")
    api.send(alice, chat_id, "hello?")
    commands = end_waits(stack)

    assert [c["phoneNumber"] for c in commands] == [BOB]


def test_a_job_delivered_twice_queues_the_same_command(
    api: ApiClient, stack: InProcessStack, trip: tuple[str, str, str, str]
) -> None:
    # Given Ben's wait's job, received from the forward queue
    alice, _, chat_id, _ = trip
    api.send(alice, chat_id, "once")
    stack.drain_streams()
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName="ForwardQueue")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    [job] = [m for m in messages if json.loads(m["Body"])["phoneNumber"] == BOB]

    # When it is handled, then delivered and handled again (SQS is at least once)
    for _ in range(2):
        result = stack.invoke("ForwardsFunction", {"Records": [_sqs_record(dict(job), arn)]})
        assert result == {"batchItemFailures": []}

    # Then both queue one command under the same id: the gateway sends it once
    commands = [c for c in sms_commands() if c["phoneNumber"] == BOB]
    assert len(commands) == 2
    assert commands[0] == commands[1] | {"validUntil": commands[0]["validUntil"]}
    assert commands[0]["commandId"].startswith(f"fwd-{chat_id}-")


def test_a_failing_send_leaves_the_job_to_be_retried(
    api: ApiClient, stack: InProcessStack, trip: tuple[str, str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the SMS queue refusing sends while Ben's wait ends
    alice, _, chat_id, _ = trip
    api.send(alice, chat_id, "keep me")
    stack.drain_streams()
    make_request = Endpoint.make_request

    def refusing(self: Endpoint, operation_model: Any, request_dict: Any) -> Any:
        if operation_model.name == "SendMessageBatch" and "SendSmsQueue" in str(request_dict.get("body")):
            raise ConnectionError("SQS unreachable")
        return make_request(self, operation_model, request_dict)

    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName="ForwardQueue")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})  # (180 s in the template)
    with monkeypatch.context() as patch:
        patch.setattr(Endpoint, "make_request", refusing)
        assert stack.drain_queue("ForwardsFunction") >= 1
    assert sms_commands() == []

    # When the job comes back, its visibility timeout over, and SQS works again
    deadline = time.monotonic() + 30
    while not stack.drain_queue("ForwardsFunction"):
        assert time.monotonic() < deadline, "the job never came back"
        time.sleep(0.1)
    commands = sms_commands()

    # Then the forward goes out
    assert [c["text"] for c in commands if c["phoneNumber"] == BOB] == ["Ana: keep me"]


def test_during_a_wait_the_fanout_spends_no_call_on_the_member() -> None:
    with mock_aws():
        # Given Ben offline, his wait (of 30 s) started by Ana's first message
        stack = make_stack(30)
        api = ApiClient(stack)
        alice, _ = api.sign_in(ALICE), api.sign_in(BOB)
        chat_id = api.open_direct(alice, BOB)
        stack.drain_streams()  # (the streams are read from their latest record on)
        api.send(alice, chat_id, "first")
        stack.drain_streams()
        calls: list[str] = []
        make_request = Endpoint.make_request
        fanout = stack.functions["FanoutFunction"]
        invoke_fanout = fanout.invoke
        in_fanout = threading.Event()

        def counted(self: Endpoint, operation_model: Any, request_dict: Any) -> Any:
            if in_fanout.is_set():  # the fan-out's calls, not the other stream consumers'
                calls.append(operation_model.name)
            return make_request(self, operation_model, request_dict)

        def invoked(event: dict[str, Any]) -> Any:
            in_fanout.set()
            try:
                return invoke_fanout(event)
            finally:
                in_fanout.clear()

        # When she writes again and the fan-out handles it
        api.send(alice, chat_id, "second")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Endpoint, "make_request", counted)
            patch.setattr(fanout, "invoke", invoked)
            stack.drain_streams()

        # Then the fan-out (which looked Ben's connections up) wrote nothing and queued nothing for him
        assert "BatchGetItem" in calls, calls
        assert [c for c in calls if c in ("PutItem", "SendMessageBatch", "GetItem")] == [], calls


def test_a_wait_lasts_forward_after_seconds_on_the_queue() -> None:
    with mock_aws():
        # Given a stack whose waits last 2 s, and Ana's message to offline Ben
        stack = make_stack(2)
        api = ApiClient(stack)
        alice, _ = api.sign_in(ALICE), api.sign_in(BOB)
        name(api, alice, "Ana")
        chat_id = api.open_direct(alice, BOB)
        stack.drain_streams()  # (the streams are read from their latest record on)
        api.send(alice, chat_id, "soon")
        stack.drain_streams()
        started = time.monotonic()

        # When the forward queue is polled at once, Then nothing is due yet
        assert stack.drain_queue("ForwardsFunction") == 0

        # And when the wait is over, the job is delivered and the SMS queued
        deadline = time.monotonic() + 30
        while not stack.drain_queue("ForwardsFunction"):
            assert time.monotonic() < deadline, "the wait never ended"
            time.sleep(0.1)
        assert time.monotonic() - started >= 1.5
        assert [c["text"] for c in sms_commands()] == ["Ana: soon"]


def test_the_budget_lasts_the_forward_window() -> None:
    assert timedelta(minutes=10) == FORWARD_WINDOW
