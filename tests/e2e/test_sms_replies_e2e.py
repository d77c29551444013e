"""Replies by SMS on a started local stack (CONTRACT §7): Bob, offline, is forwarded Alice's
message (the fake provider's outbox shows it); he answers from his handset through the fake
provider's ``POST /inbound``; Alice's open socket gets ``message.new`` from Bob, ``via: "sms"``.

Everything between runs as deployed: the fan-out queues the forward, the gateway sends it,
the SMS table's stream publishes ``SmsSent``, the bus's rule invokes ForwardRoutesFunction,
and the signed inbound webhook stores the reply through the chat's send path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from local.stack_server import StackServer
from tests.e2e.test_realtime_e2e import Client
from tests.local.conftest import Lines, eventually, free_config, http

ALICE = "+14155550101"
BOB = "+14155550102"
# The gateway, the stream, the bus and a function's cold start lie between a send and its route.
PIPELINE_SECONDS = 60.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    # Forwards wait 1 s here (ForwardAfterSeconds; 60 by default).
    config = free_config(
        tmp_path_factory.mktemp("sms-replies"), persist=False, parameters={"ForwardAfterSeconds": "1"}
    )
    with StackServer(config, log=Lines()) as server:
        yield server


def _route_of(stack: StackServer, phone: str) -> dict[str, Any] | None:
    """Where ``phone``'s SMS replies go now (the item ForwardRoutesFunction writes), if anywhere."""
    key = {"PK": {"S": f"SMSROUTE#{phone}"}, "SK": {"S": "SMSROUTE"}}
    table = stack.outputs["ConnectionsTableName"]
    item: dict[str, Any] | None = (
        stack.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    )
    return item


def test_an_offline_member_answers_a_forward_by_sms_and_the_online_member_sees_it_live(
    stack: StackServer,
) -> None:
    # Given Alice online, and Bob signed up but with no open socket
    alice = Client(stack, ALICE)
    assert http("POST", f"{alice.url}/v1/sessions", {"phoneNumber": BOB})[0] == 201
    status, chat = alice.post("/v1/chats", {"type": "direct", "members": [BOB]})
    assert status in (200, 201), chat
    chat_id = chat["chatId"]

    # When Alice writes, Bob is forwarded it by SMS (the fake provider shows it)
    status, sent = alice.post(
        f"/v1/chats/{chat_id}/messages", {"text": "Dinner at 8?", "clientMessageId": "d1"}
    )
    assert status == 201, sent
    provider = stack.outputs["SmsProviderUrl"]
    forwarded = eventually(
        lambda: http("GET", f"{provider}/messages?to={quote(BOB)}")[1]["items"], timeout=PIPELINE_SECONDS
    )
    assert [m["text"] for m in forwarded] == [f"{ALICE}: Dinner at 8?"]
    route = eventually(lambda: _route_of(stack, BOB), timeout=PIPELINE_SECONDS)
    assert route["chatId"]["S"] == chat_id

    # And Bob answers from his handset
    status, delivered = http("POST", f"{provider}/inbound", {"from": BOB, "text": "Yes! See you there"})

    # Then ChatFlow took it as Bob's message of the chat
    assert status == 202, delivered
    answer = delivered["chatflow"]
    assert (answer["action"], answer["chatId"]) == ("message", chat_id), answer

    # And Alice's socket gets it live, from Bob, via SMS
    frame = alice.wait_for(
        lambda f: f["type"] == "message.new" and f["message"]["text"] == "Yes! See you there", timeout=30
    )
    message = frame["message"]
    assert (message["sender"], message["seq"], message["via"], message["chatId"]) == (BOB, 2, "sms", chat_id)
    assert message["messageId"] == answer["messageId"]
    assert message["clientMessageId"] == f"sms-{delivered['id']}"

    # And the history says so too; Alice's own message was written in the app
    history = alice.get(f"/v1/chats/{chat_id}/messages?afterSeq=0")["items"]
    assert [(m["sender"], m["via"]) for m in history] == [(ALICE, "app"), (BOB, "sms")]
