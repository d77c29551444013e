"""Real-time rules: open connections, who hears what, and the text of an SMS forward."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from chatflow.domain.chats import Chat, Member, Message
from chatflow.domain.realtime import (
    FORWARD_SUFFIX,
    ForwardJob,
    Presence,
    contacts,
    digest_text,
    forward_text,
    members_to_forward,
    membership_audience,
    open_connections,
    status_changes,
    unread_range,
)
from chatflow.domain.sms import segments
from tests.fakes import EPOCH
from tests.unit.conftest import ALICE, BOB, CAROL, DAVE


def member(phone: str, delivered: int = 0, read: int = 0) -> Member:
    return Member(phone, None, EPOCH, delivered, read)


def chat(
    *members: Member, last_seq: int = 1, last_message: Message | None = None, name: str = "team"
) -> Chat:
    return Chat("g_1", "group", name, ALICE, EPOCH, EPOCH, members, last_seq, last_message)


def message(seq: int, sender: str = ALICE) -> Message:
    return Message(f"m_{seq}", "g_1", seq, sender, "hello", f"c{seq}", EPOCH)


def online(phone: str) -> Presence:
    return Presence(phone, ("conn=",), None)


def test_a_connection_is_open_until_its_expiry() -> None:
    expiries = {"old=": EPOCH, "new=": EPOCH + timedelta(hours=2), "b=": EPOCH + timedelta(seconds=1)}

    assert open_connections(expiries, EPOCH) == ("b=", "new=")


def test_a_read_receipt_is_one_read_status_and_covers_delivered() -> None:
    # Given Bob at delivered 1, read 0
    before = chat(member(ALICE, 3, 3), member(BOB, 1, 0), last_seq=3)

    # When he reads up to 3 (which moves delivered too)
    after = replace(before, members=(member(ALICE, 3, 3), member(BOB, 3, 3)))

    # Then the others hear one "read" up to 3, no separate "delivered"
    assert [(c.by, c.status, c.up_to_seq) for c in status_changes(before, after)] == [(BOB, "read", 3)]


def test_sending_a_message_is_not_a_status_change_of_its_sender() -> None:
    before = chat(member(ALICE, 1, 1), member(BOB, 1, 1), last_seq=1)

    after = chat(member(ALICE, 2, 2), member(BOB, 1, 1), last_seq=2, last_message=message(2))

    assert status_changes(before, after) == []


def test_a_delivered_receipt_is_a_delivered_status() -> None:
    before = chat(member(ALICE, 2, 2), member(BOB, 0, 0), last_seq=2)

    after = replace(before, members=(member(ALICE, 2, 2), member(BOB, 2, 0)))

    assert [(c.by, c.status) for c in status_changes(before, after)] == [(BOB, "delivered")]


def test_membership_changes_reach_everyone_in_or_out() -> None:
    before = chat(member(ALICE), member(BOB), member(CAROL))

    after = chat(member(ALICE), member(BOB), member(DAVE))

    assert membership_audience(before, after) == tuple(sorted((ALICE, BOB, CAROL, DAVE)))
    assert membership_audience(after, after) == ()
    assert membership_audience(None, after) == tuple(sorted((ALICE, BOB, DAVE)))
    assert membership_audience(after, replace(after, name="renamed")) == tuple(sorted((ALICE, BOB, DAVE)))


def test_contacts_are_everyone_who_shares_a_chat_but_oneself() -> None:
    chats = [chat(member(ALICE), member(BOB)), chat(member(ALICE), member(CAROL), member(BOB))]

    assert contacts(chats, ALICE) == (BOB, CAROL)


def test_only_offline_members_who_have_not_read_it_get_a_forward() -> None:
    # Given Bob online, Carol offline having read seq 2 already, Dave offline and behind
    room = chat(member(ALICE), member(BOB), member(CAROL, 2, 2), member(DAVE), last_seq=2)

    chosen = members_to_forward(room, message(2), {BOB: online(BOB)})

    assert [m.phone_number for m in chosen] == [DAVE]


def test_a_short_message_is_forwarded_whole() -> None:
    assert forward_text("Alice", "See you at 9") == "Alice: See you at 9"


@given(st.text(min_size=1, max_size=600))
def test_a_forward_always_fits_one_segment(text: str) -> None:
    forwarded = forward_text("+14155550101", text)

    assert segments(forwarded).count == 1
    assert forwarded == f"+14155550101: {text}" or forwarded.endswith(FORWARD_SUFFIX)


# ---- digests (a wait's unread messages in one SMS) ------------------------------------------


def said(seq: int, sender: str, text: str, chat_id: str = "g_1") -> Message:
    return Message(f"m_{seq}", chat_id, seq, sender, text, f"c{seq}", EPOCH)


def named(phone: str, name: str) -> Member:
    return Member(phone, name, EPOCH)


TRIP = Chat(
    "g_1",
    "group",
    "Trip",
    ALICE,
    EPOCH,
    EPOCH,
    (named(ALICE, "Ana"), named(BOB, "Ben"), named(CAROL, "Cy")),
    3,
)


def test_a_burst_in_a_group_names_the_chat_and_each_sender() -> None:
    burst = [said(1, ALICE, "see you at 8"), said(2, BOB, "ok"), said(3, ALICE, "bring snacks")]

    assert (
        digest_text(TRIP, burst, 3)
        == "3 new messages in Trip: Ana: see you at 8 / Ben: ok / Ana: bring snacks"
    )


def test_a_burst_in_a_direct_chat_names_the_sender_once() -> None:
    direct = Chat("d_1", "direct", None, ALICE, EPOCH, EPOCH, (named(ALICE, "Ana"), named(CAROL, "Cy")), 2)
    burst = [said(1, ALICE, "hi", "d_1"), said(2, ALICE, "call me", "d_1")]

    assert digest_text(direct, burst, 2) == "2 new messages from Ana: hi / call me"


def test_a_single_unread_message_is_forwarded_as_always() -> None:
    assert digest_text(TRIP, [said(3, BOB, "ok")], 1) == "Ben: ok"


def test_a_long_burst_cuts_every_text_and_keeps_every_sender() -> None:
    burst = [said(1, ALICE, "word " * 40), said(2, BOB, "more " * 40)]

    text = digest_text(TRIP, burst, 2)

    assert segments(text).count == 1
    assert text.startswith("2 new messages in Trip: Ana: word")
    assert "… / Ben: more" in text
    assert text.endswith(FORWARD_SUFFIX)


def test_a_burst_too_long_to_list_names_its_senders_then_the_newest_message() -> None:
    burst = [said(1, ALICE, "word " * 40), said(2, BOB, "more " * 40), said(3, CAROL, "last " * 40)]

    text = digest_text(TRIP, burst, 3)

    assert segments(text).count == 1
    assert text.startswith("3 new messages in Trip from Ana, Ben, Cy. Cy: las")
    assert text.endswith(FORWARD_SUFFIX)


def test_more_unread_than_shown_says_the_latest_are_shown() -> None:
    text = digest_text(TRIP, [said(11, ALICE, "a"), said(12, BOB, "b")], 12)

    assert text == "12 new messages in Trip (latest): Ana: a / Ben: b"


@given(
    st.lists(
        st.tuples(st.sampled_from([ALICE, BOB, CAROL]), st.text(min_size=1, max_size=300)),
        min_size=1,
        max_size=10,
    ),
    st.integers(min_value=0, max_value=50),
)
def test_a_digest_always_fits_one_segment(items: list[tuple[str, str]], older: int) -> None:
    burst = [said(i + 1, sender, text) for i, (sender, text) in enumerate(items)]

    text = digest_text(TRIP, burst, len(burst) + older)

    assert segments(text).count == 1


def test_the_unread_range_starts_at_the_wait_or_after_the_read_marker() -> None:
    job = ForwardJob("g_1", BOB, 3)
    room = chat(member(ALICE), member(BOB, read=4), last_seq=6)

    assert list(unread_range(room, job)) == [5, 6]
    assert list(unread_range(replace(room, members=(member(ALICE), member(BOB, read=1))), job)) == [
        3,
        4,
        5,
        6,
    ]
    assert not unread_range(replace(room, members=(member(ALICE), member(BOB, read=6))), job)
    assert not unread_range(replace(room, members=(member(ALICE),)), job)  # he left
