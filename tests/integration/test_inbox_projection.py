"""Inboxes moved and messages indexed by ChatActivityFunction from the chats table's stream: a
chat changed several times in one batch (a burst of messages, a member removed meanwhile)
moves each member's inbox once, to where the last change leaves it; a batch's messages are
indexed together, a few writes for many messages; a failure retries every change it folded."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from chatflow.adapters.chat_store import CHAT_SK, DynamoChatRepository
from chatflow.adapters.search_store import DynamoSearchIndex
from local.stack import InProcessStack
from tests.integration.conftest import ApiClient

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"


class ChatsStream:
    """Reads the chats table's stream as ChatActivityFunction's trigger does, without
    delivering: each ``batch()`` is the records written since the previous one, as one event."""

    def __init__(self, stack: InProcessStack) -> None:
        self._batches: list[dict[str, Any]] = []
        self._reader = stack.stream_reader("ChatActivityFunction", self._capture)
        self._reader.poll_once()  # what was written before: not pending
        self._batches.clear()

    def _capture(self, function: str, event: dict[str, Any], trigger: str) -> dict[str, Any]:
        self._batches.append(event)
        return {"batchItemFailures": []}

    def batch(self) -> dict[str, Any]:
        self._reader.poll_once()
        assert len(self._batches) == 1, self._batches
        return self._batches.pop()


def chat_order(api: ApiClient, token: str) -> list[str]:
    response = api.call("GET", "/v1/chats", token=token)
    assert response.status == 200, response.body
    return [chat["chatId"] for chat in response.json()["items"]]


def send(api: ApiClient, token: str, chat_id: str, text: str) -> None:
    time.sleep(0.002)  # activity has millisecond precision: keep "most recent first" unambiguous
    response = api.send(token, chat_id, text)
    assert response.status == 201, response.body


def test_a_burst_in_one_chat_moves_each_inbox_once_to_its_last_message(
    api: ApiClient, calls: list[str]
) -> None:
    # Given Alice's chats with Bob and with Carol, and a burst of messages in both whose
    # stream records come to ChatActivityFunction in one batch
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    with_bob = api.open_direct(alice, BOB)
    with_carol = api.open_direct(alice, CAROL)
    api.stack.drain_streams()
    stream = ChatsStream(api.stack)
    for text in ("one", "two", "three"):
        send(api, alice, with_bob, text)
    send(api, alice, with_carol, "hi carol")
    send(api, bob, with_bob, "four")
    batch = stream.batch()

    # When the function handles that batch
    calls.clear()
    response = api.stack.invoke("ChatActivityFunction", batch)

    # Then every record succeeded, each inbox entry was written once (two members of each
    # chat, not one write per message), and the chat with the latest message comes first
    assert response == {"batchItemFailures": []}
    assert calls.count("PutItem") == 4
    assert chat_order(api, alice) == [with_bob, with_carol]
    assert chat_order(api, bob) == [with_bob]


def test_an_older_change_delivered_late_leaves_each_inbox_where_a_newer_one_put_it(api: ApiClient) -> None:
    # Given Alice's chats with Bob and with Carol, a message in each (Carol's the later),
    # each pending in its own batch
    alice = api.sign_in(ALICE)
    with_bob = api.open_direct(alice, BOB)
    with_carol = api.open_direct(alice, CAROL)
    api.stack.drain_streams()
    stream = ChatsStream(api.stack)
    send(api, alice, with_bob, "to bob")
    older = stream.batch()
    send(api, alice, with_carol, "to carol")
    newer = stream.batch()
    send(api, alice, with_bob, "to bob again")
    newest = stream.batch()

    # When the function handles the newest change of the chat with Bob, then the chat with
    # Carol, then, late (a retry), the older change of the chat with Bob
    for batch in (newest, newer, older):
        assert api.stack.invoke("ChatActivityFunction", batch) == {"batchItemFailures": []}

    # Then the late change moved nothing back: Carol's chat was moved last but Bob's has the
    # later message, and it stays first
    assert chat_order(api, alice) == [with_bob, with_carol]


def test_a_member_removed_during_a_burst_loses_the_chat_and_the_others_see_it_move(api: ApiClient) -> None:
    # Given a group of Alice, Bob and Carol, and Alice's direct chat with Bob, more recent
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    carol = api.sign_in(CAROL)
    group = api.create_group(alice, [BOB, CAROL])
    direct = api.open_direct(alice, BOB)
    send(api, alice, direct, "later")
    api.stack.drain_streams()
    assert chat_order(api, bob) == [direct, group]
    stream = ChatsStream(api.stack)

    # When, in one batch, the group gets a message, Carol is removed, and it gets another
    send(api, alice, group, "before")
    removed = api.call("DELETE", f"/v1/chats/{group}/members/{CAROL}", token=alice)
    assert removed.status in (200, 204), removed.body
    send(api, alice, group, "after")
    response = api.stack.invoke("ChatActivityFunction", stream.batch())

    # Then Carol no longer has the group, and for Bob it is now the most recent chat
    assert response == {"batchItemFailures": []}
    assert chat_order(api, carol) == []
    assert chat_order(api, bob) == [group, direct]


def a_burst_of_three(api: ApiClient) -> tuple[str, dict[str, Any]]:
    """Alice's token, and one batch holding her three messages to Bob: "one", "two", "three"."""
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    api.stack.drain_streams()
    stream = ChatsStream(api.stack)
    for text in ("one", "two", "three"):
        send(api, alice, chat_id, text)
    return alice, stream.batch()


def sequence_numbers(batch: dict[str, Any], sort_key_prefix: str) -> list[str]:
    """The sequence numbers of the batch's records of items whose sort key has this prefix."""
    return [
        record["dynamodb"]["SequenceNumber"]
        for record in batch["Records"]
        if record["dynamodb"]["Keys"]["SK"]["S"].startswith(sort_key_prefix)
    ]


def failed(response: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def unavailable(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("DynamoDB is unavailable")


def test_when_a_folded_inbox_move_fails_the_batch_is_retried_from_the_chats_first_change(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a burst of three messages in one chat, pending in one batch
    _, batch = a_burst_of_three(api)
    metas = sequence_numbers(batch, CHAT_SK)
    assert len(metas) == 3

    # When moving the inboxes fails
    monkeypatch.setattr(DynamoChatRepository, "project_inbox", unavailable)
    response = api.stack.invoke("ChatActivityFunction", batch)

    # Then the failure reported is the chat's first change, so that Lambda delivers every
    # change folded into it again (it retries from the lowest failed sequence number)
    assert failed(response) == metas[:1]


def found(api: ApiClient, token: str, q: str) -> list[str]:
    response = api.call("GET", "/v1/search", token=token, query={"q": q, "limit": 100})
    assert response.status == 200, response.body
    return [message["text"] for message in response.json()["items"]]


def test_a_batchs_messages_are_indexed_together_in_a_few_writes(api: ApiClient, calls: list[str]) -> None:
    # Given a burst of 20 messages of two words each from Alice and Bob, pending in one batch
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    api.stack.drain_streams()
    stream = ChatsStream(api.stack)
    texts = [f"burst{n} together" for n in range(20)]
    for n, text in enumerate(texts):
        send(api, (alice, bob)[n % 2], chat_id, text)
    batch = stream.batch()
    assert sum(r["dynamodb"]["Keys"]["SK"]["S"].startswith("MSG#") for r in batch["Records"]) == 20

    # When the function handles that batch
    calls.clear()
    response = api.stack.invoke("ChatActivityFunction", batch)

    # Then every record succeeded, the 40 index entries went out 25 to a call (not one call
    # or more per message), and every message is found
    assert response == {"batchItemFailures": []}
    assert calls.count("BatchWriteItem") == math.ceil(40 / 25)
    assert sorted(found(api, alice, "together")) == sorted(texts)
    assert found(api, alice, "burst7") == ["burst7 together"]


def test_when_indexing_a_batchs_messages_fails_it_is_retried_from_its_first_message(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three messages pending in one batch
    alice, batch = a_burst_of_three(api)
    messages = sequence_numbers(batch, "MSG#")
    assert len(messages) == 3

    # When writing the index fails
    with monkeypatch.context() as patch:
        patch.setattr(DynamoSearchIndex, "index", unavailable)
        response = api.stack.invoke("ChatActivityFunction", batch)

    # Then the failure reported is the batch's first message, so that Lambda delivers every
    # message folded into it again; delivered again, all three are found
    assert failed(response) == messages[:1]
    assert found(api, alice, "three") == []
    assert api.stack.invoke("ChatActivityFunction", batch) == {"batchItemFailures": []}
    assert sorted(found(api, alice, "t")) == ["three", "two"]
    assert found(api, alice, "one") == ["one"]
