"""A send written from what the chats function's last send of the chat stored, without
reading the chat first (``MessagingService.send``, ``LastWrites``): through the HTTP API,
with the DynamoDB calls each request makes. When somebody else changed the chat since, the
write's conditions refuse it and the send reads the chat as it always did: same seq rules,
same 404 for a removed member, same answers to a resend."""

from __future__ import annotations

import time
import uuid
from typing import Any

from chatflow.domain.clock import utc_now
from chatflow.domain.messaging import MessagingService
from tests.integration.conftest import ApiClient, assert_error

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"


def seqs(api: ApiClient, token: str, chat_id: str) -> list[tuple[int, str]]:
    query = {"afterSeq": 0, "limit": 100}
    response = api.call("GET", f"/v1/chats/{chat_id}/messages", token=token, query=query)
    assert response.status == 200, response.body
    return [(m["seq"], m["text"]) for m in response.json()["items"]]


def sent(api: ApiClient, token: str, chat_id: str, text: str, client_message_id: str | None = None) -> Any:
    response = api.send(token, chat_id, text, client_message_id)
    assert response.status in (200, 201), response.body
    return response


def alice_and_bob(api: ApiClient) -> tuple[str, str, str]:
    """Alice's and Bob's tokens, and their direct chat."""
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    return alice, bob, api.open_direct(alice, BOB)


def another_environment(api: ApiClient) -> MessagingService:
    """A messaging service on the same tables with a memory of its own: another execution
    environment of the chats function (or the WebSocket function) writing the same chat."""
    deps = api.stack.functions["ChatsFunction"].module.deps
    return MessagingService(
        chats=deps.chats(), users=deps.users(), cursors=deps.cursors(), clock=utc_now, sleep=time.sleep
    )


def test_a_senders_next_message_in_a_chat_is_written_without_reading_the_chat(
    api: ApiClient, calls: list[str]
) -> None:
    # Given Alice's first message in her chat with Bob
    alice, _, chat = alice_and_bob(api)
    calls.clear()
    sent(api, alice, chat, "one")
    first = list(calls)

    # When she sends the next one
    calls.clear()
    response = sent(api, alice, chat, "two")

    # Then the first read the chat and her send TAT, the second only wrote (the authorizer's
    # GetItem of the session, then the transaction), as seq 2
    assert first == ["GetItem", "BatchGetItem", "TransactWriteItems"]
    assert calls == ["GetItem", "TransactWriteItems"]
    assert response.status == 201
    assert response.json()["seq"] == 2
    assert seqs(api, alice, chat) == [(1, "one"), (2, "two")]


def test_a_message_written_elsewhere_meanwhile_is_kept_and_the_next_seq_is_taken(
    api: ApiClient, calls: list[str]
) -> None:
    # Given Alice's message in her chat with Bob, then Bob's, written by another environment
    alice, _, chat = alice_and_bob(api)
    sent(api, alice, chat, "from alice")
    another_environment(api).send(BOB, chat, "from bob", uuid.uuid4().hex, limited=False)

    # When Alice sends again, and once more
    calls.clear()
    again = sent(api, alice, chat, "alice again")
    refused_then_read = list(calls)
    calls.clear()
    sent(api, alice, chat, "and again")

    # Then her write from the stale chat was refused (nothing written), the chat was read
    # and her message took seq 3, after Bob's; the next send reads first (the chat was
    # found busy), and every message is there once, in order
    assert refused_then_read == ["GetItem", "TransactWriteItems", "BatchGetItem", "TransactWriteItems"]
    assert again.json()["seq"] == 3
    assert calls == ["GetItem", "BatchGetItem", "TransactWriteItems"]
    assert seqs(api, alice, chat) == [
        (1, "from alice"),
        (2, "from bob"),
        (3, "alice again"),
        (4, "and again"),
    ]


def test_a_member_removed_after_sending_gets_404_on_the_next_send(api: ApiClient) -> None:
    # Given Alice's message in Bob's group, then Bob removing her
    bob = api.sign_in(BOB)
    alice = api.sign_in(ALICE)
    api.sign_in(CAROL)
    group = api.create_group(bob, [ALICE, CAROL])
    sent(api, alice, group, "hello")
    removed = api.call("DELETE", f"/v1/chats/{group}/members/{ALICE}", token=bob)
    assert removed.status == 204, removed.body

    # When she sends to the group again
    response = api.send(alice, group, "still here?")

    # Then it is the contract's 404, and nothing was stored
    assert_error(response, 404, "not_found")
    assert seqs(api, bob, group) == [(1, "hello")]


def test_a_resend_after_the_chat_moved_answers_the_original_with_its_current_status(
    api: ApiClient, calls: list[str]
) -> None:
    # Given Alice's message, read by Bob afterwards
    alice, bob, chat = alice_and_bob(api)
    first = sent(api, alice, chat, "hello", "cmid-1").json()
    read = api.call("POST", f"/v1/chats/{chat}/receipts", {"type": "read", "upToSeq": 1}, token=bob)
    assert read.status == 204, read.body

    # When her client sends the same message again (a retry)
    calls.clear()
    again = api.send(alice, chat, "hello", "cmid-1")

    # Then the answer is the original message, 200, with the status it has now: the write
    # from memory was refused (the clientMessageId is taken), then the chat and the original
    # were read, three calls as a resend always took
    assert calls == ["GetItem", "TransactWriteItems", "GetItem", "GetItem"]
    assert again.status == 200, again.body
    assert again.json()["messageId"] == first["messageId"]
    assert again.json()["status"] == "read"
    assert seqs(api, alice, chat) == [(1, "hello")]


def test_two_environments_writing_one_chat_in_turn_store_every_message_once_in_order(
    api: ApiClient, calls: list[str]
) -> None:
    # Given Alice's and Bob's chat, and two environments of the chats function
    alice, bob, chat = alice_and_bob(api)
    deps = api.stack.functions["ChatsFunction"].module.deps
    one, other = deps.messaging(), another_environment(api)

    # When each writes a message in turn, twenty times (each finds the chat changed by the
    # other since its own last write)
    calls.clear()
    for n in range(20):
        one.send(ALICE, chat, f"alice {n}", uuid.uuid4().hex, limited=False)
        other.send(BOB, chat, f"bob {n}", uuid.uuid4().hex, limited=False)

    # Then every message is stored once, in the order written, and each environment wrote
    # from memory once only: refused, it reads this busy chat first from then on
    expected = [text for n in range(20) for text in (f"alice {n}", f"bob {n}")]
    assert seqs(api, alice, chat) == list(enumerate(expected, start=1))
    assert seqs(api, bob, chat) == list(enumerate(expected, start=1))
    assert calls.count("TransactWriteItems") == 40 + 2
