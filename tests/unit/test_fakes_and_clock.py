"""The fakes honour the ports; the clock's text format is the contract's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chatflow.domain.chats import Chat, Member, Message
from chatflow.domain.clock import from_iso, to_iso
from chatflow.errors import AlreadyExists, ConcurrentUpdate, InvalidCursor
from chatflow.ports import ChatRepository, SessionRepository, UserRepository
from tests.fakes import EPOCH, FakeChatRepository, FakeClock, FakeSessionRepository, FakeUserRepository
from tests.unit.conftest import ALICE, BOB


def direct(chat_id: str, at: datetime) -> Chat:
    members = (Member(ALICE, None, at), Member(BOB, None, at))
    return Chat(chat_id, "direct", None, ALICE, at, at, members)


def test_fakes_implement_the_ports() -> None:
    # Given the fakes
    # When they are used where the ports are expected (checked by mypy)
    chats: ChatRepository = FakeChatRepository()
    users: UserRepository = FakeUserRepository()
    sessions: SessionRepository = FakeSessionRepository()
    # Then they are accepted
    assert chats.get_chat("x") is None
    assert users.get(ALICE) is None
    assert sessions.get("x") is None


def test_fake_create_chat_refuses_an_existing_id() -> None:
    # Given a stored chat
    chats = FakeChatRepository()
    chats.create_chat(direct("d_1", EPOCH))
    # When it is created again
    # Then AlreadyExists is raised
    with pytest.raises(AlreadyExists):
        chats.create_chat(direct("d_1", EPOCH))


def test_fake_append_refuses_a_stale_chat() -> None:
    # Given a chat that got message 1 after we read it
    chats = FakeChatRepository()
    stale = direct("d_1", EPOCH)
    chats.create_chat(stale)
    chats.append_message(stale, Message("m_1", "d_1", 1, ALICE, "a", "c1", EPOCH))
    # When we append from the stale read
    # Then ConcurrentUpdate is raised
    with pytest.raises(ConcurrentUpdate):
        chats.append_message(stale, Message("m_2", "d_1", 1, BOB, "b", "c2", EPOCH))


def test_fake_inbox_pages_by_activity_with_positions() -> None:
    # Given three chats with increasing activity
    chats = FakeChatRepository()
    for n in range(3):
        chats.create_chat(direct(f"d_{n}", EPOCH + timedelta(seconds=n)))
    # When Alice's inbox is read one at a time
    first = chats.list_inbox(ALICE, limit=2, position=None)
    second = chats.list_inbox(ALICE, limit=2, position=first.next_position)
    # Then the newest come first and the position continues after the page
    assert first.items == ["d_2", "d_1"]
    assert first.next_position == {"at": to_iso(EPOCH + timedelta(seconds=1)), "chat": "d_1"}
    assert second.items == ["d_0"]
    assert second.next_position is None


@pytest.mark.parametrize("position", [{"at": 1, "chat": "d_1"}, {"chat": "d_1"}, {}])
def test_fake_inbox_rejects_malformed_positions(position: dict[str, object]) -> None:
    # Given a position of the wrong shape
    # When the inbox is read from it
    # Then InvalidCursor is raised, as by the adapter
    with pytest.raises(InvalidCursor):
        FakeChatRepository().list_inbox(ALICE, limit=2, position=position)


def test_fake_clock_steps_and_advances() -> None:
    # Given a clock stepping one millisecond per reading
    clock = FakeClock(EPOCH, step=timedelta(milliseconds=1))
    # When it is read twice, then moved on
    first, second = clock(), clock()
    clock.advance(timedelta(hours=1))
    # Then the readings increase as told
    assert (first, second) == (EPOCH, EPOCH + timedelta(milliseconds=1))
    assert clock() == EPOCH + timedelta(hours=1, milliseconds=2)


def test_times_are_iso_utc_with_milliseconds_and_z() -> None:
    # Given a moment with microseconds in another zone
    moment = datetime(2026, 11, 23, 21, 1, 48, 123456, tzinfo=timezone(timedelta(hours=1)))
    # When it is written as text
    text = to_iso(moment)
    # Then it is UTC with milliseconds and Z, and reads back to the millisecond
    assert text == "2026-11-23T20:01:48.123Z"
    assert from_iso(text) == datetime(2026, 11, 23, 20, 1, 48, 123000, tzinfo=UTC)
