"""Two sends of one chat, one paused between reading the chat and writing its message.

A send reads the chat (its last seq), then writes the message, the chat's new last seq
and its clientMessageId in one conditional transaction: between the two requests another
send can take the seq, or a retry can store the same clientMessageId. Real races need
luck (``test_concurrency.py``); here one send stops at that point and the other runs in
the gap, every time. The chats function's own messaging service runs in this process on
moto, from two threads (moto's requests are atomic: local/moto_patches.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest

import chatflow.adapters.aws
from chatflow.domain.messaging import MessagingService, Sent
from local.specs import REGION
from tests.integration.conftest import ApiClient

T = TypeVar("T")
OWNER = "+14155550100"
MEMBERS = ["+14155550201", "+14155550202"]


@contextmanager
def paused_before_its_transaction(client: Any) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The first TransactWriteItems sent through ``client`` stops (before it is sent) until released.

    A send reads the chat, then writes the message by transaction: this pauses it between
    the two, where another send can take the seq or the clientMessageId it is about to write.
    """
    reached, release = threading.Event(), threading.Event()

    def pause(**_: Any) -> None:
        if not reached.is_set():
            reached.set()
            assert release.wait(10), "never released"

    event = "before-call.dynamodb.TransactWriteItems"
    client.meta.events.register(event, pause)
    try:
        yield reached, release
    finally:
        client.meta.events.unregister(event, pause)


@pytest.fixture
def group_chat(api: ApiClient) -> tuple[MessagingService, str]:
    """The chats function's messaging service (in this process, on moto) and a group of three."""
    owner = api.sign_in(OWNER)
    chat_id = api.create_group(owner, MEMBERS)
    module = api.stack.functions["ChatsFunction"].module
    messaging: MessagingService = module.deps.messaging()
    return messaging, chat_id


def history(api: ApiClient, chat_id: str) -> list[dict[str, Any]]:
    token = api.sign_in(OWNER)
    response = api.call("GET", f"/v1/chats/{chat_id}/messages", token=token, query={"afterSeq": 0})
    assert response.status == 200, response.body
    return list(response.json()["items"])


def in_background(call: Callable[[], T]) -> tuple[Future[T], ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(1)
    return pool.submit(call), pool


def test_a_send_overtaken_between_its_read_and_its_write_takes_the_next_seq(
    api: ApiClient, group_chat: tuple[MessagingService, str]
) -> None:
    messaging, chat_id = group_chat
    client = chatflow.adapters.aws.dynamodb(REGION)
    with paused_before_its_transaction(client) as (reached, release):
        # Given a send that has read the chat (last seq 0) and is about to write seq 1
        first, pool = in_background(lambda: messaging.send(OWNER, chat_id, "first", "owner-1"))
        assert reached.wait(10)

        # When another member's send stores seq 1 in the meantime, then the first goes on
        overtaking = messaging.send(MEMBERS[0], chat_id, "second", "member-1")
        release.set()
        paused = first.result(timeout=10)
        pool.shutdown()

    # Then the paused send is stored too, as seq 2: no seq lost, none taken twice
    assert (overtaking.created, overtaking.message.seq) == (True, 1)
    assert (paused.created, paused.message.seq) == (True, 2)
    history = api.call(
        "GET", f"/v1/chats/{chat_id}/messages", token=api.sign_in(OWNER), query={"afterSeq": 0}
    )
    assert [(m["seq"], m["text"]) for m in history.json()["items"]] == [(1, "second"), (2, "first")]


def test_a_retry_that_overtakes_its_first_send_leaves_one_message_that_both_answer(
    api: ApiClient, group_chat: tuple[MessagingService, str]
) -> None:
    messaging, chat_id = group_chat
    client = chatflow.adapters.aws.dynamodb(REGION)
    with paused_before_its_transaction(client) as (reached, release):
        # Given a send paused between reading the chat and writing its message
        first, pool = in_background(lambda: messaging.send(OWNER, chat_id, "hello", "same-id"))
        assert reached.wait(10)

        # When the client's retry of it (same clientMessageId) is stored meanwhile, then the first goes on
        retry: Sent = messaging.send(OWNER, chat_id, "hello", "same-id")
        release.set()
        paused = first.result(timeout=10)
        pool.shutdown()

    # Then one message is stored: the retry created it, the first send answers with it
    assert retry.created
    assert not paused.created
    assert (paused.message.message_id, paused.message.seq) == (retry.message.message_id, retry.message.seq)
    history = api.call(
        "GET", f"/v1/chats/{chat_id}/messages", token=api.sign_in(OWNER), query={"afterSeq": 0}
    )
    assert [m["messageId"] for m in history.json()["items"]] == [retry.message.message_id]
