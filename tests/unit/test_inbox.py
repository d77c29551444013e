"""Which inbox entries a change of a chat moves."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from chatflow.domain.chats import Chat, Member
from chatflow.domain.inbox import inbox_change
from tests.fakes import EPOCH
from tests.unit.conftest import ALICE, BOB, CAROL, DAVE

LATER = EPOCH + timedelta(minutes=5)


def chat(*phones: str, activity: int = 0, delivered: int = 0) -> Chat:
    return Chat(
        chat_id="g_1",
        type="group",
        name="Friends",
        created_by=ALICE,
        created_at=EPOCH,
        last_activity_at=EPOCH + timedelta(minutes=activity),
        members=tuple(Member(p, None, EPOCH, delivered, delivered) for p in phones),
    )


def test_new_chat_puts_every_members_entry() -> None:
    # Given a chat that did not exist
    new = chat(ALICE, BOB, CAROL)
    # When it is created
    change = inbox_change(None, new)
    # Then every member gets an entry at the chat's activity
    assert change is not None
    assert change.upsert == (ALICE, BOB, CAROL)
    assert change.remove == ()
    assert change.activity == new.last_activity_at
    assert change.chat_id == "g_1"


def test_new_activity_moves_every_members_entry() -> None:
    # Given a chat that got a message
    old = chat(ALICE, BOB, CAROL)
    new = replace(old, last_activity_at=LATER, last_seq=1)
    # When the change is computed
    change = inbox_change(old, new)
    # Then every member's entry moves to the new activity
    assert change is not None
    assert change.upsert == (ALICE, BOB, CAROL)
    assert change.activity == LATER


def test_added_member_gets_an_entry_without_moving_the_others() -> None:
    # Given a chat that gained Dave, with no new activity
    old = chat(ALICE, BOB, CAROL)
    new = chat(ALICE, BOB, CAROL, DAVE)
    # When the change is computed
    change = inbox_change(old, new)
    # Then only Dave's entry is put
    assert change is not None
    assert change.upsert == (DAVE,)
    assert change.remove == ()


def test_removed_member_loses_the_entry() -> None:
    # Given a chat Carol left
    old = chat(ALICE, BOB, CAROL)
    new = chat(ALICE, BOB)
    # When the change is computed
    change = inbox_change(old, new)
    # Then Carol's entry is dropped and nobody else's moves
    assert change is not None
    assert change.upsert == ()
    assert change.remove == (CAROL,)


def test_marker_change_moves_nothing() -> None:
    # Given a chat whose only change is a read marker
    old = chat(ALICE, BOB, CAROL)
    new = chat(ALICE, BOB, CAROL, delivered=3)
    # When the change is computed
    # Then no inbox entry changes
    assert inbox_change(old, new) is None


def test_deleted_chat_moves_nothing() -> None:
    # Given a chat item that went away
    # When the change is computed
    # Then there is nothing to do
    assert inbox_change(chat(ALICE, BOB), None) is None
