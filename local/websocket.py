"""The WebSocket protocol (RFC 6455) for the local stack: frames, messages, handshakes, a client.

``FrameDecoder`` and ``MessageAssembler`` turn bytes into frames and frames into messages,
``WebSocketStream`` runs one open connection over a socket (either side), the handshake
helpers check an upgrade request and build the 101 answer, and ``WebSocketClient`` is a
small blocking client for tests, benchmarks and scripts. ``local.wsapi`` builds the
API Gateway emulation on top of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import io
import json
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_DATA_OPCODES = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY})
_CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

# API Gateway refuses WebSocket messages over 128 KiB.
MAX_MESSAGE_BYTES = 128 * 1024
MAX_CONTROL_PAYLOAD = 125
MAX_HEAD_BYTES = 16 * 1024


class WebSocketError(Exception):
    """Something went wrong with a WebSocket connection."""


class ProtocolError(WebSocketError):
    """The peer broke the protocol; ``close_code`` is the status to close the connection with."""

    def __init__(self, message: str, close_code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.close_code = close_code


class ConnectionClosed(WebSocketError):
    """The connection is closed: the close frame's code and reason, 1006 when there was none."""

    def __init__(self, code: int, reason: str = "", *, by_peer: bool) -> None:
        super().__init__(f"connection closed with {code}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.reason = reason
        self.by_peer = by_peer


class HandshakeError(WebSocketError):
    """An opening handshake request that must be refused with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class HandshakeRefused(WebSocketError):
    """The server answered the opening handshake with ``status`` instead of 101."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"WebSocket handshake refused: HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True


@dataclass(frozen=True)
class Message:
    """A complete data message (``OP_TEXT`` or ``OP_BINARY``), or a pong (``OP_PONG``)."""

    opcode: int
    data: bytes

    @property
    def is_text(self) -> bool:
        return self.opcode == OP_TEXT

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


def mask_payload(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte masking ``key`` (masking and unmasking are the same)."""
    if not payload:
        return b""
    # One big-integer XOR instead of a Python loop: 128 KiB takes microseconds, not milliseconds.
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def encode_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = False, mask_key: bytes | None = None
) -> bytes:
    """One frame on the wire; clients must send masked frames, servers unmasked ones."""
    if opcode in _CONTROL_OPCODES and (len(payload) > MAX_CONTROL_PAYLOAD or not fin):
        raise ValueError("control frames carry at most 125 bytes and cannot be fragmented")
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask else 0
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return header + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return header + key + mask_payload(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a close frame; none at all for 1005 (no status)."""
    if code == CLOSE_NO_STATUS:
        return b""
    # A control frame holds 125 bytes: 2 for the code, 123 for the reason, cut on a character boundary.
    encoded = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return struct.pack("!H", code) + encoded


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """The code and reason of a close frame, checked as RFC 6455 section 7.4 asks."""
    if not payload:
        return CLOSE_NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError("close frame with a one-byte payload")
    (code,) = struct.unpack_from("!H", payload)
    if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
        raise ProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("close reason is not UTF-8", CLOSE_INVALID_DATA) from None
    return code, reason


class FrameDecoder:
    """Frames out of bytes as they arrive; a partial frame waits in the buffer for the rest."""

    def __init__(self, *, expect_masked: bool, max_payload: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._expect_masked = expect_masked
        self._max_payload = max_payload

    def feed(self, data: bytes) -> None:
        self._buffer.extend(data)

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive; ProtocolError on a bad one."""
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        if first & 0x70:
            raise ProtocolError("reserved bits set but no extension was negotiated")
        fin = bool(first & 0x80)
        opcode = first & 0x0F
        if opcode not in _DATA_OPCODES and opcode not in _CONTROL_OPCODES:
            raise ProtocolError(f"unknown opcode {opcode:#x}")
        masked = bool(second & 0x80)
        if masked != self._expect_masked:
            raise ProtocolError(
                "client frames must be masked" if self._expect_masked else "server frames must not be masked"
            )
        length = second & 0x7F
        offset = 2
        if length == 126:
            if len(buffer) < 4:
                return None
            (length,) = struct.unpack_from("!H", buffer, 2)
            offset = 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            (length,) = struct.unpack_from("!Q", buffer, 2)
            offset = 10
            if length >> 63:
                raise ProtocolError("64-bit payload length with the most significant bit set")
        if opcode in _CONTROL_OPCODES:
            if not fin:
                raise ProtocolError("fragmented control frame")
            if length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError("control frame payload over 125 bytes")
        elif length > self._max_payload:
            raise ProtocolError(
                f"frame of {length} bytes is over the {self._max_payload}-byte limit", CLOSE_TOO_BIG
            )
        key = b""
        if masked:
            if len(buffer) < offset + 4:
                return None
            key = bytes(buffer[offset : offset + 4])
            offset += 4
        end = offset + length
        if len(buffer) < end:
            return None
        payload = bytes(buffer[offset:end])
        del buffer[:end]
        return Frame(opcode, mask_payload(payload, key) if masked else payload, fin)


class MessageAssembler:
    """Joins data frames (a first frame, then continuations) into messages, within a size limit."""

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._max = max_message_bytes
        self._opcode: int | None = None
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, frame: Frame) -> Message | None:
        """The finished message when ``frame`` ends one, else None; ProtocolError when out of order."""
        if frame.opcode == OP_CONTINUATION:
            if self._opcode is None:
                raise ProtocolError("continuation frame with no message to continue")
        elif self._opcode is not None:
            raise ProtocolError("new data frame before the fragmented message ended")
        else:
            self._opcode = frame.opcode
        self._size += len(frame.payload)
        if self._size > self._max:
            raise ProtocolError(f"message over the {self._max}-byte limit", CLOSE_TOO_BIG)
        self._parts.append(frame.payload)
        if not frame.fin:
            return None
        opcode, data = self._opcode, b"".join(self._parts)
        self._opcode, self._parts, self._size = None, [], 0
        if opcode == OP_TEXT:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError("text message is not UTF-8", CLOSE_INVALID_DATA) from None
        return Message(opcode, data)


class WebSocketStream:
    """One open WebSocket over a connected socket, on either side.

    One thread reads with ``receive``; any thread may send. Pings are answered as they are
    read and a close frame from the peer is answered before ``receive`` raises. Waiting uses
    a selector, never the socket timeout, so a reader's timeout cannot cut a concurrent send
    in half; the socket's own timeout only bounds sends.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        is_client: bool,
        initial: bytes = b"",
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._sock = sock
        self._mask = is_client
        self._decoder = FrameDecoder(expect_masked=not is_client, max_payload=max_message_bytes)
        self._decoder.feed(initial)
        self._assembler = MessageAssembler(max_message_bytes)
        # Held while writing a frame; a server also holds it to write its 101 before any frame.
        self.send_lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)
        self._socket_closed = False
        self.close_sent: int | None = None
        self.close_received: tuple[int, str] | None = None

    def send_text(self, text: str) -> None:
        self._send(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self._send(OP_BINARY, data)

    def send_ping(self, payload: bytes = b"") -> None:
        self._send(OP_PING, payload)

    def send_close(self, code: int = CLOSE_NORMAL, reason: str = "") -> bool:
        """Start (or answer) the closing handshake; False when a close frame was already sent."""
        frame = encode_frame(OP_CLOSE, close_payload(code, reason), mask=self._mask)
        with self.send_lock:
            if self.close_sent is not None:
                return False
            self.close_sent = code
            self._sock.sendall(frame)
        return True

    def _send(self, opcode: int, payload: bytes) -> None:
        frame = encode_frame(opcode, payload, mask=self._mask)
        with self.send_lock:
            if self.close_sent is not None:
                raise ConnectionClosed(self.close_sent, "close frame already sent", by_peer=False)
            self._sock.sendall(frame)

    def receive(self, timeout: float | None = None) -> Message:
        """The next data message or pong; TimeoutError when none arrives within ``timeout`` seconds.

        Raises ConnectionClosed once the peer's close frame arrives or the socket ends, and
        ProtocolError (after sending the matching close frame) when the peer breaks the protocol.
        """
        if self.close_received is not None:
            raise ConnectionClosed(*self.close_received, by_peer=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                frame = self._decoder.next_frame()
                if frame is None:
                    self._fill(deadline)
                    continue
                if frame.opcode == OP_PING:
                    if self.close_sent is None:
                        with suppress(OSError, ConnectionClosed):
                            self._send(OP_PONG, frame.payload)
                    continue
                if frame.opcode == OP_PONG:
                    return Message(OP_PONG, frame.payload)
                if frame.opcode == OP_CLOSE:
                    code, reason = parse_close_payload(frame.payload)
                    self.close_received = (code, reason)
                    by_peer = self.close_sent is None
                    if by_peer:
                        with suppress(OSError):
                            self.send_close(code, reason)
                    raise ConnectionClosed(code, reason, by_peer=by_peer)
                message = self._assembler.add(frame)
                if message is not None:
                    return message
        except ProtocolError as error:
            with suppress(OSError):
                self.send_close(error.close_code, str(error))
            raise

    def _fill(self, deadline: float | None) -> None:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("no WebSocket message arrived in time")
        try:
            if not self._selector.select(remaining):
                raise TimeoutError("no WebSocket message arrived in time")
            data = self._sock.recv(65536)
        except TimeoutError:
            raise
        except OSError as error:
            raise ConnectionClosed(CLOSE_ABNORMAL, str(error), by_peer=True) from error
        if not data:
            raise ConnectionClosed(CLOSE_ABNORMAL, "connection ended without a close frame", by_peer=True)
        self._decoder.feed(data)

    def drain(self, timeout: float) -> None:
        """After a close frame: signal end of output, then read and drop bytes until the peer ends."""
        deadline = time.monotonic() + timeout
        with suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
            while (remaining := deadline - time.monotonic()) > 0:
                if not self._selector.select(remaining) or not self._sock.recv(65536):
                    return

    def abort(self) -> None:
        """Cut the connection now (from any thread): a blocked ``receive`` sees the end at once."""
        with suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close_socket(self) -> None:
        if self._socket_closed:
            return
        self._socket_closed = True
        self.abort()
        self._selector.close()
        self._sock.close()


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key + _GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def _tokens(value: str | None) -> set[str]:
    return {token.strip().lower() for token in (value or "").split(",") if token.strip()}


def is_upgrade_request(headers: http.client.HTTPMessage) -> bool:
    return "websocket" in _tokens(headers.get("Upgrade"))


def check_upgrade_request(method: str, headers: http.client.HTTPMessage) -> str:
    """The ``Sec-WebSocket-Accept`` value for a valid opening handshake; HandshakeError otherwise."""
    if method != "GET":
        raise HandshakeError(400, f"WebSocket handshake with {method}, not GET")
    if not is_upgrade_request(headers) or "upgrade" not in _tokens(headers.get("Connection")):
        raise HandshakeError(400, "missing Upgrade: websocket or Connection: Upgrade")
    if (headers.get("Sec-WebSocket-Version") or "").strip() != "13":
        raise HandshakeError(426, "only WebSocket version 13 is supported", {"Sec-WebSocket-Version": "13"})
    key = (headers.get("Sec-WebSocket-Key") or "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise HandshakeError(400, "Sec-WebSocket-Key is not 16 base64-encoded bytes")
    return accept_key(key)


def handshake_response(accept: str, protocol: str | None = None) -> bytes:
    """The server's 101 answer to a valid opening handshake."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
    ]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_http_head(sock: socket.socket, buffer: bytearray, limit: int = MAX_HEAD_BYTES) -> bytes | None:
    """Read up to the blank line that ends an HTTP head; bytes after it stay in ``buffer``.

    None when the peer closes before sending anything; HandshakeError(431) past ``limit``.
    """
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[: end + 4])
            del buffer[: end + 4]
            return head
        if len(buffer) > limit:
            raise HandshakeError(431, "HTTP head too large")
        chunk = sock.recv(65536)
        if not chunk:
            if buffer:
                raise ConnectionError("connection ended in the middle of an HTTP head")
            return None
        buffer.extend(chunk)


def parse_http_head(head: bytes) -> tuple[list[str], http.client.HTTPMessage]:
    """The start line split in (at most) three parts, and the headers."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.decode("latin-1").split(" ", 2)
    if len(parts) < 2:
        raise HandshakeError(400, "malformed HTTP start line")
    try:
        headers = http.client.parse_headers(io.BytesIO(rest))
    except http.client.HTTPException as error:
        raise HandshakeError(400, f"malformed HTTP headers: {error}") from None
    return parts, headers


def read_exactly(sock: socket.socket, buffer: bytearray, size: int) -> bytes:
    """``size`` bytes, taken from ``buffer`` first and then from the socket."""
    while len(buffer) < size:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection ended before the whole body arrived")
        buffer.extend(chunk)
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


class WebSocketClient:
    """A small blocking WebSocket client (``ws://`` only) for tests, benchmarks and scripts."""

    def __init__(
        self, sock: socket.socket, stream: WebSocketStream, response_headers: dict[str, str]
    ) -> None:
        self._sock = sock
        self._stream = stream
        self.response_headers = response_headers
        self._pending: deque[Message] = deque()
        self._pongs: list[bytes] = []
        self._closed = False

    @classmethod
    def connect(
        cls, url: str, timeout: float = 5.0, headers: dict[str, str] | None = None
    ) -> WebSocketClient:
        """Open ``url`` (for example ``ws://127.0.0.1:3001/?token=abc``); HandshakeRefused unless 101."""
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ValueError(f"not a ws:// URL: {url}")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = {
            "Host": parts.netloc,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
            "User-Agent": "chatflow-local-websocket-client",
        } | (headers or {})
        lines = [f"GET {target} HTTP/1.1", *(f"{name}: {value}" for name, value in request.items())]
        sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            buffer = bytearray()
            head = read_http_head(sock, buffer)
            if head is None:
                raise WebSocketError("the server closed the connection during the handshake")
            start, response = parse_http_head(head)
            status = int(start[1])
            response_headers = dict(response.items())
            if status != 101:
                length = int(response.get("Content-Length") or 0)
                body = read_exactly(sock, buffer, length) if length else b""
                raise HandshakeRefused(status, start[2] if len(start) > 2 else "", response_headers, body)
            if response.get("Sec-WebSocket-Accept") != accept_key(key):
                raise WebSocketError("the server answered with a wrong Sec-WebSocket-Accept")
        except BaseException:
            sock.close()
            raise
        return cls(sock, WebSocketStream(sock, is_client=True, initial=bytes(buffer)), response_headers)

    @property
    def close_code(self) -> int | None:
        """The code of the server's close frame, once one arrived."""
        return self._stream.close_received[0] if self._stream.close_received else None

    def send_text(self, text: str) -> None:
        self._stream.send_text(text)

    def send_binary(self, data: bytes) -> None:
        self._stream.send_binary(data)

    def send_json(self, value: Any) -> None:
        self.send_text(json.dumps(value))

    def receive_message(self, timeout: float = 5.0) -> Message:
        """The next text or binary message; TimeoutError, or ConnectionClosed once the server closed."""
        if self._pending:
            return self._pending.popleft()
        deadline = time.monotonic() + timeout
        while True:
            message = self._stream.receive(max(deadline - time.monotonic(), 0.0))
            if message.opcode != OP_PONG:
                return message
            self._pongs.append(message.data)

    def receive(self, timeout: float = 5.0) -> str:
        """The next message as text (a binary one stays queued for ``receive_message``)."""
        message = self.receive_message(timeout)
        if not message.is_text:
            self._pending.appendleft(message)
            raise WebSocketError("a binary message arrived; read it with receive_message()")
        return message.text

    def receive_json(self, timeout: float = 5.0) -> Any:
        return json.loads(self.receive(timeout))

    def ping(self, payload: bytes = b"", timeout: float = 5.0) -> float:
        """Send a ping and wait for its pong; the round trip in seconds."""
        token = payload or os.urandom(8)
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        self._stream.send_ping(token)
        while token not in self._pongs:
            message = self._stream.receive(max(deadline - time.monotonic(), 0.0))
            if message.opcode == OP_PONG:
                self._pongs.append(message.data)
            else:
                self._pending.append(message)
        self._pongs.remove(token)
        return time.perf_counter() - started

    def close(self, code: int = CLOSE_NORMAL, reason: str = "", timeout: float = 2.0) -> None:
        """Close handshake (waits up to ``timeout`` for the server's close frame), then the socket."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._stream.close_received is None and self._stream.send_close(code, reason):
                deadline = time.monotonic() + timeout
                while True:
                    self._stream.receive(max(deadline - time.monotonic(), 0.0))
        except (OSError, WebSocketError):
            pass  # closed (ConnectionClosed), timed out or broken: the socket goes either way
        finally:
            self._stream.close_socket()

    def __enter__(self) -> WebSocketClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
