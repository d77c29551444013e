"""Concurrent requests: seq stays gapless and unique, and a pair has one direct chat (contract §2)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import pytest
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

import local.runtime
from local.apigw import HttpResult
from local.stack import InProcessStack
from tests.integration.conftest import ApiClient

T = TypeVar("T")

THREADS = 8
MESSAGES_PER_THREAD = 10
OWNER = "+14155550100"
MEMBERS = [f"+1415555{n:04d}" for n in range(201, 201 + THREADS - 1)]


@contextmanager
def _inherited_environment(values: dict[str, str]) -> Iterator[None]:
    yield


@pytest.fixture
def concurrent_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiClient]:
    """The stack, with function invocations really running side by side.

    ``local.runtime`` applies each function's environment variables under one
    process-wide lock held for the whole invocation, so requests from several threads
    would run one after another and no race could ever happen. The functions read
    their environment only at import (cold start), so once every function is warm the
    lock is replaced by a no-op and handlers overlap as Lambda invocations do.

    moto's DynamoDB backend, on the other hand, is not safe under threads (see
    ``_atomic_requests``), while real DynamoDB applies every request atomically. Each
    AWS request is therefore processed under a lock: handlers interleave between their
    DynamoDB calls, exactly where a real race would happen, but never inside one.
    """
    with mock_aws():
        api = ApiClient(InProcessStack.create(parameters={"AuthMode": "phone"}))
        warm = api.sign_in(OWNER)
        api.call("GET", "/v1/chats", token=warm)
        api.call("GET", "/v1/users/me", token=warm)
        for function in api.stack.functions.values():
            assert function.module is not None
        monkeypatch.setattr(local.runtime, "_environment", _inherited_environment)
        _atomic_requests(monkeypatch)
        yield api


def _atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Process one moto request at a time, as DynamoDB applies each request atomically.

    Without it moto itself breaks under threads: ``transact_write_items`` snapshots every
    table it touches with ``copy.deepcopy`` and, when the transaction is cancelled (a lost
    race, which this test provokes on purpose), restores that snapshot, erasing whatever
    other threads wrote in the meantime; ``put_item`` with a condition evaluates it and
    writes without a lock. Both give results no DynamoDB table can produce.
    """
    lock = threading.Lock()
    original = BotocoreStubber.process_request

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return original(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)


def run_together(tasks: list[Callable[[], T]]) -> list[T]:
    """Run every task on its own thread, all starting at the same moment."""
    barrier = threading.Barrier(len(tasks))

    def start(task: Callable[[], T]) -> T:
        barrier.wait(timeout=10)
        return task()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(start, task) for task in tasks]
        return [f.result(timeout=60) for f in futures]


def test_handlers_really_overlap_in_this_module(concurrent_api: ApiClient) -> None:
    # Given the chats function, instrumented to count invocations in flight
    chats = concurrent_api.stack.functions["ChatsFunction"]
    original = chats.handler
    in_flight = 0
    most = 0
    guard = threading.Lock()

    def counting(event: dict[str, Any], context: Any) -> Any:
        nonlocal in_flight, most
        with guard:
            in_flight += 1
            most = max(most, in_flight)
        try:
            return original(event, context)
        finally:
            with guard:
                in_flight -= 1

    setattr(chats.module, chats.spec.attribute, counting)
    tokens = [concurrent_api.sign_in(phone) for phone in [OWNER, *MEMBERS[:3]]]
    group = concurrent_api.create_group(tokens[0], MEMBERS[:3])

    # When four members send five messages each at the same moment
    def sender(token: str) -> None:
        for _ in range(5):
            assert concurrent_api.send(token, group, "hi").status == 201

    run_together([partial(sender, t) for t in tokens])

    # Then more than one invocation ran at a time (else the races below could not happen)
    assert most > 1


def test_concurrent_senders_get_gapless_unique_seqs_and_duplicates_store_nothing(
    concurrent_api: ApiClient,
) -> None:
    # Given a group of 8 members, each signed in
    api = concurrent_api
    tokens = [api.sign_in(phone) for phone in [OWNER, *MEMBERS]]
    group = api.create_group(tokens[0], MEMBERS, name="busy")

    def sender(index: int) -> list[tuple[str, HttpResult]]:
        """Send 10 messages; odd threads resend every third one right away (a client retry)."""
        results = []
        for k in range(MESSAGES_PER_THREAD):
            cmid = f"t{index}-m{k}"
            results.append((cmid, api.send(tokens[index], group, f"thread {index} message {k}", cmid)))
            if index % 2 == 1 and k % 3 == 0:
                results.append((cmid, api.send(tokens[index], group, "a retry", cmid)))
        return results

    # When 8 threads send 10 messages each at the same moment, some with retries
    per_thread = run_together([partial(sender, i) for i in range(THREADS)])

    # Then every first send is 201 and every retry 200 with the original message
    originals: dict[tuple[str, str], dict[str, Any]] = {}
    for index, results in enumerate(per_thread):
        phone = [OWNER, *MEMBERS][index]
        for cmid, response in results:
            key = (phone, cmid)
            if key not in originals:
                assert response.status == 201, (cmid, response.status, response.body)
                originals[key] = response.json()
            else:
                assert response.status == 200, (cmid, response.status, response.body)
                assert response.json()["messageId"] == originals[key]["messageId"]
                assert response.json()["seq"] == originals[key]["seq"]
                assert response.json()["text"] == originals[key]["text"]
    total = THREADS * MESSAGES_PER_THREAD
    assert len(originals) == total

    # And the history holds exactly those messages, with seq 1..N, each once
    pages = api.all_pages(f"/v1/chats/{group}/messages", tokens[0], limit=100, query={"afterSeq": 0})
    history = [m for page in pages for m in page]
    assert [m["seq"] for m in history] == list(range(1, total + 1))
    assert len({m["messageId"] for m in history}) == total
    assert {(m["sender"], m["clientMessageId"]) for m in history} == set(originals)
    for message in history:
        original = originals[(message["sender"], message["clientMessageId"])]
        assert message == {**original, "status": message["status"]}

    # And each thread's messages are in the order it sent them
    for index in range(THREADS):
        phone = [OWNER, *MEMBERS][index]
        own = [m["clientMessageId"] for m in history if m["sender"] == phone]
        assert own == [f"t{index}-m{k}" for k in range(MESSAGES_PER_THREAD)]

    # And every member sees the same last message
    for token in tokens:
        chat = api.call("GET", f"/v1/chats/{group}", token=token).json()
        assert chat["lastMessage"]["seq"] == total


def test_two_users_opening_their_direct_chat_at_once_get_one_chat(concurrent_api: ApiClient) -> None:
    api = concurrent_api
    for pair in range(10):
        # Given two users who have no chat yet (a fresh pair each round)
        first, second = f"+1415555{3000 + 2 * pair:04d}", f"+1415555{3001 + 2 * pair:04d}"
        first_token, second_token = api.sign_in(first), api.sign_in(second)

        # When both open their direct chat at the same moment
        def open_chat(token: str, other: str) -> HttpResult:
            return api.call("POST", "/v1/chats", {"type": "direct", "members": [other]}, token=token)

        responses = run_together(
            [partial(open_chat, first_token, second), partial(open_chat, second_token, first)]
        )

        # Then they get the same chat: one of them created it (201), the other found it (200)
        assert sorted(r.status for r in responses) == [200, 201], [(r.status, r.body) for r in responses]
        chat_ids = {r.json()["chatId"] for r in responses}
        assert len(chat_ids) == 1
        created = next(r.json() for r in responses if r.status == 201)
        found = next(r.json() for r in responses if r.status == 200)
        assert found["createdBy"] == created["createdBy"]
        assert found["createdAt"] == created["createdAt"]

        # And each of them has exactly that one chat in their list
        api.stack.drain_streams()
        for token in (first_token, second_token):
            listed = api.call("GET", "/v1/chats", token=token).json()["items"]
            assert [c["chatId"] for c in listed] == list(chat_ids)


def test_two_users_sending_first_messages_at_once_share_one_direct_chat(concurrent_api: ApiClient) -> None:
    api = concurrent_api
    for pair in range(5):
        # Given two users who have no chat yet
        first, second = f"+1415555{4000 + 2 * pair:04d}", f"+1415555{4001 + 2 * pair:04d}"
        first_token, second_token = api.sign_in(first), api.sign_in(second)

        # When each sends the other a first message at the same moment
        def send(token: str, to: str) -> HttpResult:
            body = {"to": to, "text": f"hi {to}", "clientMessageId": "hello"}
            return api.call("POST", "/v1/messages", body, token=token)

        responses = run_together([partial(send, first_token, second), partial(send, second_token, first)])

        # Then both messages are in one chat, as seq 1 and 2
        assert [r.status for r in responses] == [201, 201], [r.body for r in responses]
        assert len({r.json()["chatId"] for r in responses}) == 1
        assert sorted(r.json()["seq"] for r in responses) == [1, 2]
