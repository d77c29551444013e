"""The SMS gateway's use case: one attempt per delivery of a command, with fakes for every port."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from chatflow.domain.gateway import SmsGateway
from chatflow.domain.sms import RetryPolicy
from chatflow.errors import PermanentProviderError, TransientProviderError
from chatflow.ports import SmsProvider
from local.fake_sms import FakeSmsProvider
from tests.fakes import FakeClock
from tests.sms_fakes import FixedRate, InMemoryCommands, InMemoryOptOuts, ScriptedProvider, sms


def _gateway(
    provider: SmsProvider,
    commands: InMemoryCommands | None = None,
    *,
    opt_outs: InMemoryOptOuts | None = None,
    rate: FixedRate | None = None,
    max_attempts: int = 3,
    clock: FakeClock | None = None,
    slept: list[float] | None = None,
) -> SmsGateway:
    return SmsGateway(
        provider=provider,
        commands=commands or InMemoryCommands(),
        opt_outs=opt_outs or InMemoryOptOuts(),
        rate=rate or FixedRate(),
        policy=RetryPolicy(max_attempts=max_attempts),
        clock=clock or FakeClock(),
        rng=random.Random(7),
        sleep=(slept.append if slept is not None else lambda _: None),
    )


def test_a_command_is_sent_once_and_recorded_with_its_segments() -> None:
    # Given a provider that accepts
    provider, commands = ScriptedProvider("pm_1"), InMemoryCommands()

    # When a command is handled
    outcome = _gateway(provider, commands).handle(sms(text="x" * 161))

    # Then it is sent with the command id as the idempotency reference, and recorded as sent
    assert outcome.kind == "sent"
    assert [r.reference for r in provider.requests] == ["c1"]
    record = commands.records["c1"]
    assert (record.status, record.provider_message_id, record.segments, record.encoding) == (
        "sent",
        "pm_1",
        2,
        "GSM-7",
    )


def test_a_command_that_already_ended_is_not_sent_again() -> None:
    # Given a command that was sent
    provider, commands = ScriptedProvider(), InMemoryCommands()
    gateway = _gateway(provider, commands)
    gateway.handle(sms())

    # When the same command arrives again (a duplicate delivery or a producer's retry)
    outcome = gateway.handle(sms())

    # Then nothing more goes to the provider
    assert outcome.kind == "duplicate"
    assert len(provider.requests) == 1


def test_a_permanent_failure_ends_the_command_at_once() -> None:
    provider, commands = (
        ScriptedProvider(PermanentProviderError("bad number", code="invalid_destination")),
        InMemoryCommands(),
    )

    outcome = _gateway(provider, commands).handle(sms())

    assert outcome.kind == "failed"
    record = commands.records["c1"]
    assert (record.status, record.error_code, record.permanent) == ("failed", "invalid_destination", True)
    assert len(provider.requests) == 1


def test_a_transient_failure_is_retried_later_then_fails_after_the_last_attempt() -> None:
    # Given a provider that is always unavailable and 3 attempts allowed
    unavailable = [TransientProviderError("503", code="provider_503") for _ in range(3)]
    provider, commands = ScriptedProvider(*unavailable), InMemoryCommands()
    gateway = _gateway(provider, commands, max_attempts=3)

    # When the command is delivered three times
    outcomes = [gateway.handle(sms()) for _ in range(3)]

    # Then the first two ask for a retry with a growing delay, the third ends it (not permanent)
    assert [o.kind for o in outcomes] == ["retry", "retry", "failed"]
    assert 1 <= outcomes[0].delay_seconds <= outcomes[1].delay_seconds * 2
    record = commands.records["c1"]
    assert (record.status, record.permanent, record.attempts) == ("failed", False, 3)


def test_the_providers_retry_after_is_honoured() -> None:
    provider = ScriptedProvider(TransientProviderError("slow down", code="provider_429", retry_after=120))

    outcome = _gateway(provider).handle(sms())

    assert outcome.kind == "retry"
    assert outcome.delay_seconds >= 120


def test_a_retry_after_a_transient_failure_sends_again_and_succeeds() -> None:
    provider, commands = ScriptedProvider(TransientProviderError("timeout"), "pm_2"), InMemoryCommands()
    gateway = _gateway(provider, commands)

    assert gateway.handle(sms()).kind == "retry"
    assert gateway.handle(sms()).kind == "sent"

    assert commands.records["c1"].provider_message_id == "pm_2"
    assert commands.records["c1"].attempts == 2


def test_a_promotional_message_to_an_opted_out_number_fails_without_a_send() -> None:
    provider, commands = ScriptedProvider(), InMemoryCommands()
    gateway = _gateway(provider, commands, opt_outs=InMemoryOptOuts({"+14155550101"}))

    outcome = gateway.handle(sms(message_type="promotional"))

    assert outcome.kind == "failed"
    assert commands.records["c1"].error_code == "opted_out"
    assert commands.records["c1"].permanent is True
    assert provider.requests == []


def test_a_transactional_message_to_an_opted_out_number_is_still_sent() -> None:
    provider = ScriptedProvider()
    gateway = _gateway(provider, opt_outs=InMemoryOptOuts({"+14155550101"}))

    assert gateway.handle(sms(message_type="transactional")).kind == "sent"


def test_a_command_held_by_another_attempt_is_retried_after_its_lease_without_a_send() -> None:
    # Given an attempt in flight (its lease runs for a minute)
    clock = FakeClock()
    provider, commands = ScriptedProvider(), InMemoryCommands()
    commands.claim(sms(), now=clock(), lease_until=clock() + timedelta(seconds=60))

    # When the same command is delivered again meanwhile
    outcome = _gateway(provider, commands, clock=clock).handle(sms())

    # Then it comes back after the lease (a wait, not an attempt), and the provider is not
    # called twice at once
    assert outcome.kind == "wait"
    assert 60 <= outcome.delay_seconds <= 62
    assert provider.requests == []
    assert commands.records["c1"].attempts == 0


def test_the_provider_wide_rate_makes_a_send_wait_its_turn() -> None:
    slept: list[float] = []
    provider = ScriptedProvider()

    outcome = _gateway(provider, rate=FixedRate([0.4, 0.3]), slept=slept).handle(sms())

    assert outcome.kind == "sent"
    assert slept == [0.4, 0.3]


def test_a_send_that_would_wait_too_long_for_the_rate_goes_back_to_the_queue() -> None:
    provider, commands = ScriptedProvider(), InMemoryCommands()

    outcome = _gateway(provider, commands, rate=FixedRate([0.9, 0.9, 0.9])).handle(sms())

    # A wait, not an attempt: it comes back within (sends in flight / rate) seconds
    assert outcome.kind == "wait"
    assert 1 <= outcome.delay_seconds <= 1 + 1 / FixedRate.per_second + 1
    assert provider.requests == []
    assert commands.records["c1"].lease_until is None
    assert commands.records["c1"].attempts == 0


class _CrashOnSent(InMemoryCommands):
    """Dies (like a killed Lambda) after the provider accepted, before the state is saved; once."""

    def __init__(self) -> None:
        super().__init__()
        self.crashes = 1

    def mark_sent(
        self,
        command_id: str,
        *,
        provider_message_id: str,
        segments: int,
        encoding: str,
        attempts: int,
        at: datetime,
    ) -> None:
        if self.crashes:
            self.crashes -= 1
            raise SystemExit("killed")
        super().mark_sent(
            command_id,
            provider_message_id=provider_message_id,
            segments=segments,
            encoding=encoding,
            attempts=attempts,
            at=at,
        )


def test_a_crash_after_the_provider_accepted_loses_nothing_and_the_resend_reuses_the_idempotency_key() -> (
    None
):
    # Given a provider that honours Idempotency-Key, and a consumer killed right after its send
    provider = FakeSmsProvider(failure_rate=0.0, seed=3, min_delay_ms=0, max_delay_ms=0)
    commands, clock = _CrashOnSent(), FakeClock()
    gateway = _gateway(provider, commands, clock=clock)
    with pytest.raises(SystemExit):
        gateway.handle(sms())
    assert commands.records["c1"].status == "sending"

    # When SQS delivers the message again once the lease has run out
    clock.advance(timedelta(minutes=2))
    outcome = gateway.handle(sms())

    # Then the command ends as sent; the provider saw the same key twice and sent one SMS.
    # The call cut short by the crash left no outcome and is not counted: a crash never
    # uses up the retry budget (a message that keeps crashing ends in the dead-letter queue).
    assert outcome.kind == "sent"
    assert commands.records["c1"].status == "sent"
    assert commands.records["c1"].attempts == 1
    assert provider.attempts["c1"] == 2
    assert len(provider.sent) == 1


def test_only_provider_calls_count_as_attempts_whatever_waits_come_between() -> None:
    # Given a provider that fails transiently twice, and a rate that bounces the command
    # back to the queue between the attempts (max 3 attempts)
    clock = FakeClock()
    provider = ScriptedProvider(
        TransientProviderError("down", code="provider_503"),
        TransientProviderError("down", code="provider_503"),
    )
    commands = InMemoryCommands()
    bounce = [0.9, 0.9, 0.9]
    gateway = _gateway(provider, commands, rate=FixedRate([*bounce, 0, *bounce, 0, *bounce, 0]), clock=clock)

    # When the command is delivered until it ends, the lease running out between deliveries
    kinds = []
    for _ in range(6):
        outcome = gateway.handle(sms())
        kinds.append(outcome.kind)
        clock.advance(timedelta(minutes=2))
        if outcome.kind == "sent":
            break

    # Then three waits cost nothing, and the third provider call, the last allowed, is sent
    assert kinds == ["wait", "retry", "wait", "retry", "wait", "sent"]
    assert commands.records["c1"].attempts == 3
    assert len(provider.requests) == 3


def test_a_command_past_its_validity_expires_without_a_send() -> None:
    clock = FakeClock()
    provider, commands = ScriptedProvider(), InMemoryCommands()

    outcome = _gateway(provider, commands, clock=clock).handle(
        sms(valid_until=clock() - timedelta(seconds=1))
    )

    assert outcome.kind == "expired"
    assert commands.records["c1"].status == "expired"
    assert provider.requests == []


def test_a_retry_comes_back_by_the_commands_validity_to_end_it_on_time() -> None:
    # Given a command valid for 5 more seconds whose send fails transiently (backoff > 5 s)
    clock = FakeClock()
    provider = ScriptedProvider(TransientProviderError("down", code="provider_503", retry_after=60))
    commands = InMemoryCommands()
    gateway = _gateway(provider, commands, clock=clock)
    command = sms(valid_until=clock() + timedelta(seconds=5))

    # When it is retried
    first = gateway.handle(command)
    clock.advance(timedelta(seconds=first.delay_seconds))
    second = gateway.handle(command)

    # Then it comes back when its validity ends, and ends as expired, not sent late
    assert (first.kind, first.delay_seconds) == ("retry", 5)
    assert second.kind == "expired"
    assert len(provider.requests) == 1


def test_a_promotional_message_to_an_opted_out_sim_fails_without_a_send() -> None:
    iccid = "8944500102198304826"
    provider, commands = ScriptedProvider(), InMemoryCommands()
    gateway = _gateway(provider, commands, opt_outs=InMemoryOptOuts({iccid}))

    outcome = gateway.handle(sms(to=iccid, to_type="iccid", message_type="promotional"))

    assert outcome.kind == "failed"
    record = commands.records["c1"]
    assert (record.status, record.error_code, record.permanent, record.attempts) == (
        "failed",
        "opted_out",
        True,
        0,
    )
    assert provider.requests == []


def test_the_lease_ends_with_the_invocation_so_a_redelivery_after_a_crash_finds_the_command_free() -> None:
    # Given an attempt that crashed in an invocation that had 30 s left (its timeout)
    clock = FakeClock()
    provider = FakeSmsProvider(failure_rate=0.0, seed=3, min_delay_ms=0, max_delay_ms=0)
    commands = _CrashOnSent()
    gateway = _gateway(provider, commands, clock=clock)
    with pytest.raises(SystemExit):
        gateway.handle(sms(), deadline=clock() + timedelta(seconds=30))

    # When SQS delivers it again once the queue's visibility timeout (>= the function's) passed
    clock.advance(timedelta(seconds=32))
    outcome = gateway.handle(sms())

    # Then it is claimed at once, not after the default 60 s lease, and sent
    assert outcome.kind == "sent"
    assert commands.records["c1"].status == "sent"
