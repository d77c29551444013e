"""Per-user send limits: the GCRA arithmetic, and the messaging service applying it (fakes)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatflow.domain.chats import Chat, direct_chat_id
from chatflow.domain.messaging import MessagingService
from chatflow.domain.pagination import CursorCodec
from chatflow.domain.send_limit import MICROS, SendLimit, micros
from chatflow.errors import RateLimited
from tests.fakes import EPOCH, FakeChatRepository, FakeClock, FakeUserRepository
from tests.unit.conftest import ALICE, BOB, CAROL, DAVE

LIMIT = SendLimit(per_second=5, burst=20)  # the template's defaults


# ---- the arithmetic ----------------------------------------------------------------------------


def spend_all(limit: SendLimit, count: int, tat: int | None = None) -> int | None:
    for _ in range(count):
        tat = limit.spend(ALICE, tat, EPOCH).tat
    return tat


def test_a_new_sender_has_a_full_burst_at_once_and_not_one_more() -> None:
    # Given a sender with no stored TAT, When she sends burst messages at one instant
    tat = spend_all(LIMIT, LIMIT.burst)

    # Then each passed, and the next at that instant is refused with the wait in whole seconds
    with pytest.raises(RateLimited) as refused:
        LIMIT.spend(ALICE, tat, EPOCH)
    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after_seconds == 1  # 0.2 s, rounded up to a whole second


def test_the_bucket_refills_at_the_rate() -> None:
    # Given a sender who spent her burst
    tat = spend_all(LIMIT, LIMIT.burst)

    # When 199 ms pass, she is still refused; at 200 ms (1 / 5 per second) one more passes
    with pytest.raises(RateLimited):
        LIMIT.spend(ALICE, tat, EPOCH + timedelta(milliseconds=199))
    after = LIMIT.spend(ALICE, tat, EPOCH + timedelta(milliseconds=200))

    # And then none again at that instant
    with pytest.raises(RateLimited):
        LIMIT.spend(ALICE, after.tat, EPOCH + timedelta(milliseconds=200))


def test_an_idle_sender_never_saves_more_than_the_burst() -> None:
    # Given a sender idle for an hour after spending her burst
    tat = spend_all(LIMIT, LIMIT.burst)
    later = EPOCH + timedelta(hours=1)

    # When she sends at one instant
    sent = 0
    while sent <= LIMIT.burst:
        try:
            tat = LIMIT.spend(ALICE, tat, later).tat
        except RateLimited:
            break
        sent += 1

    # Then exactly the burst passes
    assert sent == LIMIT.burst


def test_retry_after_is_the_whole_seconds_until_the_next_send_passes() -> None:
    # Given one message every 4 s, a burst of 3, all spent at one instant
    slow = SendLimit(per_second=0.25, burst=3)
    tat = spend_all(slow, 3)

    # When she sends at once, then 2.5 s later
    with pytest.raises(RateLimited) as at_once:
        slow.spend(ALICE, tat, EPOCH)
    with pytest.raises(RateLimited) as later:
        slow.spend(ALICE, tat, EPOCH + timedelta(seconds=2.5))

    # Then she is told 4 s, then 2 s (1.5 rounded up): waiting that long is always enough
    assert at_once.value.retry_after_seconds == 4
    assert later.value.retry_after_seconds == 2
    slow.spend(ALICE, tat, EPOCH + timedelta(seconds=4))


def test_a_spend_carries_the_tat_it_replaces() -> None:
    first = LIMIT.spend(ALICE, None, EPOCH)
    second = LIMIT.spend(ALICE, first.tat, EPOCH)

    assert (first.sender, first.previous, first.tat) == (ALICE, None, micros(EPOCH) + MICROS // 5)
    assert (second.previous, second.tat) == (first.tat, first.tat + MICROS // 5)


@pytest.mark.parametrize(("per_second", "burst"), [(0, 1), (-1, 5), (5, 0)])
def test_a_limit_that_allows_nothing_is_refused(per_second: float, burst: int) -> None:
    with pytest.raises(ValueError, match="per_second > 0 and burst >= 1"):
        SendLimit(per_second=per_second, burst=burst)


# ---- the messaging service --------------------------------------------------------------------


@pytest.fixture
def limited(
    users: FakeUserRepository, cursors: CursorCodec
) -> tuple[MessagingService, FakeChatRepository, FakeClock]:
    chats, clock = FakeChatRepository(), FakeClock()
    service = MessagingService(
        chats=chats,
        users=users,
        cursors=cursors,
        clock=clock,
        sleep=lambda _: None,
        send_limit=SendLimit(per_second=1, burst=2),
    )
    return service, chats, clock


def test_the_service_refuses_the_send_past_the_burst_and_stores_nothing_of_it(
    limited: tuple[MessagingService, FakeChatRepository, FakeClock],
) -> None:
    service, chats, _ = limited
    chat = service.create_group(ALICE, "Team", [BOB, CAROL])

    service.send(ALICE, chat.chat_id, "one", "c1")
    service.send(ALICE, chat.chat_id, "two", "c2")
    with pytest.raises(RateLimited):
        service.send(ALICE, chat.chat_id, "three", "c3")

    assert sorted(chats.messages[chat.chat_id]) == [1, 2]


def test_the_service_answers_a_replay_over_the_limit_with_the_original(
    limited: tuple[MessagingService, FakeChatRepository, FakeClock],
) -> None:
    service, _, _ = limited
    chat = service.create_group(ALICE, "Team", [BOB, CAROL])
    first = service.send(ALICE, chat.chat_id, "one", "c1")
    service.send(ALICE, chat.chat_id, "two", "c2")

    replay = service.send(ALICE, chat.chat_id, "one", "c1")

    assert (replay.created, replay.message) == (False, first.message)


def test_a_direct_send_spends_from_the_same_bucket(
    limited: tuple[MessagingService, FakeChatRepository, FakeClock],
) -> None:
    service, _, clock = limited
    group: Chat = service.create_group(ALICE, "Team", [BOB, CAROL])
    service.send(ALICE, group.chat_id, "one", "c1")
    service.send_direct(ALICE, BOB, "two", "c2")

    with pytest.raises(RateLimited):
        service.send_direct(ALICE, CAROL, "three", "c3")
    clock.advance(timedelta(seconds=1))
    assert service.send_direct(ALICE, CAROL, "three", "c3").created


def test_a_send_that_is_not_limited_spends_nothing(
    limited: tuple[MessagingService, FakeChatRepository, FakeClock],
) -> None:
    # Given Alice's bucket, spent
    service, chats, _ = limited
    chat = service.create_group(ALICE, "Team", [BOB, CAROL])
    service.send(ALICE, chat.chat_id, "one", "c1")
    service.send(ALICE, chat.chat_id, "two", "c2")
    spent = chats.send_tats[ALICE]

    # When a message of hers that is not typed in the app (an SMS reply) is stored
    sent = service.send(ALICE, chat.chat_id, "by sms", "sms-1", limited=False)

    # Then it is stored, and her bucket is as it was
    assert sent.created
    assert chats.send_tats[ALICE] == spent


def test_a_direct_send_over_the_limit_creates_no_chat(
    limited: tuple[MessagingService, FakeChatRepository, FakeClock],
) -> None:
    # Given Alice, over her limit
    service, chats, _ = limited
    group = service.create_group(ALICE, "Team", [BOB, CAROL])
    service.send(ALICE, group.chat_id, "one", "c1")
    service.send(ALICE, group.chat_id, "two", "c2")

    # When she sends to a number she has no chat with
    with pytest.raises(RateLimited):
        service.send_direct(ALICE, DAVE, "hi", "c3")

    # Then no direct chat was made for the message that was not stored
    assert direct_chat_id(ALICE, DAVE) not in chats.chats
