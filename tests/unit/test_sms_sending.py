"""The SendSms consumer's work on one message, and the dead-letter queue's, on in-memory fakes."""

from __future__ import annotations

import json
import random

import pytest

from chatflow.application.sms_sending import MAX_DELAY_SECONDS, DeadLetters, RetryLater, SmsSending
from chatflow.domain.gateway import SmsGateway
from chatflow.domain.sms import RetryPolicy
from chatflow.errors import TransientProviderError
from tests.fakes import FakeClock
from tests.sms_fakes import FixedRate, InMemoryCommands, InMemoryOptOuts, InMemoryQueue, ScriptedProvider

BODY = json.dumps({"commandId": "c1", "phoneNumber": "+14155550101", "text": "hello"})


def consumer(
    provider: ScriptedProvider, queue: InMemoryQueue, commands: InMemoryCommands | None = None
) -> tuple[SmsSending, InMemoryCommands]:
    commands = commands or InMemoryCommands()
    clock = FakeClock()
    gateway = SmsGateway(
        provider=provider,
        commands=commands,
        opt_outs=InMemoryOptOuts(),
        rate=FixedRate(),
        policy=RetryPolicy(max_attempts=3),
        clock=clock,
        rng=random.Random(7),
        sleep=lambda _: None,
    )
    return SmsSending(gateway=lambda: gateway, commands=lambda: commands, queue=queue, clock=clock), commands


def test_given_a_provider_that_accepts_when_a_command_is_handled_then_nothing_is_queued_again() -> None:
    queue = InMemoryQueue()
    sending, commands = consumer(ScriptedProvider("pm_1"), queue)

    sending.handle(BODY, "m1", "r1", deadline=None)

    assert commands.records["c1"].status == "sent"
    assert queue.sent == []
    assert queue.shown_later == []


def test_given_a_failing_provider_when_a_command_is_handled_then_it_is_queued_again_with_its_delay() -> None:
    # Given a provider that fails once
    queue = InMemoryQueue()
    sending, _ = consumer(ScriptedProvider(TransientProviderError("503")), queue)

    # When the command is handled
    sending.handle(BODY, "m1", "r1", deadline=None)

    # Then the same command is a fresh message, delayed (never past SQS's 15 minutes)
    [(body, delay)] = queue.sent
    assert json.loads(body)["commandId"] == "c1"
    assert 0 < delay <= MAX_DELAY_SECONDS
    assert queue.shown_later == []


def test_given_the_queue_refuses_the_new_message_when_retrying_then_the_message_itself_comes_back_later() -> (
    None
):
    # Given a provider that fails once and a queue that refuses new messages
    queue = InMemoryQueue(refuse_send=True)
    sending, _ = consumer(ScriptedProvider(TransientProviderError("503")), queue)

    # When the command is handled, Then it is a batch item failure
    with pytest.raises(RetryLater):
        sending.handle(BODY, "m1", "r1", deadline=None)

    # And the received message is made visible again after the delay
    [(receipt, delay)] = queue.shown_later
    assert receipt == "r1"
    assert delay > 0


def test_given_an_invalid_body_when_handled_then_it_is_rejected_and_never_sent() -> None:
    queue = InMemoryQueue()
    provider = ScriptedProvider()
    sending, commands = consumer(provider, queue)

    sending.handle('{"text": "no destination"}', "m1", "r1", deadline=None)

    assert [body for _, body in commands.rejections] == ['{"text": "no destination"}']
    assert provider.requests == []
    assert queue.sent == []


def test_given_a_dead_letter_when_handled_then_its_command_ends_as_dead_lettered() -> None:
    commands = InMemoryCommands()

    DeadLetters(commands=lambda: commands, clock=FakeClock()).dead_lettered(BODY, "m1", 5)

    record = commands.records["c1"]
    assert (record.status, record.error_code) == ("failed", "dead_lettered")
    assert record.reason is not None
    assert "5 receives" in record.reason


def test_given_a_dead_letter_of_a_sent_command_when_handled_then_it_stays_sent() -> None:
    # Given the command was sent (its last delivery crashed after the provider's answer)
    commands = InMemoryCommands()
    sending, _ = consumer(ScriptedProvider("pm_1"), InMemoryQueue(), commands)
    sending.handle(BODY, "m1", "r1", deadline=None)

    # When its message reaches the dead-letter queue
    DeadLetters(commands=lambda: commands, clock=FakeClock()).dead_lettered(BODY, "m1", 5)

    # Then it is still sent
    assert commands.records["c1"].status == "sent"


def test_given_an_invalid_dead_letter_when_handled_then_it_is_rejected() -> None:
    commands = InMemoryCommands()

    DeadLetters(commands=lambda: commands, clock=FakeClock()).dead_lettered("not json", "m1", 5)

    assert [body for _, body in commands.rejections] == ["not json"]
    assert commands.records == {}
