"""The SMS gateway's functions on moto, fed real SQS messages, calling a real (fake) provider over HTTP.

SendSmsFunction consumes the queue; SmsEventsFunction publishes from the SMS table's
stream; a rule on the bus copies every event to a test queue, where the tests read them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.fake_provider import FakeProviderSettings, FakeSmsProvider
from local.sources import _sqs_record
from local.stack import InProcessStack


class Gateway:
    """The stack plus a provider, and helpers to feed commands and read events."""

    def __init__(self, stack: InProcessStack, provider: FakeSmsProvider) -> None:
        self.stack = stack
        self.provider = provider
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.queue_url = stack.template.physical_ids["SendSmsQueue"]
        self.queue_arn = stack.template.attributes[("SendSmsQueue", "Arn")]
        events = boto3.client("events", region_name="us-east-1")
        self.events_url = self.sqs.create_queue(QueueName="observed-events")["QueueUrl"]
        observed_arn = self.sqs.get_queue_attributes(QueueUrl=self.events_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        bus = stack.template.physical_ids["SmsEventBus"]
        events.put_rule(
            Name="observe", EventBusName=bus, EventPattern=json.dumps({"source": ["chatflow.sms"]})
        )
        events.put_targets(Rule="observe", EventBusName=bus, Targets=[{"Id": "q", "Arn": observed_arn}])

    def put(self, *bodies: str) -> None:
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)

    def deliver(self) -> dict[str, Any]:
        """One SQS batch to SendSmsFunction, as Lambda would; its response (batch item failures)."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", [])
        records = [_sqs_record(dict(m), self.queue_arn) for m in messages]
        response: dict[str, Any] = self.stack.invoke("SendSmsFunction", {"Records": records})
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        done: list[Any] = [
            {"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
            for i, r in enumerate(records)
            if r["messageId"] not in failed
        ]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=done)
        return response

    def published(self) -> list[dict[str, Any]]:
        self.stack.drain_streams()
        events = []
        while messages := self.sqs.receive_message(QueueUrl=self.events_url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.events_url, ReceiptHandle=message["ReceiptHandle"])
        return events

    def record(self, command_id: str) -> dict[str, Any]:
        client = boto3.client("dynamodb", region_name="us-east-1")
        item = client.get_item(
            TableName=self.stack.template.physical_ids["SmsTable"],
            Key={"PK": {"S": f"CMD#{command_id}"}, "SK": {"S": "STATE"}},
        ).get("Item", {})
        return {k: next(iter(v.values())) for k, v in item.items()}

    def signed_post(self, path: str, body: dict[str, Any], secret: str | None = None) -> Any:
        raw = json.dumps(body)
        key = secret if secret is not None else self.webhook_secret()
        signature = hmac.new(key.encode(), raw.encode(), hashlib.sha256).hexdigest()
        return self.stack.http.request(
            "POST", path, headers={"content-type": "application/json", "x-signature": signature}, body=raw
        )

    def webhook_secret(self) -> str:
        client = boto3.client("secretsmanager", region_name="us-east-1")
        value = client.get_secret_value(SecretId=self.stack.template.physical_ids["SmsProviderSecret"])
        return str(json.loads(value["SecretString"])["webhookSecret"])


@contextmanager
def running_gateway(
    rate_per_second: int = 1000, parameters: dict[str, str] | None = None
) -> Iterator[Gateway]:
    """The stack on moto with a fake provider that never fails, at that provider-wide rate
    (and any other template ``parameters``)."""
    settings = FakeProviderSettings(
        failure_rate=0.0, min_delay_ms=0, max_delay_ms=1, hang_seconds=0.2, seed=1
    )
    provider = FakeSmsProvider(settings, log=lambda line: None)
    provider.start()
    try:
        with mock_aws():
            stack = InProcessStack.create(
                parameters={
                    "AuthMode": "phone",
                    "SmsProviderBaseUrl": provider.url,
                    "SmsRatePerSecond": str(rate_per_second),
                }
                | (parameters or {})
            )
            yield Gateway(stack, provider)
    finally:
        provider.stop()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with running_gateway() as running:
        yield running


def command(command_id: str | None = None, **fields: Any) -> str:
    body = {
        "commandId": command_id or uuid.uuid4().hex,
        "phoneNumber": "+14155550101",
        "text": "hello",
    } | fields
    return json.dumps({k: v for k, v in body.items() if v is not None})


def test_a_command_is_sent_and_smssent_is_published(gateway: Gateway) -> None:
    # Given a SendSms command on the queue
    gateway.put(command("c-1", metadata={"order": "42"}))

    # When the consumer gets it and the outbox is published
    response = gateway.deliver()
    events = gateway.published()

    # Then the provider got it once, and exactly one SmsSent describes it
    assert response == {"batchItemFailures": []}
    assert [m["reference"] for m in gateway.provider.outbox()] == ["c-1"]
    assert [e["detail-type"] for e in events] == ["SmsSent"]
    detail = events[0]["detail"]
    assert detail["commandId"] == "c-1"
    assert detail["phoneNumber"] == "+14155550101"
    assert detail["providerMessageId"] == gateway.provider.outbox()[0]["id"]
    assert (detail["segments"], detail["encoding"], detail["attempts"]) == (1, "GSM-7", 1)
    assert detail["metadata"] == {"order": "42"}
    assert events[0]["source"] == "chatflow.sms"


def test_a_duplicate_command_adds_no_send_and_no_event(gateway: Gateway) -> None:
    gateway.put(command("dup"), command("dup"))

    gateway.deliver()
    events = gateway.published()

    assert len(gateway.provider.outbox()) == 1
    assert [e["detail-type"] for e in events] == ["SmsSent"]


def test_an_invalid_body_is_rejected_and_never_retried(gateway: Gateway) -> None:
    # Given a body that is not JSON and one that breaks the schema (both destinations)
    gateway.put("not json", command(iccid="89445001021983048260"))

    # When they are consumed
    response = gateway.deliver()
    events = gateway.published()

    # Then both are done (no retry) and each gives an SmsRejected naming the problem
    assert response == {"batchItemFailures": []}
    rejected = [e["detail"] for e in events if e["detail-type"] == "SmsRejected"]
    assert (
        sorted(r["body"] for r in rejected) == sorted(["not json", command(iccid="89445001021983048260")])
        or len(rejected) == 2
    )
    assert any("not JSON" in r["reason"] for r in rejected)
    assert any("exactly one of phoneNumber and iccid" in r["reason"] for r in rejected)
    assert gateway.provider.outbox() == []


def test_a_permanent_provider_refusal_gives_smsfailed_at_once(gateway: Gateway) -> None:
    gateway.put(command("bad", phoneNumber="+14155550400"))

    response = gateway.deliver()
    events = gateway.published()

    assert response == {"batchItemFailures": []}
    assert [e["detail-type"] for e in events] == ["SmsFailed"]
    detail = events[0]["detail"]
    assert (detail["errorCode"], detail["permanent"], detail["attempts"]) == ("invalid_destination", True, 1)


def _delayed(gateway: Gateway) -> int:
    attributes = gateway.sqs.get_queue_attributes(
        QueueUrl=gateway.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def test_a_transient_failure_comes_back_later_as_a_fresh_message_with_one_attempt_counted(
    gateway: Gateway,
) -> None:
    # Given a number the provider always answers 503
    gateway.put(command("flaky", phoneNumber="+14155550503"))

    # When it is consumed
    response = gateway.deliver()

    # Then this message is done and the command waits in the queue as a delayed message
    # (a fresh receive count: retries never count toward the dead-letter queue's limit);
    # nothing is published, one provider call is counted
    assert response == {"batchItemFailures": []}
    assert gateway.published() == []
    record = gateway.record("flaky")
    assert (record["status"], record["attempts"]) == ("sending", "1")
    assert gateway.sqs.receive_message(QueueUrl=gateway.queue_url).get("Messages") is None
    assert _delayed(gateway) == 1


def test_a_rate_bounce_is_a_wait_not_an_attempt_and_uses_no_receive() -> None:
    # Given a provider-wide rate of 1 per second and a batch of 10 commands at once
    with running_gateway(rate_per_second=1) as gateway:
        provider = gateway.provider
        gateway.put(*(command(f"r-{i}") for i in range(10)))

        # When the batch is consumed
        response = gateway.deliver()

        # Then those that found no slot within the wait are sent again, delayed, with no
        # attempt counted and no batch item failure (no receive used up)
        assert response == {"batchItemFailures": []}
        sent = len(provider.outbox())
        assert 1 <= sent <= 4  # 1 per second over the 2 s an attempt may wait
        assert _delayed(gateway) == 10 - sent
        waiting = [gateway.record(f"r-{i}") for i in range(10)]
        assert sorted(r["attempts"] for r in waiting if r["status"] == "sending") == ["0"] * (10 - sent)


def test_a_seed_shaped_command_is_sent_under_its_sqs_message_id(gateway: Gateway) -> None:
    # Given a producer that knows only seed 004's field names, and no command id
    gateway.sqs.send_message(
        QueueUrl=gateway.queue_url,
        MessageBody=json.dumps({"PhoneNumber": "+14155550101", "SmsText": "Your order"}),
    )

    # When it is consumed
    messages = gateway.sqs.receive_message(QueueUrl=gateway.queue_url, VisibilityTimeout=0)["Messages"]
    response = gateway.deliver()
    events = gateway.published()

    # Then it is sent, and its events name the SQS message's id as the command id
    assert response == {"batchItemFailures": []}
    assert [m["text"] for m in gateway.provider.outbox()] == ["Your order"]
    assert [(e["detail-type"], e["detail"]["commandId"]) for e in events] == [
        ("SmsSent", messages[0]["MessageId"])
    ]


def test_a_command_past_its_validity_is_never_sent_and_ends_expired(gateway: Gateway) -> None:
    gateway.put(command("late", validUntil="2020-01-01T00:00:00Z"))

    response = gateway.deliver()

    assert response == {"batchItemFailures": []}
    assert gateway.provider.outbox() == []
    record = gateway.record("late")
    assert (record["status"], record["validUntil"], record["attempts"]) == (
        "expired",
        "2020-01-01T00:00:00.000Z",
        "0",
    )


def test_a_dead_lettered_command_ends_failed_even_if_no_attempt_recorded_it(gateway: Gateway) -> None:
    # Given a command that crashed the consumer on every delivery, before its claim
    dead_letters = gateway.stack.template.physical_ids["SendSmsDeadLetterQueue"]
    dead_arn = gateway.stack.template.attributes[("SendSmsDeadLetterQueue", "Arn")]
    gateway.sqs.send_message(QueueUrl=dead_letters, MessageBody=command("poison", metadata={"order": "7"}))
    messages = gateway.sqs.receive_message(QueueUrl=dead_letters, AttributeNames=["All"])["Messages"]

    # When the dead-letter consumer gets it (twice: a redelivery changes nothing)
    records = [_sqs_record(dict(m), dead_arn) for m in messages]
    for _ in range(2):
        assert gateway.stack.invoke("SmsDeadLettersFunction", {"Records": records}) == {
            "batchItemFailures": []
        }
    events = gateway.published()

    # Then exactly one SmsFailed dead_lettered, with the command's metadata
    assert [e["detail-type"] for e in events] == ["SmsFailed"]
    detail = events[0]["detail"]
    assert (detail["commandId"], detail["errorCode"], detail["permanent"]) == (
        "poison",
        "dead_lettered",
        False,
    )
    assert detail["metadata"] == {"order": "7"}
    assert gateway.provider.outbox() == []


def test_a_dead_letter_of_a_command_that_was_sent_changes_nothing(gateway: Gateway) -> None:
    gateway.put(command("done"))
    gateway.deliver()
    gateway.published()
    dead_arn = gateway.stack.template.attributes[("SendSmsDeadLetterQueue", "Arn")]
    record = {
        "messageId": "m-1",
        "receiptHandle": "h",
        "body": command("done"),
        "attributes": {"ApproximateReceiveCount": "5"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": dead_arn,
        "awsRegion": "us-east-1",
    }

    assert gateway.stack.invoke("SmsDeadLettersFunction", {"Records": [record]}) == {"batchItemFailures": []}

    assert gateway.published() == []
    assert gateway.record("done")["status"] == "sent"


def test_a_promotional_message_to_a_number_that_sent_stop_fails_as_opted_out(gateway: Gateway) -> None:
    # Given the number sent STOP (a signed inbound SMS)
    inbound = gateway.signed_post(
        "/v1/sms/inbound", {"from": "+1 415 555 0101", "text": "Stop", "timestamp": "2026-11-24T10:00:00Z"}
    )
    assert inbound.status == 200, inbound.body
    assert inbound.json()["phoneNumber"] == "+14155550101"
    assert inbound.json()["action"] == "opted_out"

    # When a promotional and a transactional command go to it
    gateway.put(command("promo", messageType="promotional"), command("otp", messageType="transactional"))
    gateway.deliver()
    events = {e["detail"]["commandId"]: e for e in gateway.published()}

    # Then only the transactional one is sent
    assert events["promo"]["detail-type"] == "SmsFailed"
    assert events["promo"]["detail"]["errorCode"] == "opted_out"
    assert events["otp"]["detail-type"] == "SmsSent"


def test_a_signed_receipt_gives_smsdelivered_once_and_never_moves_back(gateway: Gateway) -> None:
    # Given a sent command
    gateway.put(command("r-1"))
    gateway.deliver()
    gateway.published()
    provider_id = gateway.provider.outbox()[0]["id"]
    receipt = {
        "id": provider_id,
        "reference": "r-1",
        "status": "delivered",
        "timestamp": "2026-11-24T10:00:01.000Z",
    }

    # When the receipt arrives twice, then a late contradicting one
    first = gateway.signed_post("/v1/sms/receipts", receipt)
    again = gateway.signed_post("/v1/sms/receipts", receipt)
    late = gateway.signed_post("/v1/sms/receipts", receipt | {"status": "undelivered"})
    events = gateway.published()

    # Then exactly one SmsDelivered is published and the status stays delivered
    assert [r.json()["recorded"] for r in (first, again, late)] == [True, False, False]
    assert [e["detail-type"] for e in events] == ["SmsDelivered"]
    assert events[0]["detail"] == {
        "commandId": "r-1",
        "providerMessageId": provider_id,
        "status": "delivered",
        "at": "2026-11-24T10:00:01.000Z",
        "metadata": {},
        "occurredAt": "2026-11-24T10:00:01.000Z",
        "sequence": 2,
    }
    assert gateway.record("r-1")["delivery"] == "delivered"


def test_a_receipt_for_an_unknown_command_is_accepted_and_ignored(gateway: Gateway) -> None:
    response = gateway.signed_post(
        "/v1/sms/receipts",
        {"id": "pm_x", "reference": "nobody", "status": "delivered", "timestamp": "2026-11-24T10:00:00Z"},
    )
    assert response.status == 200
    assert response.json() == {"recorded": False}
    assert gateway.published() == []


def test_a_callback_with_a_bad_signature_is_401(gateway: Gateway) -> None:
    response = gateway.signed_post(
        "/v1/sms/receipts",
        {"id": "pm", "reference": "c", "status": "delivered", "timestamp": "x"},
        secret="wrong",
    )
    assert response.status == 401
    assert response.json()["error"]["code"] == "invalid_signature"


def test_a_validly_signed_but_malformed_callback_is_400(gateway: Gateway) -> None:
    response = gateway.signed_post("/v1/sms/receipts", {"id": "pm", "reference": "c", "status": "lost"})
    assert response.status == 400
    assert response.json()["error"]["code"] == "validation_error"
