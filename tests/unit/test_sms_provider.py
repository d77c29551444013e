"""HttpSmsProvider speaks the provider API of CONTRACT §4 and sorts every answer into an id,
a transient error or a permanent one; checked against a real HTTP server on a free port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3

from chatflow.adapters.sms_provider import HttpSmsProvider
from chatflow.domain.sms import SmsRequest
from chatflow.errors import PermanentProviderError, TransientProviderError
from local.fake_provider import FakeProviderSettings
from local.fake_provider import FakeSmsProvider as FakeProviderServer

KEY = "sk_test_secret_key"
REQUEST = SmsRequest(to="+14155550101", to_type="phone", text="hello", reference="cmd_1")


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"id": "pm_123"}'
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ProviderStub:
    """An HTTP/1.1 keep-alive server that records requests, counts connections and gives one answer."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.received: list[Received] = []
        self.connections = 0
        self.release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                stub.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                stub.received.append(Received(self.command, self.path, headers, body))
                answer = stub.answer
                if answer.hang:
                    stub.release.wait(5)
                self.send_response(answer.status)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a client that timed out went away; nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    server = ProviderStub()
    yield server
    server.close()


@pytest.fixture
def provider(stub: ProviderStub) -> HttpSmsProvider:
    return HttpSmsProvider(stub.url, KEY, timeout_seconds=0.3, pool=urllib3.PoolManager(retries=False))


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def test_an_accepted_message_returns_the_provider_id(stub: ProviderStub, provider: HttpSmsProvider) -> None:
    # Given a provider that accepts the message
    stub.answer = Answer(202, b'{"id": "pm_abc"}')
    # When a message is sent
    message_id = provider.send(REQUEST)
    # Then its id is the provider's
    assert message_id == "pm_abc"


def test_the_request_follows_the_provider_api(stub: ProviderStub, provider: HttpSmsProvider) -> None:
    # Given a provider that accepts the message
    # When a message without a sender id is sent
    provider.send(REQUEST)
    # Then it is one JSON POST to /messages with the bearer key, the idempotency key and no "from"
    [received] = stub.received
    assert (received.method, received.path) == ("POST", "/messages")
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert received.headers["idempotency-key"] == "cmd_1"
    assert received.headers["content-type"] == "application/json"
    assert json.loads(received.body) == {
        "to": "+14155550101",
        "toType": "phone",
        "text": "hello",
        "reference": "cmd_1",
    }


def test_a_sender_id_is_sent_as_from(stub: ProviderStub, provider: HttpSmsProvider) -> None:
    # Given a message to a SIM with a sender id
    request = SmsRequest(
        to="8944500102198304826", to_type="iccid", text="hi", reference="c2", sender_id="Acme"
    )
    # When it is sent
    provider.send(request)
    # Then the body carries it as "from"
    assert json.loads(stub.received[0].body) == {
        "to": "8944500102198304826",
        "toType": "iccid",
        "text": "hi",
        "from": "Acme",
        "reference": "c2",
    }


def test_a_base_url_with_a_trailing_slash_still_posts_to_messages(stub: ProviderStub) -> None:
    # Given a base URL ending in a slash
    provider = HttpSmsProvider(f"{stub.url}/", KEY, pool=urllib3.PoolManager())
    # When a message is sent
    provider.send(REQUEST)
    # Then the path has no double slash
    assert stub.received[0].path == "/messages"


def test_a_400_with_the_documented_error_is_permanent_with_its_code(
    stub: ProviderStub, provider: HttpSmsProvider
) -> None:
    # Given a provider that refuses the destination
    stub.answer = Answer(400, error_body("invalid_destination", "the destination cannot receive SMS"))
    # When a message is sent
    with pytest.raises(PermanentProviderError) as caught:
        provider.send(REQUEST)
    # Then the error is permanent, with the provider's code and message
    assert caught.value.code == "invalid_destination"
    assert "the destination cannot receive SMS" in caught.value.message


def test_a_404_without_json_is_permanent_with_the_status_as_code(
    stub: ProviderStub, provider: HttpSmsProvider
) -> None:
    # Given a provider answering 404 with an HTML page
    stub.answer = Answer(404, b"<html>Not Found</html>")
    # When a message is sent
    with pytest.raises(PermanentProviderError) as caught:
        provider.send(REQUEST)
    # Then the error is permanent, coded by the status
    assert caught.value.code == "provider_404"
    assert not isinstance(caught.value, TransientProviderError)


def test_a_429_is_transient_and_says_when_to_retry(stub: ProviderStub, provider: HttpSmsProvider) -> None:
    # Given a provider that rate limits, asking for 7 seconds
    stub.answer = Answer(429, error_body("rate_limited", "slow down"), {"Retry-After": "7"})
    # When a message is sent
    with pytest.raises(TransientProviderError) as caught:
        provider.send(REQUEST)
    # Then the error is transient, with the provider's code and the 7 seconds
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after == 7


def test_retry_after_as_an_http_date_becomes_seconds_from_now(
    stub: ProviderStub, provider: HttpSmsProvider
) -> None:
    # Given a 429 whose Retry-After is a date 30 seconds ahead
    when = datetime.now(UTC) + timedelta(seconds=30)
    stub.answer = Answer(429, b"", {"Retry-After": format_datetime(when, usegmt=True)})
    # When a message is sent
    with pytest.raises(TransientProviderError) as caught:
        provider.send(REQUEST)
    # Then retry_after is about 30 seconds, and the code falls back on the status
    assert caught.value.retry_after is not None
    assert 27 <= caught.value.retry_after <= 30
    assert caught.value.code == "provider_429"


def test_a_500_without_a_body_is_transient_with_the_status_as_code(
    stub: ProviderStub, provider: HttpSmsProvider
) -> None:
    # Given a provider failing with a bare 500
    stub.answer = Answer(500, b"")
    # When a message is sent
    with pytest.raises(TransientProviderError) as caught:
        provider.send(REQUEST)
    # Then the error is transient and coded by the status, with no retry hint
    assert caught.value.code == "provider_500"
    assert caught.value.retry_after is None


def test_a_503_with_the_documented_error_is_transient_with_its_code(
    stub: ProviderStub, provider: HttpSmsProvider
) -> None:
    # Given a provider that is unavailable
    stub.answer = Answer(503, error_body("unavailable", "try later"))
    # When a message is sent
    with pytest.raises(TransientProviderError) as caught:
        provider.send(REQUEST)
    # Then the error is transient with the provider's code
    assert caught.value.code == "unavailable"


def test_a_provider_that_hangs_past_the_timeout_is_a_transient_timeout(
    stub: ProviderStub, provider: HttpSmsProvider
) -> None:
    # Given a provider that does not answer, and a 0.3 s timeout
    stub.answer = Answer(hang=True)
    # When a message is sent
    began = time.monotonic()
    with pytest.raises(TransientProviderError) as caught:
        provider.send(REQUEST)
    # Then it gives up soon after the timeout, as a provider timeout
    assert caught.value.code == "provider_timeout"
    assert 0.25 <= time.monotonic() - began < 2


def test_a_refused_connection_is_transient_and_unreachable() -> None:
    # Given a port where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    provider = HttpSmsProvider(f"http://127.0.0.1:{closed_port}", KEY, timeout_seconds=0.3)
    # When a message is sent
    with pytest.raises(TransientProviderError) as caught:
        provider.send(REQUEST)
    # Then the provider is unreachable, worth retrying
    assert caught.value.code == "provider_unreachable"


@pytest.mark.parametrize("body", [b"{}", b'{"id": 42}', b'{"id": ""}', b"accepted"])
def test_a_2xx_without_an_id_is_transient(stub: ProviderStub, provider: HttpSmsProvider, body: bytes) -> None:
    # Given a provider that says yes without a usable message id
    stub.answer = Answer(200, body)
    # When a message is sent
    with pytest.raises(TransientProviderError) as caught:
        provider.send(REQUEST)
    # Then it is transient, saying the provider id cannot be known
    assert caught.value.code == "provider_invalid_response"
    assert "id" in caught.value.message


def test_sends_reuse_one_pooled_connection_across_instances(stub: ProviderStub) -> None:
    # Given two providers, as two warm invocations would build, on the module's shared pool
    first = HttpSmsProvider(stub.url, KEY)
    second = HttpSmsProvider(stub.url, KEY)
    # When each sends a message
    first.send(REQUEST)
    second.send(REQUEST)
    # Then both went over a single TCP connection
    assert len(stub.received) == 2
    assert stub.connections == 1


def test_a_key_callable_is_read_once_on_first_send(stub: ProviderStub) -> None:
    # Given a key read from a (counted) secret store
    reads: list[int] = []

    def read_key() -> str:
        reads.append(1)
        return KEY

    provider = HttpSmsProvider(stub.url, read_key, pool=urllib3.PoolManager())
    # When the provider is built, then sends twice
    assert reads == []
    provider.send(REQUEST)
    provider.send(REQUEST)
    # Then the key was read once, and used on both
    assert len(reads) == 1
    assert [r.headers["authorization"] for r in stub.received] == [f"Bearer {KEY}"] * 2


def test_a_401_makes_the_next_send_read_the_key_again(stub: ProviderStub) -> None:
    # Given a key that was rotated after it was first read
    keys = iter(["old-key", "new-key"])
    provider = HttpSmsProvider(stub.url, lambda: next(keys), pool=urllib3.PoolManager())
    stub.answer = Answer(401, error_body("unauthorized", "the API key is not valid"))
    with pytest.raises(PermanentProviderError):
        provider.send(REQUEST)
    # When the next message is sent
    stub.answer = Answer()
    provider.send(REQUEST)
    # Then it carries the new key
    assert stub.received[-1].headers["authorization"] == "Bearer new-key"


def test_the_key_shows_neither_in_repr_nor_in_errors(stub: ProviderStub, provider: HttpSmsProvider) -> None:
    # Given a provider that fails the message
    stub.answer = Answer(403, error_body("forbidden", "not allowed"))
    # When the message fails
    with pytest.raises(PermanentProviderError) as caught:
        provider.send(REQUEST)
    # Then neither the error nor the provider's repr shows the key
    assert KEY not in str(caught.value)
    assert KEY not in repr(provider)


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeProviderServer]]:
    started: list[FakeProviderServer] = []

    def start(**settings: Any) -> FakeProviderServer:
        server = FakeProviderServer(
            FakeProviderSettings(**({"min_delay_ms": 0, "max_delay_ms": 0} | settings)), log=lambda _: None
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize(
    ("to", "error", "code", "retry_after"),
    [
        ("+15550000400", PermanentProviderError, "invalid_destination", None),
        ("+15550000503", TransientProviderError, "unavailable", None),
        ("+15550000429", TransientProviderError, "rate_limited", 1),
        ("+15550000408", TransientProviderError, "provider_timeout", None),
    ],
)
def test_the_local_fake_provider_faults_map_as_documented(
    fake_server: Callable[..., FakeProviderServer],
    to: str,
    error: type[Exception],
    code: str,
    retry_after: float | None,
) -> None:
    # Given the local stack's fake provider, hanging longer than the adapter waits
    server = fake_server(failure_rate=0.0, hang_seconds=2.0)
    provider = HttpSmsProvider(server.url, KEY, timeout_seconds=0.3, pool=urllib3.PoolManager())
    # When a message goes to a magic destination
    with pytest.raises(error) as caught:
        provider.send(SmsRequest(to=to, to_type="phone", text="hi", reference=f"ref-{to}"))
    # Then the adapter classifies it as the contract says
    assert isinstance(caught.value, TransientProviderError | PermanentProviderError)
    assert caught.value.code == code
    if isinstance(caught.value, TransientProviderError):
        assert caught.value.retry_after == retry_after


def test_the_local_fake_provider_accepts_an_ordinary_message(
    fake_server: Callable[..., FakeProviderServer],
) -> None:
    # Given the local stack's fake provider that never fails
    server = fake_server(failure_rate=0.0)
    provider = HttpSmsProvider(server.url, KEY, pool=urllib3.PoolManager())
    # When a message is sent
    message_id = provider.send(REQUEST)
    # Then its id is the one the provider lists
    assert message_id.startswith("pm_")
    assert [item["id"] for item in server.outbox()] == [message_id]
