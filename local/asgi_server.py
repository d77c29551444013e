"""One ASGI application on one local port, served by uvicorn on a thread of its own.

Every network endpoint of the local stack (the HTTP API, the WebSocket API with its
``@connections`` API, the fake SMS provider) is an ASGI application (starlette) served
this way, so HTTP/1.1 and RFC 6455 are uvicorn's and the ``websockets`` library's, not
ours. The socket is bound here, before the server starts, so a port in use is an
``OSError`` at once and port 0 gives a free port whose number is known straight away.

Requests are parsed by httptools (llhttp, in C) and, when it refuses one, by h11: see
``_HttpToolsThenH11``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_START_TIMEOUT_SECONDS = 10.0
_STOP_TIMEOUT_SECONDS = 10.0


class _CompleteDenialResponses(logging.Filter):
    """Drops uvicorn 0.54's false alarm after a refused WebSocket handshake.

    An app that refuses a handshake with an HTTP response (the WebSocket Denial Response
    extension: the WebSocket API's 401 / 403 at ``$connect``) gets its response sent whole,
    then websockets-sansio logs "ASGI callable returned without completing handshake."
    because it only marks a 101 as complete. Nothing else is wrong, so the line is dropped.
    """

    MESSAGE = "ASGI callable returned without completing handshake."

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.MESSAGE


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _CompleteDenialResponses) for f in logger.filters):
        logger.addFilter(_CompleteDenialResponses())


class _HttpToolsThenH11(HttpToolsProtocol):
    """uvicorn's httptools protocol, which hands a request it refuses over to uvicorn's h11.

    httptools parses in C (llhttp): about 0.3 ms of the edge's CPU less per request than
    h11, in pure Python (docs/benchmarks.md). But llhttp knows a fixed list of methods and
    request targets, and uvicorn answers anything else with a plain-text 400, where API
    Gateway answers ``X-ANYTHING /`` or an authority-form target with its JSON 404. h11
    takes any method token and target and lets the app answer. So a request whose line or
    headers httptools refuses goes, from its first byte, to a new ``H11Protocol``, which
    keeps the connection from then on.

    A request can be handed over when its bytes are all known: those received since the
    previous request ended, if it ended with a read. A request that began in the middle of
    a read (pipelined), one whose headers were accepted (a bad body is h11's 400 too), or
    one sent before the previous answer keeps uvicorn's 400. ``data_received`` is
    uvicorn's, with the hand-over in its error branch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request = bytearray()  # the current request's bytes, while it can be handed over
        self._between = True  # the previous request ended and no byte of the next has come
        self._replayable = True
        self._ended_in_read = False  # a request ended in the read being parsed

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._between:
            self._request = bytearray()
            self._replayable = True
        if self._replayable:
            self._request += data
        self._ended_in_read = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._replayable and (self.cycle is None or self.cycle.response_complete):
                self._hand_over(bytes(self._request))
                return
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _hand_over(self, request: bytes) -> None:
        self.connections.discard(self)
        h11 = H11Protocol(self.config, self.server_state, self.app_state, self.loop)
        self.transport.set_protocol(h11)
        h11.connection_made(self.transport)
        h11.data_received(request)

    def on_message_begin(self) -> None:
        if self._ended_in_read:  # it began in the middle of this read: its first bytes are gone
            self._replayable = False
        self._between = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()  # a target it cannot parse raises: handed over
        self._replayable = False
        self._request = bytearray()

    def on_message_complete(self) -> None:
        self._between = True
        self._ended_in_read = True
        super().on_message_complete()


# uvicorn's server checks whether to stop once per tick (0.1 s), from its main loop.
_TICK_SECONDS = 0.1


class _PromptServer(uvicorn.Server):
    """uvicorn's server, whose stop is noticed at once rather than at its next tick.

    uvicorn's ``main_loop`` sleeps 0.1 s between ticks, and ``should_exit``, set from
    another thread, is read at the next one: each stop waited for up to a tick, and a test
    run stops a few hundred servers. Here each tick's wait also ends when ``wake`` is
    called (from any thread); what a tick does is uvicorn's own ``on_tick``.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None

    async def main_loop(self) -> None:
        woken = asyncio.Event()
        with self._lock:
            self._loop, self._woken = asyncio.get_running_loop(), woken
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), _TICK_SECONDS)
            woken.clear()
            should_exit = await self.on_tick(counter)

    def wake(self) -> None:
        """End the current tick's wait now (thread-safe; nothing happens before the loop runs)."""
        with self._lock:
            loop, woken = self._loop, self._woken
        if loop is not None and woken is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(woken.set)


class AsgiServer:
    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "asgi",
        ws_max_size: int = 1024 * 1024,
    ) -> None:
        self.name = name
        self._host = host
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and without
        # it a response written in two parts waits for the delayed ACK (40 ms) before its body.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError:
            self._socket.close()
            raise
        self._socket.listen(1024)
        self._config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=_HttpToolsThenH11,
            ws="websockets-sansio",
            # A bigger WebSocket message closes the connection with 1009.
            ws_max_size=ws_max_size,
            ws_ping_interval=None,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
        )
        _install_log_filter()  # after uvicorn.Config, which configures uvicorn's loggers
        self._server = _PromptServer(self._config)
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        """Serve on a thread of its own; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not self._server.started:
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError(f"{self.name} server did not start: {self._failure!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} server did not start within {_START_TIMEOUT_SECONDS} s")
            time.sleep(0.01)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported by start()
            self._failure = exc
        finally:
            loop.close()

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.wake()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_TIMEOUT_SECONDS)
        self._socket.close()

    def __enter__(self) -> AsgiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
