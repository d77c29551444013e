"""The local API Gateway WebSocket API: $connect and its authorizer, routing, $disconnect, @connections."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import boto3
import pytest

from local.specs import FunctionError, WebSocketApiSpec, WebSocketAuthorizer, WebSocketRoute
from local.websocket import (
    CLOSE_GOING_AWAY,
    CLOSE_TOO_BIG,
    OP_BINARY,
    ConnectionClosed,
    HandshakeRefused,
    WebSocketClient,
)
from local.wsapi import WebSocketGateway

Handler = Callable[[dict[str, Any]], Any]


class FakeFunctions:
    """An ``Invoker`` over plain callables keyed by function id, recording every event it got."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self._lock = threading.Lock()

    def __call__(self, function: str, event: dict[str, Any], trigger: str) -> Any:
        with self._lock:
            self.calls.append((function, event, trigger))
        return self.handlers[function](event)

    def events(self, function: str) -> list[dict[str, Any]]:
        with self._lock:
            return [event for name, event, _ in self.calls if name == function]

    def wait_for(self, function: str, count: int = 1, timeout: float = 3.0) -> list[dict[str, Any]]:
        """The events of ``function`` once it was called ``count`` times (some calls are asynchronous)."""
        deadline = time.monotonic() + timeout
        while len(events := self.events(function)) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{function} was called {len(events)} times, not {count}")
            time.sleep(0.01)
        return events


def echo(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "body": event["body"]}


def default(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps({"route": "$default"})}


def accept(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200}


def policy(event: dict[str, Any]) -> dict[str, Any]:
    """An authorizer like the application's: Allow for ?token=good, Deny otherwise."""
    token = (event.get("queryStringParameters") or {}).get("token")
    return {
        "principalId": "user-1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow" if token == "good" else "Deny",
                    "Resource": event["methodArn"],
                }
            ],
        },
        "context": {"userId": "user-1", "phoneNumber": "+15550001111"},
    }


def failing(event: dict[str, Any]) -> Any:
    raise FunctionError("Failing", "RuntimeError", "boom")


def api(*routes: WebSocketRoute, selection: str = "$request.body.action") -> WebSocketApiSpec:
    return WebSocketApiSpec(
        logical_id="ChatWebSocketApi",
        api_id="wsapi123",
        stage="prod",
        route_selection_expression=selection,
        routes={route.route_key: route for route in routes},
    )


AUTHORIZED_CONNECT = WebSocketRoute(
    "$connect", "Connect", authorizer=WebSocketAuthorizer("Authorizer", ("route.request.querystring.token",))
)
ECHO = WebSocketRoute("echo", "Echo", returns_response=True)
DEFAULT = WebSocketRoute("$default", "Default", returns_response=True)
DISCONNECT = WebSocketRoute("$disconnect", "Disconnect")


@pytest.fixture
def logs() -> list[str]:
    return []


@pytest.fixture
def serve(logs: list[str]) -> Iterator[Callable[..., WebSocketGateway]]:
    """Starts gateways on free ports; every one is stopped after the test."""
    gateways: list[WebSocketGateway] = []

    def start(spec: WebSocketApiSpec, functions: FakeFunctions, **options: Any) -> WebSocketGateway:
        gateway = WebSocketGateway(spec, functions, port=0, log=logs.append, **options)
        gateway.start()
        gateways.append(gateway)
        return gateway

    yield start
    for gateway in gateways:
        gateway.stop()


def management(gateway: WebSocketGateway) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=gateway.management_endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def only_connection(gateway: WebSocketGateway) -> str:
    (connection_id,) = gateway.connection_ids()
    return connection_id


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.01)


# --- $connect and messages ---------------------------------------------------------------------


def test_a_client_connects_and_a_two_way_route_echoes_its_message(
    serve: Callable[..., WebSocketGateway],
) -> None:
    # Given an API with a two-way "echo" route
    functions = FakeFunctions({"Echo": echo})
    gateway = serve(api(ECHO), functions)

    # When a client connects and sends {"action": "echo"}
    with WebSocketClient.connect(gateway.url) as client:
        client.send_json({"action": "echo", "text": "hi"})
        reply = client.receive_json()

    # Then the function's body comes back to the caller
    assert reply == {"action": "echo", "text": "hi"}


def test_connect_gets_the_connect_event(serve: Callable[..., WebSocketGateway]) -> None:
    # Given an API with a $connect function
    functions = FakeFunctions({"Connect": accept})
    gateway = serve(api(WebSocketRoute("$connect", "Connect")), functions)

    # When a client connects with a query string and a header
    with WebSocketClient.connect(f"{gateway.url}/?token=abc&tag=a&tag=b", headers={"X-Client": "tests"}):
        connection_id = only_connection(gateway)

    # Then $connect got API Gateway's CONNECT event for this connection
    (event,) = functions.events("Connect")
    assert event["queryStringParameters"] == {"token": "abc", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"token": ["abc"], "tag": ["a", "b"]}
    assert event["headers"]["X-Client"] == "tests"
    assert event["multiValueHeaders"]["X-Client"] == ["tests"]
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["routeKey"] == "$connect"
    assert context["eventType"] == "CONNECT"
    assert context["messageDirection"] == "IN"
    assert context["connectionId"] == connection_id
    assert context["stage"] == "prod"
    assert context["apiId"] == "wsapi123"
    assert context["domainName"] == f"127.0.0.1:{gateway.port}"
    assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "chatflow-local-websocket-client"}
    assert isinstance(context["connectedAt"], int)
    assert "authorizer" not in context


def test_the_message_event_names_its_route_and_connection(serve: Callable[..., WebSocketGateway]) -> None:
    # Given an API with an "echo" route
    functions = FakeFunctions({"Echo": echo})
    gateway = serve(api(ECHO), functions)

    # When a client sends a message to it
    with WebSocketClient.connect(gateway.url) as client:
        connection_id = only_connection(gateway)
        client.send_json({"action": "echo"})
        client.receive()

    # Then the function got a MESSAGE event with the body as sent
    (event,) = functions.events("Echo")
    assert event["body"] == '{"action": "echo"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert (context["eventType"], context["routeKey"], context["connectionId"]) == (
        "MESSAGE",
        "echo",
        connection_id,
    )
    assert context["messageId"]
    assert context["requestId"]


def test_the_action_selects_its_route_over_default(serve: Callable[..., WebSocketGateway]) -> None:
    # Given an API with "echo" and $default routes
    functions = FakeFunctions({"Echo": echo, "Default": default})
    gateway = serve(api(ECHO, DEFAULT), functions)

    # When a client sends {"action": "echo"}
    with WebSocketClient.connect(gateway.url) as client:
        client.send_json({"action": "echo"})
        client.receive()

    # Then only the echo function ran
    assert len(functions.events("Echo")) == 1
    assert functions.events("Default") == []


@pytest.mark.parametrize("body", ['{"action": "unknown"}', '{"other": 1}', "not json", '["echo"]'])
def test_messages_without_a_matching_action_go_to_default(
    serve: Callable[..., WebSocketGateway], body: str
) -> None:
    # Given an API with "echo" and $default routes
    functions = FakeFunctions({"Echo": echo, "Default": default})
    gateway = serve(api(ECHO, DEFAULT), functions)

    # When a client sends a message whose action matches no route (or is not JSON at all)
    with WebSocketClient.connect(gateway.url) as client:
        client.send_text(body)
        reply = client.receive_json()

    # Then $default handles it
    assert reply == {"route": "$default"}
    assert functions.events("Echo") == []


def test_the_selection_expression_can_follow_a_dotted_path(serve: Callable[..., WebSocketGateway]) -> None:
    # Given an API that selects routes by $request.body.meta.kind
    functions = FakeFunctions({"Echo": echo})
    gateway = serve(api(ECHO, selection="$request.body.meta.kind"), functions)

    # When a client sends {"meta": {"kind": "echo"}}
    with WebSocketClient.connect(gateway.url) as client:
        client.send_json({"meta": {"kind": "echo"}})
        reply = client.receive_json()

    # Then the echo route handled it
    assert reply == {"meta": {"kind": "echo"}}


def test_a_message_matching_no_route_gets_a_forbidden_frame(serve: Callable[..., WebSocketGateway]) -> None:
    # Given an API with only an "echo" route and no $default
    functions = FakeFunctions({"Echo": echo})
    gateway = serve(api(ECHO), functions)

    # When a client sends an unknown action
    with WebSocketClient.connect(gateway.url) as client:
        connection_id = only_connection(gateway)
        client.send_json({"action": "nope"})
        reply = client.receive_json()

    # Then it gets API Gateway's Forbidden message and no function runs
    assert reply["message"] == "Forbidden"
    assert reply["connectionId"] == connection_id
    assert reply["requestId"]
    assert functions.calls == []


def test_a_failing_function_sends_internal_server_error_and_the_connection_stays_usable(
    serve: Callable[..., WebSocketGateway],
) -> None:
    # Given an API whose "fail" route always fails, next to an "echo" route
    functions = FakeFunctions({"Failing": failing, "Echo": echo})
    gateway = serve(api(WebSocketRoute("fail", "Failing", returns_response=True), ECHO), functions)

    with WebSocketClient.connect(gateway.url) as client:
        # When a client calls the failing route
        client.send_json({"action": "fail"})
        error = client.receive_json()

        # Then it gets "Internal server error", and the same connection still works
        assert error["message"] == "Internal server error"
        assert error["connectionId"] == only_connection(gateway)
        client.send_json({"action": "echo", "n": 2})
        assert client.receive_json() == {"action": "echo", "n": 2}


def test_messages_of_one_connection_are_handled_in_arrival_order(
    serve: Callable[..., WebSocketGateway],
) -> None:
    # Given an echo function that is slow on the first message only
    def slow_first(event: dict[str, Any]) -> dict[str, Any]:
        if json.loads(event["body"])["n"] == 0:
            time.sleep(0.1)
        return echo(event)

    functions = FakeFunctions({"Echo": slow_first})
    gateway = serve(api(ECHO), functions)

    # When a client sends ten messages at once
    with WebSocketClient.connect(gateway.url) as client:
        for n in range(10):
            client.send_json({"action": "echo", "n": n})
        replies = [client.receive_json()["n"] for _ in range(10)]

    # Then they were handled, and answered, in the order they were sent
    assert replies == list(range(10))
    assert [json.loads(event["body"])["n"] for event in functions.events("Echo")] == list(range(10))


def test_a_binary_message_goes_to_default_base64_encoded(serve: Callable[..., WebSocketGateway]) -> None:
    # Given an API with a $default route
    functions = FakeFunctions({"Default": default})
    gateway = serve(api(DEFAULT), functions)

    # When a client sends a binary message
    with WebSocketClient.connect(gateway.url) as client:
        client.send_binary(b"\x00\x01\xff")
        client.receive()

    # Then $default gets it base64-encoded
    (event,) = functions.events("Default")
    assert (event["body"], event["isBase64Encoded"]) == ("AAH/", True)


def test_the_server_answers_pings(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a connected client
    gateway = serve(api(ECHO), FakeFunctions({"Echo": echo}))
    with WebSocketClient.connect(gateway.url) as client:
        # When it pings, Then the pong comes back in time
        assert client.ping(b"hello", timeout=2) < 2


def test_an_oversized_message_closes_the_connection_with_1009(serve: Callable[..., WebSocketGateway]) -> None:
    # Given an API with $default and $disconnect routes
    functions = FakeFunctions({"Default": default, "Disconnect": accept})
    gateway = serve(api(DEFAULT, DISCONNECT), functions)

    # When a client sends a message over 128 KiB
    with WebSocketClient.connect(gateway.url) as client:
        client.send_text("x" * (128 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            client.receive()

    # Then the server closed it with 1009 and no function saw the message
    assert closed.value.code == CLOSE_TOO_BIG
    (event,) = functions.wait_for("Disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == CLOSE_TOO_BIG
    assert functions.events("Default") == []


# --- the authorizer and $connect refusals ------------------------------------------------------


def test_an_allowed_connection_carries_the_authorizer_context_to_later_events(
    serve: Callable[..., WebSocketGateway],
) -> None:
    # Given an API whose $connect has a REQUEST authorizer on ?token=
    functions = FakeFunctions({"Authorizer": policy, "Connect": accept, "Echo": echo, "Disconnect": accept})
    gateway = serve(api(AUTHORIZED_CONNECT, ECHO, DISCONNECT), functions)

    # When a client with a good token connects, sends a message and leaves
    with WebSocketClient.connect(f"{gateway.url}/?token=good") as client:
        client.send_json({"action": "echo"})
        client.receive()

    # Then $connect, the message and $disconnect all carry principalId and the context
    expected = {"principalId": "user-1", "userId": "user-1", "phoneNumber": "+15550001111"}
    (disconnect,) = functions.wait_for("Disconnect")
    for event in [*functions.events("Connect"), *functions.events("Echo"), disconnect]:
        assert event["requestContext"]["authorizer"] == expected


def test_the_authorizer_gets_the_websocket_request_authorizer_event(
    serve: Callable[..., WebSocketGateway],
) -> None:
    # Given an API whose $connect has a REQUEST authorizer
    functions = FakeFunctions({"Authorizer": policy, "Connect": accept})
    gateway = serve(api(AUTHORIZED_CONNECT), functions)

    # When a client connects with a token
    with WebSocketClient.connect(f"{gateway.url}/?token=good"):
        pass

    # Then the authorizer saw type REQUEST, the $connect method ARN and the request
    (event,) = functions.events("Authorizer")
    assert event["type"] == "REQUEST"
    assert event["methodArn"] == "arn:aws:execute-api:us-east-1:123456789012:wsapi123/prod/$connect"
    assert event["queryStringParameters"] == {"token": "good"}
    assert event["multiValueQueryStringParameters"] == {"token": ["good"]}
    assert event["stageVariables"] == {}
    assert "Sec-WebSocket-Key" in event["headers"]
    assert event["requestContext"]["eventType"] == "CONNECT"


def test_a_denied_connection_is_refused_with_403(serve: Callable[..., WebSocketGateway]) -> None:
    # Given an API whose authorizer denies unknown tokens
    functions = FakeFunctions({"Authorizer": policy, "Connect": accept})
    gateway = serve(api(AUTHORIZED_CONNECT), functions)

    # When a client connects with a bad token
    with pytest.raises(HandshakeRefused) as refused:
        WebSocketClient.connect(f"{gateway.url}/?token=bad")

    # Then the handshake is refused with 403 and $connect never runs
    assert refused.value.status == 403
    assert functions.events("Connect") == []
    assert gateway.connection_ids() == []


def test_a_missing_identity_source_is_refused_with_401_without_calling_the_authorizer(
    serve: Callable[..., WebSocketGateway],
) -> None:
    # Given an API whose authorizer needs ?token=
    functions = FakeFunctions({"Authorizer": policy, "Connect": accept})
    gateway = serve(api(AUTHORIZED_CONNECT), functions)

    # When a client connects without one
    with pytest.raises(HandshakeRefused) as refused:
        WebSocketClient.connect(f"{gateway.url}/?other=1")

    # Then the handshake is refused with 401 and no function ran
    assert refused.value.status == 401
    assert functions.calls == []


@pytest.mark.parametrize(("message", "status"), [("Unauthorized", 401), ("database down", 500)])
def test_an_authorizer_that_raises_refuses_the_connection(
    serve: Callable[..., WebSocketGateway], message: str, status: int
) -> None:
    # Given an authorizer that raises
    def raising(event: dict[str, Any]) -> Any:
        raise FunctionError("Authorizer", "Exception", message)

    gateway = serve(api(AUTHORIZED_CONNECT), FakeFunctions({"Authorizer": raising, "Connect": accept}))

    # When a client connects with a token
    with pytest.raises(HandshakeRefused) as refused:
        WebSocketClient.connect(f"{gateway.url}/?token=good")

    # Then "Unauthorized" means 401 and anything else 500
    assert refused.value.status == status


def test_a_connect_function_answering_401_refuses_the_handshake(
    serve: Callable[..., WebSocketGateway],
) -> None:
    # Given a $connect function that answers 401
    functions = FakeFunctions({"Connect": lambda event: {"statusCode": 401}})
    gateway = serve(api(WebSocketRoute("$connect", "Connect")), functions)

    # When a client connects
    with pytest.raises(HandshakeRefused) as refused:
        WebSocketClient.connect(gateway.url)

    # Then the handshake is refused with that status and no connection exists
    assert refused.value.status == 401
    assert gateway.connection_ids() == []


def test_a_failing_connect_function_refuses_the_handshake_with_500(
    serve: Callable[..., WebSocketGateway],
) -> None:
    # Given a $connect function that fails
    gateway = serve(api(WebSocketRoute("$connect", "Failing")), FakeFunctions({"Failing": failing}))

    # When a client connects, Then the handshake is refused with 500
    with pytest.raises(HandshakeRefused) as refused:
        WebSocketClient.connect(gateway.url)
    assert refused.value.status == 500


def test_connections_and_refusals_are_logged(serve: Callable[..., WebSocketGateway], logs: list[str]) -> None:
    # Given an API with an authorizer
    gateway = serve(api(AUTHORIZED_CONNECT), FakeFunctions({"Authorizer": policy, "Connect": accept}))

    # When one client is allowed and one has no token
    with WebSocketClient.connect(f"{gateway.url}/?token=good"):
        connection_id = only_connection(gateway)
    with pytest.raises(HandshakeRefused):
        WebSocketClient.connect(gateway.url)

    # Then each got one line
    assert f"ws connect {connection_id} (authorizer ok)" in logs
    assert any(line.startswith("ws refused 401") for line in logs)


# --- $disconnect -----------------------------------------------------------------------------


def test_disconnect_runs_once_when_the_client_closes(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a connected client
    functions = FakeFunctions({"Disconnect": accept})
    gateway = serve(api(DISCONNECT), functions)
    client = WebSocketClient.connect(gateway.url)
    connection_id = only_connection(gateway)

    # When it closes with 1000
    client.close()

    # Then $disconnect runs once with the DISCONNECT event, and the id is gone
    (event,) = functions.wait_for("Disconnect")
    time.sleep(0.05)
    assert len(functions.events("Disconnect")) == 1
    context = event["requestContext"]
    assert (context["eventType"], context["routeKey"], context["connectionId"]) == (
        "DISCONNECT",
        "$disconnect",
        connection_id,
    )
    assert context["disconnectStatusCode"] == 1000
    assert context["disconnectReason"]
    assert gateway.connection_ids() == []


def test_disconnect_runs_when_the_socket_just_breaks(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a client connected over a raw socket
    functions = FakeFunctions({"Disconnect": accept})
    gateway = serve(api(DISCONNECT), functions)
    raw = socket.create_connection(("127.0.0.1", gateway.port))
    raw.sendall(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert raw.recv(1024).startswith(b"HTTP/1.1 101")

    # When the socket closes without a close frame
    raw.close()

    # Then $disconnect runs with 1006
    (event,) = functions.wait_for("Disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1006


def test_idle_connections_are_closed(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a gateway whose idle timeout is 0.2 s
    functions = FakeFunctions({"Disconnect": accept})
    gateway = serve(api(DISCONNECT), functions, idle_timeout_seconds=0.2)

    # When a client stays silent
    with WebSocketClient.connect(gateway.url) as client, pytest.raises(ConnectionClosed) as closed:
        client.receive(timeout=3)

    # Then the server closed it with 1001 and $disconnect ran
    assert closed.value.code == CLOSE_GOING_AWAY
    (event,) = functions.wait_for("Disconnect")
    assert event["requestContext"]["disconnectReason"] == "Idle timeout"


def test_stop_closes_open_connections_and_runs_their_disconnect(
    serve: Callable[..., WebSocketGateway],
) -> None:
    # Given a connected client
    functions = FakeFunctions({"Disconnect": accept})
    gateway = serve(api(DISCONNECT), functions)
    with WebSocketClient.connect(gateway.url) as client:
        # When the gateway stops (the client answers the close from another thread)
        def read_until_closed() -> None:
            with suppress(ConnectionClosed):
                client.receive(timeout=3)

        reader = threading.Thread(target=read_until_closed)
        reader.start()
        gateway.stop()
        reader.join()

        # Then the client was told 1001 and $disconnect already ran
        assert client.close_code == CLOSE_GOING_AWAY
        assert len(functions.events("Disconnect")) == 1


# --- @connections ------------------------------------------------------------------------------


def test_post_to_connection_delivers_text_to_the_client(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a connected client
    gateway = serve(api(ECHO), FakeFunctions({"Echo": echo}))
    with WebSocketClient.connect(gateway.url) as client:
        # When a function posts to its connection through boto3
        management(gateway).post_to_connection(ConnectionId=only_connection(gateway), Data=b'{"hello": 1}')

        # Then the client receives it as text
        assert client.receive_json() == {"hello": 1}


def test_post_to_connection_sends_non_utf8_data_as_binary(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a connected client
    gateway = serve(api(ECHO), FakeFunctions({"Echo": echo}))
    with WebSocketClient.connect(gateway.url) as client:
        # When bytes that are not UTF-8 are posted
        management(gateway).post_to_connection(ConnectionId=only_connection(gateway), Data=b"\xff\x00")

        # Then the client receives a binary frame
        message = client.receive_message()
        assert (message.opcode, message.data) == (OP_BINARY, b"\xff\x00")


def test_get_connection_describes_the_connection(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a client connected with its own user agent
    gateway = serve(api(ECHO), FakeFunctions({"Echo": echo}))
    with WebSocketClient.connect(gateway.url, headers={"User-Agent": "tests/1.0"}):
        # When the connection is read through boto3
        answer = management(gateway).get_connection(ConnectionId=only_connection(gateway))

    # Then it has the connection times and the caller's identity
    assert answer["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "tests/1.0"}
    assert answer["ConnectedAt"] <= answer["LastActiveAt"]


def test_delete_connection_closes_it_and_runs_disconnect_once(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a connected client
    functions = FakeFunctions({"Disconnect": accept})
    gateway = serve(api(DISCONNECT), functions)
    with WebSocketClient.connect(gateway.url) as client:
        connection_id = only_connection(gateway)

        # When the connection is deleted through boto3
        management(gateway).delete_connection(ConnectionId=connection_id)

        # Then the client is closed normally, the id is gone at once and $disconnect runs once
        assert gateway.connection_ids() == []
        with pytest.raises(ConnectionClosed) as closed:
            client.receive()
        assert closed.value.code == 1000
    (event,) = functions.wait_for("Disconnect")
    time.sleep(0.05)
    assert len(functions.events("Disconnect")) == 1
    assert event["requestContext"]["connectionId"] == connection_id


def test_a_closed_connection_is_gone(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a client that connected and left
    gateway = serve(api(ECHO), FakeFunctions({"Echo": echo}))
    with WebSocketClient.connect(gateway.url):
        connection_id = only_connection(gateway)
    wait_until(lambda: gateway.connection_ids() == [])
    client = management(gateway)

    # When a function posts to it, reads it or deletes it
    # Then each call raises GoneException
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"late")
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=connection_id)
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId=connection_id)


def test_a_function_can_delete_its_own_connection_while_handling_a_message(
    serve: Callable[..., WebSocketGateway],
) -> None:
    # Given a route whose function deletes the calling connection through the management API
    holder: dict[str, WebSocketGateway] = {}

    def kick(event: dict[str, Any]) -> dict[str, Any]:
        management(holder["gateway"]).delete_connection(ConnectionId=event["requestContext"]["connectionId"])
        return {"statusCode": 200}

    functions = FakeFunctions({"Kick": kick, "Disconnect": accept})
    holder["gateway"] = gateway = serve(api(WebSocketRoute("kick", "Kick"), DISCONNECT), functions)

    # When a client calls it
    with WebSocketClient.connect(gateway.url) as client:
        client.send_json({"action": "kick"})
        with pytest.raises(ConnectionClosed):
            client.receive()

    # Then nothing deadlocks: the connection closed and $disconnect ran once
    functions.wait_for("Disconnect")


@pytest.mark.parametrize(
    "path", ["/@connections/{id}", "/prod/%40connections/{id}", "/other/@connections/{id}"]
)
def test_the_management_path_accepts_any_stage_and_an_encoded_at(
    serve: Callable[..., WebSocketGateway], path: str
) -> None:
    # Given a connected client
    gateway = serve(api(ECHO), FakeFunctions({"Echo": echo}))
    with WebSocketClient.connect(gateway.url) as client:
        url = f"http://127.0.0.1:{gateway.port}{path.format(id=only_connection(gateway))}"

        # When a plain HTTP POST reaches that path
        request = urllib.request.Request(url, data=b"plain", method="POST")
        with urllib.request.urlopen(request, timeout=3) as response:
            status = response.status

        # Then it is delivered
        assert status == 200
        assert client.receive() == "plain"


def test_a_bad_client_does_not_stop_the_server(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a gateway that received garbage instead of HTTP
    gateway = serve(api(ECHO), FakeFunctions({"Echo": echo}))
    with socket.create_connection(("127.0.0.1", gateway.port)) as raw:
        raw.sendall(b"\x16\x03\x01 garbage\r\n\r\n")
        answer = raw.recv(1024)

    # When a real client connects afterwards
    with WebSocketClient.connect(gateway.url) as client:
        client.send_json({"action": "echo"})

        # Then the garbage got a 400 and the server still serves
        assert answer.startswith(b"HTTP/1.1 400")
        assert client.receive_json() == {"action": "echo"}


def test_receive_times_out_when_nothing_arrives(serve: Callable[..., WebSocketGateway]) -> None:
    # Given a connected client and no messages
    gateway = serve(api(ECHO), FakeFunctions({"Echo": echo}))
    with WebSocketClient.connect(gateway.url) as client, pytest.raises(TimeoutError):
        # When it waits briefly, Then it times out
        client.receive(timeout=0.05)
