"""The SMS provider's HTTP API (CONTRACT §4) as an ``SmsProvider``, over a pooled urllib3 client."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError, LocationValueError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from chatflow.domain.sms import SmsRequest
from chatflow.errors import PermanentProviderError, TransientProviderError

# One pool per execution environment: warm invocations reuse the provider's TLS connections.
# No retries here: the gateway owns retrying, with backoff, through the queue.
_POOL = urllib3.PoolManager(num_pools=4, maxsize=32, retries=False)
# Provider error messages end up in command records and events: keep them short.
_MAX_REASON_CHARS = 200


class HttpSmsProvider:
    """``POST {base_url}/messages`` with a bearer key; maps each answer to an id or a provider error.

    ``api_key`` may be a callable (read from Secrets Manager on first use); it is called once and
    called again after the provider answers 401, so a rotated key is picked up.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | Callable[[], str],
        *,
        timeout_seconds: float = 5.0,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        if not (math.isfinite(timeout_seconds) and timeout_seconds > 0):
            raise ValueError(f"timeout_seconds must be a finite number > 0, got {timeout_seconds}")
        self._url = f"{base_url.rstrip('/')}/messages"
        if isinstance(api_key, str):
            fixed = api_key
            self._read_key: Callable[[], str] = lambda: fixed
        else:
            self._read_key = api_key
        self._key: str | None = None
        self._key_lock = threading.Lock()
        self._timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        self._pool = pool if pool is not None else _POOL

    def __repr__(self) -> str:
        return f"HttpSmsProvider({self._url!r})"

    def send(self, request: SmsRequest) -> str:
        body: dict[str, str] = {"to": request.to, "toType": request.to_type, "text": request.text}
        if request.sender_id:
            body["from"] = request.sender_id
        body["reference"] = request.reference
        headers = {
            "Authorization": f"Bearer {self._api_key()}",
            "Idempotency-Key": request.reference,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        try:
            response = self._pool.request(
                "POST",
                self._url,
                body=json.dumps(body, separators=(",", ":")).encode("utf-8"),
                headers=headers,
                timeout=self._timeout,
                redirect=False,
            )
        except LocationValueError:
            raise  # a malformed base URL is our configuration's fault, not the provider's
        except NewConnectionError as exc:
            # Checked before TimeoutError: urllib3 makes it a ConnectTimeoutError subclass.
            raise TransientProviderError(
                f"cannot connect to the SMS provider: {exc}", code="provider_unreachable"
            ) from exc
        except Urllib3Timeout as exc:
            raise TransientProviderError(
                f"the SMS provider did not answer in time: {exc}", code="provider_timeout"
            ) from exc
        except HTTPError as exc:
            raise TransientProviderError(
                f"the connection to the SMS provider failed: {exc}", code="provider_unreachable"
            ) from exc
        return self._outcome(response.status, response.data, response.headers)

    def _api_key(self) -> str:
        with self._key_lock:
            if self._key is None:
                self._key = self._read_key()
            return self._key

    def _forget_key(self) -> None:
        with self._key_lock:
            self._key = None

    def _outcome(self, status: int, data: bytes, headers: Mapping[str, str]) -> str:
        payload = _json_or_none(data)
        if 200 <= status < 300:
            message_id = payload.get("id") if isinstance(payload, dict) else None
            if isinstance(message_id, str) and message_id:
                return message_id
            raise TransientProviderError(
                f"the SMS provider answered {status} without a message id, so the message's "
                "provider id cannot be known; it may have been sent",
                code="provider_invalid_response",
            )
        code, reason = _provider_error(payload)
        code = code or f"provider_{status}"
        described = f"the SMS provider answered {status} ({code})" + (f": {reason}" if reason else "")
        if status == 429 or status >= 500:
            raise TransientProviderError(described, code=code, retry_after=_retry_after(headers))
        if status == 401:
            self._forget_key()
        raise PermanentProviderError(described, code=code)


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _provider_error(payload: Any) -> tuple[str | None, str | None]:
    """The ``error.code`` and ``error.message`` of the documented error body, where present."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (
        code[:_MAX_REASON_CHARS] if isinstance(code, str) and code else None,
        message[:_MAX_REASON_CHARS] if isinstance(message, str) and message else None,
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds: a number of seconds, or an HTTP date from now."""
    raw = (headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
