"""SmsEventsFunction: the events of a stream batch go out ten per call; a failure retries from its group.

Then, on moto through the table's stream and the bus: the details a consumer reads
(``occurredAt``, ``sequence``, ``SmsExpired``), whatever order the record's changes came in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chatflow.domain.clock import from_iso, to_iso
from local.stack import InProcessStack
from tests.sms_fakes import InMemoryBus

SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "events" / "sms_events_stream.json").read_text())


def _records(count: int) -> list[dict[str, Any]]:
    """``count`` stream records, each a command becoming sent (one SmsSent each)."""
    template = SAMPLE["Records"][0]
    records = []
    for i in range(count):
        record = json.loads(json.dumps(template))
        for image in ("OldImage", "NewImage"):
            record["dynamodb"][image]["commandId"] = {"S": f"c-{i}"}
        record["dynamodb"]["SequenceNumber"] = f"{1000 + i}"
        record["eventID"] = f"e-{i}"
        records.append(record)
    return records


@pytest.fixture
def stack() -> Iterator[InProcessStack]:
    with mock_aws():
        yield InProcessStack.create(parameters={"AuthMode": "phone"})


def _with_publisher(stack: InProcessStack, publisher: InMemoryBus) -> None:
    module = stack.functions["SmsEventsFunction"].module
    module.deps.provide("event_publisher", publisher)


def test_the_events_of_a_batch_go_out_ten_per_call(stack: InProcessStack) -> None:
    publisher = InMemoryBus()
    _with_publisher(stack, publisher)

    response = stack.invoke("SmsEventsFunction", {"Records": _records(23)})

    assert response == {"batchItemFailures": []}
    assert [len(call) for call in publisher.calls] == [10, 10, 3]
    assert [e.detail["commandId"] for call in publisher.calls for e in call] == [f"c-{i}" for i in range(23)]


def test_a_group_that_cannot_be_published_is_retried_from_its_first_record(stack: InProcessStack) -> None:
    publisher = InMemoryBus(fail_on_call=2)
    _with_publisher(stack, publisher)

    response = stack.invoke("SmsEventsFunction", {"Records": _records(23)})

    # The first ten are done; the batch is retried from the 11th record
    assert response == {"batchItemFailures": [{"itemIdentifier": "1010"}]}
    assert len(publisher.calls) == 2


def test_records_that_mean_no_event_publish_nothing(stack: InProcessStack) -> None:
    publisher = InMemoryBus()
    _with_publisher(stack, publisher)
    record = _records(1)[0]
    record["dynamodb"]["NewImage"]["status"] = {"S": "sending"}

    response = stack.invoke("SmsEventsFunction", {"Records": [record]})

    assert response == {"batchItemFailures": []}
    assert publisher.calls == []


# ---- Through the stream and the bus: the details a consumer of the bus reads ----------


class Bus:
    """The stack's SMS table and a queue that a rule on the bus copies every SMS event to."""

    def __init__(self, stack: InProcessStack) -> None:
        self.stack = stack
        self.dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.table = stack.template.physical_ids["SmsTable"]
        self.queue_url = self.sqs.create_queue(QueueName="observed-sms-events")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events = boto3.client("events", region_name="us-east-1")
        bus = stack.template.physical_ids["SmsEventBus"]
        events.put_rule(
            Name="observe", EventBusName=bus, EventPattern=json.dumps({"source": ["chatflow.sms"]})
        )
        events.put_targets(Rule="observe", EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])

    def write(self, command_id: str, **attributes: Any) -> None:
        """Set ``attributes`` on the command's record (created if new), as the store's writes do."""
        names = {f"#a{i}": name for i, name in enumerate(attributes)}
        values = {f":v{i}": _value(v) for i, v in enumerate(attributes.values())}
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"PK": {"S": f"CMD#{command_id}"}, "SK": {"S": "STATE"}},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(attributes))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def claim(self, command_id: str, to: str = "+14155550101", to_type: str = "phone") -> None:
        self.write(
            command_id,
            commandId=command_id,
            status="sending",
            to=to,
            toType=to_type,
            messageType="transactional",
            metadata={"orderId": "42"},
            attempts=0,
            validUntil="2026-11-24T10:10:00.000Z",
            leaseUntil=1795514460000,
        )

    def published(self) -> list[dict[str, Any]]:
        self.stack.drain_streams()
        events = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return events


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    return {"M": {k: _value(v) for k, v in value.items()}}


@pytest.fixture
def bus(stack: InProcessStack) -> Bus:
    return Bus(stack)


def test_an_expired_command_publishes_one_smsexpired_with_its_validity_and_order(bus: Bus) -> None:
    # Given a command to a SIM, being sent, whose one provider call failed
    bus.claim("otp-1", to="89445001021983048260", to_type="iccid")
    bus.write("otp-1", attempts=1, lastError="provider_unavailable: 503")
    # When it reaches its validUntil unsent, and then a receipt for it is recorded anyway
    bus.write(
        "otp-1", status="expired", expiredAt="2026-11-24T10:10:00.250Z", updatedAt="2026-11-24T10:10:00.250Z"
    )
    bus.write("otp-1", delivery="delivered", deliveryAt="2026-11-24T10:10:01.000Z", receiptProviderId="pm_1")
    events = bus.published()

    # Then exactly one event tells its end, as the contract words it, and the receipt tells nothing
    assert [(e["source"], e["detail-type"]) for e in events] == [("chatflow.sms", "SmsExpired")]
    assert events[0]["detail"] == {
        "commandId": "otp-1",
        "iccid": "89445001021983048260",
        "validUntil": "2026-11-24T10:10:00.000Z",
        "expiredAt": "2026-11-24T10:10:00.250Z",
        "attempts": 1,
        "metadata": {"orderId": "42"},
        "occurredAt": "2026-11-24T10:10:00.250Z",
        "sequence": 1,
    }


def test_a_receipt_recorded_before_the_send_is_published_after_it_in_sequence(bus: Bus) -> None:
    # Given a command being sent, whose receipt (provider clock) is recorded before its send
    bus.claim("fast-1")
    bus.write("fast-1", delivery="delivered", deliveryAt="2026-11-24T10:00:00.100Z", receiptProviderId="pm_9")
    # When the send is then recorded (our clock, later)
    bus.write(
        "fast-1",
        status="sent",
        attempts=1,
        providerMessageId="pm_9",
        segments=1,
        encoding="GSM-7",
        sentAt="2026-11-24T10:00:00.180Z",
    )
    events = bus.published()

    # Then SmsSent (1) and SmsDelivered (2), each at the time its state was reached
    assert [(e["detail-type"], e["detail"]["sequence"], e["detail"]["occurredAt"]) for e in events] == [
        ("SmsSent", 1, "2026-11-24T10:00:00.180Z"),
        ("SmsDelivered", 2, "2026-11-24T10:00:00.100Z"),
    ]
    assert events[1]["detail"] == {
        "commandId": "fast-1",
        "providerMessageId": "pm_9",
        "status": "delivered",
        "at": "2026-11-24T10:00:00.100Z",
        "metadata": {"orderId": "42"},
        "occurredAt": "2026-11-24T10:00:00.100Z",
        "sequence": 2,
    }


def test_a_failed_command_publishes_smsfailed_first_in_sequence_at_its_time(bus: Bus) -> None:
    bus.claim("bad-1")
    bus.write(
        "bad-1",
        status="failed",
        attempts=1,
        errorCode="invalid_destination",
        reason="no such number",
        permanent=True,
        failedAt="2026-11-24T10:00:02.000Z",
    )
    events = bus.published()

    assert [(e["detail-type"], e["detail"]["sequence"], e["detail"]["occurredAt"]) for e in events] == [
        ("SmsFailed", 1, "2026-11-24T10:00:02.000Z")
    ]


def test_a_rejection_is_published_with_the_time_it_was_recorded(bus: Bus) -> None:
    # Given an invalid command recorded as the gateway records one
    before = datetime.now(UTC).replace(microsecond=0)
    bus.dynamodb.put_item(
        TableName=bus.table,
        Item={
            "PK": {"S": "REJ#r1"},
            "SK": {"S": "REJ"},
            "reason": {"S": "body is not JSON"},
            "body": {"S": "nope"},
            "at": {"S": to_iso(before)},
        },
    )
    events = bus.published()

    # Then SmsRejected says when (to the second) and that it is the only event of that body
    assert [e["detail-type"] for e in events] == ["SmsRejected"]
    detail = events[0]["detail"]
    assert (detail["reason"], detail["body"], detail["sequence"]) == ("body is not JSON", "nope", 1)
    assert before <= from_iso(detail["occurredAt"]) <= datetime.now(UTC)
