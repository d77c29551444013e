"""HTTP with urllib3: JSON requests, streamed uploads, and contract errors as ``ApiError``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError, ReadTimeoutError

from chatflow_cli.errors import ApiError, CliError, FieldError, Unreachable

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
# How much of a body that is not a contract error is quoted in the message.
SNIPPET_CHARS = 200


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    data: bytes

    def json(self) -> Any:
        if not self.data:
            return None
        try:
            return json.loads(self.data)
        except ValueError as exc:
            raise CliError(f"the answer is not JSON: {_snippet(self.data)}") from exc


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what "cannot reach" names."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _snippet(data: bytes) -> str:
    text = " ".join(data.decode("utf-8", "replace").split())
    return text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else "")


class Http:
    """One connection pool; ``hint`` says what to check when a host cannot be reached."""

    def __init__(self, hint: str, pool: urllib3.PoolManager | None = None) -> None:
        self.hint = hint
        self._pool = pool or urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | IO[bytes] | None = None,
    ) -> Response:
        sent = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        try:
            response = self._pool.request(method, url, body=body, headers=sent, redirect=False)
        except ReadTimeoutError as exc:
            raise CliError(f"{origin(url)} did not answer within {READ_TIMEOUT_SECONDS:g} s") from exc
        except HTTPError as exc:
            raise Unreachable(origin(url), self.hint) from exc
        return Response(response.status, dict(response.headers.items()), response.data)

    def api(self, method: str, url: str, **kwargs: Any) -> Any:
        """The parsed JSON answer of a 2xx, or the contract error as ``ApiError``."""
        response = self.request(method, url, **kwargs)
        if response.status >= 300:
            raise api_error(response)
        return response.json()


def api_error(response: Response) -> ApiError:
    """The contract error in ``response``, or a stand-in when the body is something else."""
    try:
        error = json.loads(response.data)["error"]
        code, message = str(error["code"]), str(error["message"])
        details = tuple(
            FieldError(str(entry.get("field", "")), str(entry.get("message", "")))
            for entry in error.get("details") or []
            if isinstance(entry, dict)
        )
    except (ValueError, KeyError, TypeError):
        code = f"http_{response.status}"
        message = _snippet(response.data) or "no details in the answer"
        details = ()
    retry_after = {k.lower(): v for k, v in response.headers.items()}.get("retry-after")
    if response.status == 429 and retry_after:
        message = f"{message} (retry after {retry_after} s)"
    return ApiError(response.status, code, message, details)


_S3_CODE = re.compile(r"<Code>(.*?)</Code>", re.DOTALL)
_S3_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)


def s3_error(response: Response) -> CliError:
    """An S3 XML error (``<Error><Code>…</Code><Message>…</Message>``) as a one-line ``CliError``."""
    text = response.data.decode("utf-8", "replace")
    code, message = _S3_CODE.search(text), _S3_MESSAGE.search(text)
    if code:
        reason = f"{code.group(1)}: {message.group(1) if message else ''}".rstrip(": ")
    else:
        reason = _snippet(response.data) or "no details in the answer"
    return CliError(f"uploading the file failed ({response.status}): {reason}")
