"""API Gateway WebSocket API emulated on one local port.

The port serves WebSocket upgrades (``$connect`` with its REQUEST authorizer, routed
messages, ``$disconnect``) and, for plain HTTP requests, the ``@connections`` management
API that functions call through boto3. Functions run through an ``Invoker`` with the
events API Gateway sends to Lambda. Each TCP connection has a thread; an open WebSocket
has a second one that runs its messages in order and then its ``$disconnect``.
"""

from __future__ import annotations

import base64
import functools
import json
import queue
import re
import secrets
import selectors
import socket
import string
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.client import HTTPMessage
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.specs import ACCOUNT_ID, REGION, FunctionError, Invoker, WebSocketApiSpec, WebSocketAuthorizer
from local.websocket import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_NO_STATUS,
    CLOSE_NORMAL,
    MAX_MESSAGE_BYTES,
    OP_PONG,
    ConnectionClosed,
    HandshakeError,
    Message,
    ProtocolError,
    WebSocketError,
    WebSocketStream,
    check_upgrade_request,
    handshake_response,
    is_upgrade_request,
    parse_http_head,
    read_exactly,
    read_http_head,
)

IDLE_TIMEOUT_SECONDS = 600.0
# How long a connection the server closes waits for the client's close frame.
_CLOSE_GRACE_SECONDS = 2.0
# A reader wakes at least this often, to notice a close started by another thread.
_POLL_SECONDS = 1.0
_SEND_TIMEOUT_SECONDS = 10.0
_KEEP_ALIVE_SECONDS = 30.0
_STOP_JOIN_SECONDS = 10.0
_MAX_MANAGEMENT_BODY = 8 * 1024 * 1024
_ID_ALPHABET = string.ascii_letters + string.digits
_LIFECYCLE_ROUTES = frozenset({"$connect", "$disconnect"})
_SELECTION = re.compile(r"\$request\.body\.(\S+)")


def _new_id() -> str:
    """An id shaped like API Gateway's connection and request ids (15 characters and ``=``)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(15)) + "="


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Refused(Exception):
    """The opening handshake is answered with ``status`` instead of 101."""

    def __init__(
        self, status: int, why: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(why)
        self.status = status
        self.headers = {"Content-Type": "application/json"} | (headers or {})
        messages = {401: "Unauthorized", 403: "Forbidden", 500: "Internal server error"}
        message = messages.get(status) or _phrase(status)
        self.body = body if body is not None else json.dumps({"message": message}).encode("utf-8")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _http_response(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, keep_alive: bool = False
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_phrase(status)}".rstrip(),
        f"x-amzn-RequestId: {uuid.uuid4()}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    if status != HTTPStatus.NO_CONTENT:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _aws_error(status: int, error_type: str, message: str) -> tuple[int, dict[str, str], bytes]:
    # botocore's rest-json parser takes the exception name from x-amzn-ErrorType.
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}
    return status, headers, json.dumps({"message": message}).encode("utf-8")


def _management_target(path: str) -> str | None:
    """The connection id of ``/{stage}/@connections/{id}`` (any stage, or none)."""
    parts = path.strip("/").split("/")
    if len(parts) not in (2, 3) or unquote(parts[-2]) != "@connections" or not parts[-1]:
        return None
    return unquote(parts[-1])


def _glob_matches(patterns: Any, value: str, *, ignore_case: bool = False) -> bool:
    """IAM-style wildcard match (``*`` any run, ``?`` one character) of a string or list of strings."""
    items = [patterns] if isinstance(patterns, str) else patterns if isinstance(patterns, list) else []
    for pattern in items:
        if not isinstance(pattern, str):
            continue
        regex = ".*".join(
            ".".join(re.escape(piece) for piece in part.split("?")) for part in pattern.split("*")
        )
        if re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0):
            return True
    return False


def _authorizer_context(result: Any, method_arn: str) -> dict[str, Any]:
    """``requestContext.authorizer`` from an authorizer's IAM policy; _Refused on Deny or a bad answer."""
    if (
        not isinstance(result, dict)
        or "principalId" not in result
        or not isinstance(result.get("policyDocument"), dict)
    ):
        raise _Refused(500, "authorizer answered without principalId and policyDocument")
    context = result.get("context") or {}
    if not isinstance(context, dict) or any(isinstance(value, dict | list) for value in context.values()):
        raise _Refused(500, "authorizer context values must be strings, numbers or booleans")
    statements = result["policyDocument"].get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    effects = {
        statement.get("Effect")
        for statement in statements
        if isinstance(statement, dict)
        and _glob_matches(statement.get("Action"), "execute-api:Invoke", ignore_case=True)
        and _glob_matches(statement.get("Resource"), method_arn)
    }
    if "Deny" in effects or "Allow" not in effects:
        raise _Refused(403, "authorizer denied the connection")
    return {"principalId": result["principalId"], **context}


def _connect_outcome(result: Any) -> str | None:
    """The subprotocol the ``$connect`` function chose, if any; _Refused when it said no."""
    if not isinstance(result, dict):
        return None
    status = result.get("statusCode", 200)
    try:
        code = int(status)
    except (TypeError, ValueError):
        raise _Refused(500, f"$connect answered statusCode {status!r}") from None
    if not 100 <= code <= 599:
        raise _Refused(500, f"$connect answered statusCode {code}")
    if not 200 <= code < 300:
        body = result.get("body")
        raise _Refused(
            code, f"$connect answered {code}", body.encode("utf-8") if isinstance(body, str) else b""
        )
    headers = result.get("headers")
    for name, value in (headers if isinstance(headers, dict) else {}).items():
        if str(name).lower() == "sec-websocket-protocol":
            return str(value)
    return None


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


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    version: str
    headers: HTTPMessage

    @classmethod
    def parse(cls, head: bytes) -> _Request:
        start, headers = parse_http_head(head)
        if len(start) != 3 or not start[2].startswith("HTTP/"):
            raise HandshakeError(400, "malformed HTTP request line")
        return cls(start[0], start[1], start[2], headers)

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def keep_alive(self) -> bool:
        connection = (self.headers.get("Connection") or "").lower()
        return self.version == "HTTP/1.1" and "close" not in connection

    def event_fields(self) -> dict[str, Any]:
        """headers, multiValueHeaders and (when there is a query string) the query parameters."""
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        fields: dict[str, Any] = {"headers": headers, "multiValueHeaders": multi_headers}
        query = self.query
        if query:
            multi_query: dict[str, list[str]] = {}
            for name, value in query:
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
            return bool(self.headers.get(name))
        return True


@dataclass
class _Peer:
    connection_id: str
    source_ip: str
    user_agent: str
    connected_at: float
    authorizer: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Ended:
    code: int
    reason: str


class _Connection:
    """An open WebSocket: its stream, its inbox of messages for the worker, and how it ended."""

    def __init__(self, peer: _Peer, stream: WebSocketStream) -> None:
        self.peer = peer
        self.stream = stream
        self.last_active = peer.connected_at
        self.inbox: queue.SimpleQueue[Message | _Ended] = queue.SimpleQueue()
        self.ending: _Ended | None = None
        self.close_deadline = 0.0
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.peer.connection_id

    def touch(self) -> None:
        self.last_active = time.time()

    def send_text(self, text: str) -> None:
        self.stream.send_text(text)
        self.touch()

    def send_data(self, data: bytes) -> None:
        """A text frame when ``data`` is UTF-8, else a binary one (as PostToConnection does)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.stream.send_binary(data)
            self.touch()
        else:
            self.send_text(text)

    def close(self, code: int, reason: str, disconnect_reason: str) -> None:
        """Start the close handshake from the server side (from any thread); the reader finishes it."""
        with self._lock:
            if self.ending is not None:
                return
            self.ending = _Ended(code, disconnect_reason)
            self.close_deadline = time.monotonic() + _CLOSE_GRACE_SECONDS
        try:
            self.stream.send_close(code, reason)
        except OSError:
            self.stream.abort()


class WebSocketGateway:
    """One WebSocket API of the template, served on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        spec: WebSocketApiSpec,
        invoke: Invoker,
        host: str = "127.0.0.1",
        port: int = 0,
        log: Callable[[str], object] = print,
        idle_timeout_seconds: float = IDLE_TIMEOUT_SECONDS,
    ) -> None:
        selection = _SELECTION.fullmatch(spec.route_selection_expression.strip())
        if selection is None:
            raise ValueError(
                f"unsupported route selection expression {spec.route_selection_expression!r}: "
                "only $request.body.<path> is emulated"
            )
        self._selection_path = tuple(selection.group(1).split("."))
        self._spec = spec
        self._invoke = invoke
        self._host = host
        self._requested_port = port
        self._log = log
        self._idle_timeout = idle_timeout_seconds
        self._lock = threading.Lock()
        self._connections: dict[str, _Connection] = {}
        self._http_sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._acceptor: threading.Thread | None = None
        self._domain = ""

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Listen and serve in background threads."""
        if self._listener is not None:
            raise RuntimeError("the gateway was already started")
        self._listener = socket.create_server((self._host, self._requested_port))
        self._wake = socket.socketpair()
        self._domain = f"{self._host}:{self.port}"
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"ws-accept-{self.port}", daemon=True
        )
        self._acceptor.start()

    def stop(self) -> None:
        """Close every connection (their ``$disconnect`` runs), stop listening and join the threads."""
        if self._listener is None or self._wake is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._wake[1].send(b"\0")
        if self._acceptor is not None:
            self._acceptor.join()
        self._listener.close()
        for end in self._wake:
            end.close()
        with self._lock:
            connections = list(self._connections.values())
            http_sockets = list(self._http_sockets)
        for conn in connections:
            self._close(conn, CLOSE_GOING_AWAY, "Going away", "Going away")
        for sock in http_sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + _STOP_JOIN_SECONDS
        while True:
            with self._lock:
                threads = list(self._threads)
            left = deadline - time.monotonic()
            if not threads:
                return
            if left <= 0:
                self._log(f"ws stop: {len(threads)} threads still running")
                return
            threads[0].join(left)

    def __enter__(self) -> WebSocketGateway:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the gateway is not started")
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"ws://{self._host}:{self.port}"

    @property
    def management_endpoint(self) -> str:
        return f"http://{self._host}:{self.port}/{self._spec.stage}"

    def connection_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._connections)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except Exception as error:  # a bad client or a gateway bug must not take the server down
                self._log(f"ws internal error in {name}: {error!r}")
            finally:
                with self._lock:
                    self._threads.discard(thread)

        thread = threading.Thread(target=run, name=name, daemon=True)
        # Started under the lock: stop() must never find (and join) a thread not yet started.
        with self._lock:
            self._threads.add(thread)
            thread.start()

    def _accept_loop(self) -> None:
        listener, wake = self._listener, self._wake
        if listener is None or wake is None:
            raise RuntimeError("the gateway is not started")
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake[0], selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is wake[0]:
                        return
                    try:
                        sock, address = listener.accept()
                    except OSError:
                        continue
                    with self._lock:
                        self._http_sockets.add(sock)
                    self._spawn(
                        f"ws-client-{address[1]}", functools.partial(self._serve_socket, sock, address)
                    )

    def _serve_socket(self, sock: socket.socket, address: tuple[str, int]) -> None:
        """HTTP requests on one TCP connection until it is upgraded to a WebSocket or ends."""
        try:
            buffer = bytearray()
            while not self._stopping.is_set():
                sock.settimeout(_KEEP_ALIVE_SECONDS)
                head = read_http_head(sock, buffer)
                if head is None:
                    return
                sock.settimeout(_SEND_TIMEOUT_SECONDS)
                request = _Request.parse(head)
                if is_upgrade_request(request.headers):
                    self._open_websocket(sock, request, buffer, address)
                    return
                if not self._management_request(sock, request, buffer):
                    return
        except HandshakeError as error:
            self._log(f"ws bad request from {address[0]}: {error.status} {error}")
            with suppress(OSError):
                sock.sendall(_http_response(error.status, str(error).encode("utf-8"), error.headers))
        except OSError:
            pass  # the client went away or stayed silent: nobody to answer
        finally:
            with self._lock:
                self._http_sockets.discard(sock)
            with suppress(OSError):
                sock.close()

    # --- $connect --------------------------------------------------------------------------

    def _open_websocket(
        self, sock: socket.socket, request: _Request, buffer: bytearray, address: tuple[str, int]
    ) -> None:
        peer = _Peer(_new_id(), address[0], request.headers.get("User-Agent") or "", time.time())
        try:
            try:
                accept = check_upgrade_request(request.method, request.headers)
            except HandshakeError as error:
                raise _Refused(error.status, str(error), headers=error.headers) from None
            protocol = self._connect(peer, request)
        except _Refused as refused:
            self._log(f"ws refused {refused.status} ({refused})")
            sock.sendall(_http_response(refused.status, refused.body, refused.headers))
            return
        conn = _Connection(peer, WebSocketStream(sock, is_client=False, initial=bytes(buffer)))
        # Registered before the client can see the 101 (so it can be posted to at once), and
        # under the send lock so that no posted frame can reach the client ahead of the 101.
        with conn.stream.send_lock:
            with self._lock:
                self._http_sockets.discard(sock)
                self._connections[conn.id] = conn
                stopping = self._stopping.is_set()
            try:
                sock.sendall(handshake_response(accept, protocol))
            except OSError:
                conn.stream.abort()  # the reader sees the end at once and runs $disconnect
        self._log(f"ws connect {conn.id}" + (" (authorizer ok)" if peer.authorizer is not None else ""))
        self._spawn(f"ws-worker-{conn.id}", functools.partial(self._work, conn))
        if stopping:
            self._close(conn, CLOSE_GOING_AWAY, "Going away", "Going away")
        self._read(conn)

    def _connect(self, peer: _Peer, request: _Request) -> str | None:
        """Run the authorizer and the ``$connect`` function; the chosen subprotocol, or _Refused."""
        route = self._spec.routes.get("$connect")
        if route is None:
            return None
        fields = request.event_fields()
        if route.authorizer is not None:
            peer.authorizer = self._authorize(route.authorizer, peer, request, fields)
        event = {
            **fields,
            "isBase64Encoded": False,
            "requestContext": self._context(peer, "$connect", "CONNECT"),
        }
        try:
            result = self._call(route.function, event, "ws $connect")
        except FunctionError as error:
            raise _Refused(500, f"$connect failed: {error}") from None
        return _connect_outcome(result)

    def _authorize(
        self, authorizer: WebSocketAuthorizer, peer: _Peer, request: _Request, fields: dict[str, Any]
    ) -> dict[str, Any]:
        for source in authorizer.identity_sources:
            if not request.has_identity(source):
                raise _Refused(401, f"identity source {source} is missing")
        method_arn = (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self._spec.api_id}/{self._spec.stage}/$connect"
        )
        event = {
            "type": "REQUEST",
            "methodArn": method_arn,
            **fields,
            "stageVariables": {},
            "requestContext": self._context(peer, "$connect", "CONNECT"),
        }
        try:
            result = self._call(authorizer.function, event, "ws $connect authorizer")
        except FunctionError as error:
            if error.error_message == "Unauthorized":
                raise _Refused(401, "authorizer raised Unauthorized") from None
            raise _Refused(500, f"authorizer failed: {error}") from None
        return _authorizer_context(result, method_arn)

    # --- events and functions --------------------------------------------------------------

    def _context(self, peer: _Peer, route_key: str, event_type: str, **extra: Any) -> dict[str, Any]:
        now = time.time()
        request_id = _new_id()
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "messageDirection": "IN",
            "stage": self._spec.stage,
            "connectedAt": int(peer.connected_at * 1000),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
            "requestId": request_id,
            "domainName": self._domain,
            "connectionId": peer.connection_id,
            "apiId": self._spec.api_id,
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

    # --- messages ----------------------------------------------------------------------------

    def _read(self, conn: _Connection) -> None:
        """Read frames until the connection ends; messages go to the worker in arrival order."""
        while True:
            timeout = self._next_wait(conn)
            if timeout is None:
                ended = conn.ending or _Ended(CLOSE_ABNORMAL, "Close handshake timed out")
                break
            try:
                message = conn.stream.receive(timeout)
            except TimeoutError:
                continue
            except ConnectionClosed as closed:
                ended = _peer_ending(closed)
                break
            except ProtocolError as error:
                ended = _Ended(error.close_code, str(error))
                conn.stream.drain(_CLOSE_GRACE_SECONDS)
                break
            except (OSError, WebSocketError) as error:
                ended = _Ended(CLOSE_ABNORMAL, str(error))
                break
            if message.opcode != OP_PONG:
                conn.touch()
                conn.inbox.put(message)
        self._finish(conn, conn.ending or ended)

    def _next_wait(self, conn: _Connection) -> float | None:
        """How long the reader may wait for a frame; None once a server-side close has timed out."""
        if conn.ending is None and time.time() - conn.last_active >= self._idle_timeout:
            self._close(conn, CLOSE_GOING_AWAY, "Going away", "Idle timeout")
        if conn.ending is not None:
            left = conn.close_deadline - time.monotonic()
            return min(left, _POLL_SECONDS) if left > 0 else None
        return max(min(conn.last_active + self._idle_timeout - time.time(), _POLL_SECONDS), 0.0)

    def _finish(self, conn: _Connection, ended: _Ended) -> None:
        with self._lock:
            if self._connections.get(conn.id) is conn:
                del self._connections[conn.id]
        conn.stream.close_socket()
        self._log(f"ws disconnect {conn.id} ({ended.code} {ended.reason})")
        conn.inbox.put(ended)

    def _close(self, conn: _Connection, code: int, reason: str, disconnect_reason: str) -> None:
        """Close from the server side: the id is gone at once, ``$disconnect`` follows from the worker."""
        with self._lock:
            if self._connections.get(conn.id) is conn:
                del self._connections[conn.id]
        conn.close(code, reason, disconnect_reason)

    def _work(self, conn: _Connection) -> None:
        """Run one connection's messages in arrival order, then its ``$disconnect``."""
        while True:
            item = conn.inbox.get()
            try:
                if isinstance(item, _Ended):
                    self._disconnect(conn, item)
                    return
                self._dispatch(conn, item)
            except Exception as error:  # never lose the worker: later messages and $disconnect still run
                self._log(f"ws internal error on {conn.id}: {error!r}")

    def _select_route(self, body: str) -> str | None:
        routes = self._spec.routes
        try:
            value = _lookup(json.loads(body), self._selection_path)
        except ValueError:
            value = None
        if value is not None and value in routes and value not in _LIFECYCLE_ROUTES:
            return value
        return "$default" if "$default" in routes else None

    def _dispatch(self, conn: _Connection, message: Message) -> None:
        if message.is_text:
            body, encoded = message.text, False
            route_key = self._select_route(body)
        else:
            body, encoded = base64.b64encode(message.data).decode("ascii"), True
            route_key = "$default" if "$default" in self._spec.routes else None
        context = self._context(conn.peer, route_key or "$default", "MESSAGE", messageId=_new_id())
        if route_key is None:
            self._log(f"ws message {conn.id} matched no route (Forbidden)")
            self._reply(
                conn, {"message": "Forbidden", "connectionId": conn.id, "requestId": context["requestId"]}
            )
            return
        route = self._spec.routes[route_key]
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
            self._send(conn, result["body"])

    def _reply(self, conn: _Connection, payload: dict[str, Any]) -> None:
        self._send(conn, json.dumps(payload))

    @staticmethod
    def _send(conn: _Connection, text: str) -> None:
        # A connection closing meanwhile is not an error here: its reader reports the end.
        with suppress(OSError, WebSocketError):
            conn.send_text(text)

    def _disconnect(self, conn: _Connection, ended: _Ended) -> None:
        route = self._spec.routes.get("$disconnect")
        if route is None:
            return
        context = self._context(
            conn.peer,
            "$disconnect",
            "DISCONNECT",
            disconnectStatusCode=ended.code,
            disconnectReason=ended.reason,
        )
        event = {
            "headers": {"Host": self._domain},
            "multiValueHeaders": {"Host": [self._domain]},
            "requestContext": context,
            "isBase64Encoded": False,
        }
        try:
            self._call(route.function, event, "ws $disconnect")
        except FunctionError as error:
            self._log(f"ws $disconnect {conn.id} failed: {error}")

    # --- @connections ------------------------------------------------------------------------

    def _management_request(self, sock: socket.socket, request: _Request, buffer: bytearray) -> bool:
        """Answer one plain HTTP request; whether the TCP connection stays open for another."""
        if "chunked" in (request.headers.get("Transfer-Encoding") or "").lower():
            sock.sendall(_http_response(411, b"chunked request bodies are not supported"))
            return False
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_MANAGEMENT_BODY:
            status, headers, payload = _aws_error(413, "PayloadTooLargeException", "Request body too large")
            sock.sendall(_http_response(status, payload, headers))
            return False
        if length and (request.headers.get("Expect") or "").lower() == "100-continue" and not buffer:
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits a second for this otherwise
        body = read_exactly(sock, buffer, length)
        status, headers, payload = self._manage(request.method, request.target, body)
        sock.sendall(_http_response(status, payload, headers, keep_alive=request.keep_alive))
        return request.keep_alive

    def _manage(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        connection_id = _management_target(urlsplit(target).path)
        if connection_id is None or method not in ("POST", "GET", "DELETE"):
            return _aws_error(403, "ForbiddenException", "Missing Authentication Token")
        with self._lock:
            conn = self._connections.get(connection_id)
        if conn is None:
            self._log(f"ws @connections {method} {connection_id}: gone")
            return _aws_error(410, "GoneException", f"Connection {connection_id} is gone")
        if method == "GET":
            document = {
                "connectedAt": _iso(conn.peer.connected_at),
                "identity": {"sourceIp": conn.peer.source_ip, "userAgent": conn.peer.user_agent},
                "lastActiveAt": _iso(conn.last_active),
            }
            return 200, {"Content-Type": "application/json"}, json.dumps(document).encode("utf-8")
        if method == "DELETE":
            self._log(f"ws @connections DELETE {connection_id}")
            self._close(conn, CLOSE_NORMAL, "", "Connection Closed Normally")
            return 204, {}, b""
        if len(body) > MAX_MESSAGE_BYTES:
            return _aws_error(413, "PayloadTooLargeException", "Message too long")
        try:
            conn.send_data(body)
        except (OSError, WebSocketError):
            conn.stream.abort()
            return _aws_error(410, "GoneException", f"Connection {connection_id} is gone")
        return 200, {}, b""


def _peer_ending(closed: ConnectionClosed) -> _Ended:
    if closed.code == CLOSE_ABNORMAL:
        return _Ended(CLOSE_ABNORMAL, "Connection lost without a close frame")
    if closed.code == CLOSE_NO_STATUS:
        return _Ended(CLOSE_NO_STATUS, "Client-side close frame status not set")
    reason = f"Client-side close frame status code {closed.code}"
    return _Ended(closed.code, f"{reason}: {closed.reason}" if closed.reason else reason)
