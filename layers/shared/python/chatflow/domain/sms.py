"""SMS rules and values: the command as the gateway handles it, segment counting, status transitions,
retry delays, STOP/START/HELP keywords, signatures."""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal


@dataclass(frozen=True)
class OutgoingSms:
    """A valid SendSms command, as the gateway handles it."""

    command_id: str
    to: str
    to_type: Literal["phone", "iccid"]
    text: str
    message_type: Literal["transactional", "promotional"] = "transactional"
    sender_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Not accepted by the provider by then: never sent, it ends as expired (CONTRACT §4a).
    valid_until: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a command for one attempt.

    ``claimed``: this invocation may call the provider (``attempts`` counts this one);
    ``final``: the command already ended (sent or failed), a duplicate;
    ``busy``: another invocation holds it until ``lease_until``.
    """

    state: Literal["claimed", "final", "busy"]
    attempts: int
    lease_until: datetime | None = None


@dataclass(frozen=True)
class SmsRequest:
    """One message for the provider. ``reference`` is the command id: the idempotency key."""

    to: str
    to_type: Literal["phone", "iccid"]
    text: str
    reference: str
    sender_id: str | None = None


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class Segments:
    """How a text travels: its encoding, the number of SMS parts, and its length in that encoding.

    ``units`` are septets for GSM-7 (an extension character counts 2) and UTF-16 code
    units for UCS-2 (a character outside the BMP, such as most emoji, counts 2).
    """

    encoding: Encoding
    count: int
    units: int


# GSM 03.38 basic character set, without 0x1B: that code is the escape to the extension
# table, not a character a message can contain.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Sent as escape + character: two septets each.
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

_GSM7_SINGLE_LIMIT = 160
_GSM7_PART_LIMIT = 153  # 160 minus the 7 septets of the concatenation header
_UCS2_SINGLE_LIMIT = 70
_UCS2_PART_LIMIT = 67  # 70 minus the 3 code units of the concatenation header


def segments(text: str) -> Segments:
    """Count the parts ``text`` is sent in, the way handsets and providers split it.

    A part never splits an escape + character pair (GSM-7) or a surrogate pair (UCS-2),
    so a long message can need more parts than ``ceil(units / per_part)``.
    """
    gsm_costs = _gsm7_costs(text)
    if gsm_costs is not None:
        return Segments(Encoding.GSM7, *_count(gsm_costs, _GSM7_SINGLE_LIMIT, _GSM7_PART_LIMIT))
    ucs2_costs = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return Segments(Encoding.UCS2, *_count(ucs2_costs, _UCS2_SINGLE_LIMIT, _UCS2_PART_LIMIT))


def _gsm7_costs(text: str) -> list[int] | None:
    """Septets per character, or ``None`` when a character has no GSM-7 encoding."""
    costs: list[int] = []
    for char in text:
        if char in _GSM7_BASIC:
            costs.append(1)
        elif char in _GSM7_EXTENSION:
            costs.append(2)
        else:
            return None
    return costs


def _count(costs: list[int], single_limit: int, part_limit: int) -> tuple[int, int]:
    """``(parts, units)`` for characters of the given costs."""
    units = sum(costs)
    if units <= single_limit:
        return 1, units
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part_limit:
            parts, used = parts + 1, 0
        used += cost
    return parts, units


class CommandStatus(StrEnum):
    RECEIVED = "received"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


_COMMAND_MOVES: dict[CommandStatus, frozenset[CommandStatus]] = {
    CommandStatus.RECEIVED: frozenset({CommandStatus.SENDING, CommandStatus.SENT, CommandStatus.FAILED}),
    # sending -> sending is the next attempt after a transient failure.
    CommandStatus.SENDING: frozenset({CommandStatus.SENDING, CommandStatus.SENT, CommandStatus.FAILED}),
    CommandStatus.SENT: frozenset(),
    CommandStatus.FAILED: frozenset(),
}


def can_move(old: CommandStatus | None, new: CommandStatus) -> bool:
    """Whether a command may go from ``old`` (``None``: no record yet) to ``new``: forward only."""
    if old is None:
        return True
    return new in _COMMAND_MOVES[old]


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


def delivery_can_move(old: DeliveryStatus | None, new: DeliveryStatus) -> bool:
    """Only the first receipt counts: a duplicate or a late, contradicting one changes nothing."""
    return old is None


# SQS's maximum visibility timeout: a retry cannot be scheduled further out than this.
_MAX_DELAY_SECONDS = 43_200


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a transient provider failure is retried.

    Delays grow exponentially up to ``cap_seconds`` with "equal jitter" (uniform between
    half and all of the exponential value), so retries of many commands that failed
    together spread out instead of hitting the provider again at the same moment.
    """

    max_attempts: int
    base_seconds: float = 2.0
    cap_seconds: float = 900.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError(f"max_attempts must be an integer, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not (math.isfinite(self.base_seconds) and self.base_seconds > 0):
            raise ValueError(f"base_seconds must be a positive number, got {self.base_seconds!r}")
        if not (math.isfinite(self.cap_seconds) and self.cap_seconds >= self.base_seconds):
            raise ValueError(
                f"cap_seconds must be a number no smaller than base_seconds ({self.base_seconds}), "
                f"got {self.cap_seconds!r}"
            )

    def exhausted(self, attempts: int) -> bool:
        """Whether ``attempts`` provider attempts used up the allowance."""
        return attempts >= self.max_attempts

    def delay_seconds(self, attempts: int, *, rng: random.Random, retry_after: float | None = None) -> int:
        """Whole seconds to wait before the next attempt, after ``attempts`` (>= 1) failed ones.

        At least ``retry_after`` when the provider asked for it, always within
        ``[1, 43200]`` (SQS's longest visibility timeout).
        """
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        try:
            ceiling = min(self.cap_seconds, math.ldexp(self.base_seconds, attempts - 1))
        except OverflowError:
            ceiling = self.cap_seconds
        delay = rng.uniform(ceiling / 2, ceiling)
        # NaN fails the comparison and is ignored, as is a hint that is not positive.
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        return max(1, math.ceil(min(delay, _MAX_DELAY_SECONDS)))


# CONTRACT §4a: the carriers' usual lists (CTIA).
OPT_OUT_KEYWORDS: frozenset[str] = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
OPT_IN_KEYWORDS: frozenset[str] = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS: frozenset[str] = frozenset({"HELP", "INFO"})
_KEYWORDS = OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS

KeywordKind = Literal["out", "in", "help"]


def _trailing_noise(character: str) -> bool:
    return character.isspace() or unicodedata.category(character).startswith("P")


def inbound_keyword(text: str) -> str | None:
    """The keyword (upper case) an inbound SMS is, or None when it is ordinary text.

    The whole message counts (CONTRACT §4a), in any case, with whitespace around it and
    punctuation after it ignored: ``" Stop. "`` and ``"STOP!"`` are STOP (a phone's
    auto-punctuation or an emphatic "!" does not make an opt-out ordinary text), while
    ``"stop please"``, ``"stopping"``, ``"OPT OUT"`` and ``".stop"`` are not keywords.
    """
    word = text.strip()
    while word and _trailing_noise(word[-1]):
        word = word[:-1]
    # Keywords are ASCII: this keeps Unicode case mappings out ("\u017ftop".upper() == "STOP").
    if not word.isascii():
        return None
    word = word.upper()
    return word if word in _KEYWORDS else None


def keyword_kind(keyword: str) -> KeywordKind:
    """What a keyword of ``inbound_keyword`` asks for: opt out, opt back in, or help."""
    if keyword in OPT_OUT_KEYWORDS:
        return "out"
    if keyword in OPT_IN_KEYWORDS:
        return "in"
    if keyword in HELP_KEYWORDS:
        return "help"
    raise ValueError(f"{keyword!r} is not an inbound SMS keyword")


def opt_keyword(text: str) -> KeywordKind | None:
    """``"out"`` / ``"in"`` / ``"help"`` when the inbound SMS is such a keyword, else None."""
    keyword = inbound_keyword(text)
    return None if keyword is None else keyword_kind(keyword)


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_SIGNATURE_LENGTH = hashlib.sha256().digest_size * 2


def sign(body: bytes, secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``body`` keyed with ``secret`` (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, secret: str, signature: str | None) -> bool:
    """Whether ``signature`` is ``sign(body, secret)``, hex in any case, compared in constant time."""
    if not signature or len(signature) != _SIGNATURE_LENGTH or not set(signature) <= _HEX_DIGITS:
        return False
    return hmac.compare_digest(signature.lower().encode("ascii"), sign(body, secret).encode("ascii"))
