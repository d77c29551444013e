"""Replies by SMS on a started local stack (CONTRACT §7): Bob, offline, is forwarded Alice's
message (the fake provider's outbox shows it); he answers from his handset through the fake
provider's ``POST /inbound``; Alice's open socket gets ``message.new`` from Bob, ``via: "sms"``.

Everything between runs as deployed: the fan-out queues the forward, the gateway sends it,
the SMS table's stream publishes ``SmsSent``, the bus's rule invokes ForwardRoutesFunction,
and the signed inbound webhook stores the reply through the chat's send path.

The last test is issue 15's conversation in one go: two users, one of them offline; a read
cancels a pending forward, a burst is one digest SMS, and the SMS reply reaches the online
user's socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from local.stack_server import StackServer
from tests.e2e.test_realtime_e2e import Client, _budget, _outbox
from tests.local.conftest import Lines, eventually, free_config, http

ALICE = "+14155550101"
BOB = "+14155550102"
# The gateway, the stream, the bus and a function's cold start lie between a send and its route.
PIPELINE_SECONDS = 60.0
CAROL, DAN = "+14155550103", "+14155550104"
WAIT = 2  # ForwardAfterSeconds of this module's stack (60 by default)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    config = free_config(
        tmp_path_factory.mktemp("sms-replies"), persist=False, parameters={"ForwardAfterSeconds": str(WAIT)}
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


def test_one_conversation_a_read_cancels_a_burst_is_digested_and_the_sms_reply_is_live(
    stack: StackServer,
) -> None:
    # Given Carol online, and Dan signed in on a phone with no open socket
    carol = Client(stack, CAROL)
    status, session = http("POST", f"{carol.url}/v1/sessions", {"phoneNumber": DAN})
    assert status == 201, session
    dan = {"authorization": f"Bearer {session['token']}"}
    status, chat = carol.post("/v1/chats", {"type": "direct", "members": [DAN]})
    assert status in (200, 201), chat
    chat_id = chat["chatId"]

    def say(text: str, client_message_id: str) -> None:
        status, sent = carol.post(
            f"/v1/chats/{chat_id}/messages", {"text": text, "clientMessageId": client_message_id}
        )
        assert status == 201, sent

    # When Carol writes and Dan reads it (over HTTP) before the wait ends
    say("are you up?", "c1")
    eventually(lambda: _budget(stack, chat_id, DAN))  # his wait started
    assert (
        http("POST", f"{carol.url}/v1/chats/{chat_id}/receipts", {"type": "read", "upToSeq": 1}, dan)[0]
        == 204
    )

    # Then the read cancels the pending forward: the wait ends with no SMS
    eventually(lambda: _budget(stack, chat_id, DAN) is None, timeout=WAIT + PIPELINE_SECONDS)
    assert _outbox(stack, DAN) == []

    # When Carol then sends a burst that Dan does not read
    for n, text in enumerate(("landed", "taking a taxi", "see you at 8"), start=2):
        say(text, f"c{n}")

    # Then Dan gets one digest SMS of the three, naming the sender
    [sms] = eventually(lambda: _outbox(stack, DAN), timeout=WAIT + PIPELINE_SECONDS)
    assert sms["text"] == f"3 new messages from {CAROL}: landed / taking a taxi / see you at 8"

    # When Dan answers it from his handset
    eventually(lambda: _route_of(stack, DAN), timeout=PIPELINE_SECONDS)
    provider = stack.outputs["SmsProviderUrl"]
    status, delivered = http("POST", f"{provider}/inbound", {"from": DAN, "text": "on my way"})
    assert status == 202, delivered

    # Then Carol's socket gets his reply live, via SMS, after the burst in the chat's order
    frame = carol.wait_for(
        lambda f: f["type"] == "message.new" and f["message"]["text"] == "on my way", timeout=30
    )
    assert (frame["message"]["sender"], frame["message"]["via"], frame["message"]["seq"]) == (DAN, "sms", 5)
    assert len(_outbox(stack, DAN)) == 1  # the one digest, nothing else
