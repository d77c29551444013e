"""The SMS-forward budget on moto: one forward per chat and member per window, and the
windows a limiter remembers so that a busy chat costs no call per message."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from chatflow.adapters.connection_store import DynamoForwardLimiter
from local.stack import InProcessStack

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)
BOB = "+14155550102"


@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        stack = InProcessStack.create(parameters={"AuthMode": "phone"})
        yield stack.template.physical_ids["ConnectionsTable"]


def _limiter(table: str) -> DynamoForwardLimiter:
    return DynamoForwardLimiter(table, boto3.client("dynamodb", region_name="us-east-1"))


def test_a_window_taken_by_one_limiter_is_refused_to_another_then_known_without_a_call(
    table: str, calls: list[str]
) -> None:
    # Given a window taken by one execution environment's limiter
    assert _limiter(table).acquire("c1", BOB, now=NOW, window=WINDOW)
    other = _limiter(table)

    # When another environment's limiter asks twice within the window
    first = other.acquire("c1", BOB, now=NOW + timedelta(minutes=1), window=WINDOW)
    calls.clear()
    second = other.acquire("c1", BOB, now=NOW + timedelta(minutes=2), window=WINDOW)

    # Then both are refused, and the second without a call (the refusal said until when)
    assert (first, second) == (False, False)
    assert calls == []
    assert other.known_taken("c1", BOB, now=NOW + timedelta(minutes=9, seconds=59))
    # And other chats and members are not affected
    assert not other.known_taken("c2", BOB, now=NOW)
    assert other.acquire("c2", BOB, now=NOW, window=WINDOW)


def test_a_window_that_ended_is_taken_again(table: str) -> None:
    limiter = _limiter(table)
    assert limiter.acquire("c1", BOB, now=NOW, window=WINDOW)
    assert not limiter.acquire("c1", BOB, now=NOW + timedelta(minutes=5), window=WINDOW)
    later = NOW + WINDOW + timedelta(seconds=1)
    assert not limiter.known_taken("c1", BOB, now=later)
    assert limiter.acquire("c1", BOB, now=later, window=WINDOW)


def test_a_released_window_is_forgotten_and_can_be_taken_again(table: str) -> None:
    # A forward that could not be sent gives its window back; its retry takes it again
    limiter = _limiter(table)
    assert limiter.acquire("c1", BOB, now=NOW, window=WINDOW)
    limiter.release("c1", BOB)
    assert not limiter.known_taken("c1", BOB, now=NOW)
    assert limiter.acquire("c1", BOB, now=NOW + timedelta(seconds=1), window=WINDOW)


def test_the_remembered_windows_are_bounded(table: str) -> None:
    limiter = DynamoForwardLimiter(table, boto3.client("dynamodb", region_name="us-east-1"), remembered=3)
    now = datetime.now(UTC)
    for chat in ("c1", "c2", "c3", "c4"):
        assert limiter.acquire(chat, BOB, now=now, window=WINDOW)
    # The oldest is dropped from memory (not from the table: asking again is refused by it)
    assert not limiter.known_taken("c1", BOB, now=now)
    assert all(limiter.known_taken(chat, BOB, now=now) for chat in ("c2", "c3", "c4"))
    assert not limiter.acquire("c1", BOB, now=now, window=WINDOW)
