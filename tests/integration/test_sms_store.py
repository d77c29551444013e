"""The SMS table's adapters on moto: the provider-wide rate and command claims."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from chatflow.adapters.sms_store import DynamoRateLimiter, DynamoSmsCommandRepository
from local.stack import InProcessStack
from tests.sms_fakes import sms

NOW = datetime(2026, 11, 24, 10, 0, 0, 100_000, tzinfo=UTC)


@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        stack = InProcessStack.create(parameters={"AuthMode": "phone"})
        yield stack.template.physical_ids["SmsTable"]


def test_the_rate_is_shared_by_every_invocation_within_a_second(table: str) -> None:
    # Given two invocations' limiters on a 20-per-second budget
    client = boto3.client("dynamodb", region_name="us-east-1")
    first, second = DynamoRateLimiter(table, client, 20), DynamoRateLimiter(table, client, 20)

    # When they take sends alternately within the same second
    waits = [(first if i % 2 else second).acquire(NOW) for i in range(30)]

    # Then 20 are granted at most, and the rest must wait for the next second
    granted = [w for w in waits if w == 0]
    assert len(granted) <= 20
    assert len(granted) >= 18  # tokens taken in advance by one invocation may go unused
    assert all(0 < w <= 1 for w in waits if w)


def test_a_new_second_brings_a_new_budget(table: str) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    limiter = DynamoRateLimiter(table, client, 3)
    assert [limiter.acquire(NOW) for _ in range(4)].count(0.0) == 3
    assert limiter.acquire(NOW + timedelta(seconds=1)) == 0.0


def test_a_claimed_command_is_busy_for_others_until_its_lease_ends(table: str) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    commands = DynamoSmsCommandRepository(table, client)

    first = commands.claim(sms(), now=NOW, lease_until=NOW + timedelta(seconds=60))
    during = commands.claim(sms(), now=NOW + timedelta(seconds=30), lease_until=NOW + timedelta(seconds=90))
    after = commands.claim(sms(), now=NOW + timedelta(seconds=61), lease_until=NOW + timedelta(seconds=121))

    # A claim is not an attempt: only provider calls count
    assert (first.state, first.attempts) == ("claimed", 0)
    assert during.state == "busy"
    assert during.lease_until is not None
    assert abs((during.lease_until - (NOW + timedelta(seconds=60))).total_seconds()) < 0.01
    assert (after.state, after.attempts) == ("claimed", 0)


def test_a_released_attempt_counts_its_provider_call_for_the_next_claim(table: str) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    commands = DynamoSmsCommandRepository(table, client)
    commands.claim(sms(), now=NOW, lease_until=NOW + timedelta(seconds=60))
    commands.release("c1", error_code="provider_503", reason="down", attempts=1)
    commands.claim(sms(), now=NOW, lease_until=NOW + timedelta(seconds=60))
    commands.release("c1", error_code="rate_limited", reason="waited")  # a wait: no call

    assert commands.claim(sms(), now=NOW, lease_until=NOW + timedelta(seconds=60)).attempts == 1


def test_an_ended_command_is_final_for_every_later_claim(table: str) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    commands = DynamoSmsCommandRepository(table, client)
    commands.claim(sms(), now=NOW, lease_until=NOW + timedelta(seconds=60))
    commands.mark_sent("c1", provider_message_id="pm", segments=1, encoding="GSM-7", attempts=1, at=NOW)

    later = commands.claim(sms(), now=NOW + timedelta(hours=1), lease_until=NOW + timedelta(hours=2))

    assert later.state == "final"
