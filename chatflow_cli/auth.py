"""Signing in as the operator (CONTRACT §1) and the token cache.

Tokens are cached in ``<state dir>/cli-tokens.json``, per API URL and phone number,
and reused until the API answers 401 (or they expire); then the CLI signs in again.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from chatflow_cli.errors import ApiError, CliError
from chatflow_cli.transport import Http

TOKENS_FILE = "cli-tokens.json"
# The code travels through the SMS gateway, whose sends are retried with growing delays.
OUTBOX_WAIT_SECONDS = 15.0
OUTBOX_POLL_SECONDS = 0.25
_CODE = re.compile(r"\b(\d{6})\b")


@dataclass(frozen=True)
class Token:
    token: str
    expires_at: str | None = None

    def expired(self, now: datetime) -> bool:
        if not self.expires_at:
            return False
        try:
            return datetime.fromisoformat(self.expires_at) <= now
        except ValueError:
            return False


class TokenCache:
    """``{api_url: {phone: {"token", "expiresAt"}}}`` in a file only its owner can read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, api_url: str, phone: str) -> Token | None:
        entry = self._read().get(_api_key(api_url), {}).get(phone)
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            return None
        token = Token(entry["token"], entry.get("expiresAt"))
        return None if token.expired(datetime.now(UTC)) else token

    def put(self, api_url: str, phone: str, token: Token) -> None:
        data = self._read()
        data.setdefault(_api_key(api_url), {})[phone] = {"token": token.token, "expiresAt": token.expires_at}
        self._write(data)

    def drop(self, api_url: str, phone: str) -> None:
        data = self._read()
        if data.get(_api_key(api_url), {}).pop(phone, None) is not None:
            self._write(data)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # only a cache: a missing or damaged file means signing in again
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2)
            file.write("\n")
        os.replace(temporary, self.path)


def _api_key(api_url: str) -> str:
    return api_url.rstrip("/")


class CodeSource(Protocol):
    """Where the sign-in code comes from."""

    def prepare(self) -> None:
        """Called before the code is requested (to tell a new code from older ones)."""

    def code(self) -> str: ...


class OutboxCode:
    """The local stack: the newest code in the fake provider's outbox (``GET /messages?to=``)."""

    def __init__(
        self,
        http: Http,
        provider_url: str,
        phone: str,
        wait_seconds: float = OUTBOX_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._url = f"{provider_url.rstrip('/')}/messages?to={quote(phone, safe='')}"
        self._phone = phone
        self._wait = wait_seconds
        self._sleep = sleep
        self._seen: set[str] = set()

    def _messages(self) -> list[dict[str, Any]]:
        body = self._http.api("GET", self._url)
        items = body.get("items") if isinstance(body, dict) else None
        return [m for m in items or [] if isinstance(m, dict)]

    def prepare(self) -> None:
        self._seen = {str(m.get("id")) for m in self._messages()}

    def code(self) -> str:
        deadline = time.monotonic() + self._wait
        while True:
            for message in reversed(self._messages()):
                match = _CODE.search(str(message.get("text", "")))
                if str(message.get("id")) not in self._seen and match:
                    return match.group(1)
            if time.monotonic() >= deadline:
                raise CliError(
                    f"no sign-in code for {self._phone} reached the fake SMS provider within "
                    f"{self._wait:g} s: check the `make run` log"
                )
            self._sleep(OUTBOX_POLL_SECONDS)


class PromptCode:
    """A deployed stack: the operator types the code the SMS brought."""

    def __init__(self, phone: str, prompt: Callable[[str], str]) -> None:
        self._phone = phone
        self._prompt = prompt

    def prepare(self) -> None:
        return None

    def code(self) -> str:
        return self._prompt(f"Code sent by SMS to {self._phone}").strip()


def sign_in(http: Http, api_url: str, phone: str, codes: CodeSource) -> Token:
    """A new session for ``phone``: a code by SMS (``otp`` mode), or none (``phone`` mode)."""
    base = api_url.rstrip("/")
    codes.prepare()
    body: dict[str, str] = {"phoneNumber": phone}
    try:
        http.api("POST", f"{base}/v1/verifications", json_body=body)
    except ApiError as exc:
        if exc.code == "rate_limited":
            raise ApiError(exc.status, exc.code, f"{exc.reason}; {_ways_out(codes)}", exc.details) from None
        if exc.code != "code_not_required":
            raise
    else:
        body["code"] = codes.code()
    session = http.api("POST", f"{base}/v1/sessions", json_body=body)
    if not isinstance(session, dict) or not isinstance(session.get("token"), str):
        raise CliError("signing in failed: the API answered without a token")
    expires_at = session.get("expiresAt")
    return Token(session["token"], expires_at if isinstance(expires_at, str) else None)


def _ways_out(codes: CodeSource) -> str:
    """What to do when the number had its codes for the hour (5, ``CODES_PER_HOUR`` of the API)."""
    another = "or sign in as another number (--as, or CHATFLOW_PHONE)"
    if isinstance(codes, OutboxCode):  # the local stack, whose state and settings are the user's
        return (
            "on the local stack, `make run ARGS=--fresh` starts clean (forgetting the codes sent, and "
            f"everything else), `CHATFLOW_AUTH_MODE=phone make run` signs in without codes, {another}"
        )
    return f"wait, {another}"
