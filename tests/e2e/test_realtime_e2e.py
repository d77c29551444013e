"""Real time end to end: the local stack, real WebSocket clients, the fake SMS provider.

Alice and Bob are connected; Carol, in their group, is not. Messages and receipts go
over the sockets, presence and typing frames arrive, Carol gets one SMS, and a client
that lost its connection catches up over HTTP with ``afterSeq``: no gap, no duplicate.
Forwards wait ``ForwardAfterSeconds`` (2 s here): a burst to an offline member is one
digest SMS at the fake provider, and a read before the wait ends sends nothing.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from local.stack_server import StackServer
from tests.local.conftest import Lines, eventually, free_config, http

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"
DAN = "+14155550104"
ERIN = "+14155550105"
WAIT = 2  # ForwardAfterSeconds of this module's stack


class Client:
    """A signed-in user with an open socket, as an app would be."""

    def __init__(self, stack: StackServer, phone: str) -> None:
        self.url = stack.outputs["HttpApiUrl"]
        self.ws_url = stack.outputs["WebSocketUrl"]
        status, session = http("POST", f"{self.url}/v1/sessions", {"phoneNumber": phone})
        assert status == 201, session
        self.token = str(session["token"])
        self.auth = {"authorization": f"Bearer {self.token}"}
        self.socket: ClientConnection | None = None
        self.connect()

    def connect(self) -> None:
        # Held across calls, closed by drop(): the connection itself, not a context manager.
        self.socket = connect(f"{self.ws_url}?token={quote(self.token)}", legacy=True)

    def drop(self) -> None:
        assert self.socket is not None
        self.socket.close()
        self.socket = None

    def send(self, frame: dict[str, Any]) -> None:
        assert self.socket is not None
        self.socket.send(json.dumps(frame))

    def wait_for(self, accept: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """The first frame ``accept`` takes; frames before it are skipped."""
        assert self.socket is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail("the expected frame did not arrive")
            try:
                frame = json.loads(self.socket.recv(timeout=remaining))
            except TimeoutError:
                continue
            if accept(frame):
                return dict(frame)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return http("POST", f"{self.url}{path}", body, self.auth)

    def get(self, path: str) -> Any:
        status, body = http("GET", f"{self.url}{path}", headers=self.auth)
        assert status == 200, body
        return body


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    config = free_config(
        tmp_path_factory.mktemp("realtime"), persist=False, parameters={"ForwardAfterSeconds": str(WAIT)}
    )
    with StackServer(config, log=Lines()) as server:
        yield server


def _new(frame: dict[str, Any], text: str) -> bool:
    return bool(frame["type"] == "message.new" and frame["message"]["text"] == text)


def test_two_users_chat_in_real_time_and_an_offline_member_gets_an_sms(stack: StackServer) -> None:
    # Given Alice and Bob online, and a group with Carol, who has no app
    alice, bob = Client(stack, ALICE), Client(stack, BOB)
    status, group = alice.post("/v1/chats", {"type": "group", "name": "trip", "members": [BOB, CAROL]})
    assert status == 201, group
    chat_id = group["chatId"]
    bob.wait_for(lambda f: f["type"] == "chat.updated" and f["chat"]["chatId"] == chat_id)

    # When Alice sends a message over her socket
    alice.send({"action": "sendMessage", "chatId": chat_id, "text": "Train at 9?", "clientMessageId": "a1"})

    # Then both get message.new, sent by Alice with seq 1
    seen_by_bob = bob.wait_for(lambda f: _new(f, "Train at 9?"))["message"]
    assert (seen_by_bob["seq"], seen_by_bob["sender"]) == (1, ALICE)
    alice.wait_for(lambda f: _new(f, "Train at 9?"))

    # And Carol gets it by SMS, once, from Alice's number, when the wait is over
    provider = stack.outputs["SmsProviderUrl"]
    texts = eventually(lambda: http("GET", f"{provider}/messages?to={quote(CAROL)}")[1]["items"])
    assert [t["text"] for t in texts] == [f"{ALICE}: Train at 9?"]

    # When Bob types and then reads it
    bob.send({"action": "typing", "chatId": chat_id})
    typing = alice.wait_for(lambda f: f["type"] == "typing")
    assert typing == {"type": "typing", "chatId": chat_id, "phoneNumber": BOB}
    bob.send({"action": "receipt", "chatId": chat_id, "type": "read", "upToSeq": 1})

    # Then Alice sees Bob's read marker
    status_frame = alice.wait_for(lambda f: f["type"] == "message.status")
    assert status_frame == {
        "type": "message.status",
        "chatId": chat_id,
        "upToSeq": 1,
        "status": "read",
        "by": BOB,
    }

    # And a later burst sends Carol no further SMS (one per chat per 10 minutes)
    for i in range(3):
        alice.send(
            {"action": "sendMessage", "chatId": chat_id, "text": f"more {i}", "clientMessageId": f"b{i}"}
        )
    bob.wait_for(lambda f: _new(f, "more 2"))
    time.sleep(WAIT + 0.5)
    assert len(http("GET", f"{provider}/messages?to={quote(CAROL)}")[1]["items"]) == 1


def _outbox(stack: StackServer, phone: str) -> list[dict[str, Any]]:
    provider = stack.outputs["SmsProviderUrl"]
    return list(http("GET", f"{provider}/messages?to={quote(phone)}")[1]["items"])


def _budget(stack: StackServer, chat_id: str, phone: str) -> dict[str, Any] | None:
    """The member's SMS-forward budget for the chat (its wait), as stored."""
    key = {"PK": {"S": f"FWD#{chat_id}#{phone}"}, "SK": {"S": "FWD"}}
    table = stack.outputs["ConnectionsTableName"]
    item: dict[str, Any] | None = (
        stack.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    )
    return item


def test_a_burst_to_an_offline_member_is_one_digest_sms(stack: StackServer) -> None:
    # Given Alice online and Dan, signed in once, with no open connection
    alice = Client(stack, ALICE)
    status, session = http("POST", f"{alice.url}/v1/sessions", {"phoneNumber": DAN})
    assert status == 201, session
    status, chat = alice.post("/v1/chats", {"type": "direct", "members": [DAN]})
    assert status in (200, 201), chat

    # When Alice sends a burst of three over her socket
    for i, text in enumerate(("landed", "taking a taxi", "see you at 8")):
        frame = {"action": "sendMessage", "chatId": chat["chatId"], "text": text, "clientMessageId": f"d{i}"}
        alice.send(frame)
        alice.wait_for(functools.partial(_new, text=text))

    # Then, the wait over, Dan gets one SMS with all three, from Alice's number
    [sms] = eventually(lambda: _outbox(stack, DAN), timeout=WAIT + 15)
    assert sms["text"] == f"3 new messages from {ALICE}: landed / taking a taxi / see you at 8"
    time.sleep(0.5)  # (a second SMS would come from the same wait's job: there is none)
    assert len(_outbox(stack, DAN)) == 1


def test_a_read_before_the_wait_ends_cancels_the_forward(stack: StackServer) -> None:
    # Given Erin, signed in on a device with no socket, and Alice's message to her
    alice = Client(stack, ALICE)
    status, session = http("POST", f"{alice.url}/v1/sessions", {"phoneNumber": ERIN})
    assert status == 201, session
    erin = {"authorization": f"Bearer {session['token']}"}
    status, chat = alice.post("/v1/chats", {"type": "direct", "members": [ERIN]})
    assert status in (200, 201), chat
    chat_id = chat["chatId"]
    alice.send({"action": "sendMessage", "chatId": chat_id, "text": "call me", "clientMessageId": "e1"})
    alice.wait_for(lambda f: _new(f, "call me"))
    eventually(lambda: _budget(stack, chat_id, ERIN))  # her wait started

    # When she reads it over HTTP before the wait ends
    receipt = {"type": "read", "upToSeq": 1}
    assert http("POST", f"{alice.url}/v1/chats/{chat_id}/receipts", receipt, erin)[0] == 204

    # Then the wait ends with no SMS: its budget is given back, and nothing reached the provider
    eventually(lambda: _budget(stack, chat_id, ERIN) is None, timeout=WAIT + 15)
    assert _outbox(stack, ERIN) == []


def test_presence_comes_and_goes_with_connections(stack: StackServer) -> None:
    # Given Dave and Erin share a chat, and Dave is connected
    dave, erin_number = Client(stack, "+14155550104"), "+14155550105"
    status, _ = dave.post("/v1/chats", {"type": "direct", "members": [erin_number]})
    assert status == 201

    # When Erin connects, then disconnects
    erin = Client(stack, erin_number)
    online = dave.wait_for(lambda f: f["type"] == "presence" and f["phoneNumber"] == erin_number)
    erin.drop()
    offline = dave.wait_for(lambda f: f["type"] == "presence" and f["phoneNumber"] == erin_number)

    # Then Dave hears both, with a last-seen time at the end
    assert (online["online"], offline["online"]) == (True, False)
    assert offline["lastSeenAt"].endswith("Z")


def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(stack: StackServer) -> None:
    frank = Client(stack, "+14155550106")

    assert frank.socket is not None
    frank.socket.send("{not json")
    error = frank.wait_for(lambda f: f["type"] == "error")
    frank.send({"action": "ping"})

    assert error["code"] == "invalid_frame"
    assert frank.wait_for(lambda f: f["type"] == "pong") == {"type": "pong"}


def test_a_bad_token_is_refused_at_the_handshake(stack: StackServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{stack.outputs['WebSocketUrl']}?token=not-a-token")
    assert refused.value.response.status_code == 403


def test_a_reconnect_catches_up_with_no_gap_and_no_duplicate(stack: StackServer) -> None:
    # Given Grace and Heidi chatting; Heidi has seen seq 1 over her socket
    grace, heidi = Client(stack, "+14155550107"), Client(stack, "+14155550108")
    status, chat = grace.post("/v1/chats", {"type": "direct", "members": ["+14155550108"]})
    assert status in (200, 201)
    chat_id = chat["chatId"]
    grace.send({"action": "sendMessage", "chatId": chat_id, "text": "one", "clientMessageId": "g0"})
    last_seen = heidi.wait_for(lambda f: _new(f, "one"))["message"]["seq"]

    # When Heidi's connection drops while Grace sends five more, then Heidi reconnects
    heidi.drop()
    for i in range(5):
        status, _ = grace.post(
            f"/v1/chats/{chat_id}/messages", {"text": f"while away {i}", "clientMessageId": uuid.uuid4().hex}
        )
        assert status == 201
    heidi.connect()
    missed = heidi.get(f"/v1/chats/{chat_id}/messages?afterSeq={last_seen}&limit=100")["items"]
    grace.send({"action": "sendMessage", "chatId": chat_id, "text": "back?", "clientMessageId": "g6"})
    live = [heidi.wait_for(lambda f: f["type"] == "message.new")["message"]]
    while live[-1]["seq"] < 7:  # frames of messages sent while away may still be on their way
        live.append(heidi.wait_for(lambda f: f["type"] == "message.new")["message"])

    # Then the catch-up holds exactly the missed messages, in order
    assert [m["seq"] for m in missed] == [2, 3, 4, 5, 6]
    assert [m["text"] for m in missed] == [f"while away {i}" for i in range(5)]
    # And merging it with what arrives live (the client keeps one message per seq) leaves
    # no gap and no duplicate: live frames are the same messages, then the new one
    timeline: dict[int, dict[str, Any]] = {m["seq"]: m for m in missed}
    for message in live:
        assert timeline.setdefault(message["seq"], message)["messageId"] == message["messageId"]
    assert sorted(timeline) == [2, 3, 4, 5, 6, 7]
    assert timeline[7]["text"] == "back?"


def test_signing_out_ends_the_socket_at_its_next_frame(stack: StackServer) -> None:
    # Given Ivan connected, who then signs out over HTTP
    ivan = Client(stack, "+14155550109")
    status, _ = http("DELETE", f"{ivan.url}/v1/sessions/current", headers=ivan.auth)
    assert status == 204

    # When his socket sends a frame
    ivan.send({"action": "ping"})

    # Then it is told why, and the server closes it
    error = ivan.wait_for(lambda f: f["type"] == "error")
    assert error["code"] == "unauthorized"
    assert ivan.socket is not None
    with pytest.raises(ConnectionClosed):
        ivan.socket.recv(timeout=5)
    assert ivan.socket.close_code is not None
