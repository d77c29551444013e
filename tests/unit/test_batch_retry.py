"""One retry policy for AWS batch calls (chatflow.adapters.batch_retry) and its DynamoDB users."""

from __future__ import annotations

from typing import Any, cast

import pytest

from chatflow.adapters.batch_retry import BatchRetry, full_jitter
from chatflow.adapters.dynamo import batch_get, batch_write, to_raw
from chatflow.errors import Throttled


class Calls:
    """A send that leaves undone, per call, the items ``undone`` lists (then nothing)."""

    def __init__(self, *undone: list[str]) -> None:
        self.sent: list[list[str]] = []
        self._undone = list(undone)

    def __call__(self, pending: list[str]) -> list[str]:
        self.sent.append(list(pending))
        return self._undone.pop(0) if self._undone else []


def policy(slept: list[float], *, rounds: int = 5, **options: Any) -> BatchRetry:
    return BatchRetry(rounds=rounds, sleep=slept.append, **{"jitter": lambda d: d, **options})


def test_a_batch_done_at_once_is_sent_once_without_waiting() -> None:
    slept: list[float] = []
    send = Calls()

    policy(slept).run(["a", "b"], send, what="items")

    assert (send.sent, slept) == ([["a", "b"]], [])


def test_only_what_a_call_left_undone_is_sent_again() -> None:
    send = Calls(["b"])

    policy([]).run(["a", "b", "c"], send, what="items")

    assert send.sent == [["a", "b", "c"], ["b"]]


def test_waits_double_between_rounds_up_to_the_cap() -> None:
    slept: list[float] = []

    policy(slept, first_delay=0.1, max_delay=0.3).run(["a"], Calls(["a"], ["a"], ["a"]), what="items")

    assert slept == pytest.approx([0.1, 0.2, 0.3])


def test_each_wait_goes_through_the_jitter() -> None:
    slept: list[float] = []

    policy(slept, first_delay=0.1, jitter=lambda d: d / 4).run(["a"], Calls(["a"], ["a"]), what="items")

    assert slept == pytest.approx([0.025, 0.05])


def test_full_jitter_waits_between_nothing_and_the_delay() -> None:
    waits = [full_jitter(0.5) for _ in range(200)]

    assert all(0 <= wait <= 0.5 for wait in waits)
    assert len(set(waits)) > 1


def test_what_is_still_undone_after_the_last_round_raises_throttled_saying_how_many() -> None:
    send = Calls(["a", "b"], ["a", "b"], ["a", "b"])

    with pytest.raises(Throttled, match="2 items not taken after 3 attempts"):
        policy([], rounds=3).run(["a", "b"], send, what="items")

    assert len(send.sent) == 3


def test_the_caller_may_make_its_own_error_from_what_is_left() -> None:
    with pytest.raises(LookupError, match="left: a"):
        policy([], rounds=2).run(
            ["a"], Calls(["a"], ["a"]), what="items", give_up=lambda left: LookupError(f"left: {left[0]}")
        )


def test_at_least_one_round_is_required() -> None:
    with pytest.raises(ValueError, match="rounds"):
        BatchRetry(rounds=0)


class FakeDynamo:
    """BatchGetItem / BatchWriteItem that leave the first key or item unprocessed ``stubborn`` times."""

    def __init__(self, stubborn: int) -> None:
        self.calls: list[dict[str, Any]] = []
        self._stubborn = stubborn

    def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(RequestItems)
        keys = RequestItems["T"]["Keys"]
        left = keys[:1] if self._stubborn else []
        self._stubborn = max(0, self._stubborn - 1)
        done = [key for key in keys if key not in left]
        return {"Responses": {"T": done}, "UnprocessedKeys": {"T": {"Keys": left}} if left else {}}

    def batch_write_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(RequestItems)
        left = RequestItems["T"][:1] if self._stubborn else []
        self._stubborn = max(0, self._stubborn - 1)
        return {"UnprocessedItems": {"T": left} if left else {}}


def keys(n: int) -> list[dict[str, Any]]:
    return [to_raw({"PK": f"K#{i}", "SK": "S"}) for i in range(n)]


def test_unprocessed_keys_are_read_again_after_a_wait_and_every_item_is_found() -> None:
    dynamo = FakeDynamo(stubborn=2)
    slept: list[float] = []

    found = batch_get(cast("Any", dynamo), "T", keys(3), retry=policy(slept))

    assert sorted(item["PK"] for item in found) == ["K#0", "K#1", "K#2"]
    assert [len(call["T"]["Keys"]) for call in dynamo.calls] == [3, 1, 1]
    assert len(slept) == 2


def test_keys_never_processed_raise_throttled() -> None:
    with pytest.raises(Throttled, match="1 DynamoDB reads"):
        batch_get(cast("Any", FakeDynamo(stubborn=9)), "T", keys(2), retry=policy([], rounds=3))


def test_unprocessed_writes_are_sent_again_after_a_wait() -> None:
    dynamo = FakeDynamo(stubborn=1)
    slept: list[float] = []
    requests = [{"PutRequest": {"Item": key}} for key in keys(2)]

    batch_write(cast("Any", dynamo), "T", requests, retry=policy(slept))

    assert dynamo.calls == [{"T": requests}, {"T": requests[:1]}]
    assert len(slept) == 1


def test_writes_never_processed_raise_throttled() -> None:
    requests = [{"PutRequest": {"Item": key}} for key in keys(1)]

    with pytest.raises(Throttled, match="1 DynamoDB writes"):
        batch_write(cast("Any", FakeDynamo(stubborn=9)), "T", requests, retry=policy([], rounds=2))
