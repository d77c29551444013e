"""Replies by SMS (CONTRACT §7) on moto, through the real entry points: the fan-out queues a
forward, SendSmsFunction sends it to a fake provider, the SMS table's stream publishes its
``SmsSent``, the template's rule hands that to ForwardRoutesFunction, and the member's answer
comes back signed to ``POST /v1/sms/inbound`` (SmsWebhooksFunction), where it becomes their
message of the chat, ``via: "sms"``, seen live on the other members' sockets.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from chatflow.adapters.sms_store import DynamoOptOutRepository
from chatflow.domain.clock import to_iso
from chatflow.domain.sms import Encoding, segments
from chatflow.domain.sms_replies import UNROUTED_REPLY
from chatflow.domain.webhooks import HELP_REPLY, STOP_REPLY
from local.patterns import matches
from local.specs import REGION
from tests.integration.conftest import ApiClient
from tests.integration.test_realtime import Frames, Sockets, frames  # noqa: F401 - the fixture
from tests.integration.test_sms_gateway import Gateway, running_gateway

ALICE, BOB, CAROL, DAVE = "+14155550101", "+14155550102", "+14155550103", "+14155550104"


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    # Forwards without their wait: deliver_forwards ends each wait when the test chooses.
    with running_gateway(parameters={"ForwardAfterSeconds": "0"}) as running:
        yield running


@pytest.fixture
def api(gateway: Gateway) -> ApiClient:
    # The fan-out reads its streams from LATEST, as deployed: start its readers now.
    gateway.stack.drain_streams()
    return ApiClient(gateway.stack)


@pytest.fixture
def ws(gateway: Gateway, api: ApiClient) -> Sockets:
    return Sockets(gateway.stack, api)


def deliver_forwards(gateway: Gateway) -> list[dict[str, Any]]:
    """The fan-out's forward waits ended, their SMS sent by the gateway, and every gateway event
    the template's rules give ForwardRoutesFunction delivered to it, as EventBridge would; those
    events."""
    gateway.stack.drain_streams()
    gateway.stack.drain_queue("ForwardsFunction")
    assert gateway.deliver()["batchItemFailures"] == []
    rules = [
        (r.pattern, {t.function for t in r.targets})
        for r in gateway.stack.template.event_rules()
        if r.pattern is not None
    ]
    routed = []
    for event in gateway.published():
        for pattern, targets in rules:
            if "ForwardRoutesFunction" in targets and matches(pattern, event):
                assert gateway.stack.invoke("ForwardRoutesFunction", event)["recorded"] in (True, False)
                routed.append(event)
    return routed


def sms_sent(phone: str, chat_id: str, sent_at: datetime) -> dict[str, Any]:
    """An ``SmsSent`` of a forward, as the bus delivers it to ForwardRoutesFunction."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "SmsSent",
        "source": "chatflow.sms",
        "account": "123456789012",
        "time": to_iso(sent_at),
        "region": REGION,
        "resources": [],
        "detail": {
            "commandId": f"fwd-{uuid.uuid4().hex}",
            "phoneNumber": phone,
            "providerMessageId": "pm_1",
            "segments": 1,
            "encoding": "GSM-7",
            "attempts": 1,
            "sentAt": to_iso(sent_at),
            "metadata": {"chatId": chat_id, "messageId": "m_1"},
            "occurredAt": to_iso(sent_at),
            "sequence": 2,
        },
    }


def reply(gateway: Gateway, phone: str, text: str, inbound_id: str | None = None) -> dict[str, Any]:
    body = {"id": inbound_id or f"in_{uuid.uuid4().hex}", "from": phone, "text": text}
    response = gateway.signed_post("/v1/sms/inbound", body | {"timestamp": "2026-12-04T10:00:00Z"})
    assert response.status == 200, response.body
    answer: dict[str, Any] = response.json()
    return answer


def history(api: ApiClient, token: str, chat_id: str) -> list[dict[str, Any]]:
    response = api.call("GET", f"/v1/chats/{chat_id}/messages", token=token, query={"limit": 100})
    assert response.status == 200, response.body
    return list(reversed(response.json()["items"]))


def test_a_reply_to_a_forward_is_the_members_message_via_sms_seen_live_by_the_others(
    gateway: Gateway,
    api: ApiClient,
    ws: Sockets,
    frames: Frames,  # noqa: F811 - the fixture imported above
) -> None:
    # Given Alice online and Bob offline, forwarded her message by SMS
    alice, bob = api.sign_in(ALICE), api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    alice_socket = ws.open(ALICE)
    assert api.send(alice, chat_id, "dinner at 8?").status == 201
    [forward] = deliver_forwards(gateway)
    assert forward["detail"]["phoneNumber"] == BOB
    [sms] = gateway.provider.outbox(BOB)
    assert sms["text"] == f"{ALICE}: dinner at 8?"
    frames.new(alice_socket)

    # When Bob answers the SMS
    answer = reply(gateway, "+1 (415) 555-0102", "  yes, see you there  ")
    gateway.stack.drain_streams()

    # Then it is Bob's message of the chat, via sms, live on Alice's socket, in the history
    # and as the chat's last message
    assert (answer["action"], answer["chatId"], answer["ignoredBecause"]) == ("message", chat_id, None)
    [frame] = frames.of_type(alice_socket, "message.new")
    message = frame["message"]
    assert (message["sender"], message["text"], message["seq"], message["via"]) == (
        BOB,
        "yes, see you there",
        2,
        "sms",
    )
    assert message["messageId"] == answer["messageId"]
    assert [(m["sender"], m["via"]) for m in history(api, alice, chat_id)] == [(ALICE, "app"), (BOB, "sms")]
    chat = api.call("GET", f"/v1/chats/{chat_id}", token=alice).json()
    assert (chat["lastMessage"]["via"], chat["unreadCount"]) == ("sms", 1)
    # Bob's own markers moved with his message (he read what he answered)
    assert api.call("GET", f"/v1/chats/{chat_id}", token=bob).json()["unreadCount"] == 0
    # and search finds it, via sms
    found = api.call("GET", "/v1/search", token=alice, query={"q": "see you"}).json()["items"]
    assert [(m["messageId"], m["via"]) for m in found] == [(answer["messageId"], "sms")]


def test_the_same_inbound_id_twice_stores_one_message(gateway: Gateway, api: ApiClient) -> None:
    # Given Bob was forwarded Alice's chat
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    gateway.stack.invoke("ForwardRoutesFunction", sms_sent(BOB, chat_id, datetime.now(UTC)))

    # When the provider delivers his reply's webhook twice (it missed our first answer)
    first = reply(gateway, BOB, "on my way", inbound_id="prov-42")
    again = reply(gateway, BOB, "on my way", inbound_id="prov-42")

    # Then both answers name one message, and the chat has only it
    assert first["action"] == again["action"] == "message"
    assert first["messageId"] == again["messageId"]
    messages = history(api, alice, chat_id)
    assert [(m["text"], m["clientMessageId"], m["via"]) for m in messages] == [
        ("on my way", "sms-prov-42", "sms")
    ]


def test_with_several_chats_forwarded_the_most_recent_gets_the_reply_whatever_the_event_order(
    gateway: Gateway, api: ApiClient
) -> None:
    # Given Bob in a direct chat with Alice and a group with Alice and Carol
    alice = api.sign_in(ALICE)
    direct = api.open_direct(alice, BOB)
    group = api.create_group(alice, [BOB, CAROL], name="Trip")
    now = datetime.now(UTC)

    # When the group's forward (sent later) is recorded before the direct chat's (sent earlier)
    newer = gateway.stack.invoke("ForwardRoutesFunction", sms_sent(BOB, group, now - timedelta(minutes=1)))
    older = gateway.stack.invoke("ForwardRoutesFunction", sms_sent(BOB, direct, now - timedelta(minutes=5)))
    answer = reply(gateway, BOB, "count me in")

    # Then the late, older event changed nothing: the reply is in the group
    assert (newer["recorded"], older["recorded"]) == (True, False)
    assert answer["chatId"] == group
    assert [m["text"] for m in history(api, alice, group)] == ["count me in"]
    assert history(api, alice, direct) == []

    # And once the direct chat is forwarded again, later, the next reply goes there
    gateway.stack.invoke("ForwardRoutesFunction", sms_sent(BOB, direct, now))
    assert reply(gateway, BOB, "and you?")["chatId"] == direct


def test_a_forward_older_than_24_hours_routes_nothing_and_the_number_gets_one_notice_a_day(
    gateway: Gateway, api: ApiClient
) -> None:
    # Given Bob's last forward was 25 hours ago
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    stale = datetime.now(UTC) - timedelta(hours=25)
    gateway.stack.invoke("ForwardRoutesFunction", sms_sent(BOB, chat_id, stale))

    # When he texts twice
    first = reply(gateway, BOB, "still on?")
    second = reply(gateway, BOB, "hello?")
    gateway.deliver()

    # Then neither is a message, and he is told once why (one SMS segment, GSM-7)
    assert (first["action"], first["ignoredBecause"]) == ("none", "no_recent_forward")
    assert first["replyCommandId"] == second["replyCommandId"]
    assert history(api, alice, chat_id) == []
    assert [m["text"] for m in gateway.provider.outbox(BOB)] == [UNROUTED_REPLY]
    assert (segments(UNROUTED_REPLY).encoding, segments(UNROUTED_REPLY).count) == (Encoding.GSM7, 1)


def test_keywords_are_never_chat_messages(gateway: Gateway, api: ApiClient) -> None:
    # Given Bob was just forwarded Alice's chat
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    gateway.stack.invoke("ForwardRoutesFunction", sms_sent(BOB, chat_id, datetime.now(UTC)))

    # When he texts HELP, then STOP
    helped = reply(gateway, BOB, "help")
    stopped = reply(gateway, BOB, " Stop ")
    gateway.deliver()

    # Then each keyword does what it says and none is in the chat
    assert (helped["action"], stopped["action"]) == ("help", "opted_out")
    assert (helped["messageId"], stopped["messageId"]) == (None, None)
    assert history(api, alice, chat_id) == []
    assert sorted(m["text"] for m in gateway.provider.outbox(BOB)) == sorted([HELP_REPLY, STOP_REPLY])


def test_yes_from_a_number_that_never_opted_out_is_an_ordinary_reply(
    gateway: Gateway, api: ApiClient
) -> None:
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    gateway.stack.invoke("ForwardRoutesFunction", sms_sent(BOB, chat_id, datetime.now(UTC)))

    answer = reply(gateway, BOB, "Yes")

    assert answer["action"] == "message"
    assert [(m["sender"], m["text"], m["via"]) for m in history(api, alice, chat_id)] == [(BOB, "Yes", "sms")]


def test_a_number_removed_from_the_chat_since_its_forward_posts_nothing(
    gateway: Gateway, api: ApiClient
) -> None:
    # Given Carol was forwarded the group, then removed from it
    alice = api.sign_in(ALICE)
    group = api.create_group(alice, [BOB, CAROL], name="Trip")
    gateway.stack.invoke("ForwardRoutesFunction", sms_sent(CAROL, group, datetime.now(UTC)))
    assert api.call("DELETE", f"/v1/chats/{group}/members/{CAROL}", token=alice).status == 204

    # When she answers
    answer = reply(gateway, CAROL, "wait for me")
    gateway.deliver()

    # Then the group gets nothing, and she is told
    assert (answer["action"], answer["ignoredBecause"], answer["chatId"]) == ("none", "not_a_member", group)
    assert history(api, alice, group) == []
    assert [m["text"] for m in gateway.provider.outbox(CAROL)] == [UNROUTED_REPLY]


def test_a_stranger_is_told_once_and_an_opted_out_stranger_is_not_texted(
    gateway: Gateway, api: ApiClient
) -> None:
    # Given Dave, never forwarded anything, and Carol, opted out, never forwarded either
    DynamoOptOutRepository("SmsTable", boto3.client("dynamodb", region_name=REGION)).opt_out(
        CAROL, at=datetime.now(UTC)
    )

    # When each texts ChatFlow
    dave = reply(gateway, DAVE, "who is this?")
    carol = reply(gateway, CAROL, "who is this?")
    gateway.deliver()

    # Then neither text is stored anywhere; Dave gets the notice, Carol nothing
    assert (dave["action"], dave["ignoredBecause"]) == ("none", "no_recent_forward")
    assert (carol["action"], carol["ignoredBecause"], carol["replyCommandId"]) == (
        "none",
        "no_recent_forward",
        None,
    )
    assert [m["text"] for m in gateway.provider.outbox(DAVE)] == [UNROUTED_REPLY]
    assert gateway.provider.outbox(CAROL) == []


def test_a_member_without_an_account_replies_as_their_number_and_sees_it_on_signing_in(
    gateway: Gateway, api: ApiClient
) -> None:
    # Given Carol, a member of Alice's group who never signed in, forwarded its message
    alice = api.sign_in(ALICE)
    api.sign_in(BOB)
    group = api.create_group(alice, [BOB, CAROL], name="Trip")
    assert api.send(alice, group, "who drives?").status == 201
    routed = deliver_forwards(gateway)
    assert {e["detail"]["phoneNumber"] for e in routed} == {BOB, CAROL}

    # When she answers by SMS
    answer = reply(gateway, CAROL, "I can")

    # Then her number is the sender, and it is her message once she signs in
    assert answer["action"] == "message"
    [_, message] = history(api, alice, group)
    assert (message["sender"], message["via"]) == (CAROL, "sms")
    carol = api.sign_in(CAROL)
    [_, mine] = history(api, carol, group)
    assert mine["messageId"] == answer["messageId"]
    assert mine["status"] == "sent"  # as its sender sees it: Alice and Bob have not read it
