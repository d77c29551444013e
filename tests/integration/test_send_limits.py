"""Per-user send limits (CONTRACT §7): ``UserSendBurst`` messages at once, then
``UserSendRatePerSecond`` a second, over HTTP and WebSocket together.

The stack here allows a burst of 3 and then one message every 100 seconds, so that a
test's own pace (a busy machine is slow, never fast) cannot refill the bucket by accident;
the refill test runs on a stack that refills every 5 seconds. The exact arithmetic of the
limit is unit-tested on a fake clock (tests/unit/test_send_limit.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto import mock_aws

import chatflow.adapters.aws
from chatflow.domain.messaging import MessagingService
from chatflow.errors import RateLimited
from local.apigw import HttpResult
from local.specs import REGION
from local.stack import InProcessStack
from tests.integration import test_realtime
from tests.integration.conftest import ApiClient, assert_error
from tests.integration.test_realtime import Frames, Sockets
from tests.integration.test_send_interleavings import in_background, paused_before_its_transaction

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"

BURST = 3
PER_SECOND = 0.01  # one message every 100 s once the burst is spent
INTERVAL = 1 / PER_SECOND
REFILLING = 0.2  # one message every 5 s: for the test that waits for it


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> Iterator[InProcessStack]:
    """The stack at ``PER_SECOND``, or at the rate a test gives (indirect parametrization)."""
    per_second = getattr(request, "param", PER_SECOND)
    with mock_aws():
        yield InProcessStack.create(
            parameters={
                "AuthMode": "phone",
                "UserSendRatePerSecond": str(per_second),
                "UserSendBurst": str(BURST),
            }
        )


frames = test_realtime.frames  # the fixture: what each connection was sent


@pytest.fixture
def ws(stack: InProcessStack, api: ApiClient) -> Sockets:
    return Sockets(stack, api)


def retry_after(response: HttpResult) -> int:
    """The ``Retry-After`` of a 429 ``rate_limited``: whole seconds, at least 1."""
    assert_error(response, 429, "rate_limited")
    headers = {name.lower(): value for name, value in response.headers.items()}
    value = headers["retry-after"]
    assert value.isdigit(), value
    assert int(value) >= 1
    return int(value)


def history(api: ApiClient, token: str, chat_id: str) -> list[dict[str, Any]]:
    response = api.call("GET", f"/v1/chats/{chat_id}/messages", token=token, query={"afterSeq": 0})
    assert response.status == 200, response.body
    return list(response.json()["items"])


def until(check: Callable[[], bool], *, deadline: float = 60.0, every: float = 0.2) -> float:
    """Seconds until ``check()`` holds (polled), failing past ``deadline``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < deadline, "the condition never held"
        time.sleep(every)
    return time.monotonic() - start


# ---- HTTP ----------------------------------------------------------------------------------


def test_a_burst_of_user_send_burst_passes_and_the_next_send_is_429_with_retry_after(api: ApiClient) -> None:
    # Given Alice in a direct chat with Bob
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)

    # When she sends UserSendBurst messages at once, then one more
    burst = [api.send(alice, chat_id, f"m{n}", f"c{n}") for n in range(BURST)]
    over = api.send(alice, chat_id, "one too many", "over")

    # Then the burst is stored and the next one is refused: 429 rate_limited, with the wait
    assert [r.status for r in burst] == [201] * BURST, [r.body for r in burst]
    wait = retry_after(over)
    assert wait <= math.ceil(INTERVAL)
    assert "clientMessageId" in over.json()["error"]["message"]
    # And nothing of the refused send was stored
    assert [m["clientMessageId"] for m in history(api, alice, chat_id)] == ["c0", "c1", "c2"]


def test_the_direct_message_route_shares_the_senders_limit(api: ApiClient) -> None:
    # Given Alice, who spent her burst in a group
    alice = api.sign_in(ALICE)
    group = api.create_group(alice, [BOB, CAROL])
    for n in range(BURST):
        assert api.send(alice, group, f"m{n}", f"g{n}").status == 201

    # When she sends to Bob with POST /v1/messages (a direct chat created on demand)
    body = {"to": BOB, "text": "hi", "clientMessageId": "direct-1"}
    refused = api.call("POST", "/v1/messages", body, token=alice)

    # Then it is refused as well: the limit is the user's, not the chat's or the route's
    retry_after(refused)


@pytest.mark.parametrize("stack", [REFILLING], indirect=True)
def test_after_retry_after_the_rate_refills_one_message_at_a_time(api: ApiClient) -> None:
    # Given Alice, refused after her burst
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    for n in range(BURST):
        assert api.send(alice, chat_id, f"m{n}", f"c{n}").status == 201
    refused_at = time.monotonic()
    wait = retry_after(api.send(alice, chat_id, "later", "later"))

    # When she retries the same message until it passes
    results: list[HttpResult] = []

    def sent() -> bool:
        results.append(api.send(alice, chat_id, "later", "later"))
        return results[-1].status == 201

    until(sent)
    waited = time.monotonic() - refused_at

    # Then it passed once the bucket refilled (about Retry-After seconds later, never at once),
    # every earlier try was a 429, and the next message is refused again (one refilled, one spent)
    assert waited >= wait - 1, (waited, wait)
    assert all(retry_after(r) >= 1 for r in results[:-1])
    retry_after(api.send(alice, chat_id, "again", "again"))
    assert [m["clientMessageId"] for m in history(api, alice, chat_id)] == ["c0", "c1", "c2", "later"]


def test_limits_are_per_user(api: ApiClient) -> None:
    # Given Alice, over her limit in a group with Bob and Carol
    alice, bob = api.sign_in(ALICE), api.sign_in(BOB)
    group = api.create_group(alice, [BOB, CAROL])
    for n in range(BURST):
        assert api.send(alice, group, f"a{n}", f"a{n}").status == 201
    retry_after(api.send(alice, group, "too many", "a-over"))

    # When Bob sends his own burst in the same chat
    bobs = [api.send(bob, group, f"b{n}", f"b{n}") for n in range(BURST)]

    # Then every one of his is stored
    assert [r.status for r in bobs] == [201] * BURST, [r.body for r in bobs]


def test_a_replayed_client_message_id_spends_nothing_and_is_answered_even_when_over_the_limit(
    api: ApiClient,
) -> None:
    # Given Alice's first message, retried twice by her client (200: the original)
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    first = api.send(alice, chat_id, "hello", "c0")
    assert first.status == 201
    for _ in range(2):
        replay = api.send(alice, chat_id, "hello", "c0")
        assert replay.status == 200, replay.body
        assert replay.json()["messageId"] == first.json()["messageId"]

    # When she sends the rest of her burst
    rest = [api.send(alice, chat_id, f"m{n}", f"c{n}") for n in range(1, BURST)]

    # Then the replays did not count: the whole burst passes, and only the next is refused
    assert [r.status for r in rest] == [201] * (BURST - 1), [r.body for r in rest]
    retry_after(api.send(alice, chat_id, "over", "over"))

    # And a replay while over the limit is still answered with the original, not a 429
    late = api.send(alice, chat_id, "hello", "c0")
    assert late.status == 200, late.body
    assert late.json()["messageId"] == first.json()["messageId"]


def test_a_chat_the_caller_is_not_in_is_404_even_over_the_limit(api: ApiClient) -> None:
    # Given Alice, over her limit, and a chat of Bob and Carol
    alice, bob = api.sign_in(ALICE), api.sign_in(BOB)
    own = api.open_direct(alice, BOB)
    others = api.open_direct(bob, CAROL)
    for n in range(BURST):
        assert api.send(alice, own, f"m{n}", f"c{n}").status == 201

    # When she sends into the chat she is not in
    response = api.send(alice, others, "hi", "probe")

    # Then it is the usual 404: the limit never tells whether a chat exists
    assert_error(response, 404, "not_found")


# ---- WebSocket -----------------------------------------------------------------------------


def test_over_the_limit_a_websocket_send_gets_a_rate_limited_error_frame_and_the_socket_stays(
    api: ApiClient, ws: Sockets, frames: Frames, stack: InProcessStack
) -> None:
    # Given Alice's open connection and her direct chat with Bob
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    stack.drain_streams()
    connection = ws.open(ALICE)

    # When she sends one more message than her burst over the socket (HTTP and WebSocket share it)
    assert api.send(alice, chat_id, "over http", "http-0").status == 201
    for n in range(1, BURST + 1):
        ws.send(
            connection,
            {"action": "sendMessage", "chatId": chat_id, "text": f"m{n}", "clientMessageId": f"ws{n}"},
        )
    ws.send(connection, {"action": "ping"})

    # Then the last one gets an error frame with the wait in whole seconds, and the socket still answers
    *_, error, pong = frames.new(connection)
    assert set(error) == {"type", "code", "message", "retryAfter"}
    assert (error["type"], error["code"]) == ("error", "rate_limited")
    assert isinstance(error["retryAfter"], int)
    assert 1 <= error["retryAfter"] <= math.ceil(INTERVAL)
    assert pong == {"type": "pong"}
    assert [m["clientMessageId"] for m in history(api, alice, chat_id)] == ["http-0", "ws1", "ws2"]

    # And only the stored messages were framed, each once
    stack.drain_streams()
    received = frames.of_type(connection, "message.new")
    assert [f["message"]["clientMessageId"] for f in received] == ["http-0", "ws1", "ws2"]


def test_other_error_frames_carry_no_retry_after(ws: Sockets, frames: Frames) -> None:
    connection = ws.open(ALICE)

    ws.send(connection, {"action": "dance"})

    [error] = frames.new(connection)
    assert set(error) == {"type", "code", "message"}


# ---- races -----------------------------------------------------------------------------------


def test_two_sends_of_one_user_that_read_the_same_bucket_never_both_spend_its_last_message(
    api: ApiClient,
) -> None:
    # Given Alice with one message left in her bucket, in two chats
    alice = api.sign_in(ALICE)
    first_chat, second_chat = api.open_direct(alice, BOB), api.open_direct(alice, CAROL)
    for n in range(BURST - 1):
        assert api.send(alice, first_chat, f"m{n}", f"c{n}").status == 201
    messaging: MessagingService = api.stack.functions["ChatsFunction"].module.deps.messaging()
    client = chatflow.adapters.aws.dynamodb(REGION)

    with paused_before_its_transaction(client) as (reached, release):
        # And a send that has read her bucket (one message left) and is about to write
        paused, pool = in_background(lambda: messaging.send(ALICE, first_chat, "paused", "paused"))
        assert reached.wait(10)

        # When another send of hers, in the other chat, spends that last message meanwhile
        overtaking = messaging.send(ALICE, second_chat, "overtaking", "overtaking")
        release.set()

        # Then the paused send re-reads her bucket and is refused: one message, spent once
        with pytest.raises(RateLimited):
            paused.result(timeout=10)
        pool.shutdown()
    assert overtaking.created
    assert [m["clientMessageId"] for m in history(api, alice, first_chat)] == ["c0", "c1"]
