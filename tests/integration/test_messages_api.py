"""Messages, history and receipts through the HTTP API (contract §2)."""

from __future__ import annotations

import re
from typing import Any

from tests.integration.conftest import ApiClient, assert_error

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"

ISO_MILLIS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def history(api: ApiClient, token: str, chat_id: str, **query: Any) -> list[dict[str, Any]]:
    response = api.call("GET", f"/v1/chats/{chat_id}/messages", token=token, query={"limit": 100, **query})
    assert response.status == 200, response.body
    assert response.json()["nextCursor"] is None
    return list(response.json()["items"])


def receipt(api: ApiClient, token: str, chat_id: str, kind: str, up_to_seq: int) -> None:
    response = api.call(
        "POST", f"/v1/chats/{chat_id}/receipts", {"type": kind, "upToSeq": up_to_seq}, token=token
    )
    assert response.status == 204, response.body
    assert response.body == ""


def statuses(api: ApiClient, token: str, chat_id: str) -> dict[int, str]:
    return {m["seq"]: m["status"] for m in history(api, token, chat_id)}


# ---- sending -------------------------------------------------------------------------


def test_a_sent_message_has_the_contract_shape(api: ApiClient) -> None:
    # Given a direct chat
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)

    # When Alice sends a message with surrounding spaces
    response = api.send(alice, chat_id, "  hello bob  ", "client-1")

    # Then it is stored trimmed, as seq 1, status sent
    assert response.status == 201, response.body
    message = response.json()
    assert set(message) == {
        "messageId",
        "chatId",
        "seq",
        "sender",
        "text",
        "clientMessageId",
        "sentAt",
        "status",
        "via",
    }
    assert message["chatId"] == chat_id
    assert message["via"] == "app"  # written in the app, not an SMS reply
    assert message["seq"] == 1
    assert message["sender"] == ALICE
    assert message["text"] == "hello bob"
    assert message["clientMessageId"] == "client-1"
    assert message["status"] == "sent"
    assert ISO_MILLIS_Z.match(message["sentAt"])


def test_messages_get_seq_1_to_n_in_order_from_every_sender(api: ApiClient) -> None:
    # Given a group of three
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    carol = api.sign_in(CAROL)
    group = api.create_group(alice, [BOB, CAROL])

    # When its members send six messages in turn
    senders = [alice, bob, carol, alice, carol, bob]
    seqs = [api.send(token, group, f"m{i}").json()["seq"] for i, token in enumerate(senders)]

    # Then seqs are 1..6 in sending order, the same for every member
    assert seqs == [1, 2, 3, 4, 5, 6]
    for token in (alice, bob, carol):
        assert [(m["seq"], m["text"]) for m in history(api, token, group, afterSeq=0)] == [
            (i + 1, f"m{i}") for i in range(6)
        ]


def test_the_last_message_and_activity_are_on_the_chat(api: ApiClient) -> None:
    # Given a direct chat
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)

    # When two messages are sent
    api.send(alice, chat_id, "first")
    last = api.send(alice, chat_id, "second").json()

    # Then the chat shows the last one and its time
    chat = api.call("GET", f"/v1/chats/{chat_id}", token=alice).json()
    assert chat["lastMessage"] == last
    assert chat["lastActivityAt"] == last["sentAt"]


def test_resending_the_same_client_message_id_returns_the_original_with_200(api: ApiClient) -> None:
    # Given Alice sent a message with clientMessageId "c-1"
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    first = api.send(alice, chat_id, "only once", "c-1")
    assert first.status == 201, first.body

    # When her client retries it (even with other text)
    retry = api.send(alice, chat_id, "only once, edited", "c-1")

    # Then the answer is 200 with the original message, and nothing new is stored
    assert retry.status == 200, retry.body
    assert retry.json()["messageId"] == first.json()["messageId"]
    assert retry.json()["text"] == "only once"
    assert retry.json()["seq"] == 1
    assert [m["messageId"] for m in history(api, alice, chat_id)] == [first.json()["messageId"]]
    assert api.send(alice, chat_id, "next", "c-2").json()["seq"] == 2


def test_a_retried_direct_send_returns_the_original_with_200(api: ApiClient) -> None:
    # Given Alice sent to Bob's number with clientMessageId "c-1"
    alice = api.sign_in(ALICE)
    body = {"to": BOB, "text": "hi", "clientMessageId": "c-1"}
    first = api.call("POST", "/v1/messages", body, token=alice)
    assert first.status == 201, first.body

    # When her client retries the request
    retry = api.call("POST", "/v1/messages", body, token=alice)

    # Then it is the same message
    assert retry.status == 200, retry.body
    assert retry.json()["messageId"] == first.json()["messageId"]
    assert len(history(api, alice, first.json()["chatId"])) == 1


def test_the_same_client_message_id_from_another_sender_is_another_message(api: ApiClient) -> None:
    # Given Alice sent a message with clientMessageId "c-1"
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    assert api.send(alice, chat_id, "from alice", "c-1").status == 201

    # When Bob uses the same id
    response = api.send(bob, chat_id, "from bob", "c-1")

    # Then it is a new message
    assert response.status == 201, response.body
    assert response.json()["seq"] == 2


# ---- history -------------------------------------------------------------------------


def test_history_is_newest_first(api: ApiClient) -> None:
    # Given three messages
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    for text in ("one", "two", "three"):
        api.send(alice, chat_id, text)

    # When Alice reads the history
    items = history(api, alice, chat_id)

    # Then the newest comes first
    assert [(m["seq"], m["text"]) for m in items] == [(3, "three"), (2, "two"), (1, "one")]


def test_history_pages_follow_the_cursor_without_overlap(api: ApiClient) -> None:
    # Given seven messages
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    for i in range(7):
        assert api.send(alice, chat_id, f"m{i + 1}").status == 201

    # When Bob pages through the history three at a time
    pages = api.all_pages(f"/v1/chats/{chat_id}/messages", bob, limit=3)

    # Then the pages hold 7..5, 4..2, 1 and the last has no cursor
    assert [[m["seq"] for m in page] for page in pages] == [[7, 6, 5], [4, 3, 2], [1]]


def test_history_of_a_chat_without_messages_is_empty(api: ApiClient) -> None:
    # Given a new chat
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)

    # When Alice reads its history
    response = api.call("GET", f"/v1/chats/{chat_id}/messages", token=alice)

    # Then it is an empty last page
    assert response.status == 200, response.body
    assert response.json() == {"items": [], "nextCursor": None}


def test_a_history_that_fills_its_first_page_exactly_ends_with_an_empty_page(api: ApiClient) -> None:
    # Given three messages
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    for i in range(3):
        assert api.send(alice, chat_id, f"m{i + 1}").status == 201

    # When Alice pages through the history three at a time
    pages = api.all_pages(f"/v1/chats/{chat_id}/messages", alice, limit=3)

    # Then the first page holds all three, and nothing comes after it
    assert [m["seq"] for m in pages[0]] == [3, 2, 1]
    assert all(page == [] for page in pages[1:])


def test_opening_a_chat_reads_the_chat_and_its_newest_page_in_one_query(
    api: ApiClient, calls: list[str]
) -> None:
    # Given a chat with history, read once (the chats function is warm)
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    for i in range(5):
        assert api.send(alice, chat_id, f"m{i + 1}").status == 201
    path = f"/v1/chats/{chat_id}/messages"
    assert api.call("GET", path, token=alice).status == 200

    # When Alice opens the chat, then reads the next page
    calls.clear()
    newest = api.call("GET", path, token=alice, query={"limit": 2}).json()
    opening = sorted(calls)
    calls.clear()
    older = api.call("GET", path, token=alice, query={"limit": 2, "cursor": newest["nextCursor"]}).json()

    # Then opening it costs the authorizer's GetItem and one Query, and an older page (which the
    # Query cannot reach the chat from) the chat's GetItem beside its Query
    assert [m["seq"] for m in newest["items"]] == [5, 4]
    assert [m["seq"] for m in older["items"]] == [3, 2]
    assert opening == ["GetItem", "Query"]
    assert sorted(calls) == ["GetItem", "GetItem", "Query"]


def test_after_seq_returns_later_messages_oldest_first(api: ApiClient) -> None:
    # Given five messages
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    for i in range(5):
        api.send(alice, chat_id, f"m{i + 1}")

    # When a client catches up after seq 2
    items = history(api, alice, chat_id, afterSeq=2)

    # Then it gets 3, 4, 5 in that order
    assert [m["seq"] for m in items] == [3, 4, 5]


def test_after_seq_pages_oldest_first(api: ApiClient) -> None:
    # Given five messages
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    for i in range(5):
        api.send(alice, chat_id, f"m{i + 1}")

    # When a client catches up after seq 1, two at a time
    pages = api.all_pages(f"/v1/chats/{chat_id}/messages", alice, limit=2, query={"afterSeq": 1})

    # Then the pages run forward without gaps or overlap
    assert [m["seq"] for page in pages for m in page] == [2, 3, 4, 5]
    assert all(len(page) == 2 for page in pages[:-1])


def test_after_seq_at_the_last_message_is_empty(api: ApiClient) -> None:
    # Given two messages
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    api.send(alice, chat_id, "one")
    api.send(alice, chat_id, "two")

    # When a client that has both catches up
    items = history(api, alice, chat_id, afterSeq=2)

    # Then there is nothing new
    assert items == []


# ---- receipts and statuses -----------------------------------------------------------


def test_status_moves_from_sent_to_delivered_to_read_in_a_direct_chat(api: ApiClient) -> None:
    # Given Alice sent Bob two messages
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    api.send(alice, chat_id, "one")
    api.send(alice, chat_id, "two")
    assert statuses(api, alice, chat_id) == {1: "sent", 2: "sent"}

    # When Bob's device acknowledges delivery of the first
    receipt(api, bob, chat_id, "delivered", 1)

    # Then Alice sees it delivered
    assert statuses(api, alice, chat_id) == {1: "delivered", 2: "sent"}

    # When Bob reads both
    receipt(api, bob, chat_id, "read", 2)

    # Then Alice sees both read (read implies delivered)
    assert statuses(api, alice, chat_id) == {1: "read", 2: "read"}
    chat = api.call("GET", f"/v1/chats/{chat_id}", token=alice).json()
    assert chat["lastMessage"]["status"] == "read"


def test_a_group_message_is_delivered_only_when_every_other_member_has_it(api: ApiClient) -> None:
    # Given Alice wrote to a group with Bob and Carol
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    carol = api.sign_in(CAROL)
    group = api.create_group(alice, [BOB, CAROL])
    api.send(alice, group, "hello all")

    # When only Bob acknowledges it
    receipt(api, bob, group, "read", 1)

    # Then it is still sent for Alice
    assert statuses(api, alice, group) == {1: "sent"}

    # When Carol acknowledges delivery
    receipt(api, carol, group, "delivered", 1)

    # Then it is delivered (Bob read it, Carol only has it)
    assert statuses(api, alice, group) == {1: "delivered"}

    # When Carol reads it too
    receipt(api, carol, group, "read", 1)

    # Then it is read
    assert statuses(api, alice, group) == {1: "read"}


def test_a_lower_receipt_after_a_higher_one_changes_nothing(api: ApiClient) -> None:
    # Given Bob read all three of Alice's messages
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    for text in ("one", "two", "three"):
        api.send(alice, chat_id, text)
    receipt(api, bob, chat_id, "read", 3)

    # When a late receipt with a lower upToSeq arrives, of either type
    receipt(api, bob, chat_id, "delivered", 1)
    receipt(api, bob, chat_id, "read", 2)

    # Then the markers have not moved back
    assert statuses(api, alice, chat_id) == {1: "read", 2: "read", 3: "read"}
    assert api.call("GET", f"/v1/chats/{chat_id}", token=bob).json()["unreadCount"] == 0


def test_a_delivered_receipt_does_not_undo_read(api: ApiClient) -> None:
    # Given Bob read message 1
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    api.send(alice, chat_id, "one")
    api.send(alice, chat_id, "two")
    receipt(api, bob, chat_id, "read", 1)

    # When his device then reports delivery of both
    receipt(api, bob, chat_id, "delivered", 2)

    # Then 1 stays read and 2 is delivered
    assert statuses(api, alice, chat_id) == {1: "read", 2: "delivered"}


def test_a_receipt_beyond_the_last_seq_is_400(api: ApiClient) -> None:
    # Given a chat with two messages
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    api.send(alice, chat_id, "one")
    api.send(alice, chat_id, "two")

    # When Bob acknowledges up to seq 3
    response = api.call("POST", f"/v1/chats/{chat_id}/receipts", {"type": "read", "upToSeq": 3}, token=bob)

    # Then it is refused, pointing at upToSeq, and nothing moved
    error = assert_error(response, 400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["upToSeq"]
    assert statuses(api, alice, chat_id) == {1: "sent", 2: "sent"}


def test_a_receipt_in_a_chat_without_messages_is_400(api: ApiClient) -> None:
    # Given a chat with no message yet
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)

    # When Bob acknowledges seq 1
    response = api.call(
        "POST", f"/v1/chats/{chat_id}/receipts", {"type": "delivered", "upToSeq": 1}, token=bob
    )

    # Then it is refused
    assert_error(response, 400, "validation_error")


def test_sending_marks_the_senders_own_messages_read(api: ApiClient) -> None:
    # Given Bob wrote twice to Alice
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    api.send(bob, chat_id, "one")
    api.send(bob, chat_id, "two")

    # When Alice replies without sending a receipt
    api.send(alice, chat_id, "three")

    # Then Alice has nothing unread and Bob's messages count as read; her reply is unread by Bob
    assert api.call("GET", f"/v1/chats/{chat_id}", token=alice).json()["unreadCount"] == 0
    assert api.call("GET", f"/v1/chats/{chat_id}", token=bob).json()["unreadCount"] == 1
    assert statuses(api, bob, chat_id) == {1: "read", 2: "read", 3: "sent"}
