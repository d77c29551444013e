"""A first walk through the API: sign in, open a chat, talk, read."""

from __future__ import annotations

from tests.integration.conftest import ApiClient

ALICE = "+14155550101"
BOB = "+14155550102"


def test_two_users_exchange_messages_and_see_statuses(api: ApiClient) -> None:
    # Given two signed-in users
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)

    # When Alice opens a direct chat with Bob and sends a message
    created = api.call("POST", "/v1/chats", {"type": "direct", "members": [BOB]}, token=alice)
    assert created.status == 201, created.body
    chat_id = created.json()["chatId"]
    sent = api.send(alice, chat_id, "hello bob")
    assert sent.status == 201, sent.body
    assert sent.json()["seq"] == 1
    assert sent.json()["status"] == "sent"

    # Then Bob sees the chat with one unread message, and reads it
    api.stack.drain_streams()
    chats = api.call("GET", "/v1/chats", token=bob)
    assert chats.status == 200, chats.body
    [chat] = chats.json()["items"]
    assert chat["unreadCount"] == 1
    assert chat["lastMessage"]["text"] == "hello bob"
    receipt = api.call("POST", f"/v1/chats/{chat_id}/receipts", {"type": "read", "upToSeq": 1}, token=bob)
    assert receipt.status == 204, receipt.body

    # And Alice sees her message as read
    history = api.call("GET", f"/v1/chats/{chat_id}/messages", token=alice)
    assert history.status == 200, history.body
    assert [m["status"] for m in history.json()["items"]] == ["read"]
