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
WAIT = timedelta(minutes=10)  # (as long as the window: what is remembered is the window)
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
    assert _limiter(table).acquire("c1", BOB, now=NOW, window=WINDOW, seq=1, wait=WAIT)
    other = _limiter(table)

    # When another environment's limiter asks twice within the window
    first = other.acquire("c1", BOB, now=NOW + timedelta(minutes=1), window=WINDOW, seq=1, wait=WAIT)
    calls.clear()
    second = other.acquire("c1", BOB, now=NOW + timedelta(minutes=2), window=WINDOW, seq=1, wait=WAIT)

    # Then both are refused, and the second without a call (the refusal said until when)
    assert (first, second) == (False, False)
    assert calls == []
    assert other.known_taken("c1", BOB, now=NOW + timedelta(minutes=9, seconds=59))
    # And other chats and members are not affected
    assert not other.known_taken("c2", BOB, now=NOW)
    assert other.acquire("c2", BOB, now=NOW, window=WINDOW, seq=1, wait=WAIT)


def test_a_window_that_ended_is_taken_again(table: str) -> None:
    limiter = _limiter(table)
    assert limiter.acquire("c1", BOB, now=NOW, window=WINDOW, seq=1, wait=WAIT)
    assert not limiter.acquire("c1", BOB, now=NOW + timedelta(minutes=5), window=WINDOW, seq=1, wait=WAIT)
    later = NOW + WINDOW + timedelta(seconds=1)
    assert not limiter.known_taken("c1", BOB, now=later)
    assert limiter.acquire("c1", BOB, now=later, window=WINDOW, seq=1, wait=WAIT)


def test_a_released_window_is_forgotten_and_can_be_taken_again(table: str) -> None:
    # A forward that could not be sent gives its window back; its retry takes it again
    limiter = _limiter(table)
    assert limiter.acquire("c1", BOB, now=NOW, window=WINDOW, seq=1, wait=WAIT)
    limiter.release("c1", BOB, seq=1)
    assert not limiter.known_taken("c1", BOB, now=NOW)
    assert limiter.acquire("c1", BOB, now=NOW + timedelta(seconds=1), window=WINDOW, seq=1, wait=WAIT)


def test_the_remembered_windows_are_bounded(table: str) -> None:
    limiter = DynamoForwardLimiter(table, boto3.client("dynamodb", region_name="us-east-1"), remembered=3)
    now = datetime.now(UTC)
    for chat in ("c1", "c2", "c3", "c4"):
        assert limiter.acquire(chat, BOB, now=now, window=WINDOW, seq=1, wait=WAIT)
    # The oldest is dropped from memory (not from the table: asking again is refused by it)
    assert not limiter.known_taken("c1", BOB, now=now)
    assert all(limiter.known_taken(chat, BOB, now=now) for chat in ("c2", "c3", "c4"))
    assert not limiter.acquire("c1", BOB, now=now, window=WINDOW, seq=1, wait=WAIT)


def test_a_pending_wait_is_remembered_until_it_ends_then_asked_again(table: str, calls: list[str]) -> None:
    # Given a wait of one minute taken by another environment, not sent yet
    assert _limiter(table).acquire("c1", BOB, now=NOW, window=WINDOW, seq=1, wait=timedelta(minutes=1))
    other = _limiter(table)
    assert not other.acquire("c1", BOB, now=NOW, window=WINDOW, seq=2, wait=timedelta(minutes=1))

    # Then it is known taken until the wait ends (it may yet be given back), not the window
    assert other.known_taken("c1", BOB, now=NOW + timedelta(seconds=59))
    assert not other.known_taken("c1", BOB, now=NOW + timedelta(minutes=1, seconds=1))


def test_a_wait_given_back_frees_the_budget_unless_its_sms_went_out(table: str) -> None:
    limiter = _limiter(table)
    wait = timedelta(minutes=1)
    # A wait given back (read before it ended): the next message starts a new one
    assert limiter.acquire("c1", BOB, now=NOW, window=WINDOW, seq=1, wait=wait)
    limiter.release("c1", BOB, seq=1)
    assert limiter.acquire("c1", BOB, now=NOW + timedelta(seconds=1), window=WINDOW, seq=2, wait=wait)
    # A wait whose SMS went out keeps the window, even when its job comes again and finds it read
    assert limiter.mark_sent("c1", BOB, seq=2)
    limiter.release("c1", BOB, seq=2)
    assert not limiter.acquire("c1", BOB, now=NOW + timedelta(minutes=2), window=WINDOW, seq=3, wait=wait)
    # And a stale job (of wait 1) can neither mark nor free the budget of another wait
    assert not limiter.mark_sent("c1", BOB, seq=1)


def test_a_refusal_by_a_sent_wait_is_remembered_for_the_window(table: str, calls: list[str]) -> None:
    first = _limiter(table)
    assert first.acquire("c1", BOB, now=NOW, window=WINDOW, seq=1, wait=timedelta(seconds=30))
    assert first.mark_sent("c1", BOB, seq=1)
    other = _limiter(table)

    assert not other.acquire("c1", BOB, now=NOW + timedelta(minutes=1), window=WINDOW, seq=2, wait=WAIT)

    assert other.known_taken("c1", BOB, now=NOW + timedelta(minutes=9, seconds=59))
