"""Sessions: random bearer tokens, stored only as their SHA-256 hash, that expire."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

TOKEN_BYTES = 32


@dataclass(frozen=True)
class Session:
    token_hash: str
    phone_number: str
    user_id: str
    created_at: datetime
    expires_at: datetime

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True)
class IssuedSession:
    """A new session and its token: the token exists only here, never in storage."""

    token: str
    session: Session


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_session(phone_number: str, user_id: str, now: datetime, ttl: timedelta) -> IssuedSession:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session = Session(
        token_hash=hash_token(token),
        phone_number=phone_number,
        user_id=user_id,
        created_at=now,
        expires_at=now + ttl,
    )
    return IssuedSession(token=token, session=session)


def bearer_token(header_value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
