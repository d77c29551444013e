"""The fake SMS provider speaks the contract's provider API, injects faults and sends signed receipts."""

from __future__ import annotations

import email.message
import hashlib
import hmac
import http.client
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local import fake_provider
from local.asgi_server import AsgiServer
from local.fake_provider import FakeProviderSettings, FakeSmsProvider

FAST: dict[str, Any] = {
    "failure_rate": 0.0,
    "min_delay_ms": 0,
    "max_delay_ms": 1,
    "hang_seconds": 0.3,
    "receipt_delay_ms": 10,
    "seed": 7,
}
SECRET = "receipts-secret"
ISO_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Reply:
    status: int | None  # None: the connection closed without an answer
    headers: dict[str, str]  # names in lower case
    body: Any  # the JSON answered, None for an empty body


def _reply(status: int, headers: email.message.Message, raw: bytes) -> Reply:
    return Reply(status, {k.lower(): v for k, v in headers.items()}, json.loads(raw) if raw else None)


def request(
    url: str,
    method: str = "GET",
    data: bytes | Iterable[bytes] | None = None,  # an iterable goes out chunked
    headers: dict[str, str] | None = None,
    timeout: float = 3,
) -> Reply:
    # Only ever the local provider's http:// URL.
    prepared = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(prepared, timeout=timeout) as response:
            return _reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return _reply(exc.code, exc.headers, exc.read())
    except (OSError, http.client.HTTPException):
        return Reply(None, {}, None)


def raw_exchange(provider: FakeSmsProvider, data: bytes) -> Reply:
    """Sends ``data`` as it is (what a client library would refuse to send) and reads the answer."""
    with socket.create_connection(("127.0.0.1", provider.port), timeout=3) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock, method=data.split(b" ", 1)[0].decode())
        response.begin()
        with response:
            return _reply(response.status, response.headers, response.read())


_counter = iter(range(1_000_000))


def send(
    provider: FakeSmsProvider,
    to: str = "+15551230001",
    *,
    key: str | None = None,
    bearer: str | None = "any-token",
    body: dict[str, Any] | None = None,
    raw: bytes | None = None,
) -> Reply:
    n = next(_counter)
    headers = {"Content-Type": "application/json", "Idempotency-Key": key or f"cmd_{n}"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    payload = (
        body if body is not None else {"to": to, "toType": "phone", "text": "hi", "reference": f"cmd_{n}"}
    )
    data = raw if raw is not None else json.dumps(payload).encode()
    return request(f"{provider.url}/messages", "POST", data, headers)


class ReceiptReceiver:
    """ChatFlow's receipts (or inbound) route stand-in: records each POST and answers ``answers``
    in turn, then 200, each with ``answer`` as its JSON body when given."""

    def __init__(
        self, answers: list[int], path: str = "/v1/sms/receipts", answer: dict[str, Any] | None = None
    ) -> None:
        self.answers = list(answers)
        self.answer = answer
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        app = Starlette(routes=[Route(path, self._receive, methods=["POST"])])
        self.server = AsgiServer(app, name="receipts-receiver")
        self.server.start()
        self.url = f"{self.server.url}{path}"

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        with self.arrived:
            self.calls.append((dict(request.headers.items()), body))
            status = self.answers.pop(0) if self.answers else 200
            self.arrived.notify_all()
        if self.answer is None:
            return Response(status_code=status)
        return Response(json.dumps(self.answer), status_code=status, media_type="application/json")

    def wait_for(self, count: int, timeout: float = 3.0) -> list[tuple[dict[str, str], bytes]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.calls) >= count, timeout)
            return list(self.calls)

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def logs() -> list[str]:
    return []


@pytest.fixture
def start(logs: list[str]) -> Iterator[Callable[..., FakeSmsProvider]]:
    started: list[FakeSmsProvider] = []

    def start_provider(**overrides: Any) -> FakeSmsProvider:
        provider = FakeSmsProvider(FakeProviderSettings(**(FAST | overrides)), log=logs.append)
        provider.start()
        started.append(provider)
        return provider

    yield start_provider
    for provider in started:
        provider.stop()


@pytest.fixture
def receiver_with() -> Iterator[Callable[..., ReceiptReceiver]]:
    receivers: list[ReceiptReceiver] = []

    def make(*answers: int) -> ReceiptReceiver:
        receivers.append(ReceiptReceiver(list(answers)))
        return receivers[-1]

    yield make
    for receiver in receivers:
        receiver.close()


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_accepted_message_gets_an_id_and_is_listed_for_its_recipient(
    start: Callable[..., FakeSmsProvider],
) -> None:
    # Given a provider that never fails
    provider = start()
    # When two messages go to two numbers
    body = {"to": "+15551230001", "toType": "phone", "text": "hi", "from": "ChatFlow", "reference": "cmd_a"}
    first = send(provider, key="cmd_a", body=body)
    send(provider, "+15551230002")
    listed = request(f"{provider.url}/messages?to=%2B15551230001")
    # Then the first is 202 with an id, and listing by its number shows only it, as sent
    assert first.status == 202
    assert str(first.body["id"]).startswith("pm_")
    assert listed.status == 200
    [item] = listed.body["items"]
    assert item | {"status": "any", "acceptedAt": "any"} == {
        "id": first.body["id"],
        "to": "+15551230001",
        "toType": "phone",
        "text": "hi",
        "from": "ChatFlow",
        "reference": "cmd_a",
        "idempotencyKey": "cmd_a",
        "status": "any",
        "acceptedAt": "any",
    }
    assert ISO_UTC_MS.match(item["acceptedAt"])


def test_listing_without_to_returns_every_message_oldest_first(start: Callable[..., FakeSmsProvider]) -> None:
    # Given three messages to different numbers
    provider = start()
    ids = [send(provider, f"+1555123000{n}").body["id"] for n in range(3)]
    # When the outbox is listed without a filter
    listed = request(f"{provider.url}/messages")
    # Then all three come back in the order they were accepted
    assert [item["id"] for item in listed.body["items"]] == ids


def test_listing_accepts_a_plus_left_unencoded_in_the_query(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a message to a number written with spaces
    provider = start()
    sent = send(provider, "+1 555 123 0001")
    # When the list is filtered with a raw '+' (which a query string decodes to a space)
    listed = request(f"{provider.url}/messages?to=+15551230001")
    # Then the message is found
    assert [item["id"] for item in listed.body["items"]] == [sent.body["id"]]


def test_iccid_destination_is_accepted_and_listed_by_iccid(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider
    provider = start()
    # When a message goes to a SIM by ICCID
    body = {"to": "8944500102198304826", "toType": "iccid", "text": "ping", "reference": "cmd_sim"}
    sent = send(provider, body=body)
    # Then it is accepted and listed under that ICCID
    assert sent.status == 202
    assert [item["toType"] for item in provider.outbox("8944500102198304826")] == ["iccid"]


def test_retry_with_the_same_idempotency_key_returns_the_same_id_once(
    start: Callable[..., FakeSmsProvider],
) -> None:
    # Given an accepted message
    provider = start()
    first = send(provider, key="cmd_1")
    # When it is sent again with the same Idempotency-Key
    again = send(provider, key="cmd_1")
    # Then the answer is 200 with the same id, and the outbox holds it once
    assert (first.status, again.status) == (202, 200)
    assert again.body["id"] == first.body["id"]
    assert len(provider.outbox()) == 1


def test_a_replayed_key_is_answered_from_the_first_acceptance_without_new_faults(
    start: Callable[..., FakeSmsProvider],
) -> None:
    # Given an accepted message
    provider = start()
    first = send(provider, key="cmd_1")
    # When its key is replayed with a body that would now fail (a 503 destination)
    again = send(provider, "+15550000503", key="cmd_1")
    # Then the first acceptance is returned, as a real provider's idempotency layer does
    assert (again.status, again.body) == (200, first.body)


def test_retry_with_the_same_idempotency_key_sends_no_second_receipt(
    start: Callable[..., FakeSmsProvider], receiver_with: Callable[..., ReceiptReceiver]
) -> None:
    # Given a provider sending receipts and a message accepted then retried
    receiver = receiver_with()
    provider = start(receipts_url=receiver.url, receipts_secret=SECRET)
    send(provider, key="cmd_1")
    receiver.wait_for(1)
    send(provider, key="cmd_1")
    # When the receipt delay has passed again
    time.sleep(0.2)
    # Then only one receipt was sent
    assert len(receiver.calls) == 1


def test_a_failed_attempt_does_not_consume_the_idempotency_key(start: Callable[..., FakeSmsProvider]) -> None:
    # Given an attempt that failed with 503
    provider = start()
    assert send(provider, "+15550000503", key="cmd_1").status == 503
    # When the same key is used again and the provider accepts
    retried = send(provider, "+15551230001", key="cmd_1")
    # Then it is a new acceptance
    assert retried.status == 202
    assert len(provider.outbox()) == 1


@pytest.mark.parametrize("token", [None, "", "wrong-key"], ids=["no header", "empty token", "wrong key"])
def test_a_missing_or_wrong_bearer_token_is_401(
    start: Callable[..., FakeSmsProvider], token: str | None
) -> None:
    # Given a provider with an API key
    provider = start(api_key="the-key")
    # When a message is sent without the right bearer token
    reply = send(provider, bearer=token)
    # Then it is refused as unauthorized and not sent
    assert reply.status == 401
    assert reply.body["error"]["code"] == "unauthorized"
    assert provider.outbox() == []


def test_a_non_bearer_authorization_is_401(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider that accepts any bearer token
    provider = start()
    # When the Authorization header uses another scheme
    headers = {"Authorization": "Basic dXNlcjpwYXNz", "Idempotency-Key": "cmd_1"}
    body = json.dumps({"to": "+15551230001", "toType": "phone", "text": "hi", "reference": "cmd_1"})
    reply = request(f"{provider.url}/messages", "POST", body.encode(), headers)
    # Then it is refused
    assert reply.status == 401
    assert reply.body["error"]["code"] == "unauthorized"


def test_the_configured_api_key_is_accepted(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider with an API key
    provider = start(api_key="the-key")
    # When a message is sent with that key
    reply = send(provider, bearer="the-key")
    # Then it is accepted
    assert reply.status == 202


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"toType": "phone", "text": "hi", "reference": "r"}',
        b'{"to": " ", "toType": "phone", "text": "hi", "reference": "r"}',
        b'{"to": "+15551230001", "toType": "email", "text": "hi", "reference": "r"}',
        b'{"to": "+15551230001", "toType": "phone", "text": "", "reference": "r"}',
        json.dumps({"to": "+15551230001", "toType": "phone", "text": "x" * 1601, "reference": "r"}).encode(),
        b'{"to": "+15551230001", "toType": "phone", "text": "hi", "reference": 5}',
        b'{"to": "+15551230001", "toType": "phone", "text": "hi", "reference": "r", "from": 1}',
    ],
    ids=[
        "invalid json",
        "empty",
        "not an object",
        "no to",
        "blank to",
        "bad toType",
        "empty text",
        "text too long",
        "reference not a string",
        "from not a string",
    ],
)
def test_an_invalid_body_is_400(start: Callable[..., FakeSmsProvider], raw: bytes) -> None:
    # Given a provider
    provider = start()
    # When the body is not a valid message
    reply = send(provider, raw=raw)
    # Then it is an invalid request and nothing is sent
    assert reply.status == 400
    assert reply.body["error"]["code"] == "invalid_request"
    assert provider.outbox() == []


def test_text_of_exactly_1600_characters_is_accepted(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider
    provider = start()
    # When the text is at the limit
    reply = send(
        provider, body={"to": "+15551230001", "toType": "phone", "text": "x" * 1600, "reference": "r"}
    )
    # Then it is accepted
    assert reply.status == 202


def test_a_missing_idempotency_key_is_400(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider
    provider = start()
    # When a valid message comes without an Idempotency-Key
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    body = json.dumps({"to": "+15551230001", "toType": "phone", "text": "hi", "reference": "cmd_1"})
    reply = request(f"{provider.url}/messages", "POST", body.encode(), headers)
    # Then it is an invalid request naming the header
    assert reply.status == 400
    assert reply.body["error"]["code"] == "invalid_request"
    assert "Idempotency-Key" in reply.body["error"]["message"]


@pytest.mark.parametrize(
    ("to", "status", "code"),
    [
        ("+15550000400", 400, "invalid_destination"),
        ("+15550000503", 503, "unavailable"),
        ("+15550000429", 429, "rate_limited"),
    ],
)
def test_magic_destinations_fail_as_documented(
    start: Callable[..., FakeSmsProvider], to: str, status: int, code: str
) -> None:
    # Given a provider that would otherwise never fail
    provider = start(failure_rate=0.0)
    # When a message goes to a magic destination
    reply = send(provider, to)
    # Then it fails with that status and code, and nothing is sent
    assert reply.status == status
    assert reply.body["error"]["code"] == code
    assert provider.outbox() == []


def test_the_rate_limited_destination_says_when_to_retry(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider
    provider = start()
    # When a message goes to the 0429 destination
    reply = send(provider, "+15550000429")
    # Then the 429 carries Retry-After: 1
    assert reply.headers.get("retry-after") == "1"


def test_the_timeout_destination_hangs_then_hangs_up(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider that hangs 0.3 s
    provider = start()
    # When a message goes to the 0408 destination
    began = time.monotonic()
    reply = send(provider, "+15550000408")
    # Then the connection closes without an answer, after the hang
    assert reply.status is None
    assert time.monotonic() - began >= 0.3
    assert provider.outbox() == []


def test_the_undelivered_destination_is_accepted_despite_a_full_failure_rate(
    start: Callable[..., FakeSmsProvider], receiver_with: Callable[..., ReceiptReceiver]
) -> None:
    # Given a provider that fails every ordinary message and sends receipts
    receiver = receiver_with()
    provider = start(failure_rate=1.0, receipts_url=receiver.url, receipts_secret=SECRET)
    # When a message goes to the 0410 destination
    reply = send(provider, "+15550000410")
    # Then it is accepted and its receipt says undelivered
    assert reply.status == 202
    [(_, body)] = receiver.wait_for(1)
    assert json.loads(body)["status"] == "undelivered"
    assert provider.outbox()[0]["status"] == "undelivered"


def test_a_full_failure_rate_mixes_transient_and_permanent_faults(
    start: Callable[..., FakeSmsProvider],
) -> None:
    # Given a provider that always fails, hanging only briefly
    provider = start(failure_rate=1.0, hang_seconds=0.01, seed=42)
    # When 60 ordinary messages are sent
    statuses = Counter(send(provider, f"+1555123{n:04d}").status for n in range(60))
    # Then none is accepted, about a third fail permanently and every transient fault shows up
    assert sum(statuses.values()) == 60
    assert statuses[202] == 0
    assert 10 <= statuses[400] <= 30
    assert statuses[503] >= 1
    assert statuses[429] >= 1
    assert statuses[None] >= 1
    assert statuses[503] + statuses[429] + statuses[None] + statuses[400] == 60
    assert provider.outbox() == []


def test_a_zero_failure_rate_accepts_every_message(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider that never fails
    provider = start(failure_rate=0.0)
    # When 30 ordinary messages are sent
    statuses = {send(provider, f"+1555123{n:04d}").status for n in range(30)}
    # Then all are accepted
    assert statuses == {202}
    assert len(provider.outbox()) == 30


def test_an_accepted_message_gets_a_signed_delivered_receipt(
    start: Callable[..., FakeSmsProvider], receiver_with: Callable[..., ReceiptReceiver]
) -> None:
    # Given a provider that learns ChatFlow's receipts route once it is up
    receiver = receiver_with()
    provider = start()
    provider.configure_receipts(receiver.url, SECRET)
    # When a message is accepted
    body = {"to": "+15551230001", "toType": "phone", "text": "hi", "reference": "cmd_42"}
    sent = send(provider, key="cmd_42", body=body)
    # Then a receipt signed with the secret reports it delivered
    [(headers, raw)] = receiver.wait_for(1)
    expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-signature"], expected)
    assert headers["content-type"] == "application/json"
    receipt = json.loads(raw)
    assert receipt | {"timestamp": "any"} == {
        "id": sent.body["id"],
        "reference": "cmd_42",
        "status": "delivered",
        "timestamp": "any",
    }
    assert ISO_UTC_MS.match(receipt["timestamp"])
    assert wait_until(lambda: provider.outbox()[0]["status"] == "delivered")


def test_the_message_is_delivered_even_without_a_receipts_url(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider with nowhere to send receipts
    provider = start()
    # When a message is accepted
    send(provider)
    # Then it still moves from accepted to delivered in the outbox
    assert wait_until(lambda: provider.outbox()[0]["status"] == "delivered")


def test_a_receipt_is_retried_when_the_receiver_answers_500(
    start: Callable[..., FakeSmsProvider],
    receiver_with: Callable[..., ReceiptReceiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a receiver that fails the first receipt
    monkeypatch.setattr(fake_provider, "RECEIPT_RETRY_DELAYS", (0.01, 0.01, 0.01))
    receiver = receiver_with(500)
    provider = start(receipts_url=receiver.url, receipts_secret=SECRET)
    # When a message is accepted
    send(provider)
    # Then the same signed receipt is posted a second time
    calls = receiver.wait_for(2)
    assert len(calls) == 2
    assert calls[0] == calls[1]
    time.sleep(0.05)
    assert len(receiver.calls) == 2


def test_an_unreachable_receiver_is_retried_then_given_up(
    start: Callable[..., FakeSmsProvider], logs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a receipts URL where nothing listens
    monkeypatch.setattr(fake_provider, "RECEIPT_RETRY_DELAYS", (0.01, 0.01, 0.01))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    provider = start(receipts_url=f"http://127.0.0.1:{closed_port}/v1/sms/receipts", receipts_secret=SECRET)
    # When a message is accepted
    sent = send(provider)
    # Then the provider logs that it gave up after four attempts
    assert wait_until(lambda: any("gave up after 4 attempts" in line for line in logs))
    assert any(sent.body["id"] in line for line in logs if "gave up" in line)


def test_stop_cancels_receipts_not_yet_sent(
    start: Callable[..., FakeSmsProvider], receiver_with: Callable[..., ReceiptReceiver]
) -> None:
    # Given a message accepted with a slow receipt
    receiver = receiver_with()
    provider = start(receipt_delay_ms=200, receipts_url=receiver.url, receipts_secret=SECRET)
    send(provider)
    # When the provider stops before the receipt is due
    provider.stop()
    # Then no receipt is ever sent
    time.sleep(0.35)
    assert receiver.calls == []


def test_each_request_is_logged_on_one_line(start: Callable[..., FakeSmsProvider], logs: list[str]) -> None:
    # Given a provider
    provider = start()
    # When a message is accepted
    send(provider, "+15551230001")
    # Then one line says where it went, the answer, how long it took and the SMS itself
    assert wait_until(lambda: len(logs) == 1)
    assert re.fullmatch(r"provider POST /messages to=\+15551230001 -> 202 \(\d+ ms\): 'hi'", logs[0])


def test_health_answers_ok(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider
    provider = start()
    # When its health is checked
    reply = request(f"{provider.url}/health")
    # Then it is ok
    assert (reply.status, reply.body) == (200, {"status": "ok"})


def test_an_unknown_path_is_404(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider
    provider = start()
    # When an unknown path is requested
    reply = request(f"{provider.url}/v2/messages")
    # Then it is a JSON 404
    assert reply.status == 404
    assert reply.body["error"]["code"] == "not_found"


def test_a_wrong_method_is_405(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider
    provider = start()
    # When /messages is deleted
    reply = request(f"{provider.url}/messages", "DELETE")
    # Then it is a JSON 405 listing what is allowed
    assert reply.status == 405
    assert reply.body["error"]["code"] == "method_not_allowed"
    assert reply.body["error"]["message"] == "DELETE is not allowed on /messages"
    assert reply.headers.get("allow") == "GET, HEAD, POST"


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PUT", "PATCH", "OPTIONS", "PURGE", "X-ANYTHING"])
def test_any_other_method_on_messages_is_a_json_405(
    start: Callable[..., FakeSmsProvider], method: str
) -> None:
    # Given a provider
    provider = start()
    # When /messages is asked with a method it does not serve, standard or not
    reply = request(f"{provider.url}/messages", method, b"{}", {"Content-Type": "application/json"})
    # Then the provider answers its own JSON 405, naming the method and listing what is allowed
    assert reply.status == 405
    assert reply.headers["content-type"] == "application/json"
    assert reply.body == {
        "error": {"code": "method_not_allowed", "message": f"{method} is not allowed on /messages"}
    }
    assert reply.headers["allow"] == "GET, HEAD, POST"


def test_a_post_to_health_is_a_json_405(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider
    provider = start()
    # When its health route is POSTed to
    reply = request(f"{provider.url}/health", "POST", b"{}")
    # Then it is a JSON 405 allowing only reads
    assert (reply.status, reply.body["error"]["code"]) == (405, "method_not_allowed")
    assert reply.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "TRACE", "QUERY", "X-ANYTHING"])
@pytest.mark.parametrize("path", ["/", "/message", "/messages/pm_1", "/v1/sms/receipts", "/%0Aforged"])
def test_any_method_on_an_unknown_route_is_a_json_404(
    start: Callable[..., FakeSmsProvider], method: str, path: str
) -> None:
    # Given a provider
    provider = start()
    # When a route it does not have is asked, with any method
    reply = request(f"{provider.url}{path}", method, b"{}" if method != "GET" else None)
    # Then the provider answers its own JSON 404, not an HTML page of the server's
    assert reply.status == 404
    assert reply.headers["content-type"] == "application/json"
    assert reply.body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "request_line",
    [b"OPTIONS * HTTP/1.1", b"CONNECT sms.example:443 HTTP/1.1", b"GET http://sms.example/v2 HTTP/1.1"],
    ids=["asterisk form", "authority form", "absolute form"],
)
def test_unusual_request_targets_are_a_json_404(
    start: Callable[..., FakeSmsProvider], request_line: bytes
) -> None:
    # Given a provider
    provider = start()
    # When a request names its target in a form other than a path
    reply = raw_exchange(provider, request_line + b"\r\nHost: sms.example\r\nConnection: close\r\n\r\n")
    # Then it is the provider's JSON 404
    assert reply.status == 404
    assert reply.body["error"]["code"] == "not_found"


def test_head_on_messages_answers_the_headers_of_the_listing(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider with one message sent
    provider = start()
    send(provider)
    # When the outbox is asked with HEAD
    reply = raw_exchange(provider, b"HEAD /messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    # Then it is 200 with the listing's length and no body
    listing = json.dumps({"items": provider.outbox()}).encode()
    assert (reply.status, reply.body) == (200, None)
    assert reply.headers["content-length"] == str(len(listing))


def test_a_websocket_handshake_gets_a_json_404(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider, which has no WebSocket endpoint
    provider = start()
    # When a WebSocket client tries to open /messages
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{provider.port}/messages", open_timeout=3).close()
    # Then the handshake is refused with the provider's JSON 404
    response = refused.value.response
    assert response.status_code == 404
    assert json.loads(response.body or b"")["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "raw",
    [b"[" * 30_000 + b"]" * 30_000, b'{"to": "\xff\xfe", "toType": "phone"}', b"\x00"],
    ids=["nested 30,000 deep", "not UTF-8", "a NUL byte"],
)
def test_a_body_json_cannot_parse_is_the_providers_400(
    start: Callable[..., FakeSmsProvider], raw: bytes
) -> None:
    # Given a provider
    provider = start()
    # When the body is something JSON parsers choke on
    reply = send(provider, raw=raw)
    # Then it is the provider's 400, not a crash of its own
    assert reply.status == 400
    assert reply.body["error"] == {"code": "invalid_request", "message": "the body is not valid JSON"}
    assert provider.outbox() == []


def test_a_body_declared_over_64_kib_is_413_without_being_read(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider
    provider = start()
    # When a POST declares a body over the limit and sends none of it
    head = (
        b"POST /messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nIdempotency-Key: k\r\n"
        b"Content-Length: 65537\r\n\r\n"
    )
    reply = raw_exchange(provider, head)
    # Then it is refused at once as too large, and the connection is closed
    assert reply.status == 413
    assert reply.body["error"]["code"] == "payload_too_large"
    assert reply.headers["connection"] == "close"


def test_a_chunked_body_is_read_and_its_size_limited(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider, and a valid message and an oversized one sent in chunks (no Content-Length)
    provider = start()
    good = json.dumps({"to": "+15551230001", "toType": "phone", "text": "hi", "reference": "cmd_c"}).encode()
    big = json.dumps(
        {"to": "+15551230001", "toType": "phone", "text": "x" * 70_000, "reference": "r"}
    ).encode()
    headers = {"Authorization": "Bearer t", "Idempotency-Key": "cmd_c", "Transfer-Encoding": "chunked"}

    def chunks(body: bytes) -> Iterator[bytes]:
        return (body[i : i + 1000] for i in range(0, len(body), 1000))

    # When both are POSTed
    sent = request(f"{provider.url}/messages", "POST", chunks(good), headers)
    refused = request(f"{provider.url}/messages", "POST", chunks(big), headers | {"Idempotency-Key": "r"})
    # Then the first is accepted and the second refused as too large
    assert sent.status == 202
    assert refused.status == 413
    assert refused.body["error"]["code"] == "payload_too_large"
    assert len(provider.outbox()) == 1


def test_a_text_with_a_lone_surrogate_is_listed_escaped(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a message whose text has a lone surrogate (valid JSON, not encodable as UTF-8)
    provider = start()
    sent = send(
        provider, raw=b'{"to": "+15551230001", "toType": "phone", "text": "hi \\ud83d", "reference": "r"}'
    )
    # When the outbox is listed
    listed = request(f"{provider.url}/messages")
    # Then the listing is JSON with the text as it came
    assert sent.status == 202
    assert [item["text"] for item in listed.body["items"]] == ["hi \ud83d"]


def test_a_destination_with_a_newline_keeps_its_log_on_one_line(
    start: Callable[..., FakeSmsProvider], logs: list[str]
) -> None:
    # Given a provider
    provider = start()
    # When a message goes to a number written across two lines
    send(provider, "+1 555\n123 0001")
    # Then its log line shows the newline escaped
    assert wait_until(lambda: len(logs) == 1)
    assert "\n" not in logs[0]
    assert "to=+1 555\\n123 0001 -> 202" in logs[0]


def test_a_client_that_leaves_mid_body_is_logged_as_gone(
    start: Callable[..., FakeSmsProvider], logs: list[str]
) -> None:
    # Given a provider
    provider = start()
    # When a client announces a 100-byte body, sends 10 bytes and hangs up
    with socket.create_connection(("127.0.0.1", provider.port), timeout=3) as sock:
        sock.sendall(b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"{" * 10)
    # Then the provider logs that the client went away, and sends nothing
    assert wait_until(lambda: logs == ["provider POST /messages -> client went away"])
    assert provider.outbox() == []


def test_a_failure_of_the_providers_own_is_a_json_500(
    start: Callable[..., FakeSmsProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a provider whose outbox breaks
    provider = start()

    def broken(to: str | None = None) -> list[dict[str, Any]]:
        raise KeyError(to)

    monkeypatch.setattr(provider, "outbox", broken)
    # When the outbox is listed
    reply = request(f"{provider.url}/messages")
    # Then the answer is still the provider's JSON error shape
    assert reply.status == 500
    assert reply.body["error"]["code"] == "internal_error"


def test_delays_of_concurrent_sends_overlap(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider that waits 400 ms before each answer
    provider = start(min_delay_ms=400, max_delay_ms=400)
    # When eight messages are sent at the same time
    began = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda n: send(provider, f"+1555123{n:04d}").status, range(8)))
    # Then all are accepted in about one delay, not eight in a row
    assert statuses == [202] * 8
    assert time.monotonic() - began < 1.6


def test_a_hanging_request_does_not_hold_up_others(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider with a request hanging for 3 s
    provider = start(hang_seconds=3.0)
    with ThreadPoolExecutor(1) as pool:
        hanging = pool.submit(send, provider, "+15550000408")
        time.sleep(0.2)
        # When its health and outbox are asked meanwhile
        began = time.monotonic()
        health = request(f"{provider.url}/health")
        listed = request(f"{provider.url}/messages")
        took = time.monotonic() - began
        # Then they answer at once, and the hanging request ends unanswered
        assert (health.status, listed.status) == (200, 200)
        assert took < 1.0
        assert hanging.result().status is None


def test_stop_cuts_a_hanging_request_short(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a request hanging for 30 s
    provider = start(hang_seconds=30.0)
    with ThreadPoolExecutor(1) as pool:
        hanging = pool.submit(send, provider, "+15550000408")
        time.sleep(0.2)
        # When the provider stops
        began = time.monotonic()
        provider.stop()
        # Then it stops within seconds and the request ends unanswered
        assert time.monotonic() - began < 3.0
        assert hanging.result(timeout=3).status is None


def test_a_port_in_use_fails_at_start(start: Callable[..., FakeSmsProvider]) -> None:
    # Given a provider on a port
    provider = start()
    # When a second one is started on the same port
    second = FakeSmsProvider(FakeProviderSettings(**FAST), port=provider.port, log=lambda line: None)
    # Then starting it fails at once
    with pytest.raises(OSError):
        second.start()


def test_from_env_keeps_the_defaults_when_nothing_is_set() -> None:
    # Given an empty environment
    # When settings are read from it
    settings = FakeProviderSettings.from_env({})
    # Then they are the defaults
    assert settings == FakeProviderSettings()


def test_from_env_reads_every_variable() -> None:
    # Given every variable set
    environ = {
        "CHATFLOW_FAKE_FAILURE_RATE": "0.25",
        "CHATFLOW_FAKE_DELAY_MS": "5-20",
        "CHATFLOW_FAKE_HANG_SECONDS": "1.5",
        "CHATFLOW_FAKE_RECEIPT_DELAY_MS": "40",
    }
    # When settings are read
    settings = FakeProviderSettings.from_env(environ)
    # Then each is used
    assert (settings.failure_rate, settings.min_delay_ms, settings.max_delay_ms) == (0.25, 5, 20)
    assert (settings.hang_seconds, settings.receipt_delay_ms) == (1.5, 40)


def test_from_env_takes_a_single_delay_as_both_bounds() -> None:
    # Given a delay written as one number
    # When settings are read
    settings = FakeProviderSettings.from_env({"CHATFLOW_FAKE_DELAY_MS": "75"})
    # Then it is both the minimum and the maximum
    assert (settings.min_delay_ms, settings.max_delay_ms) == (75, 75)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHATFLOW_FAKE_FAILURE_RATE", "1.5"),
        ("CHATFLOW_FAKE_FAILURE_RATE", "-0.1"),
        ("CHATFLOW_FAKE_FAILURE_RATE", "often"),
        ("CHATFLOW_FAKE_DELAY_MS", "200-50"),
        ("CHATFLOW_FAKE_DELAY_MS", "fast"),
        ("CHATFLOW_FAKE_DELAY_MS", "-5"),
        ("CHATFLOW_FAKE_HANG_SECONDS", "inf"),
        ("CHATFLOW_FAKE_RECEIPT_DELAY_MS", "0.5"),
    ],
)
def test_from_env_rejects_a_bad_value_naming_the_variable(name: str, value: str) -> None:
    # Given a bad value
    # When settings are read
    # Then a ValueError names the variable and quotes the value
    with pytest.raises(ValueError, match=rf"^{name} must .*'{re.escape(value)}'"):
        FakeProviderSettings.from_env({name: value})


def test_settings_refuse_a_receipts_url_without_a_secret() -> None:
    # Given a receipts URL and no secret
    # When the settings are built
    # Then they are refused, since receipts could not be signed
    with pytest.raises(ValueError, match="receipts_secret"):
        FakeProviderSettings(receipts_url="http://127.0.0.1:3000/v1/sms/receipts")


# ---- POST /inbound: a handset texting ChatFlow -------------------------------------------------

ICCID = "8944500102198304826"


def text_in(provider: FakeSmsProvider, body: dict[str, Any] | None = None, raw: bytes | None = None) -> Reply:
    data = raw if raw is not None else json.dumps(body).encode()
    return request(f"{provider.url}/inbound", "POST", data, {"Content-Type": "application/json"})


@pytest.fixture
def chatflow_inbound() -> Iterator[Callable[..., ReceiptReceiver]]:
    receivers: list[ReceiptReceiver] = []

    def make(*answers: int, answer: dict[str, Any] | None = None) -> ReceiptReceiver:
        receivers.append(ReceiptReceiver(list(answers), path="/v1/sms/inbound", answer=answer))
        return receivers[-1]

    yield make
    for receiver in receivers:
        receiver.close()


def test_inbound_is_signed_and_delivered_to_chatflow_then_answered_202_with_its_answer(
    start: Callable[..., FakeSmsProvider], chatflow_inbound: Callable[..., ReceiptReceiver]
) -> None:
    # Given ChatFlow's inbound route
    chatflow = chatflow_inbound(answer={"action": "opted_out"})
    provider = start(inbound_url=chatflow.url, inbound_secret=SECRET)

    # When a handset texts STOP naming its SIM
    reply = text_in(provider, {"from": "+14155550101", "iccid": ICCID, "text": "STOP"})

    # Then ChatFlow got it once, signed over the raw body, with an id and a timestamp
    assert reply.status == 202, reply.body
    [(headers, body)] = chatflow.calls
    assert headers["x-signature"] == hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    delivered = json.loads(body)
    assert delivered | {"timestamp": "t"} == {
        "id": reply.body["id"],
        "from": "+14155550101",
        "iccid": ICCID,
        "text": "STOP",
        "timestamp": "t",
    }
    assert str(delivered["id"]).startswith("in_")
    assert ISO_UTC_MS.match(delivered["timestamp"])
    assert reply.body["chatflow"] == {"action": "opted_out"}


def test_inbound_is_logged_with_its_sender_and_text(
    start: Callable[..., FakeSmsProvider], chatflow_inbound: Callable[..., ReceiptReceiver], logs: list[str]
) -> None:
    chatflow = chatflow_inbound()
    provider = start(inbound_url=chatflow.url, inbound_secret=SECRET)

    text_in(provider, {"from": "+14155550101", "text": "STOP"})

    # (the line is written once the answer has gone)
    assert wait_until(
        lambda: any(
            line.startswith("provider POST /inbound -> 202 (") and line.endswith("'from +14155550101: STOP'")
            for line in logs
        )
    ), logs


def test_inbound_that_chatflow_refuses_is_a_502_carrying_chatflows_answer_and_not_retried(
    start: Callable[..., FakeSmsProvider], chatflow_inbound: Callable[..., ReceiptReceiver]
) -> None:
    refusal = {"error": {"code": "invalid_phone_number", "message": "'12' is not a valid phone number"}}
    chatflow = chatflow_inbound(400, answer=refusal)
    provider = start(inbound_url=chatflow.url, inbound_secret=SECRET)

    reply = text_in(provider, {"from": "12", "text": "STOP"})

    assert reply.status == 502
    assert reply.body["error"] | {"message": "m"} == {
        "code": "chatflow_refused",
        "message": "m",
        "chatflowStatus": 400,
        "chatflow": refusal,
    }
    assert len(chatflow.calls) == 1


def test_inbound_is_retried_with_the_same_id_when_chatflow_fails(
    start: Callable[..., FakeSmsProvider], chatflow_inbound: Callable[..., ReceiptReceiver]
) -> None:
    # Given ChatFlow answers 503 once
    chatflow = chatflow_inbound(503)
    provider = start(inbound_url=chatflow.url, inbound_secret=SECRET)

    reply = text_in(provider, {"from": "+14155550101", "text": "HELP"})

    # Then the webhook came twice, as one message (same id, same bytes), and the answer is 202
    assert reply.status == 202
    assert [json.loads(body)["id"] for _, body in chatflow.calls] == [reply.body["id"]] * 2
    assert chatflow.calls[0][1] == chatflow.calls[1][1]


def test_inbound_when_chatflow_is_unreachable_is_a_502_saying_so(
    start: Callable[..., FakeSmsProvider],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    provider = start(inbound_url=f"http://127.0.0.1:{closed_port}/v1/sms/inbound", inbound_secret=SECRET)

    reply = text_in(provider, {"from": "+14155550101", "text": "STOP"})

    assert (reply.status, reply.body["error"]["code"]) == (502, "chatflow_unreachable")


@pytest.mark.parametrize(
    ("body", "raw", "says"),
    [
        (None, b"{not json", "not valid JSON"),
        (["STOP"], None, "JSON object"),
        ({"text": "STOP"}, None, "'from'"),
        ({"from": "+14155550101"}, None, "'text'"),
        ({"from": "+14155550101", "text": ""}, None, "'text'"),
        ({"from": "+14155550101", "text": "STOP", "iccid": "8944"}, None, "'iccid'"),
        ({"from": "+14155550101", "text": "STOP", "iccid": 8944500102198304826}, None, "'iccid'"),
        ({"from": "+14155550101", "text": "STOP", "to": "+1"}, None, "unknown fields ['to']"),
    ],
)
def test_a_bad_inbound_body_is_a_400_saying_what_to_send_and_nothing_is_delivered(
    start: Callable[..., FakeSmsProvider],
    chatflow_inbound: Callable[..., ReceiptReceiver],
    body: Any,
    raw: bytes | None,
    says: str,
) -> None:
    chatflow = chatflow_inbound()
    provider = start(inbound_url=chatflow.url, inbound_secret=SECRET)

    reply = text_in(provider, body, raw)

    assert reply.status == 400
    assert reply.body["error"]["code"] == "invalid_request"
    assert says in reply.body["error"]["message"]
    assert chatflow.calls == []


def test_inbound_without_a_chatflow_to_deliver_to_says_so(start: Callable[..., FakeSmsProvider]) -> None:
    reply = text_in(start(), {"from": "+14155550101", "text": "STOP"})

    assert (reply.status, reply.body["error"]["code"]) == (503, "not_configured")


def test_configure_inbound_points_a_running_provider_at_chatflow(
    start: Callable[..., FakeSmsProvider], chatflow_inbound: Callable[..., ReceiptReceiver]
) -> None:
    chatflow = chatflow_inbound()
    provider = start()
    provider.configure_inbound(chatflow.url, SECRET)

    assert text_in(provider, {"from": "+14155550101", "text": "START"}).status == 202
    assert len(chatflow.calls) == 1


def test_settings_refuse_an_inbound_url_without_a_secret() -> None:
    with pytest.raises(ValueError, match="inbound_secret"):
        FakeProviderSettings(inbound_url="http://127.0.0.1:3000/v1/sms/inbound")


def test_an_outage_answers_every_send_503_until_it_ends_then_sends_again(
    start: Callable[..., FakeSmsProvider],
) -> None:
    # Given a provider that never fails, told over HTTP that it is down for half a second
    provider = start()
    down = request(
        f"{provider.url}/outage",
        "POST",
        json.dumps({"seconds": 0.5}).encode(),
        {"content-type": "application/json"},
    )
    assert down.status == 202

    # When a message is sent during the outage, and again after it
    during = send(provider, key="cmd_outage")
    assert wait_until(lambda: send(provider, key="cmd_outage").status == 202, timeout=3)

    # Then the first got 503 (transient for the gateway) and nothing was accepted until the end
    assert during.status == 503
    assert during.body["error"]["code"] == "unavailable"
    assert len(provider.outbox()) == 1


@pytest.mark.parametrize("body", [{}, {"seconds": -1}, {"seconds": 10_000}, {"seconds": 5, "status": 404}])
def test_a_bad_outage_request_is_refused_saying_what_to_send(
    start: Callable[..., FakeSmsProvider], body: dict[str, Any]
) -> None:
    provider = start()

    refused = request(
        f"{provider.url}/outage", "POST", json.dumps(body).encode(), {"content-type": "application/json"}
    )

    assert refused.status == 400
    assert "seconds" in refused.body["error"]["message"]
    assert send(provider).status == 202  # and no outage started
