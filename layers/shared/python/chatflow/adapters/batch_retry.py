"""One retry policy for AWS batch calls whose entries fail one by one.

SQS ``SendMessageBatch`` (``Failed``), DynamoDB ``BatchGetItem`` / ``BatchWriteItem``
(``UnprocessedKeys`` / ``UnprocessedItems``) and EventBridge ``PutEvents``
(``FailedEntryCount``) answer a successful call that left some entries undone; botocore
retries failed calls, never these entries. ``BatchRetry.run`` sends what is pending, then
only what the answer left undone, with exponential backoff and full jitter between rounds,
for a bounded number of rounds; then it raises (``Throttled`` unless the caller says
otherwise). Why a loop of our own and not tenacity: docs/architecture.md, "Retries of AWS
batch calls".
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sized
from dataclasses import dataclass, field
from typing import TypeVar

from chatflow.errors import Throttled

Pending = TypeVar("Pending", bound=Sized)


def full_jitter(delay: float) -> float:
    """A random wait between 0 and ``delay`` (AWS's "full jitter")."""
    return random.uniform(0, delay)  # noqa: S311 - spreading retries, not a secret


@dataclass(frozen=True)
class BatchRetry:
    """At most ``rounds`` calls; before round n (n >= 2) a wait of
    ``jitter(min(max_delay, first_delay * 2 ** (n - 2)))`` seconds."""

    rounds: int = 5
    first_delay: float = 0.05
    max_delay: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    jitter: Callable[[float], float] = field(default=full_jitter, repr=False)

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")

    def run(
        self,
        pending: Pending,
        send: Callable[[Pending], Pending],
        *,
        what: str,
        give_up: Callable[[Pending], Exception] | None = None,
    ) -> None:
        """Call ``send`` on ``pending``, then on what each call left undone, until nothing is.

        ``what`` names the entries in the error (``"SendSms commands"``); ``give_up`` makes
        the error from what is still pending after the last round (default ``Throttled``)."""
        for round_ in range(self.rounds):
            if round_:
                self.sleep(self.jitter(min(self.max_delay, self.first_delay * 2 ** (round_ - 1))))
            pending = send(pending)
            if not len(pending):
                return
        if give_up is not None:
            raise give_up(pending)
        raise Throttled(f"{len(pending)} {what} not taken after {self.rounds} attempts: retry in a moment.")
