"""AsgiServer: one ASGI app on one port, served by uvicorn on a thread."""

from __future__ import annotations

import http.client
import time
from typing import Any

import pytest

from local import asgi_server
from local.asgi_server import AsgiServer


async def two_part_response(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Headers and body in two messages, as starlette sends every response."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_small_responses_do_not_wait_for_a_delayed_ack() -> None:
    # Given a server whose app writes headers and body separately, and a keep-alive client
    with AsgiServer(two_part_response, name="test") as server:
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)

        # When the client makes 20 requests one after another
        started = time.perf_counter()
        for _ in range(20):
            client.request("GET", "/")
            assert client.getresponse().read() == b"ok"
        elapsed = time.perf_counter() - started
        client.close()

    # Then they take far less than the 20 x 40 ms that Nagle's algorithm and the client's
    # delayed ACK cost when TCP_NODELAY is not set on the server's sockets
    assert elapsed < 0.4


async def request_line(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the request's method and target, as the app saw them."""
    body = f"{scope['method']} {scope['raw_path'].decode()}".encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


def answer(client: http.client.HTTPConnection, method: str, target: str) -> tuple[int, bytes]:
    client.request(method, target)
    response = client.getresponse()
    return response.status, response.read()


def test_a_method_httptools_does_not_know_reaches_the_app() -> None:
    # Given a server and a client
    with AsgiServer(request_line, name="test") as server:
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)

        # When the client's first request has a method outside llhttp's list
        status, body = answer(client, "X-ANYTHING", "/p")
        client.close()

    # Then the app answers it (uvicorn's httptools protocol would answer 400 itself)
    assert (status, body) == (200, b"X-ANYTHING /p")


def test_a_kept_alive_connection_goes_on_after_a_request_httptools_refused() -> None:
    # Given a server and a keep-alive client that has made a request
    with AsgiServer(request_line, name="test") as server:
        client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        first = answer(client, "GET", "/a")
        connection = client.sock

        # When it then sends a request httptools refuses, then ordinary ones, on that connection
        refused = answer(client, "X-ANYTHING", "/b")
        after = [answer(client, "POST", "/c"), answer(client, "GET", "/d")]
        still_the_same = client.sock is connection
        client.close()

    # Then the app answers each one, on the one connection
    assert first == (200, b"GET /a")
    assert refused == (200, b"X-ANYTHING /b")
    assert after == [(200, b"POST /c"), (200, b"GET /d")]
    assert still_the_same


def test_port_zero_gives_a_free_port_known_before_start() -> None:
    server = AsgiServer(two_part_response, name="test")
    try:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def test_stop_does_not_wait_for_uvicorns_next_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a running server whose ticks are 30 s apart (uvicorn reads its stop flag once a tick)
    monkeypatch.setattr(asgi_server, "_TICK_SECONDS", 30.0)
    server = AsgiServer(two_part_response, name="test")
    port = server.port
    server.start()
    time.sleep(0.2)  # well into the first tick's wait

    # When it is stopped
    started = time.monotonic()
    server.stop()

    # Then it stops long before the tick would have ended, and no longer accepts connections
    assert time.monotonic() - started < 10.0
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()


def test_a_server_stopped_as_soon_as_it_started_stops() -> None:
    # Given servers told to stop as soon as they started (the wake-up may come before the loop waits)
    for _ in range(5):
        server = AsgiServer(two_part_response, name="test")
        port = server.port
        server.start()

        # When each is stopped, Then the stop returns and the port refuses connections
        server.stop()
        with pytest.raises(ConnectionRefusedError):
            http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
