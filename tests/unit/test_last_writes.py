"""``LastWrites``: what an execution environment's sends last stored, which the next send of
the same chat writes from without reading it (``MessagingService.send``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from chatflow.domain.chats import Chat
from chatflow.domain.messaging import ATTEMPTS_WATCHED, STALE_PAUSE, LastWrites, MessagingService
from tests.fakes import EPOCH
from tests.unit.conftest import ALICE, BOB, CAROL


def a_chat(messaging: MessagingService, chat_id: str = "g_1") -> Chat:
    return replace(messaging.create_group(ALICE, "Team", [BOB, CAROL]), chat_id=chat_id)


def test_a_chat_is_recalled_as_written_and_a_limited_send_needs_the_senders_tat(
    messaging: MessagingService,
) -> None:
    # Given a chat remembered after Alice's limited send, and Bob's unlimited one
    memory = LastWrites()
    chat = a_chat(messaging)
    memory.remember(chat, ALICE, 1_000)
    memory.remember(chat, BOB, None)

    # Then Alice's next send gets the chat and her TAT, Bob's only an unlimited one
    assert memory.recall(chat.chat_id, ALICE, limited=True, now=EPOCH) == (chat, 1_000)
    assert memory.recall(chat.chat_id, BOB, limited=True, now=EPOCH) is None
    assert memory.recall(chat.chat_id, BOB, limited=False, now=EPOCH) == (chat, None)
    assert memory.recall("g_other", ALICE, limited=True, now=EPOCH) is None


def test_a_chat_found_stale_is_read_again_until_the_pause_is_over(messaging: MessagingService) -> None:
    # Given a remembered chat that a send found changed by somebody else
    memory = LastWrites()
    chat = a_chat(messaging)
    memory.remember(chat, ALICE, None)
    memory.stale(chat.chat_id, EPOCH)

    # When a later send stores it again
    memory.remember(chat, ALICE, None)

    # Then it is not recalled during the pause (the chat is busy: read it), only after
    assert (
        memory.recall(chat.chat_id, ALICE, limited=False, now=EPOCH + STALE_PAUSE - timedelta(seconds=1))
        is None
    )
    assert memory.recall(chat.chat_id, ALICE, limited=False, now=EPOCH + STALE_PAUSE) == (chat, None)


def test_a_chat_forgotten_without_a_pause_is_simply_read_next_time(messaging: MessagingService) -> None:
    memory = LastWrites()
    chat = a_chat(messaging)
    memory.remember(chat, ALICE, None)
    memory.forget(chat.chat_id)
    assert memory.recall(chat.chat_id, ALICE, limited=False, now=EPOCH) is None
    memory.remember(chat, ALICE, None)
    assert memory.recall(chat.chat_id, ALICE, limited=False, now=EPOCH) == (chat, None)


def test_writes_from_memory_stop_for_a_while_when_two_of_the_last_twenty_were_stale(
    messaging: MessagingService,
) -> None:
    # Given a memory whose writes mostly worked, then twice found a chat changed by others
    memory = LastWrites()
    busy, other, quiet = (a_chat(messaging, f"g_{n}") for n in (1, 2, 3))
    for _ in range(ATTEMPTS_WATCHED):
        memory.written()
    memory.stale(busy.chat_id, EPOCH)
    assert memory.recall(quiet.chat_id, ALICE, limited=False, now=EPOCH) is None  # never written
    memory.remember(quiet, ALICE, None)
    assert memory.recall(quiet.chat_id, ALICE, limited=False, now=EPOCH) == (quiet, None)
    memory.stale(other.chat_id, EPOCH)

    # Then no chat is written from memory until the pause is over, even one never found stale
    assert memory.recall(quiet.chat_id, ALICE, limited=False, now=EPOCH + timedelta(seconds=1)) is None
    assert memory.recall(quiet.chat_id, ALICE, limited=False, now=EPOCH + STALE_PAUSE) == (quiet, None)


def test_the_least_recently_written_chats_and_senders_are_dropped_past_the_limit(
    messaging: MessagingService,
) -> None:
    # Given a memory of two, and three chats written, the first one again last
    memory = LastWrites(limit=2)
    first, second, third = (a_chat(messaging, f"g_{n}") for n in (1, 2, 3))
    memory.remember(first, ALICE, 1)
    memory.remember(second, BOB, 2)
    memory.remember(first, ALICE, 3)
    memory.remember(third, CAROL, 4)

    # Then the second chat and Bob's TAT are gone, the others kept
    assert memory.recall(second.chat_id, BOB, limited=False, now=EPOCH) is None
    assert memory.recall(third.chat_id, BOB, limited=True, now=EPOCH) is None
    assert memory.recall(first.chat_id, ALICE, limited=True, now=EPOCH) == (first, 3)
    assert memory.recall(third.chat_id, CAROL, limited=True, now=EPOCH) == (third, 4)
