"""The WebSocket routes and the fan-out, through their handlers, against moto.

Connections are opened and closed by invoking the connection function with the events
API Gateway sends; frames posted to ``@connections`` land in moto's management API,
where ``Frames`` reads them back per connection. A connection can be made "gone" (the
client vanished without ``$disconnect``): posting to it then fails with 410.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from botocore.endpoint import Endpoint
from moto.apigatewaymanagementapi.models import (
    ApiGatewayManagementApiBackend,
    apigatewaymanagementapi_backends,
)
from moto.core.exceptions import JsonRESTError

from chatflow.domain.sessions import hash_token
from local.patterns import matches
from local.specs import ACCOUNT_ID, REGION
from local.stack import InProcessStack
from local.template import Template
from tests.integration.conftest import ApiClient

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"


class _Gone(JsonRESTError):
    code = 410

    def __init__(self) -> None:
        super().__init__("GoneException", "The connection is gone")


class Frames:
    """What each connection was sent; connections in ``gone`` answer 410; ``closed`` holds
    the connections the functions asked API Gateway to close."""

    def __init__(self) -> None:
        self.gone: set[str] = set()
        self.closed: set[str] = set()
        self._seen: dict[str, int] = {}

    @property
    def _backend(self) -> ApiGatewayManagementApiBackend:
        return apigatewaymanagementapi_backends[ACCOUNT_ID][REGION]

    def all(self, connection_id: str) -> list[dict[str, Any]]:
        # moto keeps the id as it was in the request's path (URL-encoded: "=" is "%3D")
        text = "".join(
            c.data.decode()
            for cid, c in list(self._backend.connections.items())
            if unquote(cid) == connection_id
        )
        decoder, frames, at = json.JSONDecoder(), [], 0
        while at < len(text):
            frame, at = decoder.raw_decode(text, at)
            frames.append(frame)
        return frames

    def new(self, connection_id: str) -> list[dict[str, Any]]:
        """Frames sent to ``connection_id`` since the last call."""
        frames = self.all(connection_id)
        start = self._seen.get(connection_id, 0)
        self._seen[connection_id] = len(frames)
        return frames[start:]

    def of_type(self, connection_id: str, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.new(connection_id) if f["type"] == kind]


@pytest.fixture
def frames(monkeypatch: pytest.MonkeyPatch) -> Frames:
    recorder = Frames()
    apigatewaymanagementapi_backends[ACCOUNT_ID][REGION].connections.clear()
    original = ApiGatewayManagementApiBackend.post_to_connection

    def post(self: ApiGatewayManagementApiBackend, data: bytes, connection_id: str) -> None:
        if unquote(connection_id) in recorder.gone:
            raise _Gone()
        original(self, data, connection_id)

    def delete(self: ApiGatewayManagementApiBackend, connection_id: str) -> None:
        recorder.closed.add(unquote(connection_id))  # (moto would drop what was sent to it)

    monkeypatch.setattr(ApiGatewayManagementApiBackend, "post_to_connection", post)
    monkeypatch.setattr(ApiGatewayManagementApiBackend, "delete_connection", delete)
    return recorder


class Sockets:
    """Opens, uses and closes WebSocket connections through the functions' handlers.

    Each connection belongs to a session of its own (signed in over HTTP), whose token
    hash the authorizer put in the connection's context, as API Gateway does.
    """

    def __init__(self, stack: InProcessStack, api: ApiClient) -> None:
        self.stack = stack
        self.api = api
        self.owner: dict[str, str] = {}
        self.token: dict[str, str] = {}
        self._count = 0

    def _event(
        self, route: str, connection_id: str, phone: str | None, body: str | None = None
    ) -> dict[str, Any]:
        context: dict[str, Any] = {
            "routeKey": route,
            "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
            "connectionId": connection_id,
            "requestId": f"r-{connection_id}-{route}",
            "apiId": "websocketapi",
            "stage": "dev",
            "domainName": "websocketapi.execute-api.us-east-1.amazonaws.com",
        }
        if phone is not None:
            token = self.token.get(connection_id, "")
            context["authorizer"] = {
                "phoneNumber": phone,
                "userId": f"u-{phone}",
                "principalId": phone,
                "tokenHash": hash_token(token) if token else "",
            }
        return {"requestContext": context, "body": body, "isBase64Encoded": False}

    def open(self, phone: str) -> str:
        self._count += 1
        connection_id = f"conn{self._count}="
        self.token[connection_id] = self.api.sign_in(phone)
        result = self.stack.invoke(
            "RealtimeConnectionsFunction", self._event("$connect", connection_id, phone)
        )
        assert result == {"statusCode": 200}
        self.owner[connection_id] = phone
        return connection_id

    def close(self, connection_id: str) -> None:
        event = self._event("$disconnect", connection_id, self.owner[connection_id])
        assert self.stack.invoke("RealtimeConnectionsFunction", event) == {"statusCode": 200}

    def send(self, connection_id: str, frame: Any) -> None:
        body = frame if isinstance(frame, str) else json.dumps(frame)
        route = frame.get("action", "$default") if isinstance(frame, dict) else "$default"
        event = self._event(str(route), connection_id, self.owner[connection_id], body)
        assert self.stack.invoke("RealtimeActionsFunction", event) == {"statusCode": 200}


@pytest.fixture
def ws(stack: InProcessStack, api: ApiClient) -> Sockets:
    return Sockets(stack, api)


def _sms_commands(stack: InProcessStack) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName="SendSmsQueue")["QueueUrl"]
    commands: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return commands
        for message in batch:
            commands.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def direct(api: ApiClient, stack: InProcessStack) -> tuple[str, str, str]:
    """Alice's and Bob's tokens and their direct chat, with the stream drained."""
    alice, bob = api.sign_in(ALICE), api.sign_in(BOB)
    chat_id = api.open_direct(alice, BOB)
    stack.drain_streams()
    return alice, bob, chat_id


# ---- connections and actions -------------------------------------------------------


def test_connect_without_an_authorized_caller_is_refused(stack: InProcessStack, ws: Sockets) -> None:
    # Given a $connect event with no authorizer context (the authorizer must have run)
    event = ws._event("$connect", "stray=", None)

    # When the connection function gets it
    result = stack.invoke("RealtimeConnectionsFunction", event)

    # Then the connection is refused
    assert result == {"statusCode": 401}


def test_ping_is_answered_with_pong(ws: Sockets, frames: Frames) -> None:
    connection = ws.open(ALICE)

    ws.send(connection, {"action": "ping"})

    assert frames.new(connection) == [{"type": "pong"}]


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("not json", "not JSON"),
        ('["a list"]', "JSON object"),
        ({"action": "dance"}, "Unknown action 'dance'"),
        ({"hello": "no action"}, "Unknown action None"),
        ({"action": "receipt", "chatId": "c", "type": "seen", "upToSeq": 1}, "type"),
        ({"action": "sendMessage", "chatId": "c", "text": "hi"}, "clientMessageId"),
    ],
)
def test_a_bad_frame_gets_an_error_frame_and_the_connection_stays(
    ws: Sockets, frames: Frames, frame: Any, fragment: str
) -> None:
    connection = ws.open(ALICE)

    ws.send(connection, frame)
    ws.send(connection, {"action": "ping"})

    error, pong = frames.new(connection)
    assert error["type"] == "error"
    assert error["code"] == "invalid_frame"
    assert fragment in error["message"]
    assert pong == {"type": "pong"}


def test_send_message_over_the_socket_reaches_every_connection_of_every_member(
    api: ApiClient, stack: InProcessStack, ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    # Given Alice on two devices and Bob on one
    alice, _, chat_id = direct
    phone, laptop, bob = ws.open(ALICE), ws.open(ALICE), ws.open(BOB)

    # When Alice sends a message over her phone's socket
    ws.send(phone, {"action": "sendMessage", "chatId": chat_id, "text": " hello ", "clientMessageId": "k1"})
    stack.drain_streams()

    # Then it is stored like an HTTP message, and all three connections get message.new
    history = api.call("GET", f"/v1/chats/{chat_id}/messages", token=alice).json()["items"]
    assert [(m["seq"], m["text"]) for m in history] == [(1, "hello")]
    for connection in (phone, laptop, bob):
        received = frames.of_type(connection, "message.new")
        assert [f["message"] for f in received] == [history[0]]


def test_the_same_client_message_id_over_the_socket_stores_one_message(
    api: ApiClient, stack: InProcessStack, ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    alice, _, chat_id = direct
    connection, bob = ws.open(ALICE), ws.open(BOB)

    for _ in range(2):
        ws.send(
            connection,
            {"action": "sendMessage", "chatId": chat_id, "text": "once", "clientMessageId": "same"},
        )
    stack.drain_streams()

    assert len(api.call("GET", f"/v1/chats/{chat_id}/messages", token=alice).json()["items"]) == 1
    assert len(frames.of_type(bob, "message.new")) == 1


def test_a_repeated_client_message_id_gets_the_original_message_back(
    api: ApiClient, stack: InProcessStack, ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    # Given a message sent over the socket, whose acknowledgement the client missed
    _, _, chat_id = direct
    connection = ws.open(ALICE)
    frame = {
        "action": "sendMessage",
        "chatId": chat_id,
        "text": "are you there?",
        "clientMessageId": "retry-me",
    }
    ws.send(connection, frame)
    stack.drain_streams()
    [original] = frames.of_type(connection, "message.new")

    # When the client sends it again
    ws.send(connection, frame)
    stack.drain_streams()

    # Then that connection gets the original back, and nothing new is stored
    assert frames.of_type(connection, "message.new") == [original]


def test_a_frame_after_sign_out_is_refused_and_the_connection_closed(
    api: ApiClient, ws: Sockets, frames: Frames
) -> None:
    # Given a connection whose session then signs out
    connection = ws.open(ALICE)
    assert api.call("DELETE", "/v1/sessions/current", token=ws.token[connection]).status == 204

    # When it sends a frame
    ws.send(connection, {"action": "ping"})

    # Then it gets an unauthorized error and API Gateway is told to close it
    [error] = frames.new(connection)
    assert (error["type"], error["code"]) == ("error", "unauthorized")
    assert "sign in again" in error["message"]
    assert frames.closed == {connection}


def test_send_message_to_a_chat_of_others_is_an_error_frame(
    api: ApiClient, ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    _, _, chat_id = direct
    api.sign_in(CAROL)
    carol = ws.open(CAROL)

    ws.send(carol, {"action": "sendMessage", "chatId": chat_id, "text": "let me in", "clientMessageId": "x"})

    [error] = frames.new(carol)
    assert error["type"] == "error"
    assert error["code"] == "not_found"


def test_an_empty_text_over_the_socket_is_a_validation_error_frame(
    ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    _, _, chat_id = direct
    connection = ws.open(ALICE)

    ws.send(connection, {"action": "sendMessage", "chatId": chat_id, "text": "   ", "clientMessageId": "e"})

    [error] = frames.new(connection)
    assert (error["type"], error["code"]) == ("error", "validation_error")
    assert "empty" in error["message"]


def test_a_read_receipt_tells_the_other_members_and_moves_the_status(
    api: ApiClient, stack: InProcessStack, ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    # Given a message from Alice to Bob, both connected
    alice, _, chat_id = direct
    api.send(alice, chat_id, "did you read this?")
    alice_socket, bob_socket = ws.open(ALICE), ws.open(BOB)
    stack.drain_streams()
    frames.new(alice_socket), frames.new(bob_socket)

    # When Bob reads it over the socket
    ws.send(bob_socket, {"action": "receipt", "chatId": chat_id, "type": "read", "upToSeq": 1})
    stack.drain_streams()

    # Then Alice gets message.status (Bob does not), and the message reads as read
    assert frames.new(alice_socket) == [
        {"type": "message.status", "chatId": chat_id, "upToSeq": 1, "status": "read", "by": BOB}
    ]
    assert frames.new(bob_socket) == []
    message = api.call("GET", f"/v1/chats/{chat_id}/messages", token=alice).json()["items"][0]
    assert message["status"] == "read"


def test_a_receipt_past_the_last_message_is_an_error_frame(
    ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    _, _, chat_id = direct
    bob = ws.open(BOB)

    ws.send(bob, {"action": "receipt", "chatId": chat_id, "type": "delivered", "upToSeq": 5})

    [error] = frames.new(bob)
    assert (error["type"], error["code"]) == ("error", "validation_error")


def test_typing_reaches_the_other_members_only(
    api: ApiClient, stack: InProcessStack, ws: Sockets, frames: Frames
) -> None:
    alice = api.sign_in(ALICE)
    api.sign_in(BOB), api.sign_in(CAROL)
    chat_id = api.create_group(alice, [BOB, CAROL])
    stack.drain_streams()
    sockets = {phone: ws.open(phone) for phone in (ALICE, BOB, CAROL)}

    ws.send(sockets[ALICE], {"action": "typing", "chatId": chat_id})

    expected = {"type": "typing", "chatId": chat_id, "phoneNumber": ALICE}
    assert frames.of_type(sockets[BOB], "typing") == [expected]
    assert frames.of_type(sockets[CAROL], "typing") == [expected]
    assert frames.of_type(sockets[ALICE], "typing") == []


# ---- fan-out -----------------------------------------------------------------------


def test_a_stale_connection_is_removed_and_the_others_still_get_the_message(
    api: ApiClient, stack: InProcessStack, ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    # Given Bob on two devices, one of which vanished without $disconnect
    alice, _, chat_id = direct
    alive, stale, sender = ws.open(BOB), ws.open(BOB), ws.open(ALICE)
    frames.gone.add(stale)

    # When Alice sends two messages
    api.send(alice, chat_id, "first")
    stack.drain_streams()
    api.send(alice, chat_id, "second")
    stack.drain_streams()

    # Then the live connections got both, and the stale one was tried once, then forgotten
    assert [f["message"]["text"] for f in frames.of_type(alive, "message.new")] == ["first", "second"]
    assert [f["message"]["text"] for f in frames.of_type(sender, "message.new")] == ["first", "second"]
    table = boto3.client("dynamodb", region_name=REGION)
    presence = table.get_item(
        TableName="ConnectionsTable", Key={"PK": {"S": f"USER#{BOB}"}, "SK": {"S": "PRESENCE"}}
    )["Item"]
    assert set(presence["connections"]["M"]) == {alive}
    assert "Item" not in table.get_item(
        TableName="ConnectionsTable", Key={"PK": {"S": f"CONN#{stale}"}, "SK": {"S": "CONN"}}
    )


def test_presence_goes_to_contacts_when_the_first_connection_opens_and_the_last_closes(
    stack: InProcessStack, ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    # Given Alice connected, and Bob (her contact) about to connect twice
    alice_socket = ws.open(ALICE)
    stack.drain_streams()
    frames.new(alice_socket)

    # When Bob opens two connections, then closes both
    first, second = ws.open(BOB), ws.open(BOB)
    stack.drain_streams()
    came = frames.of_type(alice_socket, "presence")
    ws.close(first)
    stack.drain_streams()
    still = frames.of_type(alice_socket, "presence")
    ws.close(second)
    stack.drain_streams()
    went = frames.of_type(alice_socket, "presence")

    # Then Alice hears "online" once, nothing while a connection remains, "offline" at the end
    assert [(f["phoneNumber"], f["online"]) for f in came] == [(BOB, True)]
    assert still == []
    assert [(f["phoneNumber"], f["online"]) for f in went] == [(BOB, False)]
    assert went[0]["lastSeenAt"].endswith("Z")


def test_a_stranger_does_not_hear_presence(
    api: ApiClient, stack: InProcessStack, ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    api.sign_in(CAROL)
    carol = ws.open(CAROL)
    stack.drain_streams()
    frames.new(carol)

    ws.open(BOB)
    stack.drain_streams()

    assert frames.of_type(carol, "presence") == []


def test_being_added_to_a_group_sends_chat_updated(
    api: ApiClient, stack: InProcessStack, ws: Sockets, frames: Frames
) -> None:
    alice = api.sign_in(ALICE)
    api.sign_in(BOB), api.sign_in(CAROL)
    chat_id = api.create_group(alice, [BOB, "+14155550104"])
    stack.drain_streams()
    carol = ws.open(CAROL)

    api.call("POST", f"/v1/chats/{chat_id}/members", {"members": [CAROL]}, token=alice)
    stack.drain_streams()

    [update] = frames.of_type(carol, "chat.updated")
    assert update["chat"]["chatId"] == chat_id
    assert CAROL in [m["phoneNumber"] for m in update["chat"]["members"]]


def test_a_group_of_200_costs_one_post_per_open_connection_and_few_reads(
    api: ApiClient, stack: InProcessStack, ws: Sockets, frames: Frames
) -> None:
    # Given a group of 200 members (the creator and 199 others), 50 of them connected
    alice = api.sign_in(ALICE)
    others = [f"+1415555{i:04d}" for i in range(1000, 1199)]
    chat_id = api.create_group(alice, others[:150])
    api.call("POST", f"/v1/chats/{chat_id}/members", {"members": others[150:]}, token=alice)
    stack.drain_streams()
    connected = [ws.open(phone) for phone in others[:50]]
    stack.drain_streams()
    _sms_commands(stack)
    calls: list[str] = []
    make_request = Endpoint.make_request

    def counted(self: Endpoint, operation_model: Any, request_dict: Any) -> Any:
        calls.append(operation_model.name)
        return make_request(self, operation_model, request_dict)

    # When Alice writes once
    api.send(alice, chat_id, "hello everyone")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Endpoint, "make_request", counted)
        stack.drain_streams()

    # Then each connection got the message once, with one post each and a bounded number of reads
    assert all(len(frames.of_type(c, "message.new")) == 1 for c in connected)
    assert calls.count("PostToConnection") == 50
    reads = [c for c in calls if c in ("GetItem", "BatchGetItem", "Query")]
    assert len(reads) <= 5 + 149 + 2, reads  # META, 2 presence batches, opt-out checks of the offline


def test_a_connection_whose_disconnect_was_lost_is_forgotten_at_the_next_connect(
    stack: InProcessStack, ws: Sockets
) -> None:
    # Given Bob's presence still listing a connection that expired without $disconnect
    first = ws.open(BOB)
    table = boto3.client("dynamodb", region_name=REGION)
    key = {"PK": {"S": f"USER#{BOB}"}, "SK": {"S": "PRESENCE"}}
    table.update_item(
        TableName="ConnectionsTable",
        Key=key,
        UpdateExpression="SET connections.#c = :past",
        ExpressionAttributeNames={"#c": first},
        ExpressionAttributeValues={":past": {"N": "1000"}},
    )

    # When Bob connects again
    second = ws.open(BOB)

    # Then only the live connection is left
    item = table.get_item(TableName="ConnectionsTable", Key=key)["Item"]
    assert set(item["connections"]["M"]) == {second}


# ---- presence over HTTP ------------------------------------------------------------


def test_chat_presence_says_who_is_online_now_and_when_others_were_last_seen(
    api: ApiClient, stack: InProcessStack, ws: Sockets
) -> None:
    # Given a group where Bob is connected, Carol was and left, and Alice never connected
    alice = api.sign_in(ALICE)
    chat_id = api.create_group(alice, [BOB, CAROL])
    ws.open(BOB)
    carol = ws.open(CAROL)
    ws.close(carol)

    # When Alice asks who is there
    response = api.call("GET", f"/v1/chats/{chat_id}/presence", token=alice)

    # Then every member is listed with what a presence frame would say
    assert response.status == 200, response.body
    by_phone = {p["phoneNumber"]: p for p in response.json()["items"]}
    assert set(by_phone) == {ALICE, BOB, CAROL}
    assert (by_phone[BOB]["online"], by_phone[BOB]["lastSeenAt"]) == (True, None)
    assert by_phone[CAROL]["online"] is False
    assert by_phone[CAROL]["lastSeenAt"].endswith("Z")
    assert (by_phone[ALICE]["online"], by_phone[ALICE]["lastSeenAt"]) == (False, None)


def test_chat_presence_of_a_chat_of_others_is_not_found(api: ApiClient, direct: tuple[str, str, str]) -> None:
    _, _, chat_id = direct
    carol = api.sign_in(CAROL)

    response = api.call("GET", f"/v1/chats/{chat_id}/presence", token=carol)

    assert response.status == 404
    assert response.json()["error"]["code"] == "not_found"


def _ttl_deletion(connection_id: str, phone: str, *, by_ttl: bool = True) -> dict[str, Any]:
    """The stream record of a connection item deleted by DynamoDB's TTL (or by a client)."""
    key = {"PK": {"S": f"CONN#{connection_id}"}, "SK": {"S": "CONN"}}
    record: dict[str, Any] = {
        "eventID": "1",
        "eventName": "REMOVE",
        "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": key, "OldImage": {**key, "phoneNumber": {"S": phone}}, "SequenceNumber": "1"},
    }
    if by_ttl:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def test_a_connection_expired_by_ttl_takes_its_user_offline_for_contacts(
    stack: InProcessStack, ws: Sockets, frames: Frames, direct: tuple[str, str, str]
) -> None:
    # Given Alice listening, and Bob whose only connection lost its $disconnect
    alice = ws.open(ALICE)
    bob = ws.open(BOB)
    stack.drain_streams()
    frames.new(alice)

    # When DynamoDB's TTL deletes Bob's connection item and the fan-out gets that record
    result = stack.invoke("FanoutFunction", {"Records": [_ttl_deletion(bob, BOB)]})
    stack.drain_streams()

    # Then Bob is out of presence, and Alice hears he went offline
    assert result == {"batchItemFailures": []}
    [gone] = frames.of_type(alice, "presence")
    assert (gone["phoneNumber"], gone["online"]) == (BOB, False)


def test_the_fanout_hears_only_deletions_by_the_ttl_service() -> None:
    # Given the fan-out's filters on the connections table's stream
    [mapping] = [
        m
        for m in Template.load().event_source_mappings()
        if m.function == "FanoutFunction" and "ConnectionsTable" in str(m.source_arn)
    ]

    # Then a TTL deletion of a connection passes, a $disconnect's deletion does not
    assert any(matches(f, _ttl_deletion("c=", BOB)) for f in mapping.filters)
    assert not any(matches(f, _ttl_deletion("c=", BOB, by_ttl=False)) for f in mapping.filters)
