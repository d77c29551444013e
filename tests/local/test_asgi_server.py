"""AsgiServer: one ASGI app on one port, served by uvicorn on a thread."""

from __future__ import annotations

import http.client
import time
from typing import Any

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


def test_port_zero_gives_a_free_port_known_before_start() -> None:
    server = AsgiServer(two_part_response, name="test")
    try:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
