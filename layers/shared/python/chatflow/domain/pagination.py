"""Pages of results and signed, opaque cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chatflow.errors import InvalidCursor

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

Position = dict[str, Any]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of items; ``next_position`` is where the next page starts (``None``: last page)."""

    items: list[T]
    next_position: Position | None = None


class CursorCodec:
    """Turns a storage position into an opaque, signed cursor and back.

    The signature covers the position and a *scope* (who asked, for which list), so a
    cursor that was edited, or that belongs to another user or another list, is rejected
    with ``invalid_cursor`` instead of leaking or skipping data.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the cursor signing secret must be at least 16 bytes")
        self._secret = secret

    def encode(self, scope: str, position: Position | None) -> str | None:
        if position is None:
            return None
        payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
        body = _b64(payload)
        return f"{body}.{self._sign(scope, body)}"

    def decode(self, scope: str, cursor: str | None) -> Position | None:
        if cursor is None:
            return None
        body, _, signature = cursor.partition(".")
        expected = self._sign(scope, body).encode()
        if not body or not signature or not hmac.compare_digest(signature.encode(), expected):
            raise _invalid()
        try:
            position = json.loads(_unb64(body))
        except (ValueError, binascii.Error) as exc:
            raise _invalid() from exc
        if not isinstance(position, dict):
            raise _invalid()
        return position

    def _sign(self, scope: str, body: str) -> str:
        mac = hmac.new(self._secret, f"{scope}\n{body}".encode(), hashlib.sha256).digest()
        return _b64(mac[:20])


def _invalid() -> InvalidCursor:
    return InvalidCursor(
        "The cursor is not valid for this list: use the nextCursor value exactly as returned, "
        "or omit it to start from the first page."
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
