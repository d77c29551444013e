"""Concurrent requests: seq stays gapless and unique, and a pair has one direct chat (contract §2).

Lambda runs concurrent invocations in separate execution environments (processes), each
handling one invocation at a time, and they meet only in DynamoDB, which applies each
request atomically. The tests here run exactly that: every function in worker processes
of its own (``local.functions``, as ``make run``), against the emulated AWS server, with
requests from several threads at once. ``test_send_interleavings.py`` provokes the
interleavings these tests can only hope for, deterministically.

(Running concurrent invocations as threads of one process, as this module once did, is a
world Lambda never makes: Powertools' resolver keeps the current event in a class
attribute, so one invocation read another's caller and body; that, not DynamoDB, was
what stored a retry as a second message and answered a first send as a replay.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import pytest

import chatflow.adapters.aws
from local.apigw import HttpResult
from local.aws_server import EmulatedAws
from local.emulated_aws import EMULATED_AWS_ENV
from local.functions import FunctionRunner, Invocation
from local.stack import InProcessStack
from tests.integration.conftest import ApiClient

T = TypeVar("T")

THREADS = 8
MESSAGES_PER_THREAD = 10
OWNER = "+14155550100"
MEMBERS = [f"+1415555{n:04d}" for n in range(201, 201 + THREADS - 1)]


class WorkerStack(InProcessStack):
    """The template's stack with every invocation in a worker process (an execution environment)."""

    runner: FunctionRunner | None = None
    invocations: list[Invocation]

    def invoke(self, function: str, event: dict[str, Any], trigger: str = "test") -> Any:
        assert self.runner is not None
        return self.runner.invoke(function, event, trigger)


@contextmanager
def worker_api(parameters: dict[str, str]) -> Iterator[ApiClient]:
    """The stack (with these parameters) on the emulated AWS server, its functions in worker
    processes, warmed up."""
    EmulatedAws.reset()
    aws = EmulatedAws()
    aws.start()
    try:
        with pytest.MonkeyPatch.context() as environment:
            # The clients this process makes now (provisioning, stream readers) use the server.
            environment.setenv("AWS_ENDPOINT_URL", aws.url)
            stack = WorkerStack.create(parameters=parameters)
        assert isinstance(stack, WorkerStack)
        inherited = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
        worker_env = inherited | EMULATED_AWS_ENV | {"AWS_ENDPOINT_URL": aws.url}
        logs: list[str] = []
        # A cold start on a busy 2-core machine can take seconds: more than Lambda's 10 s init is no hang.
        with FunctionRunner(stack.template.functions(), worker_env, logs.append, init_timeout=60) as runner:
            stack.runner = runner
            stack.invocations = []
            runner.add_listener(stack.invocations.append)
            api = ApiClient(stack)
            token = api.sign_in(OWNER)
            run_together([partial(api.call, "GET", "/v1/chats", token=token) for _ in range(4)])
            yield api
    finally:
        aws.stop()
        EmulatedAws.reset()
        chatflow.adapters.aws.reset_clients()


@pytest.fixture(scope="module")
def concurrent_api() -> Iterator[ApiClient]:
    # Each member sends 15 messages here, as fast as it can: the send limit is not what these
    # tests are about (test_send_limits_concurrency.py is), so it is set out of the way.
    with worker_api({"AuthMode": "phone", "UserSendRatePerSecond": "1000", "UserSendBurst": "1000"}) as api:
        yield api


def run_together(tasks: list[Callable[[], T]]) -> list[T]:
    """Run every task on its own thread, all starting at the same moment."""
    barrier = threading.Barrier(len(tasks))

    def start(task: Callable[[], T]) -> T:
        barrier.wait(timeout=10)
        return task()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = [pool.submit(start, task) for task in tasks]
        return [f.result(timeout=120) for f in futures]


def most_at_once(invocations: list[Invocation]) -> int:
    edges = sorted(
        (moment, step)
        for i in invocations
        for moment, step in ((i.started_at, 1), (i.started_at + i.duration_ms / 1000, -1))
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_handlers_really_overlap_in_this_module(concurrent_api: ApiClient) -> None:
    # Given a group of four, each member signed in
    api = concurrent_api
    assert isinstance(api.stack, WorkerStack)
    tokens = [api.sign_in(phone) for phone in [OWNER, *MEMBERS[:3]]]
    group = api.create_group(tokens[0], MEMBERS[:3])
    first = len(api.stack.invocations)

    # When the four send five messages each at the same moment
    def sender(token: str) -> None:
        for _ in range(5):
            assert api.send(token, group, "hi").status == 201

    run_together([partial(sender, t) for t in tokens])

    # Then more than one invocation of the chats function ran at a time (else no race could happen)
    sends = [i for i in api.stack.invocations[first:] if i.function == "ChatsFunction"]
    assert len(sends) == 20
    assert most_at_once(sends) > 1


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
                assert response.json()["sender"] == phone
                assert response.json()["clientMessageId"] == cmid
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
