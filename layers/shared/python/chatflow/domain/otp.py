"""Sign-in codes sent by SMS (``AuthMode=otp``): making, hashing and checking them.

Only a hash of a code is stored: HMAC-SHA256 keyed by the phone number. With a
million possible codes the hash cannot hide a code from whoever reads the table; what
protects a code is that it expires after ``CODE_TTL`` and is burned after
``MAX_TRIES`` wrong tries (and a number gets at most ``CODES_PER_HOUR`` codes).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from chatflow.errors import Conflict, FieldProblem, NotAuthenticated, ValidationFailed

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=5)
MAX_TRIES = 5
CODES_PER_HOUR = 5
RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Verification:
    """A sign-in code waiting to be used: only its hash is kept."""

    phone_number: str
    code_hash: str
    expires_at: datetime
    failed_tries: int = 0


class InvalidCode(NotAuthenticated):
    """No code is pending for the number, it expired, was used or burned, or it is wrong."""

    code = "invalid_code"


class CodeNotRequired(Conflict):
    """``AuthMode=phone``: the number alone signs in, so no code is ever sent."""

    code = "code_not_required"


class RandomSource(Protocol):
    """What ``generate_code`` needs of its randomness: the ``secrets`` module fits."""

    def randbelow(self, exclusive_upper_bound: int, /) -> int: ...


def generate_code(rng: RandomSource = secrets) -> str:
    """A uniformly random 6-digit code; leading zeros are kept (``"004217"``)."""
    return f"{rng.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def hash_code(phone_number: str, code: str) -> str:
    """The stored form of ``code``: hex HMAC-SHA256 of the code, keyed by the E.164 number."""
    return hmac.new(phone_number.encode("utf-8"), code.encode("utf-8"), hashlib.sha256).hexdigest()


def code_matches(verification: Verification, code: str) -> bool:
    """Whether ``code`` is the pending one, compared in constant time."""
    return hmac.compare_digest(verification.code_hash, hash_code(verification.phone_number, code))


def normalize_code(raw: str | None) -> str:
    """The 6 digits of a typed code (spaces and dashes dropped), or ``ValidationFailed``.

    A malformed code is a typing mistake, answered 400 without counting a try.
    """
    text = "".join(ch for ch in (raw or "") if ch not in " -\t")
    if not text:
        raise ValidationFailed(
            "Send the code from the SMS: POST /v1/verifications sends one.",
            details=(FieldProblem("code", "is required: the 6 digits sent by SMS"),),
        )
    if len(text) != CODE_DIGITS or not text.isascii() or not text.isdigit():
        raise ValidationFailed(
            "The code is the 6 digits sent by SMS.",
            details=(FieldProblem("code", "must be exactly 6 digits"),),
        )
    return text


def sms_text(code: str) -> str:
    """The SMS that carries ``code``: plain GSM-7, one segment (at most 160 characters)."""
    minutes = int(CODE_TTL.total_seconds() // 60)
    return f"Your ChatFlow code is {code}. It expires in {minutes} minutes. Do not share it."


def sends_in_window(sent_at: Iterable[datetime], now: datetime) -> list[datetime]:
    """The codes sent to a number during the hour before ``now``, oldest first."""
    return sorted(moment for moment in sent_at if moment > now - RATE_WINDOW)


def seconds_until_allowed(recent: Sequence[datetime], now: datetime, per_hour: int) -> int:
    """0 if another code may go out now, else whole seconds until one of ``recent``
    (oldest first, all within the hour) leaves the window."""
    excess = len(recent) - per_hour
    if excess < 0:
        return 0
    frees_at = recent[excess] + RATE_WINDOW
    return max(1, math.ceil((frees_at - now).total_seconds()))
