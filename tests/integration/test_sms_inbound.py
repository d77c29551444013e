"""Inbound SMS on moto: signed webhooks to SmsWebhooksFunction, opt-outs by number and ICCID,
and the replies it queues, sent by SendSmsFunction to a fake provider over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chatflow.adapters.sms_store import DynamoOptOutRepository
from chatflow.domain.webhooks import HELP_REPLY, START_REPLY, STOP_REPLY
from tests.integration.test_sms_gateway import Gateway, command, running_gateway

PHONE = "+14155550101"
ICCID = "8944500102198304826"


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with running_gateway() as running:
        yield running


def inbound(text: str, *, inbound_id: str | None = "in-1", iccid: str | None = None) -> dict[str, Any]:
    body = {"id": inbound_id, "from": "+1 415 555 0101", "iccid": iccid, "text": text}
    return {k: v for k, v in body.items() if v is not None} | {"timestamp": "2026-12-03T10:00:00Z"}


def opt_out_items(gateway: Gateway) -> dict[str, dict[str, Any]]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    items = client.scan(TableName=gateway.stack.template.physical_ids["SmsTable"])["Items"]
    return {
        i["PK"]["S"]: {k: next(iter(v.values())) for k, v in i.items()}
        for i in items
        if i["PK"]["S"].startswith("OPTOUT#")
    }


def queued(gateway: Gateway) -> list[dict[str, Any]]:
    messages = gateway.sqs.receive_message(
        QueueUrl=gateway.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    ).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_stop_naming_the_sim_opts_out_number_and_iccid_and_a_campaign_sms_to_the_sim_is_not_sent(
    gateway: Gateway,
) -> None:
    # Given a STOP from a handset whose SIM the provider names
    response = gateway.signed_post("/v1/sms/inbound", inbound("Stop.", iccid=ICCID))

    # Then both are stored as opted out
    assert response.status == 200, response.body
    assert response.json() | {"replyCommandId": None} == {
        "phoneNumber": PHONE,
        "iccid": ICCID,
        "action": "opted_out",
        "replyCommandId": None,
        "chatId": None,
        "messageId": None,
        "ignoredBecause": None,
    }
    items = opt_out_items(gateway)
    assert set(items) == {f"OPTOUT#{PHONE}", f"OPTOUT#{ICCID}"}
    assert items[f"OPTOUT#{PHONE}"]["phoneNumber"] == PHONE
    assert items[f"OPTOUT#{ICCID}"]["destination"] == ICCID

    # When a promotional command goes to the SIM, next to the confirmation the webhook queued
    gateway.put(command("promo", phoneNumber=None, iccid=ICCID, messageType="promotional"))
    gateway.deliver()
    events = {e["detail"]["commandId"]: e for e in gateway.published()}

    # Then the SIM gets nothing, and the number gets the confirmation of its STOP
    assert (events["promo"]["detail-type"], events["promo"]["detail"]["errorCode"]) == (
        "SmsFailed",
        "opted_out",
    )
    assert gateway.provider.outbox(ICCID) == []
    assert [m["text"] for m in gateway.provider.outbox(PHONE)] == [STOP_REPLY]


def test_a_retried_stop_webhook_sends_one_confirmation(gateway: Gateway) -> None:
    # Given the provider delivers the same STOP webhook twice (it missed our first answer)
    first = gateway.signed_post("/v1/sms/inbound", inbound("STOP", inbound_id="prov-77"))
    again = gateway.signed_post("/v1/sms/inbound", inbound("STOP", inbound_id="prov-77"))
    assert first.json()["replyCommandId"] == again.json()["replyCommandId"]

    # When the gateway consumes what was queued
    commands = queued(gateway)
    gateway.deliver()
    events = gateway.published()

    # Then both deliveries name one reply command, and the handset gets one confirmation
    assert {c["commandId"] for c in commands} == {first.json()["replyCommandId"]}
    assert [m["text"] for m in gateway.provider.outbox(PHONE)] == [STOP_REPLY]
    assert [(e["detail-type"], e["detail"]["metadata"]) for e in events] == [
        ("SmsSent", {"purpose": "opt-out-confirmation", "inboundId": "prov-77"})
    ]


def test_a_retried_webhook_without_an_id_sends_one_confirmation(gateway: Gateway) -> None:
    gateway.signed_post("/v1/sms/inbound", inbound("help", inbound_id=None))
    gateway.signed_post("/v1/sms/inbound", inbound("help", inbound_id=None))

    gateway.deliver()

    assert [m["text"] for m in gateway.provider.outbox(PHONE)] == [HELP_REPLY]


def test_start_removes_the_number_and_the_sim_and_is_confirmed(gateway: Gateway) -> None:
    # Given the number and its SIM opted out
    gateway.signed_post("/v1/sms/inbound", inbound("STOP", inbound_id="in-1", iccid=ICCID))

    # When START comes from the handset
    response = gateway.signed_post("/v1/sms/inbound", inbound("start", inbound_id="in-2", iccid=ICCID))
    gateway.deliver()

    # Then neither is opted out any more, and both keywords were answered
    assert response.json()["action"] == "opted_in"
    assert opt_out_items(gateway) == {}
    # (one batch, sent concurrently: in either order)
    assert sorted(m["text"] for m in gateway.provider.outbox(PHONE)) == sorted([STOP_REPLY, START_REPLY])


def test_an_opt_out_stored_before_iccids_is_still_read(gateway: Gateway) -> None:
    # Given an item written by the phone-only adapter (no destination attribute)
    table = gateway.stack.template.physical_ids["SmsTable"]
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.put_item(
        TableName=table,
        Item={
            "PK": {"S": f"OPTOUT#{PHONE}"},
            "SK": {"S": "OPTOUT"},
            "phoneNumber": {"S": PHONE},
            "at": {"S": "2026-01-01T00:00:00.000Z"},
        },
    )
    repository = DynamoOptOutRepository(table, client)

    assert repository.opted_out([PHONE, ICCID, "+14155550102"]) == {PHONE}
    assert repository.is_opted_out(PHONE)


def test_an_iccid_that_is_not_19_or_20_digits_is_a_400_saying_so(gateway: Gateway) -> None:
    response = gateway.signed_post("/v1/sms/inbound", inbound("STOP", iccid="89445001"))

    assert response.status == 400, response.body
    assert "iccid" in response.body
    assert opt_out_items(gateway) == {}
    assert queued(gateway) == []
