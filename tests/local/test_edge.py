"""The local APIs through real ports: uvicorn + starlette serving the HTTP and WebSocket APIs.

The behaviour itself is tested without sockets (test_apigw, test_wsgateway); these check
what only the wire shows: handshakes, frames reaching clients from other threads, closes,
API Gateway's answers to odd methods, the web client's files and configuration.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from local.edge import HttpEdge, WebSocketEdge
from local.specs import WebSocketApiSpec, WebSocketAuthorizer, WebSocketRoute
from local.template import ROOT, HttpRoute

Handler = Callable[[dict[str, Any]], Any]


class FakeFunctions:
    """An ``Invoker`` over plain callables keyed by function id, recording every event it got."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, function: str, event: dict[str, Any], trigger: str) -> Any:
        with self._lock:
            self.calls.append((function, event))
        return self.handlers[function](event)

    def events(self, function: str) -> list[dict[str, Any]]:
        with self._lock:
            return [event for name, event in self.calls if name == function]

    def wait_for(self, function: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The events of ``function`` once it was called ``count`` times (some calls are asynchronous)."""
        deadline = time.monotonic() + timeout
        while len(events := self.events(function)) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{function} was called {len(events)} times, not {count}")
            time.sleep(0.01)
        return events


def accept(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200}


def echo(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "body": event["body"]}


def token_policy(event: dict[str, Any]) -> dict[str, Any]:
    token = (event.get("queryStringParameters") or {}).get("token")
    effect = "Allow" if token == "good" else "Deny"
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}
    return {"principalId": "user-1", "policyDocument": {"Statement": [statement]}, "context": {"user": "u1"}}


CONNECT = WebSocketRoute(
    "$connect", "Connect", authorizer=WebSocketAuthorizer("Authorizer", ("route.request.querystring.token",))
)
DISCONNECT = WebSocketRoute("$disconnect", "Disconnect")
ECHO = WebSocketRoute("echo", "Echo", returns_response=True)


def spec(*routes: WebSocketRoute) -> WebSocketApiSpec:
    return WebSocketApiSpec(
        logical_id="WebSocketApi",
        api_id="wsapi123",
        stage="dev",
        route_selection_expression="$request.body.action",
        routes={route.route_key: route for route in (CONNECT, DISCONNECT, ECHO, *routes)},
    )


def functions(**extra: Handler) -> FakeFunctions:
    handlers: dict[str, Handler] = {
        "Authorizer": token_policy,
        "Connect": accept,
        "Disconnect": accept,
        "Echo": echo,
    }
    return FakeFunctions(handlers | extra)


@pytest.fixture
def serve_ws() -> Iterator[Callable[..., WebSocketEdge]]:
    """Starts WebSocket APIs on free ports; every one is stopped after the test."""
    edges: list[WebSocketEdge] = []

    def start(api_spec: WebSocketApiSpec, invoke: FakeFunctions, **options: Any) -> WebSocketEdge:
        edge = WebSocketEdge(api_spec, invoke, port=0, log=options.pop("log", [].append), **options)
        edge.start()
        edges.append(edge)
        return edge

    yield start
    for edge in edges:
        edge.stop()


def management(edge: WebSocketEdge) -> Any:
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=edge.management_endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def only_connection(edge: WebSocketEdge) -> str:
    (connection_id,) = edge.connection_ids()
    return connection_id


# --- the WebSocket API -------------------------------------------------------------------------


def test_a_client_with_a_good_token_connects_and_its_message_is_routed(
    serve_ws: Callable[..., WebSocketEdge],
) -> None:
    # Given the WebSocket API with an authorizer on ?token=
    invoke = functions()
    edge = serve_ws(spec(), invoke)

    # When a client with a good token connects and sends {"action": "echo"}
    with connect(f"{edge.url}/dev?token=good") as client:
        client.send(json.dumps({"action": "echo", "n": 1}))
        reply = json.loads(client.recv(timeout=5))

    # Then the echo route answered it, with the authorizer's context in its event
    assert reply == {"action": "echo", "n": 1}
    (event,) = invoke.events("Echo")
    assert event["requestContext"]["authorizer"] == {"principalId": "user-1", "user": "u1"}


@pytest.mark.parametrize(("query", "status"), [("", 401), ("?token=bad", 403)])
def test_a_client_without_a_good_token_is_refused_at_the_handshake(
    serve_ws: Callable[..., WebSocketEdge], query: str, status: int
) -> None:
    # Given the WebSocket API with an authorizer on ?token=
    invoke = functions()
    edge = serve_ws(spec(), invoke)

    # When a client connects without a token, or with a bad one
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{edge.url}/dev{query}")

    # Then the handshake is answered 401 / 403 with API Gateway's JSON, and $connect never ran
    assert refused.value.response.status_code == status
    assert json.loads(refused.value.response.body or b"") == {
        "message": "Unauthorized" if status == 401 else "Forbidden"
    }
    assert invoke.events("Connect") == []


def test_a_post_to_connection_from_a_function_reaches_the_client(
    serve_ws: Callable[..., WebSocketEdge],
) -> None:
    # Given a $default function that posts to its caller through the @connections API (boto3)
    holder: dict[str, WebSocketEdge] = {}

    def push(event: dict[str, Any]) -> dict[str, Any]:
        connection_id = event["requestContext"]["connectionId"]
        management(holder["edge"]).post_to_connection(ConnectionId=connection_id, Data=b'{"pushed": true}')
        return {"statusCode": 200}

    holder["edge"] = edge = serve_ws(spec(WebSocketRoute("$default", "Push")), functions(Push=push))

    # When a client sends it a message
    with connect(f"{edge.url}/dev?token=good") as client:
        client.send(json.dumps({"action": "anything"}))

        # Then the posted frame reaches the client
        assert json.loads(client.recv(timeout=5)) == {"pushed": True}


def test_a_post_to_connection_from_outside_reaches_the_client_as_text(
    serve_ws: Callable[..., WebSocketEdge],
) -> None:
    edge = serve_ws(spec(), functions())
    with connect(f"{edge.url}/dev?token=good") as client:
        management(edge).post_to_connection(ConnectionId=only_connection(edge), Data=b'{"hello": 1}')

        assert client.recv(timeout=5) == '{"hello": 1}'


def test_delete_connection_closes_the_socket_and_runs_disconnect_once(
    serve_ws: Callable[..., WebSocketEdge],
) -> None:
    # Given a connected client
    invoke = functions()
    edge = serve_ws(spec(), invoke)
    with connect(f"{edge.url}/dev?token=good") as client:
        connection_id = only_connection(edge)

        # When the connection is deleted through boto3
        management(edge).delete_connection(ConnectionId=connection_id)

        # Then the id is gone at once, the client is closed normally and $disconnect runs once
        assert edge.connection_ids() == []
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 1000
    (event,) = invoke.wait_for("Disconnect")
    time.sleep(0.1)
    assert len(invoke.events("Disconnect")) == 1
    context = event["requestContext"]
    assert (context["connectionId"], context["disconnectStatusCode"]) == (connection_id, 1000)
    assert context["disconnectReason"] == "Connection Closed Normally"


def test_a_closed_connection_is_gone_for_boto3(serve_ws: Callable[..., WebSocketEdge]) -> None:
    # Given a client that connected and left
    invoke = functions()
    edge = serve_ws(spec(), invoke)
    with connect(f"{edge.url}/dev?token=good"):
        connection_id = only_connection(edge)
    invoke.wait_for("Disconnect")
    client = management(edge)

    # When a function posts to it, Then boto3 raises GoneException
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"late")


def test_a_function_can_delete_its_own_connection_while_handling_a_message(
    serve_ws: Callable[..., WebSocketEdge],
) -> None:
    # Given a route whose function deletes the calling connection through the management API
    holder: dict[str, WebSocketEdge] = {}

    def kick(event: dict[str, Any]) -> dict[str, Any]:
        management(holder["edge"]).delete_connection(ConnectionId=event["requestContext"]["connectionId"])
        return {"statusCode": 200}

    invoke = functions(Kick=kick)
    holder["edge"] = edge = serve_ws(spec(WebSocketRoute("kick", "Kick")), invoke)

    # When a client calls it
    with connect(f"{edge.url}/dev?token=good") as client:
        client.send(json.dumps({"action": "kick"}))
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)

    # Then nothing deadlocks: the connection closed and $disconnect ran
    invoke.wait_for("Disconnect")


def test_messages_of_one_connection_are_handled_in_arrival_order(
    serve_ws: Callable[..., WebSocketEdge],
) -> None:
    # Given an echo function that is slow on the first message only
    def slow_first(event: dict[str, Any]) -> dict[str, Any]:
        if json.loads(event["body"])["n"] == 0:
            time.sleep(0.2)
        return echo(event)

    invoke = functions(Echo=slow_first)
    edge = serve_ws(spec(), invoke)

    # When a client sends ten messages at once, then leaves
    with connect(f"{edge.url}/dev?token=good") as client:
        for n in range(10):
            client.send(json.dumps({"action": "echo", "n": n}))
        replies = [json.loads(client.recv(timeout=5))["n"] for _ in range(10)]

    # Then they were handled and answered in the order sent, and $disconnect came after the last
    assert replies == list(range(10))
    invoke.wait_for("Disconnect")
    names = [name for name, _ in invoke.calls]
    assert names.index("Disconnect") > max(i for i, name in enumerate(names) if name == "Echo")


def test_an_oversized_message_closes_the_connection_with_1009(serve_ws: Callable[..., WebSocketEdge]) -> None:
    # Given a connected client
    invoke = functions()
    edge = serve_ws(spec(), invoke)
    with connect(f"{edge.url}/dev?token=good", max_size=None) as client:
        # When it sends a message over API Gateway's 128 KiB
        client.send("x" * (128 * 1024 + 1))

        # Then the server closes the connection with 1009, and no function saw the message
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 1009
    (event,) = invoke.wait_for("Disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1009
    assert invoke.events("Echo") == []


def test_a_connection_lost_without_a_close_frame_runs_disconnect_with_1006(
    serve_ws: Callable[..., WebSocketEdge],
) -> None:
    # Given a client connected over a raw socket
    invoke = functions()
    edge = serve_ws(spec(), invoke)
    raw = socket.create_connection(("127.0.0.1", edge.port))
    raw.sendall(
        b"GET /dev?token=good HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert raw.recv(1024).startswith(b"HTTP/1.1 101")

    # When the socket closes without a close frame
    raw.close()

    # Then $disconnect runs with 1006
    (event,) = invoke.wait_for("Disconnect")
    assert event["requestContext"]["disconnectStatusCode"] == 1006


def test_stop_closes_open_connections_and_runs_their_disconnect(
    serve_ws: Callable[..., WebSocketEdge],
) -> None:
    # Given a connected client
    invoke = functions()
    edge = serve_ws(spec(), invoke)
    with connect(f"{edge.url}/dev?token=good") as client:
        # When the API stops
        edge.stop()

        # Then the client was told 1001 and $disconnect already ran
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert client.close_code == 1001
        assert len(invoke.events("Disconnect")) == 1


# --- the HTTP API ------------------------------------------------------------------------------

CORS = {
    "allowOrigins": ["*"],
    "allowHeaders": ["content-type"],
    "allowMethods": ["GET", "POST"],
    "maxAge": 600,
}


@pytest.fixture
def http_logs() -> list[str]:
    return []


@pytest.fixture
def http_api(http_logs: list[str]) -> Iterator[HttpEdge]:
    """GET /v1/health and POST /v1/fail (a function that raises something the stack does not expect)."""

    def broken(event: dict[str, Any]) -> Any:
        raise RuntimeError("the invoker broke")

    invoke = FakeFunctions(
        {"Health": lambda event: {"statusCode": 200, "body": '{"status": "ok"}'}, "Broken": broken}
    )
    routes = [HttpRoute("GET", "/v1/health", "Health"), HttpRoute("POST", "/v1/fail", "Broken")]
    edge = HttpEdge(routes, invoke, port=0, cors=CORS, log=http_logs.append)
    edge.serve_web_client(ROOT / "web", ws_port=45678, ws_stage="dev")
    edge.start()
    try:
        yield edge
    finally:
        edge.stop()


def request(
    edge: HttpEdge, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("TRACE", "/v1/health"),
        ("QUERY", "/v1/health"),
        ("GET", "/v1/nowhere"),
        ("GET", "/v1/campaigns/%F3%AE%9B%A4%0A/uploads/x"),
    ],
)
def test_unknown_methods_and_routes_get_api_gateways_404(http_api: HttpEdge, method: str, path: str) -> None:
    status, headers, body = request(http_api, method, path)

    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    assert headers["content-type"] == "application/json"


def test_a_websocket_handshake_on_the_http_api_is_api_gateways_404(http_api: HttpEdge) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{http_api.port}/v1/health")

    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body or b"") == {"message": "Not Found"}


def test_a_route_answers_through_the_port(http_api: HttpEdge) -> None:
    status, _, body = request(http_api, "GET", "/v1/health")

    assert (status, json.loads(body)) == (200, {"status": "ok"})


def test_a_preflight_is_answered_from_the_cors_configuration(http_api: HttpEdge) -> None:
    status, headers, _ = request(
        http_api,
        "OPTIONS",
        "/v1/health",
        {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
    )

    assert status == 204
    assert headers["access-control-allow-origin"] == "*"
    assert headers["access-control-allow-methods"] == "GET,POST"
    assert headers["access-control-max-age"] == "600"


def test_a_response_carries_the_allowed_origin(http_api: HttpEdge) -> None:
    _, headers, _ = request(http_api, "GET", "/v1/health", {"Origin": "http://app.example"})

    assert headers["access-control-allow-origin"] == "*"


def test_a_fault_of_the_stack_is_a_json_500_and_is_logged(http_api: HttpEdge, http_logs: list[str]) -> None:
    status, _, body = request(http_api, "POST", "/v1/fail", body=b"{}")

    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    assert any(
        "internal error of the local stack" in line and "the invoker broke" in line for line in http_logs
    )


def test_a_declared_body_over_10_mb_is_refused_with_413(http_api: HttpEdge) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", http_api.port, timeout=10)
    try:
        connection.putrequest("POST", "/v1/fail")
        connection.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
        connection.endheaders()
        response = connection.getresponse()
        status, body = response.status, response.read()
    finally:
        connection.close()

    assert (status, json.loads(body)) == (413, {"message": "Request Entity Too Large"})


def test_the_web_client_is_told_this_stacks_urls_whatever_the_ports(http_api: HttpEdge) -> None:
    # Given the web client served on a free port, next to a WebSocket API on port 45678
    # When the browser loads / (as http://localhost:<port>)
    status, headers, body = request(http_api, "GET", "/", {"Host": f"localhost:{http_api.port}"})

    # Then index.html names this HTTP API and that WebSocket API, on the host the browser used
    page = body.decode()
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert f'<meta name="chatflow-api-url" content="http://localhost:{http_api.port}">' in page
    assert '<meta name="chatflow-ws-url" content="ws://localhost:45678/dev">' in page


def test_a_page_reached_through_a_forwarded_port_keeps_that_port_for_the_http_api(http_api: HttpEdge) -> None:
    # When the browser reaches the page through another port (ssh -L 8080:127.0.0.1:<port>)
    _, _, body = request(http_api, "GET", "/", {"Host": "localhost:8080"})

    # Then the HTTP API is where the page came from; the WebSocket API is the stack's port
    assert '<meta name="chatflow-api-url" content="http://localhost:8080">' in body.decode()
    assert '<meta name="chatflow-ws-url" content="ws://localhost:45678/dev">' in body.decode()


def test_an_unusable_host_header_falls_back_to_the_stacks_host(http_api: HttpEdge) -> None:
    _, _, body = request(http_api, "GET", "/index.html", {"Host": '"><script>x</script>'})

    assert f'content="http://127.0.0.1:{http_api.port}"' in body.decode()
    assert "<script>x" not in body.decode()


def test_static_files_are_served_and_head_has_no_body(http_api: HttpEdge) -> None:
    # When the stylesheet is fetched, and asked for with HEAD
    got = request(http_api, "GET", "/styles.css")
    head = request(http_api, "HEAD", "/styles.css")

    # Then it is served as CSS, and HEAD has the same headers without the body
    assert (got[0], head[0]) == (200, 200)
    assert got[1]["content-type"].startswith("text/css")
    assert got[2] == (ROOT / "web" / "styles.css").read_bytes()
    assert head[1]["content-length"] == str(len(got[2]))
    assert head[2] == b""


def test_files_outside_the_web_folder_are_not_served(http_api: HttpEdge) -> None:
    status, _, body = request(http_api, "GET", "/../template.yaml")

    assert (status, json.loads(body)) == (404, {"message": "Not Found"})


def test_the_served_page_keeps_the_rest_of_index_html(http_api: HttpEdge) -> None:
    _, _, body = request(http_api, "GET", "/")

    original = (ROOT / "web" / "index.html").read_text()
    unmeta = re.compile(r'<meta name="chatflow-(api|ws)-url" content="[^"]*">')
    assert unmeta.sub("", body.decode()) == unmeta.sub("", original)
