"""A fake third-party SMS provider for the local stack (the contract's section 4).

``POST /messages`` accepts a message after a random delay, or injects the fault that
``chatflow.adapters.fake_sms.FailureModel`` decides (the layer's in-memory fake shares it):
with probability ``failure_rate``, 2/3 transient (503, 429 with ``Retry-After: 1``, or a
timeout that hangs and drops the connection), 1/3 permanent (400). Each accepted
message gets a signed delivery receipt POSTed to ChatFlow's receipts route.
``GET /messages?to=`` lists what was accepted; ``GET /health`` answers ok.

Magic destinations (the end of ``to``) override the random failure rate:

- ``...0400``: 400 ``invalid_destination`` (permanent)
- ``...0503``: 503 ``unavailable`` (transient)
- ``...0429``: 429 ``rate_limited`` with ``Retry-After: 1`` (transient)
- ``...0408``: hangs ``hang_seconds``, then closes the connection unanswered (timeout)
- ``...0410``: accepted, but its receipt says ``undelivered``
"""

from __future__ import annotations

import hmac
import http.client
import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chatflow.adapters.fake_sms import RATE_LIMITED_RETRY_AFTER, FailureModel, Fault, ReceiptStatus

MAX_TEXT_LENGTH = 1600
MAX_BODY_BYTES = 64 * 1024
# Pauses before the 2nd, 3rd and 4th attempt to deliver a receipt.
RECEIPT_RETRY_DELAYS = (0.1, 0.5, 1.0)
RECEIPT_TIMEOUT_SECONDS = 5.0
# How quickly stop() is noticed by the serving thread.
SHUTDOWN_POLL_SECONDS = 0.05

_ROUTES: Mapping[str, tuple[str, ...]] = {"/messages": ("GET", "POST"), "/health": ("GET",)}


def _print_line(line: str) -> None:
    print(line, flush=True)


def _iso_now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _compact(to: str) -> str:
    """``to`` without spaces; a leading space is a ``+`` that a query string decoded."""
    if to.startswith(" "):
        to = "+" + to.lstrip(" ")
    return "".join(to.split())


def _env_value(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _is_whole(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _env_number(environ: Mapping[str, str], name: str, default: float, upper: float = math.inf) -> float:
    raw = _env_value(environ, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= upper):
        bounds = f"between 0 and {upper:g}" if math.isfinite(upper) else "a finite number >= 0"
        raise ValueError(f"{name} must be {bounds}, got {raw!r}")
    return value


def _env_whole(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _env_value(environ, name)
    if raw is None:
        return default
    if not _is_whole(raw):
        raise ValueError(f"{name} must be a whole number of milliseconds >= 0, got {raw!r}")
    return int(raw)


def _env_delay(environ: Mapping[str, str], name: str, default: tuple[int, int]) -> tuple[int, int]:
    raw = _env_value(environ, name)
    if raw is None:
        return default
    low, separator, high = (part.strip() for part in raw.partition("-"))
    if not separator:
        high = low
    if not (_is_whole(low) and _is_whole(high)):
        raise ValueError(f"{name} must be 'MIN-MAX' or a single number of milliseconds, got {raw!r}")
    if int(low) > int(high):
        raise ValueError(f"{name} must have MIN <= MAX, got {raw!r}")
    return int(low), int(high)


def _check_receipts_url(url: str) -> None:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"receipts_url must be an http(s) URL, got {url!r}")


@dataclass(frozen=True)
class FakeProviderSettings:
    failure_rate: float = 0.1
    min_delay_ms: int = 50
    max_delay_ms: int = 200
    hang_seconds: float = 30.0
    receipt_delay_ms: int = 300
    receipts_url: str | None = None
    receipts_secret: str | None = None
    api_key: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be between 0 and 1, got {self.failure_rate}")
        if not 0 <= self.min_delay_ms <= self.max_delay_ms:
            raise ValueError(
                f"delays must satisfy 0 <= min_delay_ms <= max_delay_ms, "
                f"got {self.min_delay_ms} and {self.max_delay_ms}"
            )
        if not (math.isfinite(self.hang_seconds) and self.hang_seconds >= 0):
            raise ValueError(f"hang_seconds must be a finite number >= 0, got {self.hang_seconds}")
        if self.receipt_delay_ms < 0:
            raise ValueError(f"receipt_delay_ms must be >= 0, got {self.receipt_delay_ms}")
        if self.receipts_url is not None:
            _check_receipts_url(self.receipts_url)
            if not self.receipts_secret:
                raise ValueError("receipts_secret is required when receipts_url is set")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> FakeProviderSettings:
        """Settings from ``CHATFLOW_FAKE_*`` variables; unset or empty ones keep their default."""
        rate = _env_number(environ, "CHATFLOW_FAKE_FAILURE_RATE", 0.1, upper=1.0)
        low, high = _env_delay(environ, "CHATFLOW_FAKE_DELAY_MS", (50, 200))
        return cls(
            failure_rate=rate,
            min_delay_ms=low,
            max_delay_ms=high,
            hang_seconds=_env_number(environ, "CHATFLOW_FAKE_HANG_SECONDS", 30.0),
            receipt_delay_ms=_env_whole(environ, "CHATFLOW_FAKE_RECEIPT_DELAY_MS", 300),
        )


@dataclass
class _Message:
    id: str
    to: str
    to_type: str
    text: str
    sender: str | None
    reference: str
    idempotency_key: str
    receipt_status: ReceiptStatus
    status: str
    accepted_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "to": self.to,
            "toType": self.to_type,
            "text": self.text,
            "from": self.sender,
            "reference": self.reference,
            "idempotencyKey": self.idempotency_key,
            "status": self.status,
            "acceptedAt": self.accepted_at,
        }


@dataclass(frozen=True)
class _Reply:
    """What to answer; ``status`` None means hang up without answering."""

    status: int | None
    payload: Any = None
    headers: Mapping[str, str] | None = None
    to: str | None = None
    text: str | None = None


def _error(status: int, code: str, message: str, to: str | None = None) -> _Reply:
    return _Reply(status, {"error": {"code": code, "message": message}}, to=to)


def _invalid_field(payload: Any) -> str | None:
    """Why the message body is invalid, or None when it is valid."""
    if not isinstance(payload, dict):
        return "the body must be a JSON object"
    to = payload.get("to")
    if not isinstance(to, str) or not to.strip():
        return "'to' must be a non-empty string"
    if payload.get("toType") not in ("phone", "iccid"):
        return "'toType' must be 'phone' or 'iccid'"
    text = payload.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT_LENGTH:
        return f"'text' must be a string of 1 to {MAX_TEXT_LENGTH} characters"
    reference = payload.get("reference")
    if not isinstance(reference, str) or not reference:
        return "'reference' must be a non-empty string"
    sender = payload.get("from")
    if sender is not None and (not isinstance(sender, str) or not sender):
        return "'from' must be a non-empty string when present"
    return None


class FakeSmsProvider:
    """The fake provider's HTTP server, its outbox and its receipt sender."""

    def __init__(
        self,
        settings: FakeProviderSettings,
        host: str = "127.0.0.1",
        port: int = 0,
        log: Callable[[str], None] = _print_line,
    ) -> None:
        self._settings = settings
        self._host = host
        self._requested_port = port
        self._log = log
        # Fault injection in a fake, not security: a seedable generator is the point.
        self._rng = random.Random(settings.seed)  # noqa: S311
        # Its own stream, derived from the seed, so delays and faults are not correlated.
        self._failures = FailureModel(settings.failure_rate, seed=self._rng.getrandbits(64))
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._messages: list[_Message] = []
        self._by_key: dict[str, _Message] = {}
        self._replays: dict[str, int] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._receipts_url = settings.receipts_url
        self._receipts_secret = settings.receipts_secret
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeSmsProvider:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the fake provider is already started")
        server = ThreadingHTTPServer((self._host, self._requested_port), _handler_class(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="fake-sms-provider",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops serving, cuts hanging requests short and cancels receipts not yet sent."""
        self._stopping.set()
        with self._lock:
            timers = list(self._timers.values())
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake provider is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def configure_receipts(self, url: str, secret: str) -> None:
        """Where to POST receipts from now on, and the secret that signs them."""
        _check_receipts_url(url)
        if not secret:
            raise ValueError("the receipts secret must not be empty")
        with self._lock:
            self._receipts_url, self._receipts_secret = url, secret

    def outbox(self, to: str | None = None) -> list[dict[str, Any]]:
        """Accepted messages, oldest first; only those sent to ``to`` when given."""
        wanted = _compact(to) if to else None
        with self._lock:
            return [m.as_dict() for m in self._messages if wanted is None or _compact(m.to) == wanted]

    def replays(self) -> dict[str, int]:
        """Idempotency keys sent again after they were accepted, and how many times."""
        with self._lock:
            return dict(self._replays)

    def _dispatch(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> _Reply:
        allowed = _ROUTES.get(path)
        if allowed is None:
            return _error(404, "not_found", f"no route for {path}")
        if method not in allowed:
            error = {"code": "method_not_allowed", "message": f"{method} is not allowed on {path}"}
            return _Reply(405, {"error": error}, {"Allow": ", ".join(allowed)})
        if path == "/health":
            return _Reply(200, {"status": "ok"})
        if method == "GET":
            wanted = parse_qs(query).get("to")
            return _Reply(200, {"items": self.outbox(wanted[-1] if wanted else None)})
        return self._send(headers, body)

    def _send(self, headers: Mapping[str, str], body: bytes) -> _Reply:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _error(401, "unauthorized", "a bearer token is required")
        api_key = self._settings.api_key
        if api_key is not None and not hmac.compare_digest(token.encode(), api_key.encode()):
            return _error(401, "unauthorized", "the API key is not valid")
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(400, "invalid_request", "the body is not valid JSON")
        problem = _invalid_field(payload)
        if problem is not None:
            return _error(400, "invalid_request", problem)
        to: str = payload["to"]
        key = headers.get("idempotency-key", "").strip()
        if not key:
            return _error(400, "invalid_request", "the Idempotency-Key header is required", to)
        with self._lock:
            delay = self._rng.uniform(self._settings.min_delay_ms, self._settings.max_delay_ms) / 1000
        self._stopping.wait(delay)
        with self._lock:
            earlier = self._by_key.get(key)
            if earlier is not None:
                self._replays[key] = self._replays.get(key, 0) + 1
        if earlier is not None:
            return _Reply(200, {"id": earlier.id}, to=to)
        fault = self._failures.decide(to)
        if fault is not None and fault.status is None:
            self._stopping.wait(self._settings.hang_seconds)
            return _Reply(None, to=to)
        if fault is not None:
            retry_after = (
                {"Retry-After": str(RATE_LIMITED_RETRY_AFTER)} if fault is Fault.RATE_LIMITED_429 else None
            )
            error = {"code": fault.value, "message": fault.message}
            return _Reply(fault.status, {"error": error}, retry_after, to)
        message_id, created = self._accept(payload, key, FailureModel.receipt_status(to))
        return _Reply(
            202 if created else 200, {"id": message_id}, to=to, text=payload["text"] if created else None
        )

    def _accept(self, payload: dict[str, Any], key: str, receipt_status: ReceiptStatus) -> tuple[str, bool]:
        with self._lock:
            # A concurrent request with the same key may have been accepted meanwhile.
            earlier = self._by_key.get(key)
            if earlier is not None:
                self._replays[key] = self._replays.get(key, 0) + 1
                return earlier.id, False
            message = _Message(
                id=f"pm_{uuid.uuid4().hex}",
                to=payload["to"],
                to_type=payload["toType"],
                text=payload["text"],
                sender=payload.get("from"),
                reference=payload["reference"],
                idempotency_key=key,
                receipt_status=receipt_status,
                status="accepted",
                accepted_at=_iso_now(),
            )
            self._messages.append(message)
            self._by_key[key] = message
            if not self._stopping.is_set():
                timer = threading.Timer(self._settings.receipt_delay_ms / 1000, self._deliver, (message,))
                timer.daemon = True
                self._timers[message.id] = timer
                timer.start()
        return message.id, True

    def _deliver(self, message: _Message) -> None:
        with self._lock:
            self._timers.pop(message.id, None)
            message.status = message.receipt_status
            url, secret = self._receipts_url, self._receipts_secret
            receipt = {
                "id": message.id,
                "reference": message.reference,
                "status": message.status,
                "timestamp": _iso_now(),
            }
        if url is None or secret is None:
            return
        body = json.dumps(receipt, separators=(",", ":")).encode()
        signature = hmac.new(secret.encode(), body, sha256).hexdigest()
        self._post_receipt(url, body, signature, message.id)

    def _post_receipt(self, url: str, body: bytes, signature: str, message_id: str) -> None:
        headers = {"Content-Type": "application/json", "X-Signature": signature}
        attempts = len(RECEIPT_RETRY_DELAYS) + 1
        problem = ""
        for attempt in range(attempts):
            if attempt and self._stopping.wait(RECEIPT_RETRY_DELAYS[attempt - 1]):
                return
            # The scheme is checked to be http(s) wherever the URL is set.
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=RECEIPT_TIMEOUT_SECONDS) as response:
                    self._log(f"provider receipt {message_id} -> {response.status}")
                    return
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code < 500:
                    self._log(f"provider receipt {message_id} -> {exc.code}, not retried")
                    return
                problem = f"HTTP {exc.code}"
            except urllib.error.URLError as exc:
                problem = str(exc.reason)
            except (OSError, http.client.HTTPException) as exc:
                problem = str(exc) or type(exc).__name__
        self._log(f"provider receipt {message_id} gave up after {attempts} attempts: {problem}")


def _handler_class(provider: FakeSmsProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60  # drops idle keep-alive connections

        def _serve(self) -> None:
            started = time.perf_counter()
            parts = urlsplit(self.path)
            headers = {key.lower(): value for key, value in self.headers.items()}
            try:
                reply = self._read_and_dispatch(parts.path, parts.query, headers)
                if reply.status is not None:
                    self._write(reply)
            except (ConnectionError, TimeoutError):
                self.close_connection = True
                provider._log(f"provider {self.command} {parts.path} -> client went away")
                return
            elapsed = (time.perf_counter() - started) * 1000
            target = f" to={reply.to}" if reply.to else ""
            result = "no response, simulated timeout" if reply.status is None else str(reply.status)
            sms = f": {reply.text!r}" if reply.text else ""
            provider._log(f"provider {self.command} {parts.path}{target} -> {result} ({elapsed:.0f} ms){sms}")

        def _read_and_dispatch(self, path: str, query: str, headers: Mapping[str, str]) -> _Reply:
            if "transfer-encoding" in headers:
                self.close_connection = True
                return _error(411, "length_required", "send the body with a Content-Length")
            raw_length = headers.get("content-length", "0").strip()
            if not _is_whole(raw_length):
                self.close_connection = True
                return _error(400, "invalid_request", "the Content-Length header is not a number")
            if int(raw_length) > MAX_BODY_BYTES:
                self.close_connection = True
                return _error(413, "payload_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
            body = self.rfile.read(int(raw_length))
            reply = provider._dispatch(self.command, path, query, headers, body)
            if reply.status is None:
                self.close_connection = True
            return reply

        def _write(self, reply: _Reply) -> None:
            data = json.dumps(reply.payload).encode()
            self.send_response(reply.status or 500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (reply.headers or {}).items():
                self.send_header(key, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            return  # _serve logs one line per request

    return Handler
