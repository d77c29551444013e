"""Chat rules: message status, unread counts, markers, text and ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatflow.domain.chats import (
    MAX_TEXT,
    Chat,
    Member,
    Message,
    advance_markers,
    clean_group_name,
    clean_text,
    direct_chat_id,
)
from chatflow.errors import ValidationFailed
from tests.fakes import EPOCH
from tests.unit.conftest import ALICE, BOB, CAROL, DAVE


def member(phone: str, delivered: int = 0, read: int = 0, joined_minutes: int = 0) -> Member:
    return Member(
        phone_number=phone,
        display_name=None,
        joined_at=EPOCH + timedelta(minutes=joined_minutes),
        delivered_seq=delivered,
        read_seq=read,
    )


def group(*members: Member, last_seq: int = 5) -> Chat:
    return Chat(
        chat_id="g_1",
        type="group",
        name="Friends",
        created_by=ALICE,
        created_at=EPOCH,
        last_activity_at=EPOCH,
        members=members,
        last_seq=last_seq,
    )


def message(seq: int, sender: str = ALICE) -> Message:
    return Message(
        message_id=f"m_{seq}",
        chat_id="g_1",
        seq=seq,
        sender=sender,
        text="hi",
        client_message_id=f"c_{seq}",
        sent_at=EPOCH,
    )


# ---- status_of -------------------------------------------------------------------


def test_status_is_sent_until_every_other_member_has_it() -> None:
    # Given a group where Bob got message 3 but Carol did not
    chat = group(member(ALICE, 5, 5), member(BOB, 3, 0), member(CAROL, 2, 2))
    # When Alice looks at message 3
    # Then it is still only sent
    assert chat.status_of(message(3)) == "sent"


def test_status_is_delivered_once_every_other_member_got_it() -> None:
    # Given a group where Bob and Carol both got message 3, but Carol has not read it
    chat = group(member(ALICE, 5, 5), member(BOB, 3, 3), member(CAROL, 4, 1))
    # When Alice looks at message 3
    # Then it is delivered
    assert chat.status_of(message(3)) == "delivered"


def test_status_is_read_once_every_other_member_read_it() -> None:
    # Given a group where Bob and Carol both read past message 3
    chat = group(member(ALICE, 0, 0), member(BOB, 5, 5), member(CAROL, 3, 3))
    # When Alice looks at message 3
    # Then it is read (the sender's own markers do not matter)
    assert chat.status_of(message(3)) == "read"


def test_status_of_a_later_message_can_lag_behind_an_earlier_one() -> None:
    # Given members who read message 3 but only received message 4
    chat = group(member(ALICE, 5, 5), member(BOB, 4, 3), member(CAROL, 4, 3))
    # When Alice looks at both messages
    # Then message 3 is read and message 4 only delivered
    assert chat.status_of(message(3)) == "read"
    assert chat.status_of(message(4)) == "delivered"


def test_member_who_joined_later_counts_from_their_join_markers() -> None:
    # Given Dave joined after message 5 (markers start at the chat's last seq then)
    chat = group(
        member(ALICE, 6, 6),
        member(BOB, 6, 6),
        member(DAVE, 5, 5, joined_minutes=10),
        last_seq=6,
    )
    # When Alice looks at an old message and at the new one
    # Then the old one is read, the new one is still sent because Dave has not got it
    assert chat.status_of(message(2)) == "read"
    assert chat.status_of(message(6)) == "sent"


def test_status_is_seen_from_the_sender_of_each_message() -> None:
    # Given Bob sent message 4, which Alice and Carol read
    chat = group(member(ALICE, 4, 4), member(BOB, 2, 2), member(CAROL, 4, 4))
    # When Bob's message's status is computed
    # Then Bob's own low markers do not hold it back
    assert chat.status_of(message(4, sender=BOB)) == "read"


def test_status_is_sent_when_the_sender_is_alone() -> None:
    # Given a chat where everyone else left
    chat = group(member(ALICE, 5, 5))
    # When Alice looks at her message
    # Then it stays sent
    assert chat.status_of(message(5)) == "sent"


# ---- unread_count ----------------------------------------------------------------


def test_unread_count_is_messages_after_the_read_marker() -> None:
    # Given Bob read up to 2 of 5 messages
    chat = group(member(ALICE, 5, 5), member(BOB, 5, 2))
    # When his unread count is computed
    # Then it is 3
    assert chat.unread_count(BOB) == 3
    assert chat.unread_count(ALICE) == 0


def test_unread_count_of_a_non_member_is_zero() -> None:
    # Given a chat Dave is not in
    chat = group(member(ALICE, 5, 5), member(BOB))
    # When Dave's unread count is computed
    # Then it is 0
    assert chat.unread_count(DAVE) == 0


def test_unread_count_never_goes_negative() -> None:
    # Given a read marker ahead of the last seq (a stale chat read)
    chat = group(member(ALICE, 7, 7), last_seq=5)
    # When the unread count is computed
    # Then it is 0
    assert chat.unread_count(ALICE) == 0


# ---- advance_markers -------------------------------------------------------------


def test_delivered_receipt_moves_only_the_delivered_marker() -> None:
    # Given a member at delivered 2, read 1
    # When a delivered receipt up to 4 arrives
    update = advance_markers(member(BOB, 2, 1), "delivered", 4)
    # Then delivered moves to 4 and read stays
    assert update is not None
    assert (update.delivered_seq, update.read_seq) == (4, 1)


def test_read_receipt_implies_delivered() -> None:
    # Given a member at delivered 2, read 1
    # When a read receipt up to 4 arrives
    update = advance_markers(member(BOB, 2, 1), "read", 4)
    # Then both markers move to 4
    assert update is not None
    assert (update.delivered_seq, update.read_seq) == (4, 4)


def test_read_receipt_behind_delivered_keeps_delivered() -> None:
    # Given a member at delivered 6, read 1
    # When a read receipt up to 3 arrives
    update = advance_markers(member(BOB, 6, 1), "read", 3)
    # Then read moves and delivered stays at 6
    assert update is not None
    assert (update.delivered_seq, update.read_seq) == (6, 3)


@pytest.mark.parametrize("receipt", ["delivered", "read"])
def test_receipt_at_or_behind_the_markers_changes_nothing(receipt: str) -> None:
    # Given a member at delivered 5, read 5
    # When an old receipt arrives
    update = advance_markers(member(BOB, 5, 5), receipt, 3)  # type: ignore[arg-type]
    # Then nothing moves
    assert update is None


@settings(max_examples=300, deadline=None)
@given(
    read=st.integers(0, 50),
    extra=st.integers(0, 50),
    receipt=st.sampled_from(["delivered", "read"]),
    up_to=st.integers(-5, 120),
)
def test_markers_only_move_forward_and_read_never_passes_delivered(
    read: int, extra: int, receipt: str, up_to: int
) -> None:
    # Given any member whose read marker is not past its delivered marker
    before = member(BOB, delivered=read + extra, read=read)
    # When any receipt is applied
    update = advance_markers(before, receipt, up_to)  # type: ignore[arg-type]
    # Then the markers never go back, read stays <= delivered, and the receipt is honoured
    delivered_after = update.delivered_seq if update else before.delivered_seq
    read_after = update.read_seq if update else before.read_seq
    assert delivered_after >= before.delivered_seq
    assert read_after >= before.read_seq
    assert read_after <= delivered_after
    assert delivered_after >= up_to
    if receipt == "read":
        assert read_after >= up_to
    if update is not None:
        assert (update.delivered_seq, update.read_seq) != (before.delivered_seq, before.read_seq)


# ---- text, names, ids ------------------------------------------------------------


def test_text_is_trimmed() -> None:
    # Given text with surrounding whitespace
    # When it is cleaned
    # Then the whitespace is gone
    assert clean_text("  hello \n") == "hello"


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "x" * (MAX_TEXT + 1), " " + "x" * (MAX_TEXT + 1)])
def test_empty_blank_or_too_long_text_is_rejected(text: str) -> None:
    # Given text that is empty after trimming or over 4096 characters
    # When it is cleaned
    # Then ValidationFailed names the text field
    with pytest.raises(ValidationFailed) as caught:
        clean_text(text)
    assert [p.field for p in caught.value.details] == ["text"]


def test_text_of_exactly_the_limit_after_trimming_is_accepted() -> None:
    # Given 4096 characters with spaces around
    text = "  " + "é" * MAX_TEXT + "  "
    # When it is cleaned
    # Then it is accepted
    assert clean_text(text) == "é" * MAX_TEXT


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_group_name_must_be_1_to_100_characters(name: str) -> None:
    # Given a missing or too long group name
    # When it is cleaned
    # Then it is rejected
    with pytest.raises(ValidationFailed):
        clean_group_name(name)


def test_direct_chat_id_is_the_same_whoever_asks() -> None:
    # Given two numbers
    # When the direct chat id is derived in both orders
    # Then it is the same, and differs from another pair's
    assert direct_chat_id(ALICE, BOB) == direct_chat_id(BOB, ALICE)
    assert direct_chat_id(ALICE, BOB) != direct_chat_id(ALICE, CAROL)
    assert direct_chat_id(ALICE, BOB).startswith("d_")
