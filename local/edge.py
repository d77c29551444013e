"""The network edge of the local stack: ASGI apps on uvicorn (starlette's requests,
responses, websockets and static files), one port per API.

- ``HttpEdge``: the HTTP API (``local.apigw``) and the web client's files at ``/``
  (``index.html`` told where this stack's APIs are).
- ``WebSocketEdge``: the WebSocket API (``local.wsgateway``) and, for plain HTTP requests
  on the same port, its ``@connections`` management API.

HTTP/1.1 and RFC 6455 are uvicorn's and the ``websockets`` library's; API Gateway's
behaviour is in the transport-free modules. This layer only adapts starlette requests
and websockets to them. Function invocations block (worker processes), so they run on a
thread pool, never on the event loop; per connection, messages run one at a time in
arrival order and ``$disconnect`` after the last one. Frames for a connection (replies,
``PostToConnection`` from any thread) go through its ``_Link``, a queue drained by one
writer task on the server's loop, so they leave promptly and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from local.apigw import MAX_BODY_BYTES, Cors, HttpApi, HttpResult, gateway_error
from local.asgi_server import AsgiServer
from local.specs import Invoker, WebSocketApiSpec
from local.template import HttpRoute
from local.wsgateway import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_NO_STATUS,
    IDLE_TIMEOUT_SECONDS,
    MAX_MANAGEMENT_BODY_BYTES,
    MAX_MESSAGE_BYTES,
    Admission,
    Connection,
    Ending,
    Handshake,
    Refusal,
    WebSocketApi,
)

Log = Callable[[str], object]
T = TypeVar("T")

# Threads that run functions for one API: every connection (or request) waiting on a
# function holds one; more than this wait their turn, in order per connection.
MAX_INVOKING_THREADS = 64
_STOP_SECONDS = 10.0
_HOP_BY_HOP = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})
_HOSTNAME = re.compile(r"[A-Za-z0-9.\-:]+")


class _App:
    """The ASGI app of one port: every HTTP request to ``http``, every WebSocket to ``websocket``.

    API Gateway routes paths itself (``local.apigw``, ``local.wsgateway``), so nothing is
    routed here: starlette's router would turn away paths its patterns do not match (a
    percent-encoded newline) with a plain-text 404. A fault of the stack in ``http`` is
    answered as API Gateway answers one, ``500 {"message": "Internal Server Error"}``.
    """

    def __init__(
        self,
        log: Log,
        http: Callable[[Request], Awaitable[Response]],
        websocket: Callable[[WebSocket], Awaitable[None]] | None = None,
    ) -> None:
        self._log = log
        self._http = http
        self._websocket = websocket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                response = await self._http(Request(scope, receive))
            except Exception as error:
                self._log(f"{scope['method']} {scope['path']}: internal error of the local stack: {error!r}")
                response = _response(gateway_error(500, "Internal Server Error"))
            await response(scope, receive, send)
        elif scope["type"] == "websocket" and self._websocket is not None:
            await self._websocket(WebSocket(scope, receive, send))
        elif scope["type"] == "websocket":  # no WebSocket API on this port: a GET no route has
            denial = _response(gateway_error(404, "Not Found"))
            await WebSocket(scope, receive, send).send_denial_response(denial)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is over ``limit`` bytes (not read further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) and raw else str(scope["path"])


def _headers(request: Request) -> dict[str, str]:
    """Request headers as API Gateway passes them: lower-case names, repeated ones joined by commas."""
    joined: dict[str, str] = {}
    for name, value in request.headers.raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        joined[key] = f"{joined[key]},{text}" if key in joined else text
    return joined


def _close_of(disconnect: Mapping[str, Any]) -> tuple[int, str]:
    """The close code and reason of an ASGI ``websocket.disconnect``.

    uvicorn reports a connection lost without a close frame as 1005 with no ``reason``
    key (a close frame without a status has ``reason: ""``); API Gateway says 1006 then.
    """
    code = int(disconnect.get("code") or CLOSE_NO_STATUS)
    if code == CLOSE_NO_STATUS and "reason" not in disconnect:
        return CLOSE_ABNORMAL, ""
    return code, str(disconnect.get("reason") or "")


def _response(result: HttpResult) -> Response:
    headers = {k: v for k, v in result.headers.items() if k.lower() not in _HOP_BY_HOP}
    response = Response(result.raw, result.status, headers=headers)
    for cookie in result.cookies:
        response.raw_headers.append((b"set-cookie", cookie.encode("latin-1", errors="replace")))
    return response


# --- the web client ----------------------------------------------------------------------------


def _set_meta(page: str, name: str, value: str) -> str:
    pattern = re.compile(rf'(<meta\s+name="{re.escape(name)}"\s+content=")[^"]*(")')
    escaped = html.escape(value, quote=True)
    return pattern.sub(lambda found: found.group(1) + escaped + found.group(2), page)


def render_index(page: str, api_url: str, ws_url: str) -> str:
    """``index.html`` with ``<meta name="chatflow-api-url|chatflow-ws-url">`` set to these URLs."""
    return _set_meta(_set_meta(page, "chatflow-api-url", api_url), "chatflow-ws-url", ws_url)


def browser_host(host_header: str | None) -> tuple[str, int | None] | None:
    """The host name (bracketed when IPv6) and port the browser used (``Host``); None when unusable."""
    try:
        parts = urlsplit(f"//{host_header}") if host_header else None
        port = parts.port if parts else None
    except ValueError:
        return None
    hostname = parts.hostname if parts else None
    if not hostname or not _HOSTNAME.fullmatch(hostname):
        return None
    return (f"[{hostname}]" if ":" in hostname else hostname), port


@dataclass(frozen=True)
class WebClient:
    """The web client's static files; ``index.html`` names this stack's HTTP and WebSocket URLs."""

    directory: Path
    host: str
    http_port: int
    ws_port: int | None = None
    ws_stage: str = ""

    def urls(self, host_header: str | None) -> tuple[str, str]:
        """(HTTP API URL, WebSocket URL) for a page asked for with this ``Host``.

        The HTTP API is where the browser found the page (a forwarded port included); the
        WebSocket API is the same host name on the stack's WebSocket port.
        """
        seen = browser_host(host_header)
        if seen is None:
            host, api_url = self.host, f"http://{self.host}:{self.http_port}"
        else:
            host, port = seen
            api_url = f"http://{host}" + (f":{port}" if port is not None else "")
        if self.ws_port is None:
            return api_url, ""
        stage = f"/{self.ws_stage}" if self.ws_stage and self.ws_stage != "$default" else ""
        return api_url, f"ws://{host}:{self.ws_port}{stage}"

    @functools.cached_property
    def _files(self) -> StaticFiles:
        return StaticFiles(directory=self.directory)

    async def response(self, request: Request) -> Response | None:
        """The file for a GET or HEAD, or None when there is none (the API answers then)."""
        if request.url.path in ("/", "/index.html"):
            index = self.directory / "index.html"
            if index.is_file():
                page = await asyncio.to_thread(index.read_text, encoding="utf-8")
                api_url, ws_url = self.urls(request.headers.get("host"))
                return Response(
                    render_index(page, api_url, ws_url),
                    headers={"content-type": "text/html; charset=utf-8", "cache-control": "no-cache"},
                )
        try:
            return await self._files.get_response(self._files.get_path(request.scope), request.scope)
        except HTTPException:
            return None


# --- the HTTP API ------------------------------------------------------------------------------


class HttpEdge:
    """The HTTP API on ``host:port`` (0: a free one, known at once), and the web client at ``/``."""

    def __init__(
        self,
        routes: list[HttpRoute],
        invoke: Invoker,
        *,
        api_id: str = "httpapi",
        host: str = "127.0.0.1",
        port: int = 0,
        cors: dict[str, Any] | None = None,
        log: Log = print,
    ) -> None:
        self.server = AsgiServer(_App(log, self._handle), host=host, port=port, name="http-api")
        self.host = host
        self.api = HttpApi(routes, invoke, api_id=api_id, domain=f"{host}:{self.server.port}")
        self.cors = Cors(cors) if cors else None
        self.web: WebClient | None = None
        self._log = log
        self._pool = ThreadPoolExecutor(MAX_INVOKING_THREADS, thread_name_prefix="http-api")

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def serve_web_client(self, directory: Path, *, ws_port: int | None = None, ws_stage: str = "") -> None:
        """Serve ``directory`` at ``/``, its ``index.html`` pointing at this API and that WebSocket API."""
        self.web = WebClient(directory.resolve(), self.host, self.port, ws_port, ws_stage)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _handle(self, request: Request) -> Response:
        method = request.method.upper()
        raw_path = _raw_path(request.scope)
        headers = _headers(request)
        origin = headers.get("origin")
        if self.cors is not None and Cors.is_preflight(method, headers):
            return _response(self.cors.preflight(origin))
        body = await _read_body(request, MAX_BODY_BYTES)
        if body is None:
            return _response(gateway_error(413, "Request Entity Too Large"))
        if self.web is not None and method in ("GET", "HEAD") and self.api.match(method, raw_path) is None:
            static = await self.web.response(request)
            if static is not None:
                return static
        call = functools.partial(
            self.api.request,
            method,
            raw_path,
            query=request.scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body or None,
            source_ip=request.client.host if request.client else "127.0.0.1",
        )
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except Exception as error:  # a fault of the local stack: said loudly, answered as API Gateway would
            self._log(f"http {method} {raw_path}: internal error of the local stack: {error!r}")
            result = gateway_error(500, "Internal Server Error")
        if self.cors is not None:
            result = self.cors.apply(result, origin)
        return _response(result)


# --- the WebSocket API -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


class _Stop:
    """The socket is gone: the writer stops."""


class _Link:
    """A connection's outgoing frames: a queue on the server's loop, fed from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.queue: asyncio.Queue[str | bytes | _Close | _Stop] = asyncio.Queue()
        self._closed = False
        self._lock = threading.Lock()

    def _put(self, item: str | bytes | _Close | _Stop) -> None:
        with contextlib.suppress(RuntimeError):  # the server's loop is closed: nobody is left to send to
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def send(self, data: str | bytes) -> None:
        with self._lock:
            if not self._closed:
                self._put(data)

    def close(self, code: int, reason: str) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._put(_Close(code, reason))

    def shut(self) -> None:
        """The socket is closed: later frames are dropped and the writer stops."""
        with self._lock:
            self._closed = True
            self._put(_Stop())


class WebSocketEdge:
    """The WebSocket API on ``host:port``, with its ``@connections`` API on the same port."""

    def __init__(
        self,
        spec: WebSocketApiSpec,
        invoke: Invoker,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log: Log = print,
        idle_timeout_seconds: float = IDLE_TIMEOUT_SECONDS,
    ) -> None:
        app = _App(log, self._manage, self._websocket)
        # API Gateway closes a connection whose message is over 128 KiB (1009).
        self.server = AsgiServer(
            app, host=host, port=port, name="websocket-api", ws_max_size=MAX_MESSAGE_BYTES
        )
        self.host = host
        self.stage = spec.stage
        self.api = WebSocketApi(
            spec,
            invoke,
            domain=f"{host}:{self.server.port}",
            log=log,
            idle_timeout_seconds=idle_timeout_seconds,
        )
        self._log = log
        self._pool = ThreadPoolExecutor(MAX_INVOKING_THREADS, thread_name_prefix="websocket-api")
        self._sessions: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def management_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{self.stage}"

    def connection_ids(self) -> list[str]:
        return self.api.connection_ids()

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        """Close every connection (1001) and wait for their ``$disconnect``, then stop serving."""
        loop = self.server.loop
        if loop is not None and loop.is_running():
            closing = asyncio.run_coroutine_threadsafe(self._close_all(), loop)
            try:
                closing.result(timeout=_STOP_SECONDS + 2)
            except Exception as error:  # stop anyway
                self._log(f"ws stop: connections did not all end: {error!r}")
        self.server.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _close_all(self) -> None:
        self._stopping = True
        for conn in self.api.connections():
            self.api.close(conn, CLOSE_GOING_AWAY, "Going away", "Going away")
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=_STOP_SECONDS)

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(call, *args))

    # --- one connection ----------------------------------------------------------------------

    async def _websocket(self, websocket: WebSocket) -> None:
        session = asyncio.current_task()
        if session is not None:
            self._sessions.add(session)
        try:
            await self._session(websocket)
        except Exception as error:  # a bad client or a bug here must not take the server down
            self._log(f"ws internal error: {error!r}")
        finally:
            if session is not None:
                self._sessions.discard(session)

    async def _session(self, websocket: WebSocket) -> None:
        scope = websocket.scope
        handshake = Handshake(
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
            query=tuple(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
            source_ip=websocket.client.host if websocket.client else "127.0.0.1",
        )
        try:
            outcome: Admission | Refusal = await self._run(self.api.connect, handshake)
        except Exception as error:
            self._log(f"ws $connect: internal error of the local stack: {error!r}")
            outcome = Refusal(500, "internal error", b'{"message": "Internal server error"}')
        if isinstance(outcome, Refusal):
            response = Response(outcome.body, outcome.status, headers=outcome.headers)
            with contextlib.suppress(OSError):  # the client left meanwhile
                await websocket.send_denial_response(response)
            return
        link = _Link(asyncio.get_running_loop())
        conn = self.api.open(outcome, link)
        try:
            await websocket.accept(subprotocol=outcome.subprotocol)
        except OSError:  # the client left while $connect ran
            link.shut()
            await self._run(self.api.disconnect, conn, self.api.closed(conn, CLOSE_ABNORMAL))
            return
        if self._stopping:
            self.api.close(conn, CLOSE_GOING_AWAY, "Going away", "Going away")
        inbox: asyncio.Queue[str | bytes | Ending] = asyncio.Queue()
        writer = asyncio.create_task(self._write(websocket, link))
        worker = asyncio.create_task(self._work(conn, inbox))
        ending = await self._read(websocket, conn, inbox)
        link.shut()
        inbox.put_nowait(ending)
        await worker
        await writer

    async def _read(
        self, websocket: WebSocket, conn: Connection, inbox: asyncio.Queue[str | bytes | Ending]
    ) -> Ending:
        """Messages into ``inbox`` in arrival order, until the socket closes; how it ended."""
        while True:
            timeout = None if conn.ending is not None else max(0.0, self.api.idle_timeout - conn.idle_for())
            try:
                message = await asyncio.wait_for(websocket.receive(), timeout)
            except TimeoutError:
                self.api.expire_if_idle(conn)
                continue
            if message["type"] == "websocket.disconnect":
                return self.api.closed(conn, *_close_of(message))
            data = message.get("text")
            if data is None:
                data = message.get("bytes")
            if data is not None:
                conn.touch()
                inbox.put_nowait(data)

    async def _work(self, conn: Connection, inbox: asyncio.Queue[str | bytes | Ending]) -> None:
        """Run the messages one at a time, then ``$disconnect``."""
        while True:
            item = await inbox.get()
            try:
                if isinstance(item, Ending):
                    await self._run(self.api.disconnect, conn, item)
                    return
                await self._run(self.api.message, conn, item)
            except Exception as error:  # never lose the worker: later messages and $disconnect still run
                self._log(f"ws internal error on {conn.id}: {error!r}")

    @staticmethod
    async def _write(websocket: WebSocket, link: _Link) -> None:
        while True:
            item = await link.queue.get()
            if isinstance(item, _Stop):
                return
            try:
                if isinstance(item, _Close):
                    await websocket.close(item.code, item.reason)
                    return
                if isinstance(item, str):
                    await websocket.send_text(item)
                else:
                    await websocket.send_bytes(item)
            except Exception:  # the socket is gone (the reader reports how it ended)
                return

    # --- @connections --------------------------------------------------------------------------

    async def _manage(self, request: Request) -> Response:
        body = await _read_body(request, MAX_MANAGEMENT_BODY_BYTES)
        if body is None:
            answer = WebSocketApi.body_too_large()
        else:
            # On the loop: the registry and the links never block.
            answer = self.api.manage(request.method.upper(), _raw_path(request.scope), body)
        return Response(answer.body, answer.status, headers=answer.headers)
