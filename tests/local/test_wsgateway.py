"""The local WebSocket API without sockets: $connect and its authorizer, routes, $disconnect, @connections.

``WebSocketApi`` is called as the edge calls it, with a fake link in place of a socket.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from local.specs import FunctionError, WebSocketApiSpec, WebSocketAuthorizer, WebSocketRoute
from local.wsgateway import Admission, Connection, Ending, Handshake, Refusal, WebSocketApi

Handler = Any


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
        return [event for name, event, _ in self.calls if name == function]


class FakeLink:
    """Records what the gateway sends to a connection, as a socket would carry it."""

    def __init__(self) -> None:
        self.frames: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None

    def send(self, data: str | bytes) -> None:
        if self.closed is None:
            self.frames.append(data)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def json(self) -> list[Any]:
        return [json.loads(frame) for frame in self.frames]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


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


def spec(*routes: WebSocketRoute, selection: str = "$request.body.action") -> WebSocketApiSpec:
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
HANDSHAKE = Handshake(headers=(("Host", "127.0.0.1:3001"), ("User-Agent", "tests/1.0")))


def gateway(api_spec: WebSocketApiSpec, functions: FakeFunctions, **options: Any) -> WebSocketApi:
    return WebSocketApi(
        api_spec, functions, domain="127.0.0.1:3001", log=options.pop("log", [].append), **options
    )


def connected(api: WebSocketApi, handshake: Handshake = HANDSHAKE) -> tuple[Connection, FakeLink]:
    admission = api.connect(handshake)
    assert isinstance(admission, Admission), admission
    link = FakeLink()
    return api.open(admission, link), link


def with_token(token: str) -> Handshake:
    return Handshake(headers=HANDSHAKE.headers, query=(("token", token),))


# --- $connect ----------------------------------------------------------------------------------


def test_connect_gets_the_connect_event() -> None:
    # Given an API with a $connect function
    functions = FakeFunctions({"Connect": accept})
    api = gateway(spec(WebSocketRoute("$connect", "Connect")), functions)

    # When a client connects with a query string and headers
    handshake = Handshake(
        headers=(("Host", "127.0.0.1:3001"), ("X-Client", "tests"), ("User-Agent", "ua/1")),
        query=(("token", "abc"), ("tag", "a"), ("tag", "b")),
        source_ip="10.0.0.7",
    )
    conn, _ = connected(api, handshake)

    # Then $connect got API Gateway's CONNECT event for this connection
    (event,) = functions.events("Connect")
    assert event["queryStringParameters"] == {"token": "abc", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"token": ["abc"], "tag": ["a", "b"]}
    assert event["headers"]["X-Client"] == "tests"
    assert event["multiValueHeaders"]["X-Client"] == ["tests"]
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert (context["routeKey"], context["eventType"], context["messageDirection"]) == (
        "$connect",
        "CONNECT",
        "IN",
    )
    assert context["connectionId"] == conn.id
    assert (context["stage"], context["apiId"], context["domainName"]) == (
        "prod",
        "wsapi123",
        "127.0.0.1:3001",
    )
    assert context["identity"] == {"sourceIp": "10.0.0.7", "userAgent": "ua/1"}
    assert isinstance(context["connectedAt"], int)
    assert "authorizer" not in context


def test_connection_ids_look_like_api_gateways_and_differ() -> None:
    api = gateway(spec(ECHO), FakeFunctions({}))

    first, _ = connected(api)
    second, _ = connected(api)

    assert first.id != second.id
    assert len(first.id) == 16
    assert first.id.endswith("=")
    assert api.connection_ids() == sorted([first.id, second.id])


def test_an_allowed_connection_carries_the_authorizer_context_to_later_events() -> None:
    # Given an API whose $connect has a REQUEST authorizer on ?token=
    functions = FakeFunctions({"Authorizer": policy, "Connect": accept, "Echo": echo, "Disconnect": accept})
    api = gateway(spec(AUTHORIZED_CONNECT, ECHO, DISCONNECT), functions)

    # When a client with a good token connects, sends a message and leaves
    conn, _ = connected(api, with_token("good"))
    api.message(conn, '{"action": "echo"}')
    api.disconnect(conn, api.closed(conn, 1000))

    # Then $connect, the message and $disconnect all carry principalId and the context
    expected = {"principalId": "user-1", "userId": "user-1", "phoneNumber": "+15550001111"}
    for name in ("Connect", "Echo", "Disconnect"):
        (event,) = functions.events(name)
        assert event["requestContext"]["authorizer"] == expected


def test_the_authorizer_gets_the_websocket_request_authorizer_event() -> None:
    # Given an API whose $connect has a REQUEST authorizer
    functions = FakeFunctions({"Authorizer": policy, "Connect": accept})
    api = gateway(spec(AUTHORIZED_CONNECT), functions)

    # When a client connects with a token
    connected(api, with_token("good"))

    # Then the authorizer saw type REQUEST, the $connect method ARN and the request
    (event,) = functions.events("Authorizer")
    assert event["type"] == "REQUEST"
    assert event["methodArn"] == "arn:aws:execute-api:us-east-1:123456789012:wsapi123/prod/$connect"
    assert event["queryStringParameters"] == {"token": "good"}
    assert event["multiValueQueryStringParameters"] == {"token": ["good"]}
    assert event["stageVariables"] == {}
    assert event["headers"]["User-Agent"] == "tests/1.0"
    assert event["requestContext"]["eventType"] == "CONNECT"


def test_a_denied_connection_is_refused_with_403_and_connect_never_runs() -> None:
    # Given an API whose authorizer denies unknown tokens
    functions = FakeFunctions({"Authorizer": policy, "Connect": accept})
    api = gateway(spec(AUTHORIZED_CONNECT), functions)

    # When a client connects with a bad token
    refusal = api.connect(with_token("bad"))

    # Then the handshake is refused with API Gateway's 403 and $connect never runs
    assert isinstance(refusal, Refusal)
    assert (refusal.status, json.loads(refusal.body)) == (403, {"message": "Forbidden"})
    assert functions.events("Connect") == []
    assert api.connection_ids() == []


@pytest.mark.parametrize("query", [(), (("other", "1"),), (("token", ""),)])
def test_a_missing_identity_source_is_refused_with_401_without_calling_the_authorizer(
    query: tuple[tuple[str, str], ...],
) -> None:
    # Given an API whose authorizer needs ?token=
    functions = FakeFunctions({"Authorizer": policy, "Connect": accept})
    api = gateway(spec(AUTHORIZED_CONNECT), functions)

    # When a client connects without one (or with an empty one)
    refusal = api.connect(Handshake(headers=HANDSHAKE.headers, query=query))

    # Then the handshake is refused with 401 and no function ran
    assert isinstance(refusal, Refusal)
    assert (refusal.status, json.loads(refusal.body)) == (401, {"message": "Unauthorized"})
    assert functions.calls == []


@pytest.mark.parametrize(("message", "status"), [("Unauthorized", 401), ("database down", 500)])
def test_an_authorizer_that_raises_refuses_the_connection(message: str, status: int) -> None:
    # Given an authorizer that raises
    def raising(event: dict[str, Any]) -> Any:
        raise FunctionError("Authorizer", "Exception", message)

    api = gateway(spec(AUTHORIZED_CONNECT), FakeFunctions({"Authorizer": raising, "Connect": accept}))

    # When a client connects with a token
    refusal = api.connect(with_token("good"))

    # Then "Unauthorized" means 401 and anything else 500
    assert isinstance(refusal, Refusal)
    assert refusal.status == status


def test_a_connect_function_answering_401_refuses_the_handshake_with_its_body() -> None:
    # Given a $connect function that answers 401 with a body
    functions = FakeFunctions({"Connect": lambda event: {"statusCode": 401, "body": "go away"}})
    api = gateway(spec(WebSocketRoute("$connect", "Connect")), functions)

    # When a client connects
    refusal = api.connect(HANDSHAKE)

    # Then the handshake gets that status and body, and no connection exists
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.body) == (401, b"go away")
    assert api.connection_ids() == []


def test_a_failing_connect_function_refuses_the_handshake_with_500() -> None:
    api = gateway(spec(WebSocketRoute("$connect", "Failing")), FakeFunctions({"Failing": failing}))

    refusal = api.connect(HANDSHAKE)

    assert isinstance(refusal, Refusal)
    assert refusal.status == 500


def test_the_subprotocol_chosen_by_connect_is_admitted() -> None:
    # Given a $connect function that picks a subprotocol
    chooses = {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat.v2"}}
    api = gateway(
        spec(WebSocketRoute("$connect", "Connect")), FakeFunctions({"Connect": lambda event: chooses})
    )

    # When a client connects, Then the handshake is admitted with it
    admission = api.connect(HANDSHAKE)
    assert isinstance(admission, Admission)
    assert admission.subprotocol == "chat.v2"


def test_connections_and_refusals_are_logged() -> None:
    # Given an API with an authorizer, and its log
    logs: list[str] = []
    api = gateway(
        spec(AUTHORIZED_CONNECT), FakeFunctions({"Authorizer": policy, "Connect": accept}), log=logs.append
    )

    # When one client is allowed and one has no token
    conn, _ = connected(api, with_token("good"))
    api.connect(HANDSHAKE)

    # Then each got one line
    assert f"ws connect {conn.id} (authorizer ok)" in logs
    assert any(line.startswith("ws refused 401") for line in logs)


# --- messages ----------------------------------------------------------------------------------


def test_a_two_way_route_sends_the_functions_body_back() -> None:
    # Given an API with a two-way "echo" route and a connected client
    api = gateway(spec(ECHO), FakeFunctions({"Echo": echo}))
    conn, link = connected(api)

    # When the client sends {"action": "echo"}
    api.message(conn, '{"action": "echo", "text": "hi"}')

    # Then the function's body goes back to the caller
    assert link.json() == [{"action": "echo", "text": "hi"}]


def test_a_one_way_route_sends_nothing_back() -> None:
    api = gateway(spec(WebSocketRoute("note", "Echo")), FakeFunctions({"Echo": echo}))
    conn, link = connected(api)

    api.message(conn, '{"action": "note"}')

    assert link.frames == []


def test_the_message_event_names_its_route_and_connection() -> None:
    # Given an API with an "echo" route
    functions = FakeFunctions({"Echo": echo})
    api = gateway(spec(ECHO), functions)
    conn, _ = connected(api)

    # When a client sends a message to it
    api.message(conn, '{"action": "echo"}')

    # Then the function got a MESSAGE event with the body as sent
    (event,) = functions.events("Echo")
    assert (event["body"], event["isBase64Encoded"]) == ('{"action": "echo"}', False)
    context = event["requestContext"]
    assert (context["eventType"], context["routeKey"], context["connectionId"]) == (
        "MESSAGE",
        "echo",
        conn.id,
    )
    assert context["messageId"]
    assert context["requestId"]


def test_the_action_selects_its_route_over_default() -> None:
    api = gateway(spec(ECHO, DEFAULT), FakeFunctions({}))

    assert api.select_route('{"action": "echo"}') == "echo"


@pytest.mark.parametrize(
    "body", ['{"action": "unknown"}', '{"other": 1}', "not json", '["echo"]', '{"action": "$connect"}']
)
def test_messages_without_a_matching_action_go_to_default(body: str) -> None:
    # (the lifecycle routes are never selected by a message)
    api = gateway(spec(ECHO, DEFAULT, WebSocketRoute("$connect", "Connect")), FakeFunctions({}))

    assert api.select_route(body) == "$default"


def test_the_selection_expression_can_follow_a_dotted_path() -> None:
    api = gateway(spec(ECHO, DEFAULT, selection="$request.body.meta.kind"), FakeFunctions({}))

    assert api.select_route('{"meta": {"kind": "echo"}}') == "echo"
    assert api.select_route('{"action": "echo"}') == "$default"


def test_an_unsupported_selection_expression_is_refused() -> None:
    with pytest.raises(ValueError, match=r"only \$request\.body"):
        gateway(spec(ECHO, selection="$request.header.x"), FakeFunctions({}))


def test_a_message_matching_no_route_gets_a_forbidden_frame() -> None:
    # Given an API with only an "echo" route and no $default
    functions = FakeFunctions({"Echo": echo})
    api = gateway(spec(ECHO), functions)
    conn, link = connected(api)

    # When a client sends an unknown action
    api.message(conn, '{"action": "nope"}')

    # Then it gets API Gateway's Forbidden message and no function runs
    (reply,) = link.json()
    assert (reply["message"], reply["connectionId"]) == ("Forbidden", conn.id)
    assert reply["requestId"]
    assert functions.calls == []


def test_a_failing_function_sends_internal_server_error() -> None:
    # Given an API whose "fail" route always fails
    api = gateway(
        spec(WebSocketRoute("fail", "Failing", returns_response=True)), FakeFunctions({"Failing": failing})
    )
    conn, link = connected(api)

    # When a client calls it
    api.message(conn, '{"action": "fail"}')

    # Then it gets API Gateway's "Internal server error" frame, and the connection stays open
    (error,) = link.json()
    assert (error["message"], error["connectionId"]) == ("Internal server error", conn.id)
    assert link.closed is None


def test_a_binary_message_goes_to_default_base64_encoded() -> None:
    functions = FakeFunctions({"Default": default})
    api = gateway(spec(ECHO, DEFAULT), functions)
    conn, _ = connected(api)

    api.message(conn, b"\x00\x01\xff")

    (event,) = functions.events("Default")
    assert (event["body"], event["isBase64Encoded"]) == ("AAH/", True)


# --- the end of a connection -------------------------------------------------------------------


def test_disconnect_gets_the_disconnect_event_with_the_clients_close() -> None:
    # Given a connected client
    functions = FakeFunctions({"Disconnect": accept})
    api = gateway(spec(DISCONNECT), functions)
    conn, _ = connected(api)

    # When it closes with 1000 and $disconnect runs
    api.disconnect(conn, api.closed(conn, 1000, "bye"))

    # Then $disconnect got the DISCONNECT event, and the id is gone
    (event,) = functions.events("Disconnect")
    context = event["requestContext"]
    assert (context["eventType"], context["routeKey"], context["connectionId"]) == (
        "DISCONNECT",
        "$disconnect",
        conn.id,
    )
    assert context["disconnectStatusCode"] == 1000
    assert context["disconnectReason"] == "Client-side close frame status code 1000: bye"
    assert event["headers"] == {"Host": "127.0.0.1:3001"}
    assert api.connection_ids() == []


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (1001, "", "Client-side close frame status code 1001"),
        (1005, "", "Client-side close frame status not set"),
        (1006, "", "Connection lost without a close frame"),
    ],
)
def test_client_endings_are_reported_as_api_gateway_reports_them(
    code: int, reason: str, expected: str
) -> None:
    assert Ending.from_client(code, reason) == Ending(code, expected)


def test_a_close_started_by_the_server_wins_over_what_the_socket_says() -> None:
    # Given a connection the server closed
    api = gateway(spec(ECHO), FakeFunctions({}))
    conn, link = connected(api)
    api.close(conn, 1000, "", "Connection Closed Normally")

    # When the socket reports its end
    ending = api.closed(conn, 1000)

    # Then the ending is the server's, and the link got one close frame
    assert ending == Ending(1000, "Connection Closed Normally")
    assert link.closed == (1000, "")


def test_idle_connections_are_closed_with_1001() -> None:
    # Given a gateway whose idle timeout is 10 s, and a connected client
    clock = Clock()
    api = gateway(spec(ECHO), FakeFunctions({}), idle_timeout_seconds=10.0, clock=clock)
    conn, link = connected(api)

    # When 10 s pass with nothing from it
    clock.now += 10.0
    expired = api.expire_if_idle(conn)

    # Then it is closed with 1001, and its $disconnect will say why
    assert expired
    assert link.closed == (1001, "Going away")
    assert api.closed(conn, 1001) == Ending(1001, "Idle timeout")


def test_a_message_keeps_a_connection_from_going_idle() -> None:
    # Given a connected client that sends a message 9 s in
    clock = Clock()
    api = gateway(spec(ECHO), FakeFunctions({"Echo": echo}), idle_timeout_seconds=10.0, clock=clock)
    conn, link = connected(api)
    clock.now += 9.0
    api.message(conn, '{"action": "echo"}')

    # When 10 s after the connect have passed
    clock.now += 1.0

    # Then it is still open
    assert not api.expire_if_idle(conn)
    assert link.closed is None


# --- @connections ------------------------------------------------------------------------------


def test_post_to_connection_sends_text_to_the_client() -> None:
    api = gateway(spec(ECHO), FakeFunctions({}))
    conn, link = connected(api)

    answer = api.manage("POST", f"/prod/%40connections/{conn.id}", b'{"hello": 1}')

    assert answer.status == 200
    assert link.frames == ['{"hello": 1}']


def test_post_to_connection_sends_bytes_that_are_not_utf8_as_binary() -> None:
    api = gateway(spec(ECHO), FakeFunctions({}))
    conn, link = connected(api)

    api.manage("POST", f"/prod/@connections/{conn.id}", b"\xff\x00")

    assert link.frames == [b"\xff\x00"]


def test_get_connection_describes_the_connection() -> None:
    # Given a client connected with its own user agent
    api = gateway(spec(ECHO), FakeFunctions({}))
    conn, _ = connected(api)

    # When the connection is read
    answer = api.manage("GET", f"/prod/@connections/{conn.id}", b"")

    # Then it has the connection times and the caller's identity
    document = json.loads(answer.body)
    assert answer.status == 200
    assert document["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "tests/1.0"}
    assert document["connectedAt"] <= document["lastActiveAt"]
    assert document["connectedAt"].endswith("Z")


def test_delete_connection_closes_it_normally_and_forgets_it_at_once() -> None:
    api = gateway(spec(ECHO), FakeFunctions({}))
    conn, link = connected(api)

    answer = api.manage("DELETE", f"/prod/@connections/{conn.id}", b"")

    assert answer.status == 204
    assert link.closed == (1000, "")
    assert api.connection_ids() == []
    assert conn.ending == Ending(1000, "Connection Closed Normally")


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_an_unknown_connection_is_gone(method: str) -> None:
    api = gateway(spec(ECHO), FakeFunctions({}))

    answer = api.manage(method, "/prod/@connections/nobody0000000A%3D", b"late")

    assert answer.status == 410
    assert answer.headers["x-amzn-ErrorType"] == "GoneException"
    assert json.loads(answer.body) == {"message": "Connection nobody0000000A= is gone"}


def test_a_post_over_128_kib_is_payload_too_large() -> None:
    api = gateway(spec(ECHO), FakeFunctions({}))
    conn, link = connected(api)

    answer = api.manage("POST", f"/prod/@connections/{conn.id}", b"x" * (128 * 1024 + 1))

    assert (answer.status, answer.headers["x-amzn-ErrorType"]) == (413, "PayloadTooLargeException")
    assert link.frames == []


@pytest.mark.parametrize(
    "path", ["/@connections/{id}", "/prod/%40connections/{id}", "/other/@connections/{id}"]
)
def test_the_management_path_accepts_any_stage_and_an_encoded_at(path: str) -> None:
    api = gateway(spec(ECHO), FakeFunctions({}))
    conn, link = connected(api)

    answer = api.manage("POST", path.format(id=conn.id), b"plain")

    assert answer.status == 200
    assert link.frames == ["plain"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/prod/@connections/{id}"), ("GET", "/prod"), ("GET", "/prod/connections/{id}"), ("POST", "/")],
)
def test_other_requests_are_forbidden_as_api_gateway_answers_them(method: str, path: str) -> None:
    api = gateway(spec(ECHO), FakeFunctions({}))
    conn, _ = connected(api)

    answer = api.manage(method, path.format(id=conn.id), b"")

    assert (answer.status, answer.headers["x-amzn-ErrorType"]) == (403, "ForbiddenException")
    assert json.loads(answer.body) == {"message": "Missing Authentication Token"}
