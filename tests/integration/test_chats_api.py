"""Chats and their members through the HTTP API (contract §2)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest

from tests.integration.conftest import ApiClient, assert_error

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"
DAVE = "+14155550104"
ERIN = "+14155550105"
FRANK = "+14155550106"
MALLORY = "+14155550166"

ISO_MILLIS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def next_millisecond() -> None:
    """Activity times have millisecond precision: keep the order of events unambiguous."""
    time.sleep(0.002)


def chat_ids(api: ApiClient, token: str) -> list[str]:
    response = api.call("GET", "/v1/chats", token=token, query={"limit": 100})
    assert response.status == 200, response.body
    return [c["chatId"] for c in response.json()["items"]]


# ---- direct chats --------------------------------------------------------------------


def test_creating_a_direct_chat_answers_201_with_the_chat(api: ApiClient) -> None:
    # Given two signed-in users
    alice = api.sign_in(ALICE)
    api.sign_in(BOB)

    # When Alice opens a direct chat with Bob (number in a local format)
    response = api.call("POST", "/v1/chats", {"type": "direct", "members": ["(415) 555-0102"]}, token=alice)

    # Then the chat is created with both members, in the contract's shape
    assert response.status == 201, response.body
    chat = response.json()
    assert set(chat) == {
        "chatId",
        "type",
        "name",
        "members",
        "createdBy",
        "createdAt",
        "lastActivityAt",
        "lastMessage",
        "unreadCount",
    }
    assert chat["type"] == "direct"
    assert chat["name"] is None
    assert sorted(m["phoneNumber"] for m in chat["members"]) == [ALICE, BOB]
    assert all(set(m) == {"phoneNumber", "displayName"} for m in chat["members"])
    assert chat["createdBy"] == ALICE
    assert ISO_MILLIS_Z.match(chat["createdAt"])
    assert ISO_MILLIS_Z.match(chat["lastActivityAt"])
    assert chat["lastMessage"] is None
    assert chat["unreadCount"] == 0


def test_opening_the_direct_chat_again_answers_200_with_the_same_chat(api: ApiClient) -> None:
    # Given Alice opened a direct chat with Bob
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    first = api.call("POST", "/v1/chats", {"type": "direct", "members": [BOB]}, token=alice)
    assert first.status == 201, first.body

    # When Alice opens it again, and Bob opens it from his side
    again = api.call("POST", "/v1/chats", {"type": "direct", "members": [BOB]}, token=alice)
    from_bob = api.call("POST", "/v1/chats", {"type": "direct", "members": ["+1 415 555 0101"]}, token=bob)

    # Then both get 200 and the one chat
    assert again.status == 200, again.body
    assert from_bob.status == 200, from_bob.body
    assert again.json()["chatId"] == first.json()["chatId"]
    assert from_bob.json()["chatId"] == first.json()["chatId"]
    assert from_bob.json()["createdBy"] == ALICE


def test_a_direct_chat_with_oneself_is_400(api: ApiClient) -> None:
    # Given a signed-in user
    alice = api.sign_in(ALICE)

    # When she opens a direct chat with her own number
    response = api.call("POST", "/v1/chats", {"type": "direct", "members": [ALICE]}, token=alice)

    # Then it is refused
    assert_error(response, 400, "validation_error")


def test_a_direct_chat_with_two_others_is_400(api: ApiClient) -> None:
    # Given a signed-in user
    alice = api.sign_in(ALICE)

    # When she lists two other numbers for a direct chat
    response = api.call("POST", "/v1/chats", {"type": "direct", "members": [BOB, CAROL]}, token=alice)

    # Then it is refused, pointing at members
    error = assert_error(response, 400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["members"]


def test_sending_to_a_number_creates_the_direct_chat_on_demand(api: ApiClient) -> None:
    # Given two users with no chat yet
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)

    # When Alice sends a message to Bob's number
    response = api.call(
        "POST", "/v1/messages", {"to": BOB, "text": "hi", "clientMessageId": "c1"}, token=alice
    )

    # Then the message is stored in their direct chat, which both see
    assert response.status == 201, response.body
    message = response.json()
    assert message["seq"] == 1
    assert message["sender"] == ALICE
    opened = api.call("POST", "/v1/chats", {"type": "direct", "members": [ALICE]}, token=bob)
    assert opened.status == 200, opened.body
    assert opened.json()["chatId"] == message["chatId"]
    api.stack.drain_streams()
    assert chat_ids(api, bob) == [message["chatId"]]


def test_sending_to_a_number_reuses_the_existing_direct_chat(api: ApiClient) -> None:
    # Given Alice and Bob already have a direct chat with one message
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    assert api.send(alice, chat_id, "first").status == 201

    # When Bob sends to Alice's number
    response = api.call(
        "POST", "/v1/messages", {"to": ALICE, "text": "second", "clientMessageId": "c1"}, token=bob
    )

    # Then it lands in the same chat as the next message
    assert response.status == 201, response.body
    assert response.json()["chatId"] == chat_id
    assert response.json()["seq"] == 2


# ---- groups --------------------------------------------------------------------------


def test_creating_a_group_makes_the_caller_a_member_and_its_creator(api: ApiClient) -> None:
    # Given a signed-in user
    alice = api.sign_in(ALICE)

    # When she creates a group with two others
    response = api.call(
        "POST", "/v1/chats", {"type": "group", "name": " Climbing ", "members": [BOB, CAROL]}, token=alice
    )

    # Then the group holds all three, with her as creator
    assert response.status == 201, response.body
    chat = response.json()
    assert chat["type"] == "group"
    assert chat["name"] == "Climbing"
    assert chat["createdBy"] == ALICE
    assert sorted(m["phoneNumber"] for m in chat["members"]) == [ALICE, BOB, CAROL]
    got = api.call("GET", f"/v1/chats/{chat['chatId']}", token=alice)
    assert got.status == 200, got.body
    assert got.json()["chatId"] == chat["chatId"]


def test_a_group_with_fewer_than_two_others_is_400(api: ApiClient) -> None:
    # Given a signed-in user
    alice = api.sign_in(ALICE)

    # When she creates a group listing one other number (and herself)
    response = api.call(
        "POST", "/v1/chats", {"type": "group", "name": "duo", "members": [BOB, ALICE]}, token=alice
    )

    # Then it is refused
    assert_error(response, 400, "validation_error")


def test_a_group_without_a_name_is_400(api: ApiClient) -> None:
    # Given a signed-in user
    alice = api.sign_in(ALICE)

    # When she creates a group with no name
    response = api.call("POST", "/v1/chats", {"type": "group", "members": [BOB, CAROL]}, token=alice)

    # Then it is refused, pointing at name
    error = assert_error(response, 400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["name"]


def test_adding_members_to_a_group_answers_200_with_the_chat(api: ApiClient) -> None:
    # Given a group of three
    alice = api.sign_in(ALICE)
    group = api.create_group(alice, [BOB, CAROL])

    # When Alice adds two more numbers (one already a member)
    response = api.call("POST", f"/v1/chats/{group}/members", {"members": [DAVE, ERIN, BOB]}, token=alice)

    # Then the group holds all five
    assert response.status == 200, response.body
    assert sorted(m["phoneNumber"] for m in response.json()["members"]) == [ALICE, BOB, CAROL, DAVE, ERIN]


def test_added_members_see_the_group_but_no_earlier_message_as_unread(api: ApiClient) -> None:
    # Given a group with a message in it
    alice = api.sign_in(ALICE)
    dave = api.sign_in(DAVE)
    group = api.create_group(alice, [BOB, CAROL])
    assert api.send(alice, group, "before dave").status == 201

    # When Dave is added
    assert api.call("POST", f"/v1/chats/{group}/members", {"members": [DAVE]}, token=alice).status == 200

    # Then Dave sees the group, with nothing unread
    api.stack.drain_streams()
    chats = api.call("GET", "/v1/chats", token=dave).json()["items"]
    assert [c["chatId"] for c in chats] == [group]
    assert chats[0]["unreadCount"] == 0


def test_adding_members_to_a_direct_chat_is_400(api: ApiClient) -> None:
    # Given a direct chat
    alice = api.sign_in(ALICE)
    direct = api.open_direct(alice, BOB)

    # When Alice tries to add a member to it
    response = api.call("POST", f"/v1/chats/{direct}/members", {"members": [CAROL]}, token=alice)

    # Then it is refused, and the chat keeps its two members
    assert_error(response, 400, "validation_error")
    chat = api.call("GET", f"/v1/chats/{direct}", token=alice).json()
    assert sorted(m["phoneNumber"] for m in chat["members"]) == [ALICE, BOB]


def test_a_member_may_remove_itself(api: ApiClient) -> None:
    # Given a group Bob is in (not its creator)
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    group = api.create_group(alice, [BOB, CAROL])

    # When Bob removes himself
    response = api.call("DELETE", f"/v1/chats/{group}/members/{BOB}", token=bob)

    # Then he is gone from the group
    assert response.status == 204, response.body
    assert response.body == ""
    chat = api.call("GET", f"/v1/chats/{group}", token=alice).json()
    assert sorted(m["phoneNumber"] for m in chat["members"]) == [ALICE, CAROL]


def test_the_creator_may_remove_another_member(api: ApiClient) -> None:
    # Given a group created by Alice
    alice = api.sign_in(ALICE)
    group = api.create_group(alice, [BOB, CAROL, DAVE])

    # When Alice removes Carol (number URL-encoded, as clients send it)
    response = api.call("DELETE", f"/v1/chats/{group}/members/%2B14155550103", token=alice)

    # Then Carol is gone
    assert response.status == 204, response.body
    chat = api.call("GET", f"/v1/chats/{group}", token=alice).json()
    assert sorted(m["phoneNumber"] for m in chat["members"]) == [ALICE, BOB, DAVE]


def test_a_member_who_is_not_the_creator_may_not_remove_another_403(api: ApiClient) -> None:
    # Given a group created by Alice
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    group = api.create_group(alice, [BOB, CAROL])

    # When Bob tries to remove Carol
    response = api.call("DELETE", f"/v1/chats/{group}/members/{CAROL}", token=bob)

    # Then it is forbidden and Carol stays
    assert_error(response, 403, "forbidden")
    chat = api.call("GET", f"/v1/chats/{group}", token=alice).json()
    assert CAROL in [m["phoneNumber"] for m in chat["members"]]


def test_removing_someone_who_is_not_a_member_is_404(api: ApiClient) -> None:
    # Given a group created by Alice
    alice = api.sign_in(ALICE)
    group = api.create_group(alice, [BOB, CAROL])

    # When Alice removes a number that is not in it
    response = api.call("DELETE", f"/v1/chats/{group}/members/{DAVE}", token=alice)

    # Then it is not found
    assert_error(response, 404, "not_found")


def test_a_removed_member_gets_404_on_the_chat(api: ApiClient) -> None:
    # Given Carol was removed from a group
    alice = api.sign_in(ALICE)
    carol = api.sign_in(CAROL)
    group = api.create_group(alice, [BOB, CAROL])
    assert api.send(alice, group, "hello").status == 201
    assert api.call("DELETE", f"/v1/chats/{group}/members/{CAROL}", token=alice).status == 204

    # When Carol reads the chat, its messages, or writes to it
    chat = api.call("GET", f"/v1/chats/{group}", token=carol)
    history = api.call("GET", f"/v1/chats/{group}/messages", token=carol)
    sent = api.send(carol, group, "still here?")

    # Then each is 404, and the chat is not in her list
    assert_error(chat, 404, "not_found")
    assert_error(history, 404, "not_found")
    assert_error(sent, 404, "not_found")
    api.stack.drain_streams()
    assert chat_ids(api, carol) == []


def test_the_history_of_a_chat_one_is_not_in_is_404_whatever_the_cursor(api: ApiClient) -> None:
    # Given a group of Alice and Bob with messages, a page cursor of it, and Carol, not in it
    alice = api.sign_in(ALICE)
    carol = api.sign_in(CAROL)
    group = api.create_group(alice, [BOB, DAVE])
    for text in ("one", "two", "three"):
        assert api.send(alice, group, text).status == 201
    first = api.call("GET", f"/v1/chats/{group}/messages", token=alice, query={"limit": 1})
    cursor = first.json()["nextCursor"]

    # When Carol reads its history: plain, with Alice's cursor, with a made-up cursor
    plain = api.call("GET", f"/v1/chats/{group}/messages", token=carol)
    borrowed = api.call("GET", f"/v1/chats/{group}/messages", token=carol, query={"cursor": cursor})
    made_up = api.call("GET", f"/v1/chats/{group}/messages", token=carol, query={"cursor": "abc"})

    # Then each is 404 (not a 400 for the cursor: the chat's existence is not leaked), with
    # no message in the body
    for response in (plain, borrowed, made_up):
        assert_error(response, 404, "not_found")
        assert "one" not in str(response.body)
    # And Alice's cursor still pages her history
    second = api.call("GET", f"/v1/chats/{group}/messages", token=alice, query={"limit": 1, "cursor": cursor})
    assert [m["text"] for m in second.json()["items"]] == ["two"]


def test_a_number_without_an_account_is_a_member_and_sees_the_chat_after_signing_in(
    api: ApiClient,
) -> None:
    # Given Alice creates a group with Bob and Frank, who has never signed in, and writes to it
    alice = api.sign_in(ALICE)
    group = api.create_group(alice, [BOB, FRANK])
    assert api.send(alice, group, "welcome frank").status == 201
    api.stack.drain_streams()

    # When Frank signs in for the first time
    frank = api.sign_in(FRANK)

    # Then the group is in his chats, with the message unread, and he can reply
    chats = api.call("GET", "/v1/chats", token=frank).json()["items"]
    assert [c["chatId"] for c in chats] == [group]
    assert chats[0]["unreadCount"] == 1
    assert chats[0]["lastMessage"]["text"] == "welcome frank"
    assert api.send(frank, group, "thanks").status == 201


# ---- the chat list -------------------------------------------------------------------


def test_chats_are_listed_by_most_recent_activity(api: ApiClient) -> None:
    # Given Alice has three chats, created in order
    alice = api.sign_in(ALICE)
    first = api.open_direct(alice, BOB)
    next_millisecond()
    second = api.open_direct(alice, CAROL)
    next_millisecond()
    third = api.create_group(alice, [DAVE, ERIN])
    api.stack.drain_streams()
    assert chat_ids(api, alice) == [third, second, first]

    # When a message arrives in the oldest chat
    bob = api.sign_in(BOB)
    next_millisecond()
    assert api.send(bob, first, "bump").status == 201
    api.stack.drain_streams()

    # Then it moves to the top of both members' lists
    assert chat_ids(api, alice) == [first, third, second]
    assert chat_ids(api, bob) == [first]


def test_chat_list_pages_do_not_overlap_and_cover_every_chat(api: ApiClient) -> None:
    # Given Alice has 5 chats with activity in a known order
    alice = api.sign_in(ALICE)
    created = [api.open_direct(alice, other) for other in (BOB, CAROL, DAVE, ERIN, FRANK)]
    for chat_id in created:
        next_millisecond()
        assert api.send(alice, chat_id, "hi").status == 201
    api.stack.drain_streams()

    # When she pages through her chats two at a time
    pages = api.all_pages("/v1/chats", alice, limit=2)

    # Then the pages are 2, 2, 1 long, newest first, without overlap, and the last has no cursor
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [c["chatId"] for page in pages for c in page]
    assert listed == list(reversed(created))


def test_chat_list_with_exactly_limit_chats_lists_each_once(api: ApiClient) -> None:
    # Given Alice has 2 chats
    alice = api.sign_in(ALICE)
    api.open_direct(alice, BOB)
    api.open_direct(alice, CAROL)

    # When she lists them with limit=2 and follows the cursor
    pages = api.all_pages("/v1/chats", alice, limit=2)

    # Then every chat is listed once and only the last page may be short
    assert all(len(page) == 2 for page in pages[:-1])
    listed = [c["chatId"] for page in pages for c in page]
    assert len(listed) == len(set(listed)) == 2


def test_unread_count_is_messages_after_the_readers_read_marker(api: ApiClient) -> None:
    # Given Alice sent Bob three messages
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    for text in ("one", "two", "three"):
        assert api.send(alice, chat_id, text).status == 201

    # Then Bob has 3 unread and Alice (the sender) none
    assert api.call("GET", f"/v1/chats/{chat_id}", token=bob).json()["unreadCount"] == 3
    assert api.call("GET", f"/v1/chats/{chat_id}", token=alice).json()["unreadCount"] == 0

    # When Bob reads up to the second one
    receipt = api.call("POST", f"/v1/chats/{chat_id}/receipts", {"type": "read", "upToSeq": 2}, token=bob)
    assert receipt.status == 204, receipt.body

    # Then one is left unread, in the chat and in his list
    assert api.call("GET", f"/v1/chats/{chat_id}", token=bob).json()["unreadCount"] == 1
    api.stack.drain_streams()
    [listed] = api.call("GET", "/v1/chats", token=bob).json()["items"]
    assert listed["unreadCount"] == 1


def test_delivered_receipts_do_not_change_the_unread_count(api: ApiClient) -> None:
    # Given Alice sent Bob two messages
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    api.send(alice, chat_id, "one")
    api.send(alice, chat_id, "two")

    # When Bob's device marks them delivered
    receipt = api.call(
        "POST", f"/v1/chats/{chat_id}/receipts", {"type": "delivered", "upToSeq": 2}, token=bob
    )
    assert receipt.status == 204, receipt.body

    # Then both are still unread
    assert api.call("GET", f"/v1/chats/{chat_id}", token=bob).json()["unreadCount"] == 2


# ---- not a member: 404, never 403 ----------------------------------------------------


def _non_member_requests(chat_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/v1/chats/{chat_id}", None),
        ("GET", f"/v1/chats/{chat_id}/messages", None),
        ("POST", f"/v1/chats/{chat_id}/messages", {"text": "let me in", "clientMessageId": "x1"}),
        ("POST", f"/v1/chats/{chat_id}/receipts", {"type": "read", "upToSeq": 1}),
        ("POST", f"/v1/chats/{chat_id}/members", {"members": [MALLORY]}),
        ("DELETE", f"/v1/chats/{chat_id}/members/{BOB}", None),
        ("DELETE", f"/v1/chats/{chat_id}/members/{MALLORY}", None),
    ]


@pytest.mark.parametrize("kind", ["direct", "group"])
@pytest.mark.parametrize("request_index", range(7))
def test_a_non_member_gets_404_for_an_existing_chat(api: ApiClient, kind: str, request_index: int) -> None:
    # Given a chat with one message that Mallory is not in
    alice = api.sign_in(ALICE)
    mallory = api.sign_in(MALLORY)
    chat_id = api.open_direct(alice, BOB) if kind == "direct" else api.create_group(alice, [BOB, CAROL])
    assert api.send(alice, chat_id, "secret").status == 201
    method, path, body = _non_member_requests(chat_id)[request_index]

    # When Mallory reaches for it
    response = api.call(method, path, body, token=mallory)

    # Then it looks exactly like a chat that does not exist
    error = assert_error(response, 404, "not_found")
    missing = "d_" + uuid.uuid4().hex if kind == "direct" else "g_" + uuid.uuid4().hex
    m_method, m_path, m_body = _non_member_requests(missing)[request_index]
    absent = assert_error(api.call(m_method, m_path, m_body, token=mallory), 404, "not_found")
    assert error["message"].replace(chat_id, "ID") == absent["message"].replace(missing, "ID")
    # And nothing changed for the members
    chat = api.call("GET", f"/v1/chats/{chat_id}", token=alice).json()
    assert MALLORY not in [m["phoneNumber"] for m in chat["members"]]
    assert chat["lastMessage"]["text"] == "secret"
