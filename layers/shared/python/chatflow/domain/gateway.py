"""The SMS gateway's use case: one SendSms command, one attempt, and what happens next.

Each attempt claims the command's record first (a lease, so two deliveries of the same
message never call the provider at once, and an ended command is never sent again),
checks the opt-out list for promotional messages, takes a slot of the provider-wide
rate, calls the provider, and records the outcome. The record's changes are the
transactional outbox: ``SmsSent`` / ``SmsFailed`` are published from them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from chatflow.domain.clock import Clock
from chatflow.domain.sms import RetryPolicy, segments
from chatflow.errors import PermanentProviderError, TransientProviderError
from chatflow.ports import (
    OptOutRepository,
    OutgoingSms,
    RateLimiter,
    SmsCommandRepository,
    SmsProvider,
    SmsRequest,
)

# Longer than any provider call (its timeout) plus the bookkeeping around it.
DEFAULT_LEASE = timedelta(seconds=60)
# How long an attempt may wait for a slot of the provider-wide rate before giving the
# message back to the queue instead.
MAX_RATE_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class Outcome:
    """``sent`` / ``failed``: the command ended. ``retry``: try again in ``delay_seconds``.
    ``duplicate``: it had already ended; nothing was sent."""

    kind: Literal["sent", "failed", "retry", "duplicate"]
    delay_seconds: int = 0
    detail: str = ""


class SmsGateway:
    def __init__(
        self,
        *,
        provider: SmsProvider,
        commands: SmsCommandRepository,
        opt_outs: OptOutRepository,
        rate: RateLimiter,
        policy: RetryPolicy,
        clock: Clock,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._provider = provider
        self._commands = commands
        self._opt_outs = opt_outs
        self._rate = rate
        self._policy = policy
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self._sleep = sleep
        self._lease = lease

    def handle(self, sms: OutgoingSms) -> Outcome:
        now = self._clock()
        claim = self._commands.claim(sms, now=now, lease_until=now + self._lease)
        if claim.state == "final":
            return Outcome("duplicate", detail="the command already ended")
        if claim.state == "busy":
            wait = (claim.lease_until - now).total_seconds() if claim.lease_until else 1.0
            return Outcome("retry", max(1, int(wait) + 1), "another attempt is in flight")
        if (
            sms.message_type == "promotional"
            and sms.to_type == "phone"
            and self._opt_outs.is_opted_out(sms.to)
        ):
            return self._fail(sms, "opted_out", "the number opted out (STOP) of promotional messages", True)
        if not self._take_rate_slot():
            self._commands.release(
                sms.command_id, error_code="rate_limited", reason="provider-wide rate reached"
            )
            return Outcome("retry", 1, "provider-wide rate reached")
        request = SmsRequest(
            to=sms.to, to_type=sms.to_type, text=sms.text, reference=sms.command_id, sender_id=sms.sender_id
        )
        try:
            provider_id = self._provider.send(request)
        except PermanentProviderError as exc:
            return self._fail(sms, exc.code, str(exc), True)
        except TransientProviderError as exc:
            if self._policy.exhausted(claim.attempts):
                reason = f"{exc} (gave up after {claim.attempts} attempts)"
                return self._fail(sms, exc.code, reason, False)
            self._commands.release(sms.command_id, error_code=exc.code, reason=str(exc))
            delay = self._policy.delay_seconds(claim.attempts, rng=self._rng, retry_after=exc.retry_after)
            return Outcome("retry", delay, str(exc))
        parts = segments(sms.text)
        self._commands.mark_sent(
            sms.command_id,
            provider_message_id=provider_id,
            segments=parts.count,
            encoding=parts.encoding.value,
            at=self._clock(),
        )
        return Outcome("sent", detail=provider_id)

    def _fail(self, sms: OutgoingSms, code: str, reason: str, permanent: bool) -> Outcome:
        self._commands.mark_failed(
            sms.command_id, error_code=code, reason=reason, permanent=permanent, at=self._clock()
        )
        return Outcome("failed", detail=f"{code}: {reason}")

    def _take_rate_slot(self) -> bool:
        waited = 0.0
        while True:
            wait = self._rate.acquire(self._clock())
            if wait <= 0:
                return True
            if waited + wait > MAX_RATE_WAIT_SECONDS:
                return False
            self._sleep(wait)
            waited += wait
