"""The change signal the pollers wait on: a write wakes the pollers of its topics, and only them."""

from __future__ import annotations

import threading
import time

from local.aws_server import ChangeSignal


def test_a_bump_of_its_topic_wakes_a_waiting_poller_at_once() -> None:
    # Given a poller waiting up to 10 s on its queue's topic
    signal = ChangeSignal()
    seen = signal.of(["sqs:Work"])
    woke: list[int] = []
    thread = threading.Thread(target=lambda: woke.append(signal.wait(["sqs:Work"], seen, 10.0)))
    thread.start()
    time.sleep(0.05)

    # When a message is sent to that queue
    signal.bump(["sqs:Work"])

    # Then the poller wakes (long before its timeout) and sees the new count
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert woke == [seen + 1]


def test_a_bump_of_another_topic_leaves_the_poller_asleep() -> None:
    # Given a poller waiting 2 s on its table's stream
    signal = ChangeSignal()
    seen = signal.of(["dynamodb:Chats"])
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(signal.wait(["dynamodb:Chats"], seen, 2.0)))
    thread.start()
    time.sleep(0.05)

    # When another table is written
    signal.bump(["dynamodb:Users"])

    # Then it is still waiting, and times out with an unchanged count
    assert thread.is_alive()
    thread.join(timeout=5)
    assert result == [seen]


def test_a_change_of_unknown_effect_wakes_every_poller() -> None:
    # Given two pollers of different topics, waiting
    signal = ChangeSignal()
    topics = (["sqs:Work"], ["dynamodb:Chats"])
    seen = [signal.of(t) for t in topics]
    woke: list[int] = []
    threads = [
        threading.Thread(target=lambda t=t, s=s: woke.append(signal.wait(t, s, 10.0)))
        for t, s in zip(topics, seen, strict=True)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.05)

    # When a request of unknown effect bumps every topic
    signal.bump()

    # Then both wake
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(woke) == [1, 1]


def test_a_change_made_before_the_wait_returns_at_once() -> None:
    # Given a count seen before a write
    signal = ChangeSignal()
    seen = signal.of(["s3"])
    signal.bump(["s3"])

    # When the poller then waits
    started = time.monotonic()
    value = signal.wait(["s3"], seen, 10.0)

    # Then it does not sleep: the write is already there
    assert value == seen + 1
    assert time.monotonic() - started < 5
