"""The SMS gateway's use case: one SendSms command, one attempt, and what happens next.

Each attempt claims the command's record first (a lease, so two deliveries of the same
message never call the provider at once, and an ended command is never sent again),
ends it as expired past its ``validUntil``, checks the opt-out list for promotional
messages (by number or ICCID), takes a slot of the provider-wide rate, calls the
provider, and records the outcome. The record's changes are the transactional outbox:
``SmsSent`` / ``SmsFailed`` / ``SmsExpired`` are published from them.

``attempts`` counts provider calls only. Waiting for the rate or for another delivery's
lease is not an attempt: the command comes back later (``wait``) with nothing counted.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from chatflow.domain.clock import Clock
from chatflow.domain.sms import OutgoingSms, RetryPolicy, SmsRequest, segments
from chatflow.errors import PermanentProviderError, TransientProviderError
from chatflow.ports import (
    OptOutRepository,
    RateLimiter,
    SmsCommandRepository,
    SmsProvider,
)

# Longer than any provider call (its timeout) plus the bookkeeping around it.
DEFAULT_LEASE = timedelta(seconds=60)
# Clocks of different hosts disagree a little: a lease ends this long after its invocation.
LEASE_MARGIN = timedelta(seconds=1)
# How long an attempt may wait for a slot of the provider-wide rate before giving the
# message back to the queue instead.
MAX_RATE_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class Outcome:
    """``sent`` / ``failed`` / ``expired``: the command ended. ``retry``: a provider call
    failed, try again in ``delay_seconds``. ``wait``: no provider call was made (the rate
    or another delivery's lease), try again in ``delay_seconds``. ``duplicate``: it had
    already ended; nothing was sent."""

    kind: Literal["sent", "failed", "expired", "retry", "wait", "duplicate"]
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
        in_flight: int = 1,
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
        # Most sends that can be waiting for the rate at once (batch size x concurrency):
        # a command that found no slot comes back within in_flight / rate seconds.
        self._in_flight = max(1, in_flight)

    def handle(self, sms: OutgoingSms, *, deadline: datetime | None = None) -> Outcome:
        """One attempt. ``deadline``: when the invocation ends at the latest (its timeout);
        the lease then ends with it, since no attempt can outlive its invocation, so a
        redelivery after a crash finds the command free."""
        now = self._clock()
        lease_until = now + self._lease
        if deadline is not None:
            lease_until = min(lease_until, deadline + LEASE_MARGIN)
        claim = self._commands.claim(sms, now=now, lease_until=lease_until)
        if claim.state == "final":
            return Outcome("duplicate", detail="the command already ended")
        if claim.state == "busy":
            wait = (claim.lease_until - now).total_seconds() if claim.lease_until else 1.0
            return Outcome(
                "wait", self._until_valid(sms, max(1, int(wait) + 1)), "another attempt is in flight"
            )
        if sms.valid_until is not None and now >= sms.valid_until:
            self._commands.mark_expired(sms.command_id, valid_until=sms.valid_until, at=now)
            return Outcome("expired", detail=f"not sent by its validUntil {sms.valid_until.isoformat()}")
        if sms.message_type == "promotional" and self._opt_outs.is_opted_out(sms.to):
            what = "SIM" if sms.to_type == "iccid" else "number"
            reason = f"the {what} opted out (STOP) of promotional messages"
            return self._fail(sms, "opted_out", reason, True, attempts=claim.attempts)
        if not self._take_rate_slot():
            self._commands.release(
                sms.command_id, error_code="rate_limited", reason="provider-wide rate reached"
            )
            delay = 1 + self._rng.uniform(0, self._in_flight / self._rate.per_second)
            return Outcome("wait", self._until_valid(sms, math.ceil(delay)), "provider-wide rate reached")
        request = SmsRequest(
            to=sms.to, to_type=sms.to_type, text=sms.text, reference=sms.command_id, sender_id=sms.sender_id
        )
        attempts = claim.attempts + 1  # this provider call
        try:
            provider_id = self._provider.send(request)
        except PermanentProviderError as exc:
            return self._fail(sms, exc.code, str(exc), True, attempts=attempts)
        except TransientProviderError as exc:
            if self._policy.exhausted(attempts):
                reason = f"{exc} (gave up after {attempts} attempts)"
                return self._fail(sms, exc.code, reason, False, attempts=attempts)
            self._commands.release(sms.command_id, error_code=exc.code, reason=str(exc), attempts=attempts)
            delay = self._policy.delay_seconds(attempts, rng=self._rng, retry_after=exc.retry_after)
            return Outcome("retry", self._until_valid(sms, delay), str(exc))
        parts = segments(sms.text)
        self._commands.mark_sent(
            sms.command_id,
            provider_message_id=provider_id,
            segments=parts.count,
            encoding=parts.encoding.value,
            attempts=attempts,
            at=self._clock(),
        )
        return Outcome("sent", detail=provider_id)

    def _until_valid(self, sms: OutgoingSms, delay: int) -> int:
        """``delay``, shortened so that a command with a ``validUntil`` comes back by then
        (to end as expired, not later than it says)."""
        if sms.valid_until is None:
            return delay
        left = math.ceil((sms.valid_until - self._clock()).total_seconds())
        return max(1, min(delay, left))

    def _fail(self, sms: OutgoingSms, code: str, reason: str, permanent: bool, *, attempts: int) -> Outcome:
        self._commands.mark_failed(
            sms.command_id,
            error_code=code,
            reason=reason,
            permanent=permanent,
            attempts=attempts,
            at=self._clock(),
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
