"""A fake third-party SMS provider for the local stack (the contract's section 4).

``POST /messages`` accepts a message after a random delay, or injects the fault that
``local.fake_sms.FailureModel`` decides (the in-memory fake of the tests shares it):
with probability ``failure_rate``, 2/3 transient (503, 429 with ``Retry-After: 1``, or a
timeout that hangs and drops the connection), 1/3 permanent (400). Each accepted
message gets a signed delivery receipt POSTed to ChatFlow's receipts route.
``GET /messages?to=`` lists what was accepted; ``GET /health`` answers ok.
``POST /inbound {"from", "iccid"?, "text"}`` simulates a handset texting ChatFlow (STOP,
START, HELP...): the fake gives it an id and a timestamp, signs it with the webhook secret
and POSTs it to ChatFlow's inbound route, as the real provider would, and answers ``202``
with ChatFlow's answer once ChatFlow took it (``502`` when ChatFlow refused it or could not
be reached, retried as receipts are: the same id each time). Anything else
(an unknown route, another method, a WebSocket handshake) gets the provider's JSON error,
``{"error": {"code", "message"}}``, as does a body that is not a valid message.

Magic destinations (the end of ``to``) override the random failure rate:

- ``...0400``: 400 ``invalid_destination`` (permanent)
- ``...0503``: 503 ``unavailable`` (transient)
- ``...0429``: 429 ``rate_limited`` with ``Retry-After: 1`` (transient)
- ``...0408``: hangs ``hang_seconds``, then closes the connection unanswered (timeout)
- ``...0410``: accepted, but its receipt says ``undelivered``

It is a starlette application served by uvicorn (``local.asgi_server.AsgiServer``), on an
event loop of its own: delays and hangs are asynchronous waits that ``stop()`` cuts short,
receipts are tasks on that loop whose POSTs run on a few threads of their own.
"""

from __future__ import annotations

import asyncio
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
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from local.asgi_server import AsgiServer
from local.fake_sms import RATE_LIMITED_RETRY_AFTER, FailureModel, Fault, ReceiptStatus

MAX_TEXT_LENGTH = 1600
MAX_OUTAGE_SECONDS = 3600
MAX_BODY_BYTES = 64 * 1024
# How much of an oversized body is read (and dropped) before the 413, so that the client,
# done sending, reads the answer; past it the connection is closed mid-body.
DRAIN_BYTES = 1024 * 1024
# Pauses before the 2nd, 3rd and 4th attempt to deliver a receipt.
RECEIPT_RETRY_DELAYS = (0.1, 0.5, 1.0)
RECEIPT_TIMEOUT_SECONDS = 5.0
# Threads that POST receipts (blocking urllib calls, kept off the event loop).
RECEIPT_SENDERS = 8
# How long stop() waits for the event loop to wind down hangs, delays and receipts.
STOP_TIMEOUT_SECONDS = 5.0


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


def _check_receipts_url(url: str, name: str = "receipts_url") -> None:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"{name} must be an http(s) URL, got {url!r}")


@dataclass(frozen=True)
class FakeProviderSettings:
    failure_rate: float = 0.1
    min_delay_ms: int = 50
    max_delay_ms: int = 200
    hang_seconds: float = 30.0
    receipt_delay_ms: int = 300
    receipts_url: str | None = None
    receipts_secret: str | None = None
    # ChatFlow's POST /v1/sms/inbound, and the webhook secret that signs what goes there.
    inbound_url: str | None = None
    inbound_secret: str | None = None
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
        if self.inbound_url is not None:
            _check_receipts_url(self.inbound_url, "inbound_url")
            if not self.inbound_secret:
                raise ValueError("inbound_secret is required when inbound_url is set")

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


INBOUND_FIELDS = frozenset({"from", "iccid", "text"})


def _invalid_inbound(payload: Any) -> str | None:
    """Why a simulated handset's message is invalid, or None when it is valid."""
    if not isinstance(payload, dict):
        return 'the body must be a JSON object: {"from", "iccid"?, "text"}'
    unknown = sorted(set(payload) - INBOUND_FIELDS)
    if unknown:
        return f"unknown fields {unknown}: send only 'from', 'iccid' (optional) and 'text'"
    sender = payload.get("from")
    if not isinstance(sender, str) or not sender.strip():
        return "'from' must be the handset's number, such as '+14155550101'"
    iccid = payload.get("iccid")
    if iccid is not None and not (isinstance(iccid, str) and _is_whole(iccid) and 19 <= len(iccid) <= 20):
        return "'iccid' must be the SIM's ICCID, 19 or 20 digits, when present"
    text = payload.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT_LENGTH:
        return f"'text' must be a string of 1 to {MAX_TEXT_LENGTH} characters"
    return None


def _loggable(text: str) -> str:
    """``text`` kept on one log line: control characters and lone surrogates escaped."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _json_response(reply: _Reply) -> Response:
    # json.dumps escapes non-ASCII, so a lone surrogate that came in a JSON body goes back out.
    body = json.dumps(reply.payload).encode()
    status = reply.status if reply.status is not None else HTTPStatus.INTERNAL_SERVER_ERROR
    return Response(body, status, headers=dict(reply.headers or {}), media_type="application/json")


_EXCHANGE_SCOPE_KEY = "chatflow.fake_provider.exchange"


@dataclass
class _Exchange:
    """One request as its log line tells it; the route that answers fills in ``to`` and ``text``."""

    hang_up: Callable[[], Awaitable[None]]
    to: str | None = None
    text: str | None = None
    status: int | None = None
    outcome: str | None = None  # said instead of the status: nothing was answered


def _exchange(scope: Scope) -> _Exchange:
    exchange = scope[_EXCHANGE_SCOPE_KEY]
    assert isinstance(exchange, _Exchange)
    return exchange


async def _hang_up(receive: Receive, send: Send) -> None:
    """Closes the connection without answering, as a provider that timed out does.

    ASGI has no message for that (an app that returns without answering gets the server's
    own 500), so this closes the transport of uvicorn's request cycle, whose bound ``send``
    this is, then waits until uvicorn has seen the connection go.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if not isinstance(transport, asyncio.BaseTransport):
        raise RuntimeError("the fake provider's simulated timeouts need uvicorn's HTTP/1.1 server")
    transport.close()
    while (await receive())["type"] != "http.disconnect":
        pass


class _Unanswered(Response):
    """The 'response' of a simulated timeout: the connection closes, nothing is sent."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = _exchange(scope)
        exchange.outcome = "no response, simulated timeout"
        await exchange.hang_up()


class _NoOneListening(Response):
    """The 'response' to a client that left before its request was read."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        _exchange(scope).outcome = "client went away"


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None when it is over ``MAX_BODY_BYTES`` (declared or streamed).

    A body declared too large is refused before it is read. A streamed (chunked) one is
    still read, and dropped, up to ``DRAIN_BYTES``: a client still sending when the 413 is
    written would otherwise meet a reset connection instead of the answer (how soon
    depends on the machine's load)."""
    declared = request.headers.get("content-length", "")
    if _is_whole(declared) and int(declared) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > DRAIN_BYTES:
            return None
        if received <= MAX_BODY_BYTES:
            body += chunk
    return bytes(body) if received <= MAX_BODY_BYTES else None


async def _http_error(request: Request, exc: Exception) -> Response:
    """starlette's 404 (no route) and 405 (a route, not this method) in the provider's shape."""
    if not isinstance(exc, HTTPException):
        raise exc
    path = request.scope["path"]
    if exc.status_code == HTTPStatus.NOT_FOUND:
        return _json_response(_error(404, "not_found", f"no route for {path}"))
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        # starlette lists the route's methods from a set: sorted, the header is always the same.
        allowed = sorted((exc.headers or {}).get("Allow", "").split(", "))
        error = {"code": "method_not_allowed", "message": f"{request.method} is not allowed on {path}"}
        return _json_response(_Reply(405, {"error": error}, {"Allow": ", ".join(allowed)}))
    phrase = HTTPStatus(exc.status_code).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    return _json_response(_Reply(exc.status_code, {"error": {"code": code, "message": phrase}}, exc.headers))


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug of the fake provider's own: still the provider's error shape (uvicorn logs the trace)."""
    return _json_response(_error(500, "internal_error", f"the fake provider failed: {type(exc).__name__}"))


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
        # Guards what other threads read or set: the outbox, replays, the receipts target.
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # Set on the event loop by stop(): every delay, hang and receipt wait ends at once.
        self._wake = asyncio.Event()
        self._messages: list[_Message] = []
        self._by_key: dict[str, _Message] = {}
        self._replays: dict[str, int] = {}
        self._outage: tuple[float, int] = (0.0, 503)  # (until, on time.monotonic(); status)
        self._receipts: set[asyncio.Task[None]] = set()  # touched on the event loop only
        self._receipts_url = settings.receipts_url
        self._receipts_secret = settings.receipts_secret
        self._inbound_url = settings.inbound_url
        self._inbound_secret = settings.inbound_secret
        self._senders: ThreadPoolExecutor | None = None
        self._server: AsgiServer | None = None
        self._stopped = False

    def __enter__(self) -> FakeSmsProvider:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the fake provider is already started")
        self._server = AsgiServer(
            _ProviderApp(self, self._routes()),
            host=self._host,
            port=self._requested_port,
            name="fake-sms-provider",
        )
        self._senders = ThreadPoolExecutor(RECEIPT_SENDERS, thread_name_prefix="fake-sms-receipts")
        self._server.start()

    def stop(self) -> None:
        """Stops serving, cuts hanging requests short and cancels receipts not yet sent."""
        self._stopping.set()
        server = self._server
        if server is None or self._stopped:
            return
        self._stopped = True
        loop = server.loop
        if loop is not None and loop.is_running():
            winding_down = asyncio.run_coroutine_threadsafe(self._wind_down(), loop)
            try:
                winding_down.result(timeout=STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                self._log("provider stop: receipts still running after the timeout")
        server.stop()
        if self._senders is not None:
            self._senders.shutdown(wait=False, cancel_futures=True)

    async def _wind_down(self) -> None:
        self._wake.set()
        receipts = list(self._receipts)
        for task in receipts:
            task.cancel()  # those waiting on a POST; the others have seen the wake-up
        await asyncio.gather(*receipts, return_exceptions=True)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake provider is not started")
        return self._server.port

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

    def configure_inbound(self, url: str, secret: str) -> None:
        """Where ``POST /inbound`` delivers handset messages (ChatFlow's inbound route), and the
        secret that signs them."""
        _check_receipts_url(url, "the inbound URL")
        if not secret:
            raise ValueError("the inbound secret must not be empty")
        with self._lock:
            self._inbound_url, self._inbound_secret = url, secret

    def outbox(self, to: str | None = None) -> list[dict[str, Any]]:
        """Accepted messages, oldest first; only those sent to ``to`` when given."""
        wanted = _compact(to) if to else None
        with self._lock:
            return [m.as_dict() for m in self._messages if wanted is None or _compact(m.to) == wanted]

    def outage(self, *, seconds: float, status: int = 503) -> None:
        """Answer every send with ``status`` (``unavailable``) for ``seconds`` from now, as
        a provider that is down would; then recover. A new call replaces the last one."""
        if not (math.isfinite(seconds) and 0 <= seconds <= MAX_OUTAGE_SECONDS):
            raise ValueError(f"seconds must be between 0 and {MAX_OUTAGE_SECONDS}, got {seconds!r}")
        if status not in (429, 500, 502, 503, 504):
            raise ValueError(f"status must be 429, 500, 502, 503 or 504, got {status!r}")
        with self._lock:
            self._outage = (time.monotonic() + seconds, status)

    def replays(self) -> dict[str, int]:
        """Idempotency keys sent again after they were accepted, and how many times."""
        with self._lock:
            return dict(self._replays)

    # ---- HTTP ---------------------------------------------------------------------------

    def _routes(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/messages", self._messages_route, methods=["GET", "POST"]),
                Route("/health", self._health_route, methods=["GET"]),
                Route("/inbound", self._inbound_route, methods=["POST"]),
                Route("/outage", self._outage_route, methods=["POST"]),
            ],
            exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        )

    async def _health_route(self, request: Request) -> Response:
        return _json_response(_Reply(200, {"status": "ok"}))

    async def _messages_route(self, request: Request) -> Response:
        if request.method != "POST":  # GET, or HEAD, which starlette answers as GET without the body
            wanted = [to for to in request.query_params.getlist("to") if to]
            return _json_response(_Reply(200, {"items": self.outbox(wanted[-1] if wanted else None)}))
        try:
            body = await _read_body(request)
        except ClientDisconnect:
            return _NoOneListening()
        if body is None:
            too_large = _error(413, "payload_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
            # Past DRAIN_BYTES the rest is not read: the connection cannot carry another request.
            return _json_response(_Reply(413, too_large.payload, {"Connection": "close"}))
        reply = await self._send(request.headers, body)
        exchange = _exchange(request.scope)
        exchange.to, exchange.text = reply.to, reply.text
        return _Unanswered() if reply.status is None else _json_response(reply)

    async def _outage_route(self, request: Request) -> Response:
        """``POST /outage {"seconds", "status"?}``: the provider is down that long (``make run``)."""
        try:
            body = await _read_body(request)
        except ClientDisconnect:
            return _NoOneListening()
        try:
            payload = json.loads(body or b"{}")
            seconds, status = float(payload["seconds"]), int(payload.get("status", 503))
            self.outage(seconds=seconds, status=status)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            detail = (
                f'send {{"seconds": 60}} (at most {MAX_OUTAGE_SECONDS}), optionally "status": 503 ({exc})'
            )
            return _json_response(_error(400, "invalid_request", detail))
        return _json_response(_Reply(202, {"outage": {"seconds": seconds, "status": status}}))

    async def _inbound_route(self, request: Request) -> Response:
        try:
            body = await _read_body(request)
        except ClientDisconnect:
            return _NoOneListening()
        if body is None:
            too_large = _error(413, "payload_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
            return _json_response(_Reply(413, too_large.payload, {"Connection": "close"}))
        reply = await self._inbound(body)
        exchange = _exchange(request.scope)
        exchange.to, exchange.text = reply.to, reply.text
        return _json_response(reply)

    async def _inbound(self, body: bytes) -> _Reply:
        """Delivers one handset message to ChatFlow's inbound route, signed; retried as receipts are."""
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return _error(400, "invalid_request", "the body is not valid JSON")
        problem = _invalid_inbound(payload)
        if problem is not None:
            return _error(400, "invalid_request", problem)
        with self._lock:
            url, secret = self._inbound_url, self._inbound_secret
        if url is None or secret is None:
            return _error(503, "not_configured", "no ChatFlow inbound URL is configured (configure_inbound)")
        message = {"id": f"in_{uuid.uuid4().hex}", **payload, "timestamp": _iso_now()}
        signed = json.dumps(message, separators=(",", ":")).encode()
        signature = hmac.new(secret.encode(), signed, sha256).hexdigest()
        loop = asyncio.get_running_loop()
        outcome: tuple[int | None, bytes, str] = (None, b"", "")
        for attempt in range(len(RECEIPT_RETRY_DELAYS) + 1):
            if attempt and await self._pause(RECEIPT_RETRY_DELAYS[attempt - 1]):
                break
            outcome = await loop.run_in_executor(self._senders, _post_signed, url, signed, signature)
            status = outcome[0]
            if status is not None and status < HTTPStatus.INTERNAL_SERVER_ERROR:
                break
        status, answer, problem = outcome
        said_by = f"from {payload['from']}: {payload['text']}"  # the log line's text
        if status is not None and status < HTTPStatus.MULTIPLE_CHOICES:
            return _Reply(202, {"id": message["id"], "chatflow": _json_or_text(answer)}, text=said_by)
        said = f"ChatFlow answered {status}" if status is not None else f"ChatFlow did not answer: {problem}"
        refusal = {
            "code": "chatflow_refused" if status is not None else "chatflow_unreachable",
            "message": said,
            "chatflowStatus": status,
            "chatflow": _json_or_text(answer),
        }
        return _Reply(502, {"error": refusal, "id": message["id"]}, text=said_by)

    # ---- sending ------------------------------------------------------------------------

    async def _pause(self, seconds: float) -> bool:
        """Waits ``seconds`` without holding up the event loop; True when stop() cut it short."""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    async def _send(self, headers: Mapping[str, str], body: bytes) -> _Reply:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _error(401, "unauthorized", "a bearer token is required")
        api_key = self._settings.api_key
        if api_key is not None and not hmac.compare_digest(token.encode(), api_key.encode()):
            return _error(401, "unauthorized", "the API key is not valid")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
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
        await self._pause(delay)
        with self._lock:
            outage_until, outage_status = self._outage
        if time.monotonic() < outage_until:
            return _error(outage_status, "unavailable", "the provider is down (a simulated outage)", to)
        with self._lock:
            earlier = self._by_key.get(key)
            if earlier is not None:
                self._replays[key] = self._replays.get(key, 0) + 1
        if earlier is not None:
            return _Reply(200, {"id": earlier.id}, to=to)
        fault = self._failures.decide(to)
        if fault is not None and fault.status is None:
            await self._pause(self._settings.hang_seconds)
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
        """Records the message and schedules its receipt; called on the event loop."""
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
            task = asyncio.get_running_loop().create_task(self._deliver(message))
            self._receipts.add(task)
            task.add_done_callback(self._receipts.discard)
        return message.id, True

    # ---- receipts -----------------------------------------------------------------------

    async def _deliver(self, message: _Message) -> None:
        if await self._pause(self._settings.receipt_delay_ms / 1000):
            return
        with self._lock:
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
        await self._post_receipt(url, body, signature, message.id)

    async def _post_receipt(self, url: str, body: bytes, signature: str, message_id: str) -> None:
        loop = asyncio.get_running_loop()
        attempts = len(RECEIPT_RETRY_DELAYS) + 1
        problem = ""
        for attempt in range(attempts):
            if attempt and await self._pause(RECEIPT_RETRY_DELAYS[attempt - 1]):
                return
            status, problem = await loop.run_in_executor(self._senders, _post_once, url, body, signature)
            if status is not None and status < HTTPStatus.INTERNAL_SERVER_ERROR:
                refused = ", not retried" if status >= HTTPStatus.BAD_REQUEST else ""
                self._log(f"provider receipt {message_id} -> {status}{refused}")
                return
        self._log(f"provider receipt {message_id} gave up after {attempts} attempts: {problem}")


def _post_once(url: str, body: bytes, signature: str) -> tuple[int | None, str]:
    """One blocking POST of a receipt: the status answered (None if none), and what went wrong."""
    status, _, problem = _post_signed(url, body, signature)
    return status, problem


def _post_signed(url: str, body: bytes, signature: str) -> tuple[int | None, bytes, str]:
    """One blocking signed POST: the status answered (None if none), the answer, what went wrong."""
    headers = {"Content-Type": "application/json", "X-Signature": signature}
    # The scheme is checked to be http(s) wherever the URL is set.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=RECEIPT_TIMEOUT_SECONDS) as response:
            return int(response.status), response.read(MAX_BODY_BYTES), ""
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(MAX_BODY_BYTES), f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return None, b"", str(exc.reason)
    except (OSError, http.client.HTTPException) as exc:
        return None, b"", str(exc) or type(exc).__name__


def _json_or_text(answer: bytes) -> Any:
    """ChatFlow's answer as JSON when it is JSON, else as text (None when empty)."""
    if not answer:
        return None
    try:
        return json.loads(answer)
    except (ValueError, RecursionError):
        return answer.decode("utf-8", "replace")


class _ProviderApp:
    """The ASGI application served: the provider's routes, one log line per request, and a
    JSON 404 for WebSocket handshakes (the provider has no WebSocket endpoint)."""

    def __init__(self, provider: FakeSmsProvider, routes: Starlette) -> None:
        self._provider = provider
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._refuse_websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self._serve(scope, receive, send)
        else:
            await self._routes(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        exchange = _Exchange(hang_up=lambda: _hang_up(receive, send))
        scope[_EXCHANGE_SCOPE_KEY] = exchange

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = int(message["status"])
            await send(message)

        try:
            await self._routes(scope, receive, answer)
        finally:
            self._log_exchange(scope, exchange, (time.perf_counter() - started) * 1000)

    def _log_exchange(self, scope: Scope, exchange: _Exchange, elapsed_ms: float) -> None:
        request = f"{_loggable(scope['method'])} {_loggable(scope['path'])}"
        if exchange.outcome == "client went away":
            self._provider._log(f"provider {request} -> client went away")
            return
        target = f" to={_loggable(exchange.to)}" if exchange.to else ""
        result = exchange.outcome or str(exchange.status)
        sms = f": {exchange.text!r}" if exchange.text else ""
        self._provider._log(f"provider {request}{target} -> {result} ({elapsed_ms:.0f} ms){sms}")

    async def _refuse_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = _json_response(_error(404, "not_found", f"no WebSocket endpoint at {scope['path']}"))
        await WebSocket(scope, receive, send).send_denial_response(refusal)
        self._provider._log(f"provider WebSocket {_loggable(scope['path'])} -> 404")
