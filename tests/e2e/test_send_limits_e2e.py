"""Per-user send limits on a started stack (CONTRACT §7), from outside: a real WebSocket
client and HTTP requests, as an app sends. The stack allows a burst of 3, then one message
every 100 s, so that the test's own pace cannot refill the bucket by accident. The frames
seen here are checked against docs/asyncapi.yaml (tests/e2e/conftest.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from local.stack_server import StackServer
from tests.e2e.test_realtime_e2e import Client
from tests.local.conftest import Lines, free_config

ALICE = "+14155550101"
BOB = "+14155550102"
BURST = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    config = free_config(
        tmp_path_factory.mktemp("send-limits"),
        persist=False,
        parameters={"UserSendRatePerSecond": "0.01", "UserSendBurst": str(BURST)},
    )
    with StackServer(config, log=Lines()) as server:
        yield server


def is_message(client_message_id: str, frame: dict[str, Any]) -> bool:
    return bool(frame["type"] == "message.new" and frame["message"]["clientMessageId"] == client_message_id)


def post_with_headers(client: Client, path: str, body: object) -> tuple[int, dict[str, str], object]:
    request = urllib.request.Request(
        f"{client.url}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={**client.auth, "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                json.loads(response.read()),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, json.loads(error.read())


def test_a_websocket_sender_over_the_limit_gets_retry_after_and_keeps_the_socket(stack: StackServer) -> None:
    # Given Alice connected, in a direct chat with Bob
    alice = Client(stack, ALICE)
    status, chat = alice.post("/v1/chats", {"type": "direct", "members": [BOB]})
    assert status in (200, 201), chat
    assert isinstance(chat, dict)
    chat_id = chat["chatId"]

    # When she sends her burst over the socket, then one more
    for n in range(BURST):
        alice.send(
            {"action": "sendMessage", "chatId": chat_id, "text": f"m{n}", "clientMessageId": f"ws-{n}"}
        )
        alice.wait_for(partial(is_message, f"ws-{n}"))
    alice.send({"action": "sendMessage", "chatId": chat_id, "text": "too fast", "clientMessageId": "ws-over"})

    # Then that one gets a rate_limited error frame with whole seconds to wait
    error = alice.wait_for(lambda f: f["type"] == "error")
    assert error["code"] == "rate_limited"
    assert isinstance(error["retryAfter"], int)
    assert 1 <= error["retryAfter"] <= 100
    # And the socket still answers
    alice.send({"action": "ping"})
    assert alice.wait_for(lambda f: f["type"] == "pong") == {"type": "pong"}

    # And over HTTP, the same budget: 429 with a Retry-After header, nothing stored
    status, headers, body = post_with_headers(
        alice, f"/v1/chats/{chat_id}/messages", {"text": "over http", "clientMessageId": "http-over"}
    )
    assert status == 429, body
    assert isinstance(body, dict)
    assert body["error"]["code"] == "rate_limited"
    assert headers["retry-after"].isdigit()
    assert int(headers["retry-after"]) >= 1
    history = alice.get(f"/v1/chats/{chat_id}/messages?afterSeq=0")
    assert [m["clientMessageId"] for m in history["items"]] == ["ws-0", "ws-1", "ws-2"]
