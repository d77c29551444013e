"""``make run``: the HTTP API on this machine, in one process, with AWS emulated by moto.

This is the first step of the local stack (issue 3): tables, secrets, functions and
routes all come from template.yaml; the chats-table stream is delivered to its
consumer every 50 ms. State lives in memory and is gone when the process stops.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from moto import mock_aws

from local.emulated_aws import use_emulated_aws
from local.stack import InProcessStack

STREAM_POLL_SECONDS = 0.05


def _handler_class(stack: InProcessStack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            started = time.perf_counter()
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("utf-8", errors="replace") if length else None
            if self.command == "OPTIONS":
                status, headers, payload = 204, {}, ""
            else:
                result = stack.http.request(
                    self.command, parts.path, query=parts.query, headers=dict(self.headers.items()), body=body
                )
                status, headers, payload = result.status, result.headers, result.body
            data = payload.encode("utf-8")
            self.send_response(status)
            for key, value in headers.items():
                if key not in ("content-length", "connection"):
                    self.send_header(key, value)
            self.send_header("access-control-allow-origin", "*")
            self.send_header("access-control-allow-headers", "authorization, content-type")
            self.send_header("access-control-allow-methods", "GET, POST, PATCH, DELETE, OPTIONS")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            elapsed = (time.perf_counter() - started) * 1000
            print(f"http {self.command} {parts.path} -> {status} ({elapsed:.0f} ms)", flush=True)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_OPTIONS = _serve

        def log_message(self, format: str, *args: object) -> None:
            return  # one line per request is printed by _serve

    return Handler


def _pump(stack: InProcessStack, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            stack.drain_streams()
        except Exception as exc:  # a failing consumer must not stop the stack
            print(f"stream delivery failed: {exc}", file=sys.stderr, flush=True)
        stop.wait(STREAM_POLL_SECONDS)


def main() -> None:
    use_emulated_aws()
    port = int(os.environ.get("CHATFLOW_HTTP_PORT", "3000"))
    operators = os.environ.get("CHATFLOW_OPERATORS", "")
    with mock_aws():
        stack = InProcessStack.create(parameters={"OperatorPhoneNumbers": operators, "AuthMode": "phone"})
        stop = threading.Event()
        pump = threading.Thread(target=_pump, args=(stack, stop), daemon=True)
        pump.start()
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(stack))
        outputs = {"HttpApiUrl": f"http://127.0.0.1:{port}"}
        print("ChatFlow is running (Ctrl-C stops it):", flush=True)
        print(json.dumps(outputs, indent=2), flush=True)
        print(f"  try: curl {outputs['HttpApiUrl']}/v1/health", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopping", flush=True)
        finally:
            stop.set()
            server.server_close()


if __name__ == "__main__":
    main()
