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

from chatflow.domain.campaign_control import CANCELLED_CODE, Decision, decide, recipient_zones
from chatflow.domain.clock import Clock
from chatflow.domain.sms import OutgoingSms, RetryPolicy, SmsRequest, segments
from chatflow.errors import PermanentProviderError, TransientProviderError
from chatflow.ports import (
    CampaignControls,
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
        campaigns: CampaignControls | None = None,
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
        # Pause, cancel, sendAt, quiet hours and ratePerSecond of campaign commands.
        self._campaigns = campaigns

    def handle(self, sms: OutgoingSms, *, deadline: datetime | None = None) -> Outcome:
        """One attempt. ``deadline``: when the invocation ends at the latest (its timeout);
        the lease then ends with it, since no attempt can outlive its invocation, so a
        redelivery after a crash finds the command free."""
        now = self._clock()
        campaign = self._campaign_of(sms)
        decision = self._decide(sms, now, fresh=False) if campaign else None
        expired = sms.valid_until is not None and now >= sms.valid_until
        if decision is not None and decision.kind == "hold" and not expired:
            # Held before the claim: no write at all, the command just comes back later.
            return self._hold(sms, decision, now)
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
        if decision is not None and decision.kind == "cancel":
            return self._fail(sms, CANCELLED_CODE, decision.reason, True, attempts=claim.attempts)
        if sms.message_type == "promotional" and self._opt_outs.is_opted_out(sms.to):
            what = "SIM" if sms.to_type == "iccid" else "number"
            reason = f"the {what} opted out (STOP) of promotional messages"
            return self._fail(sms, "opted_out", reason, True, attempts=claim.attempts)
        if campaign and not self._take_campaign_slot(campaign):
            self._commands.release(
                sms.command_id, error_code="rate_limited", reason="the campaign's ratePerSecond reached"
            )
            rate = self._campaign_rate(campaign) or self._rate.per_second
            delay = 1 + self._rng.uniform(0, self._in_flight / rate)
            return Outcome("wait", self._until_valid(sms, math.ceil(delay)), "campaign rate reached")
        if not self._take_rate_slot():
            self._commands.release(
                sms.command_id, error_code="rate_limited", reason="provider-wide rate reached"
            )
            delay = 1 + self._rng.uniform(0, self._in_flight / self._rate.per_second)
            return Outcome("wait", self._until_valid(sms, math.ceil(delay)), "provider-wide rate reached")
        if campaign:
            # Once more, fresh, right before the provider call: nothing starts after a pause
            # or a cancel was stored, even if the cached copy (or the rate wait) is older.
            last = self._decide(sms, self._clock(), fresh=True)
            if last is not None and last.kind == "cancel":
                return self._fail(sms, CANCELLED_CODE, last.reason, True, attempts=claim.attempts)
            if last is not None and last.kind == "hold":
                self._commands.release(sms.command_id, error_code="held", reason=last.reason)
                return self._hold(sms, last, self._clock())
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

    def _campaign_of(self, sms: OutgoingSms) -> str | None:
        if self._campaigns is None:
            return None
        return sms.metadata.get("campaignId") or None

    def _decide(self, sms: OutgoingSms, now: datetime, *, fresh: bool) -> Decision | None:
        campaign_id = self._campaign_of(sms)
        if campaign_id is None or self._campaigns is None:
            return None
        control = self._campaigns.control(campaign_id, fresh=fresh)
        if control is None:
            return None
        zones = recipient_zones(sms.to, sms.metadata.get("timezone")) if control.quiet_hours else ()
        return decide(control, now, zones)

    def _hold(self, sms: OutgoingSms, decision: Decision, now: datetime) -> Outcome:
        """Back to the queue until ``decision.until`` (paused, scheduled, quiet hours): not an
        attempt. Never past ``validUntil``: then it comes back to end as expired."""
        until = decision.until or now
        wait = max(1, math.ceil((until - now).total_seconds()))
        if decision.reason == "the campaign is paused":
            wait += math.ceil(self._rng.uniform(0, min(wait, 5)))  # spread the returns of a resume
        return Outcome("wait", self._until_valid(sms, wait), decision.reason)

    def _campaign_rate(self, campaign_id: str) -> int | None:
        control = self._campaigns.control(campaign_id) if self._campaigns else None
        return control.rate_per_second if control else None

    def _take_campaign_slot(self, campaign_id: str) -> bool:
        """A place in the campaign's own ``ratePerSecond`` (if it has one), waited for up to
        ``MAX_RATE_WAIT_SECONDS``; False when none was found by then."""
        rate = self._campaign_rate(campaign_id)
        if rate is None or self._campaigns is None:
            return True
        waited = 0.0
        while True:
            now = self._clock()
            wait = self._campaigns.reserve(campaign_id, rate, now)
            if wait is not None:
                if wait > 0:
                    self._sleep(wait)
                return True
            until_next = max(0.001, int(now.timestamp()) + 1 - now.timestamp())
            if waited + until_next > MAX_RATE_WAIT_SECONDS:
                return False
            self._sleep(until_next)
            waited += until_next

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
