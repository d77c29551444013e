"""The HTTP side of API Gateway on a local port, plus the web client's files at ``/``.

CORS follows the HTTP API's ``CorsConfiguration``: preflight requests are answered
here, as API Gateway answers them, and responses carry the allowed origin.
"""

from __future__ import annotations

import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from local.apigw import HttpApi, HttpResult

_MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


class HttpFrontend:
    def __init__(
        self,
        api: HttpApi,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cors: dict[str, Any] | None = None,
        static_dir: Path | None = None,
    ) -> None:
        self.api = api
        self.cors = cors
        self.static_dir = static_dir.resolve() if static_dir else None
        self._host = host
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def cors_headers(self, origin: str | None, preflight: bool) -> dict[str, str]:
        if not self.cors or not origin:
            return {}
        origins = [str(o) for o in self.cors.get("allowOrigins") or []]
        if "*" not in origins and origin not in origins:
            return {}
        headers = {"access-control-allow-origin": "*" if "*" in origins else origin}
        if self.cors.get("allowCredentials"):
            headers["access-control-allow-credentials"] = "true"
        if self.cors.get("exposeHeaders"):
            headers["access-control-expose-headers"] = ",".join(self.cors["exposeHeaders"])
        if preflight:
            headers["access-control-allow-methods"] = ",".join(self.cors.get("allowMethods") or ["*"])
            headers["access-control-allow-headers"] = ",".join(self.cors.get("allowHeaders") or ["*"])
            if self.cors.get("maxAge") is not None:
                headers["access-control-max-age"] = str(self.cors["maxAge"])
        return headers

    def static_file(self, path: str) -> Path | None:
        if self.static_dir is None:
            return None
        relative = unquote(path).lstrip("/") or "index.html"
        candidate = (self.static_dir / relative).resolve()
        if not candidate.is_relative_to(self.static_dir) or not candidate.is_file():
            return None
        return candidate


def _handler(frontend: HttpFrontend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ChatFlowLocal"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            origin = self.headers.get("origin")
            length = int(self.headers.get("content-length") or 0)
            if length > _MAX_BODY:
                self._send(
                    HttpResult(
                        413, {"content-type": "application/json"}, '{"message":"Request Entity Too Large"}'
                    )
                )
                return
            body = self.rfile.read(length).decode("utf-8", errors="replace") if length else None
            preflight = self.command == "OPTIONS" and self.headers.get("access-control-request-method")
            if preflight and frontend.cors:
                self._send(HttpResult(204, {}, ""), frontend.cors_headers(origin, preflight=True))
                return
            static = frontend.static_file(parts.path) if self.command in ("GET", "HEAD") else None
            if static is not None and frontend.api.match(self.command, parts.path) is None:
                content_type = mimetypes.guess_type(static.name)[0] or "application/octet-stream"
                self._send(HttpResult(200, {"content-type": content_type}, ""), raw=static.read_bytes())
                return
            result = frontend.api.request(
                self.command,
                parts.path,
                query=parts.query,
                headers=dict(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
            )
            self._send(result, frontend.cors_headers(origin, preflight=False))

        def _send(
            self, result: HttpResult, extra: dict[str, str] | None = None, raw: bytes | None = None
        ) -> None:
            data = raw if raw is not None else result.raw
            self.send_response(result.status)
            for key, value in (result.headers | (extra or {})).items():
                if key not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            for cookie in result.cookies:
                self.send_header("set-cookie", cookie)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_OPTIONS = do_HEAD = _serve

        def log_message(self, format: str, *args: object) -> None:
            return  # each invocation is logged by the function runner

    return Handler
