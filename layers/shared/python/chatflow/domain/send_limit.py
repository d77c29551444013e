"""Per-user send limits (CONTRACT §7): a token bucket kept as one number per sender.

The bucket is the generic cell rate algorithm (GCRA): instead of a token count and a refill
time it stores the *theoretical arrival time* (TAT) of the sender's next send, in
microseconds since the epoch. A send at ``now`` moves it to ``max(TAT, now) + interval``
(``interval`` = 1 / rate); the send is refused while that would put it more than
``burst * interval`` ahead of ``now``. A sender idle long enough has a full bucket of
``burst`` sends; after that, one send per ``interval``. Nothing needs refilling, so the
stored state is one number and the check is arithmetic (docs/realtime.md, "Send limits").

The store writes the new TAT in the send's own transaction, on the condition that it is
still the one read (``RateSpend.previous``): two sends of one user that race both read
the same TAT, one commits and the other re-reads, so a burst can never be spent twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from chatflow.errors import RateLimited

MICROS = 1_000_000


@dataclass(frozen=True)
class RateSpend:
    """One send's move of its sender's TAT, written with the message: ``tat`` replaces
    ``previous`` (``None``: the sender has no stored TAT yet)."""

    sender: str
    previous: int | None
    tat: int


@dataclass(frozen=True)
class SendLimit:
    """``burst`` sends at once, then ``per_second`` sends a second, per user."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a send limit needs per_second > 0 and burst >= 1")

    @property
    def interval(self) -> int:
        """Microseconds between two sends at the steady rate."""
        return max(1, round(MICROS / self.per_second))

    def spend(self, sender: str, stored_tat: int | None, now: datetime) -> RateSpend:
        """The TAT after one more send at ``now``; ``RateLimited`` (with the whole seconds to
        wait, at least 1) when the sender's bucket is empty."""
        at = micros(now)
        tat = max(stored_tat or at, at) + self.interval
        ahead = tat - at - self.burst * self.interval
        if ahead > 0:
            wait = max(1, math.ceil(ahead / MICROS))
            raise RateLimited(
                f"You are sending too fast (at most {self.burst} messages at once, then "
                f"{self.per_second:g} a second): wait {wait} s and send again with the same clientMessageId.",
                retry_after_seconds=wait,
            )
        return RateSpend(sender=sender, previous=stored_tat, tat=tat)


def micros(at: datetime) -> int:
    """Microseconds since the epoch (``at`` is timezone-aware), exactly."""
    delta = at - datetime(1970, 1, 1, tzinfo=at.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds
