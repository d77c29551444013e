"""API Gateway's WebSocket API, without sockets: connections, events, routes, ``@connections``.

What API Gateway does between a client and the functions, as plain calls:

- ``connect``: the ``$connect`` route's REQUEST authorizer (identity sources, IAM policy
  judged by ``local.authorizer``) and function, with the events API Gateway sends; the
  answer is an ``Admission`` (a new connection id, the authorizer's context, the chosen
  subprotocol) or a ``Refusal`` (the HTTP status the handshake gets instead of 101);
- ``message``: route selection by ``$request.body.<path>`` (``$default`` otherwise, or
  API Gateway's ``Forbidden`` frame when there is none), the MESSAGE event, the reply of
  a two-way route, the ``Internal server error`` frame when the function fails;
- ``disconnect``: the DISCONNECT event with its status code and reason;
- ``manage``: the ``@connections`` management API (POST / GET / DELETE
  ``/{stage}/@connections/{id}``) over the registry of open connections: ``410
  GoneException`` for an unknown id, AWS's error shapes, the 128 KiB frame limit.

The transport (``local.edge``) owns the sockets: it gives each open connection a ``Link``
(queue a frame, queue a close: non-blocking, from any thread), calls ``connect`` /
``message`` / ``disconnect`` off its event loop (they run functions and block), one
message at a time per connection and ``disconnect`` after the last one.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote

from local.authorizer import Verdict, judge_failure, judge_policy
from local.specs import ACCOUNT_ID, REGION, FunctionError, Invoker, WebSocketApiSpec, WebSocketAuthorizer

IDLE_TIMEOUT_SECONDS = 600.0
# API Gateway's limit on a message, both ways (frames of 32 KiB make up messages up to 128 KiB).
MAX_MESSAGE_BYTES = 128 * 1024
# What the @connections API reads of a request body before answering 413.
MAX_MANAGEMENT_BODY_BYTES = 8 * 1024 * 1024
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
_ID_ALPHABET = string.ascii_letters + string.digits
_LIFECYCLE_ROUTES = frozenset({"$connect", "$disconnect"})
_SELECTION = re.compile(r"\$request\.body\.(\S+)")
_REFUSAL_MESSAGES = {401: "Unauthorized", 403: "Forbidden", 500: "Internal server error"}

Log = Callable[[str], object]


def new_id() -> str:
    """An id shaped like API Gateway's connection and request ids (15 characters and ``=``)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(15)) + "="


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class Link(Protocol):
    """The transport side of one open connection; both calls return at once, from any thread."""

    def send(self, data: str | bytes) -> None:
        """Queue a text (``str``) or binary (``bytes``) frame; dropped once the link is closed."""

    def close(self, code: int, reason: str) -> None:
        """Queue a close frame after the frames already queued."""


@dataclass(frozen=True)
class Handshake:
    """The opening HTTP request of a WebSocket, as API Gateway passes it to ``$connect``."""

    headers: tuple[tuple[str, str], ...]
    query: tuple[tuple[str, str], ...] = ()
    source_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def event_fields(self) -> dict[str, Any]:
        """headers, multiValueHeaders and (when there is a query string) the query parameters."""
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in self.headers:
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        fields: dict[str, Any] = {"headers": headers, "multiValueHeaders": multi_headers}
        if self.query:
            multi_query: dict[str, list[str]] = {}
            for name, value in self.query:
                multi_query.setdefault(name, []).append(value)
            fields["queryStringParameters"] = {name: values[-1] for name, values in multi_query.items()}
            fields["multiValueQueryStringParameters"] = multi_query
        return fields

    def has_identity(self, source: str) -> bool:
        """Whether an identity source is present and not empty (other kinds than these are not checked)."""
        kind, _, name = source.rpartition(".")
        if kind == "route.request.querystring":
            return any(key == name and value for key, value in self.query)
        if kind == "route.request.header":
            return bool(self.header(name))
        return True


@dataclass
class Peer:
    """Who is connected: what every event of the connection repeats."""

    connection_id: str
    source_ip: str
    user_agent: str
    connected_at: float
    authorizer: dict[str, Any] | None = None


@dataclass(frozen=True)
class Admission:
    """``$connect`` said yes: the handshake is answered 101 (with ``subprotocol`` when chosen)."""

    peer: Peer
    subprotocol: str | None = None


@dataclass(frozen=True)
class Refusal:
    """``$connect`` said no: the handshake is answered with this HTTP status and body."""

    status: int
    reason: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _refusal(status: int, reason: str, body: bytes | None = None) -> Refusal:
    message = _REFUSAL_MESSAGES.get(status) or _phrase(status)
    payload = body if body is not None else json.dumps({"message": message}).encode("utf-8")
    return Refusal(status, reason, payload, {"content-type": "application/json"})


@dataclass(frozen=True)
class Ending:
    """How a connection ended: ``disconnectStatusCode`` and ``disconnectReason``."""

    code: int
    reason: str

    @classmethod
    def from_client(cls, code: int, reason: str = "") -> Ending:
        """A close the client started (or a connection that was lost), as API Gateway reports it."""
        if code == CLOSE_ABNORMAL:
            return cls(CLOSE_ABNORMAL, "Connection lost without a close frame")
        if code == CLOSE_NO_STATUS:
            return cls(CLOSE_NO_STATUS, "Client-side close frame status not set")
        text = f"Client-side close frame status code {code}"
        return cls(code, f"{text}: {reason}" if reason else text)


class Connection:
    """One open connection: its peer, its link, when it was last active and how it ends."""

    def __init__(self, peer: Peer, link: Link, clock: Callable[[], float] = time.time) -> None:
        self.peer = peer
        self.link = link
        self._clock = clock
        self.last_active = peer.connected_at
        self.ending: Ending | None = None
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.peer.connection_id

    def touch(self) -> None:
        self.last_active = self._clock()

    def send(self, data: str | bytes) -> None:
        self.link.send(data)
        self.touch()

    def end(self, code: int, reason: str, disconnect_reason: str) -> bool:
        """Close from the server side (once: later calls return False)."""
        with self._lock:
            if self.ending is not None:
                return False
            self.ending = Ending(code, disconnect_reason)
        self.link.close(code, reason)
        return True

    def idle_for(self) -> float:
        return self._clock() - self.last_active


@dataclass(frozen=True)
class ManagementResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _aws_error(status: int, error_type: str, message: str) -> ManagementResponse:
    # botocore's rest-json parser takes the exception name from x-amzn-ErrorType.
    headers = {"content-type": "application/json", "x-amzn-ErrorType": error_type}
    return ManagementResponse(status, headers, json.dumps({"message": message}).encode("utf-8"))


def management_target(raw_path: str) -> str | None:
    """The connection id of ``/{stage}/@connections/{id}`` (any stage, or none), from the raw path."""
    parts = raw_path.strip("/").split("/")
    if len(parts) not in (2, 3) or unquote(parts[-2]) != "@connections" or not parts[-1]:
        return None
    return unquote(parts[-1])


def _lookup(document: Any, path: tuple[str, ...]) -> str | None:
    value = document
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def _connect_outcome(result: Any) -> str | Refusal | None:
    """The subprotocol the ``$connect`` function chose (None: none), or the Refusal it asked for."""
    if not isinstance(result, dict):
        return None
    status = result.get("statusCode", 200)
    try:
        code = int(status)
    except (TypeError, ValueError):
        return _refusal(500, f"$connect answered statusCode {status!r}")
    if not 100 <= code <= 599:
        return _refusal(500, f"$connect answered statusCode {code}")
    if not 200 <= code < 300:
        body = result.get("body")
        return _refusal(
            code, f"$connect answered {code}", body.encode("utf-8") if isinstance(body, str) else b""
        )
    headers = result.get("headers")
    for name, value in (headers if isinstance(headers, dict) else {}).items():
        if str(name).lower() == "sec-websocket-protocol":
            return str(value)
    return None


class WebSocketApi:
    """One WebSocket API of the template: its connections and what API Gateway does with them."""

    def __init__(
        self,
        spec: WebSocketApiSpec,
        invoke: Invoker,
        *,
        domain: str,
        log: Log = print,
        idle_timeout_seconds: float = IDLE_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        selection = _SELECTION.fullmatch(spec.route_selection_expression.strip())
        if selection is None:
            raise ValueError(
                f"unsupported route selection expression {spec.route_selection_expression!r}: "
                "only $request.body.<path> is emulated"
            )
        self._selection_path = tuple(selection.group(1).split("."))
        self.spec = spec
        self._invoke = invoke
        self.domain = domain
        self._log = log
        self.idle_timeout = idle_timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._connections: dict[str, Connection] = {}

    # --- the registry --------------------------------------------------------------------------

    def connection_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._connections)

    def connections(self) -> list[Connection]:
        with self._lock:
            return list(self._connections.values())

    def get(self, connection_id: str) -> Connection | None:
        with self._lock:
            return self._connections.get(connection_id)

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            if self._connections.get(conn.id) is conn:
                del self._connections[conn.id]

    # --- $connect --------------------------------------------------------------------------------

    def connect(self, handshake: Handshake) -> Admission | Refusal:
        """Run the authorizer and the ``$connect`` function (blocking)."""
        peer = Peer(new_id(), handshake.source_ip, handshake.header("user-agent") or "", self._clock())
        route = self.spec.routes.get("$connect")
        if route is None:
            return Admission(peer)
        fields = handshake.event_fields()
        if route.authorizer is not None:
            verdict = self._authorize(route.authorizer, peer, handshake, fields)
            if not verdict.allowed:
                assert verdict.status is not None
                self._log(f"ws refused {verdict.status} ({verdict.reason})")
                return _refusal(verdict.status, verdict.reason)
            peer.authorizer = verdict.context
        event = {
            **fields,
            "isBase64Encoded": False,
            "requestContext": self.context(peer, "$connect", "CONNECT"),
        }
        try:
            result = self._call(route.function, event, "ws $connect")
        except FunctionError as error:
            outcome: str | Refusal | None = _refusal(500, f"$connect failed: {error}")
        else:
            outcome = _connect_outcome(result)
        if isinstance(outcome, Refusal):
            self._log(f"ws refused {outcome.status} ({outcome.reason})")
            return outcome
        return Admission(peer, outcome)

    def _authorize(
        self, authorizer: WebSocketAuthorizer, peer: Peer, handshake: Handshake, fields: dict[str, Any]
    ) -> Verdict:
        for source in authorizer.identity_sources:
            if not handshake.has_identity(source):
                return Verdict(401, f"identity source {source} is missing")
        method_arn = (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.spec.api_id}/{self.spec.stage}/$connect"
        )
        event = {
            "type": "REQUEST",
            "methodArn": method_arn,
            **fields,
            "stageVariables": {},
            "requestContext": self.context(peer, "$connect", "CONNECT"),
        }
        try:
            answer = self._call(authorizer.function, event, "ws $connect authorizer")
        except FunctionError as error:
            return judge_failure(error)
        return judge_policy(answer, method_arn, scalar_context=True)

    def open(self, admission: Admission, link: Link) -> Connection:
        """Register an admitted connection (before its 101 goes out, so it can be posted to at once)."""
        conn = Connection(admission.peer, link, self._clock)
        with self._lock:
            self._connections[conn.id] = conn
        authorized = " (authorizer ok)" if admission.peer.authorizer is not None else ""
        self._log(f"ws connect {conn.id}{authorized}")
        return conn

    # --- events ------------------------------------------------------------------------------

    def context(self, peer: Peer, route_key: str, event_type: str, **extra: Any) -> dict[str, Any]:
        """``requestContext`` of an event of ``peer``'s connection."""
        now = self._clock()
        request_id = new_id()
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "messageDirection": "IN",
            "stage": self.spec.stage,
            "connectedAt": int(peer.connected_at * 1000),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
            "requestId": request_id,
            "domainName": self.domain,
            "connectionId": peer.connection_id,
            "apiId": self.spec.api_id,
            **extra,
        }
        if peer.authorizer is not None:
            context["authorizer"] = peer.authorizer
        return context

    def _call(self, function: str, event: dict[str, Any], trigger: str) -> Any:
        """The invoker's result; anything it raises becomes a FunctionError."""
        try:
            return self._invoke(function, event, trigger)
        except FunctionError:
            raise
        except Exception as error:
            raise FunctionError(function, type(error).__name__, str(error)) from error

    # --- messages ------------------------------------------------------------------------------

    def select_route(self, body: str) -> str | None:
        """The route of a text message: its ``$request.body`` value when a route has that key,
        else ``$default``; None when neither exists."""
        routes = self.spec.routes
        try:
            value = _lookup(json.loads(body), self._selection_path)
        except ValueError:
            value = None
        if value is not None and value in routes and value not in _LIFECYCLE_ROUTES:
            return value
        return "$default" if "$default" in routes else None

    def message(self, conn: Connection, data: str | bytes) -> None:
        """Run one message through its route (blocking); replies go out on the connection's link."""
        conn.touch()
        if isinstance(data, str):
            body, encoded = data, False
            route_key = self.select_route(body)
        else:
            body, encoded = base64.b64encode(data).decode("ascii"), True
            route_key = "$default" if "$default" in self.spec.routes else None
        context = self.context(conn.peer, route_key or "$default", "MESSAGE", messageId=new_id())
        if route_key is None:
            self._log(f"ws message {conn.id} matched no route (Forbidden)")
            self._reply(
                conn, {"message": "Forbidden", "connectionId": conn.id, "requestId": context["requestId"]}
            )
            return
        route = self.spec.routes[route_key]
        event = {"requestContext": context, "body": body, "isBase64Encoded": encoded}
        started = time.perf_counter()
        try:
            result = self._call(route.function, event, f"ws {route_key}")
        except FunctionError as error:
            self._log(f"ws message {conn.id} {route_key} failed: {error}")
            error_frame = {
                "message": "Internal server error",
                "connectionId": conn.id,
                "requestId": context["requestId"],
            }
            self._reply(conn, error_frame)
            return
        self._log(f"ws message {conn.id} {route_key} ({(time.perf_counter() - started) * 1000:.0f} ms)")
        if route.returns_response and isinstance(result, dict) and isinstance(result.get("body"), str):
            conn.send(result["body"])

    @staticmethod
    def _reply(conn: Connection, payload: dict[str, Any]) -> None:
        conn.send(json.dumps(payload))

    # --- the end of a connection -----------------------------------------------------------------

    def close(self, conn: Connection, code: int, reason: str, disconnect_reason: str) -> None:
        """Close from the server side: the id is gone at once, ``$disconnect`` follows the last message."""
        self._forget(conn)
        conn.end(code, reason, disconnect_reason)

    def expire_if_idle(self, conn: Connection) -> bool:
        """Close a connection idle for the idle timeout (API Gateway's is 10 minutes)."""
        if conn.ending is not None or conn.idle_for() < self.idle_timeout:
            return False
        self.close(conn, CLOSE_GOING_AWAY, "Going away", "Idle timeout")
        return True

    def closed(self, conn: Connection, code: int, reason: str = "") -> Ending:
        """The socket is closed: forget the id; how it ended (a close the server started wins)."""
        self._forget(conn)
        ending = conn.ending or Ending.from_client(code, reason)
        self._log(f"ws disconnect {conn.id} ({ending.code} {ending.reason})")
        return ending

    def disconnect(self, conn: Connection, ending: Ending) -> None:
        """Run ``$disconnect`` (blocking), after the connection's last message."""
        route = self.spec.routes.get("$disconnect")
        if route is None:
            return
        context = self.context(
            conn.peer,
            "$disconnect",
            "DISCONNECT",
            disconnectStatusCode=ending.code,
            disconnectReason=ending.reason,
        )
        event = {
            "headers": {"Host": self.domain},
            "multiValueHeaders": {"Host": [self.domain]},
            "requestContext": context,
            "isBase64Encoded": False,
        }
        try:
            self._call(route.function, event, "ws $disconnect")
        except FunctionError as error:
            self._log(f"ws $disconnect {conn.id} failed: {error}")

    # --- @connections ----------------------------------------------------------------------------

    def manage(self, method: str, raw_path: str, body: bytes) -> ManagementResponse:
        """One request of the ``@connections`` API (never blocks: safe on an event loop)."""
        connection_id = management_target(raw_path)
        if connection_id is None or method not in ("POST", "GET", "DELETE"):
            return _aws_error(403, "ForbiddenException", "Missing Authentication Token")
        conn = self.get(connection_id)
        if conn is None:
            self._log(f"ws @connections {method} {connection_id}: gone")
            return _aws_error(410, "GoneException", f"Connection {connection_id} is gone")
        if method == "GET":
            document = {
                "connectedAt": _iso(conn.peer.connected_at),
                "identity": {"sourceIp": conn.peer.source_ip, "userAgent": conn.peer.user_agent},
                "lastActiveAt": _iso(conn.last_active),
            }
            return ManagementResponse(
                200, {"content-type": "application/json"}, json.dumps(document).encode()
            )
        if method == "DELETE":
            self._log(f"ws @connections DELETE {connection_id}")
            self.close(conn, CLOSE_NORMAL, "", "Connection Closed Normally")
            return ManagementResponse(204)
        if len(body) > MAX_MESSAGE_BYTES:
            return _aws_error(413, "PayloadTooLargeException", "Message too long")
        try:
            data: str | bytes = body.decode("utf-8")
        except UnicodeDecodeError:
            data = body  # PostToConnection sends bytes that are not UTF-8 as a binary frame
        conn.send(data)
        return ManagementResponse(200)

    @staticmethod
    def body_too_large() -> ManagementResponse:
        return _aws_error(413, "PayloadTooLargeException", "Request body too large")
