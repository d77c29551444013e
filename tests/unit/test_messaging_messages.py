"""Messaging use cases about messages: sending, idempotency, history, receipts."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from chatflow.domain.chats import MAX_TEXT, Chat, Message
from chatflow.domain.messaging import MAX_SEND_ATTEMPTS, MessagingService
from chatflow.domain.pagination import CursorCodec
from chatflow.domain.send_limit import RateSpend
from chatflow.errors import ConcurrentUpdate, Conflict, InvalidCursor, NotFound, ValidationFailed
from tests.fakes import FakeChatRepository, FakeClock, FakeUserRepository
from tests.unit.conftest import ALICE, BOB, CAROL, DAVE


@pytest.fixture
def team(messaging: MessagingService) -> Chat:
    """A group Alice created with Bob and Carol."""
    return messaging.create_group(ALICE, "Team", [BOB, CAROL])


def service_with(
    chats: FakeChatRepository, users: FakeUserRepository, cursors: CursorCodec, clock: FakeClock
) -> tuple[MessagingService, list[float]]:
    slept: list[float] = []
    service = MessagingService(chats=chats, users=users, cursors=cursors, clock=clock, sleep=slept.append)
    return service, slept


def send_many(messaging: MessagingService, chat_id: str, count: int, sender: str = ALICE) -> None:
    for n in range(1, count + 1):
        messaging.send(sender, chat_id, f"message {n}", f"{sender}-{n}")


# ---- sending ---------------------------------------------------------------------


def test_send_stores_the_message_with_the_next_seq(messaging: MessagingService, team: Chat) -> None:
    # Given an empty group
    # When Alice sends a message with surrounding spaces
    sent = messaging.send(ALICE, team.chat_id, "  hello  ", "c1")
    # Then it is stored as seq 1, trimmed, and becomes the chat's last message
    assert sent.created
    assert sent.message.seq == 1
    assert sent.message.text == "hello"
    assert sent.message.sender == ALICE
    assert sent.message.client_message_id == "c1"
    assert sent.chat.last_seq == 1
    assert sent.chat.last_message == sent.message


def test_seqs_are_one_two_three(messaging: MessagingService, team: Chat) -> None:
    # Given a group
    # When three members send one message each
    seqs = [messaging.send(who, team.chat_id, "hi", f"c-{who}").message.seq for who in (ALICE, BOB, CAROL)]
    # Then the seqs are 1, 2, 3
    assert seqs == [1, 2, 3]


def test_senders_own_message_counts_as_read_by_them(messaging: MessagingService, team: Chat) -> None:
    # Given Bob sends a message
    sent = messaging.send(BOB, team.chat_id, "hi", "c1")
    # When unread counts are computed
    # Then Bob has nothing unread, the others one each, and the status is sent
    assert sent.chat.unread_count(BOB) == 0
    assert sent.chat.unread_count(ALICE) == 1
    assert sent.chat.status_of(sent.message) == "sent"


def test_same_client_message_id_returns_the_original(
    messaging: MessagingService, chats: FakeChatRepository, team: Chat
) -> None:
    # Given Alice sent a message with clientMessageId c1
    first = messaging.send(ALICE, team.chat_id, "hello", "c1")
    # When she sends again with c1 (a retry), even with other text
    again = messaging.send(ALICE, team.chat_id, "hello again", "c1")
    # Then she gets the original back and nothing new is stored
    assert not again.created
    assert again.message == first.message
    assert len(chats.messages[team.chat_id]) == 1


def test_same_client_message_id_after_other_messages_returns_the_original(
    messaging: MessagingService, team: Chat
) -> None:
    # Given Alice's message c1 followed by two of Bob's
    first = messaging.send(ALICE, team.chat_id, "hello", "c1")
    send_many(messaging, team.chat_id, 2, sender=BOB)
    # When Alice retries c1
    again = messaging.send(ALICE, team.chat_id, "hello", "c1")
    # Then she gets seq 1 back, and the next message is seq 4
    assert (again.created, again.message.seq) == (False, 1)
    assert again.message == first.message
    assert messaging.send(ALICE, team.chat_id, "next", "c2").message.seq == 4


def test_same_client_message_id_from_another_sender_is_a_new_message(
    messaging: MessagingService, team: Chat
) -> None:
    # Given Alice used c1
    messaging.send(ALICE, team.chat_id, "hello", "c1")
    # When Bob uses c1 too
    sent = messaging.send(BOB, team.chat_id, "hi", "c1")
    # Then his is a new message
    assert sent.created
    assert sent.message.seq == 2


def test_same_client_message_id_in_another_chat_is_a_conflict(
    messaging: MessagingService, team: Chat
) -> None:
    # Given Alice used c1 in the group
    messaging.send(ALICE, team.chat_id, "hello", "c1")
    direct = messaging.open_direct(ALICE, DAVE).chat
    # When she uses c1 in a direct chat
    # Then it is a conflict, and nothing is stored there
    with pytest.raises(Conflict):
        messaging.send(ALICE, direct.chat_id, "hello", "c1")
    assert messaging.get_chat(ALICE, direct.chat_id).last_seq == 0


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "x" * (MAX_TEXT + 1)])
def test_empty_blank_or_too_long_text_is_refused(
    messaging: MessagingService, chats: FakeChatRepository, team: Chat, text: str
) -> None:
    # Given a group
    # When Alice sends text that is empty after trimming or over 4096 characters
    # Then it is refused and nothing is stored
    with pytest.raises(ValidationFailed):
        messaging.send(ALICE, team.chat_id, text, "c1")
    assert chats.messages[team.chat_id] == {}


def test_text_of_exactly_4096_characters_is_accepted(messaging: MessagingService, team: Chat) -> None:
    # Given text at the limit
    # When Alice sends it
    sent = messaging.send(ALICE, team.chat_id, "x" * MAX_TEXT, "c1")
    # Then it is stored whole
    assert len(sent.message.text) == MAX_TEXT


def test_non_member_cannot_send(messaging: MessagingService, team: Chat) -> None:
    # Given Dave outside the group
    # When he sends into it
    # Then the chat is not found for him
    with pytest.raises(NotFound):
        messaging.send(DAVE, team.chat_id, "hi", "c1")


class LosesTheRaceOnce(FakeChatRepository):
    """The first append finds the seq taken: by a rival message, or by nothing visible."""

    def __init__(self, rival: Message | None) -> None:
        super().__init__()
        self.attempts = 0
        self._rival = rival

    def append_message(self, chat: Chat, message: Message, *, spend: RateSpend | None = None) -> Chat:
        self.attempts += 1
        if self.attempts == 1:
            if self._rival is not None:
                super().append_message(
                    chat, replace(self._rival, chat_id=chat.chat_id, seq=chat.last_seq + 1)
                )
            raise ConcurrentUpdate("another message took this seq")
        return super().append_message(chat, message, spend=spend)


def test_seq_race_is_retried_and_the_message_stored(
    users: FakeUserRepository, cursors: CursorCodec, clock: FakeClock
) -> None:
    # Given a store whose first append loses a race
    chats = LosesTheRaceOnce(rival=None)
    service, slept = service_with(chats, users, cursors, clock)
    chat = service.create_group(ALICE, "Team", [BOB, CAROL])
    # When Alice sends
    sent = service.send(ALICE, chat.chat_id, "hello", "c1")
    # Then it was retried after a short pause and stored as seq 1
    assert chats.attempts == 2
    assert len(slept) == 1
    assert sent.created
    assert sent.message.seq == 1
    assert chats.messages[chat.chat_id][1] == sent.message


def test_seq_taken_by_a_rival_message_moves_ours_to_the_next_seq(
    users: FakeUserRepository, cursors: CursorCodec, clock: FakeClock
) -> None:
    # Given Bob's message takes seq 1 while Alice's send is in flight
    rival = Message("m_bob", "", 0, BOB, "first!", "bob-1", clock())
    chats = LosesTheRaceOnce(rival=rival)
    service, _ = service_with(chats, users, cursors, clock)
    chat = service.create_group(ALICE, "Team", [BOB, CAROL])
    # When Alice's append fails and is retried
    sent = service.send(ALICE, chat.chat_id, "hello", "c1")
    # Then hers is stored as seq 2 after Bob's, with no gap
    assert sent.message.seq == 2
    assert sorted(chats.messages[chat.chat_id]) == [1, 2]
    assert chats.messages[chat.chat_id][1].sender == BOB


class AlwaysLoses(FakeChatRepository):
    def append_message(self, chat: Chat, message: Message, *, spend: RateSpend | None = None) -> Chat:
        raise ConcurrentUpdate("another message took this seq")


def test_send_gives_up_with_a_conflict_after_too_many_lost_races(
    users: FakeUserRepository, cursors: CursorCodec, clock: FakeClock
) -> None:
    # Given a store where every append loses
    service, slept = service_with(AlwaysLoses(), users, cursors, clock)
    chat = service.create_group(ALICE, "Team", [BOB, CAROL])
    # When Alice sends
    # Then she gets a conflict after the maximum number of attempts
    with pytest.raises(Conflict):
        service.send(ALICE, chat.chat_id, "hello", "c1")
    assert len(slept) == MAX_SEND_ATTEMPTS


def test_concurrent_sends_get_gapless_unique_seqs(
    messaging: MessagingService, chats: FakeChatRepository, team: Chat
) -> None:
    # Given three members sending 20 messages each at the same time
    def burst(sender: str) -> None:
        send_many(messaging, team.chat_id, 20, sender=sender)

    threads = [threading.Thread(target=burst, args=(who,)) for who in (ALICE, BOB, CAROL)]
    # When all are done
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then the seqs are exactly 1..60
    stored = chats.messages[team.chat_id]
    assert sorted(stored) == list(range(1, 61))
    assert sorted(m.seq for m in stored.values()) == list(range(1, 61))
    assert messaging.get_chat(ALICE, team.chat_id).last_seq == 60


# ---- sending to a number ---------------------------------------------------------


def test_send_direct_creates_the_chat_on_demand(messaging: MessagingService) -> None:
    # Given no chat between Alice and Bob
    # When Alice sends to Bob's number
    sent = messaging.send_direct(ALICE, "(415) 555-0102", "hi Bob", "c1")
    # Then the direct chat exists with the message as seq 1
    chat = messaging.get_chat(BOB, sent.message.chat_id)
    assert chat.type == "direct"
    assert chat.last_seq == 1
    assert sent.message.seq == 1


def test_send_direct_reuses_the_existing_chat(messaging: MessagingService) -> None:
    # Given Bob already opened a chat with Alice
    chat = messaging.open_direct(BOB, ALICE).chat
    # When Alice sends to Bob's number
    sent = messaging.send_direct(ALICE, BOB, "hi Bob", "c1")
    # Then it goes into that chat
    assert sent.message.chat_id == chat.chat_id


def test_send_direct_with_bad_text_creates_no_chat(
    messaging: MessagingService, chats: FakeChatRepository
) -> None:
    # Given no chat between Alice and Bob
    # When Alice sends an empty message to Bob
    # Then it is refused and no chat was created
    with pytest.raises(ValidationFailed):
        messaging.send_direct(ALICE, BOB, "  ", "c1")
    assert chats.chats == {}


# ---- history ---------------------------------------------------------------------


def test_list_messages_is_newest_first_across_pages(messaging: MessagingService, team: Chat) -> None:
    # Given five messages
    send_many(messaging, team.chat_id, 5)
    # When Bob reads the history two at a time
    seqs: list[int] = []
    cursor: str | None = None
    while True:
        page, _, cursor = messaging.list_messages(BOB, team.chat_id, limit=2, cursor=cursor, after_seq=None)
        seqs.extend(m.seq for m in page.items)
        if cursor is None:
            break
    # Then he sees 5, 4, 3, 2, 1
    assert seqs == [5, 4, 3, 2, 1]


def test_list_messages_after_seq_is_oldest_first(messaging: MessagingService, team: Chat) -> None:
    # Given five messages
    send_many(messaging, team.chat_id, 5)
    # When Bob catches up after seq 2, two at a time
    seqs: list[int] = []
    cursor: str | None = None
    while True:
        page, _, cursor = messaging.list_messages(BOB, team.chat_id, limit=2, cursor=cursor, after_seq=2)
        seqs.extend(m.seq for m in page.items)
        if cursor is None:
            break
    # Then he gets 3, 4, 5 in order
    assert seqs == [3, 4, 5]


def test_list_messages_after_the_last_seq_is_empty(messaging: MessagingService, team: Chat) -> None:
    # Given three messages
    send_many(messaging, team.chat_id, 3)
    # When Bob asks for what came after 3
    page, _, cursor = messaging.list_messages(BOB, team.chat_id, limit=20, cursor=None, after_seq=3)
    # Then there is nothing
    assert page.items == []
    assert cursor is None


def test_list_messages_returns_the_chat_for_statuses(messaging: MessagingService, team: Chat) -> None:
    # Given a message everyone read
    send_many(messaging, team.chat_id, 1)
    messaging.mark(BOB, team.chat_id, "read", 1)
    messaging.mark(CAROL, team.chat_id, "read", 1)
    # When Alice lists the history
    page, chat, _ = messaging.list_messages(ALICE, team.chat_id, limit=20, cursor=None, after_seq=None)
    # Then the chat that comes with it shows the message as read
    assert chat.status_of(page.items[0]) == "read"


def test_list_messages_of_a_non_member_is_not_found(messaging: MessagingService, team: Chat) -> None:
    # Given Dave outside the group
    # When he lists its messages
    # Then the chat is not found
    with pytest.raises(NotFound):
        messaging.list_messages(DAVE, team.chat_id, limit=20, cursor=None, after_seq=None)


def test_list_messages_cursor_is_bound_to_its_list(messaging: MessagingService, team: Chat) -> None:
    # Given Bob's next-page cursor for the newest-first history
    send_many(messaging, team.chat_id, 3)
    _, _, cursor = messaging.list_messages(BOB, team.chat_id, limit=1, cursor=None, after_seq=None)
    assert cursor is not None
    # When it is used for the catch-up list, or by Carol
    # Then it is an invalid cursor
    with pytest.raises(InvalidCursor):
        messaging.list_messages(BOB, team.chat_id, limit=1, cursor=cursor, after_seq=0)
    with pytest.raises(InvalidCursor):
        messaging.list_messages(CAROL, team.chat_id, limit=1, cursor=cursor, after_seq=None)


# ---- receipts --------------------------------------------------------------------


def test_read_receipt_moves_both_markers(messaging: MessagingService, team: Chat) -> None:
    # Given three messages
    send_many(messaging, team.chat_id, 3)
    # When Bob reads up to 2
    messaging.mark(BOB, team.chat_id, "read", 2)
    # Then his read and delivered markers are at 2 and one message is unread
    chat = messaging.get_chat(BOB, team.chat_id)
    bob = chat.member(BOB)
    assert bob is not None
    assert (bob.delivered_seq, bob.read_seq) == (2, 2)
    assert chat.unread_count(BOB) == 1


def test_markers_never_go_backwards(messaging: MessagingService, team: Chat) -> None:
    # Given Bob got 5 and read 4
    send_many(messaging, team.chat_id, 5)
    messaging.mark(BOB, team.chat_id, "delivered", 5)
    messaging.mark(BOB, team.chat_id, "read", 4)
    # When older receipts arrive
    messaging.mark(BOB, team.chat_id, "delivered", 2)
    messaging.mark(BOB, team.chat_id, "read", 1)
    # Then his markers stay where they were
    bob = messaging.get_chat(BOB, team.chat_id).member(BOB)
    assert bob is not None
    assert (bob.delivered_seq, bob.read_seq) == (5, 4)


def test_receipt_past_the_last_seq_is_refused(messaging: MessagingService, team: Chat) -> None:
    # Given three messages
    send_many(messaging, team.chat_id, 3)
    # When Bob marks up to 4
    # Then it is refused, naming upToSeq
    with pytest.raises(ValidationFailed) as caught:
        messaging.mark(BOB, team.chat_id, "read", 4)
    assert [p.field for p in caught.value.details] == ["upToSeq"]


def test_message_becomes_delivered_then_read(messaging: MessagingService, team: Chat) -> None:
    # Given Alice's message in the group
    sent = messaging.send(ALICE, team.chat_id, "hi", "c1")
    # When Bob and Carol get it, then read it
    messaging.mark(BOB, team.chat_id, "delivered", 1)
    after_bob = messaging.get_chat(ALICE, team.chat_id).status_of(sent.message)
    messaging.mark(CAROL, team.chat_id, "delivered", 1)
    after_both = messaging.get_chat(ALICE, team.chat_id).status_of(sent.message)
    messaging.mark(BOB, team.chat_id, "read", 1)
    messaging.mark(CAROL, team.chat_id, "read", 1)
    after_read = messaging.get_chat(ALICE, team.chat_id).status_of(sent.message)
    # Then its status goes sent, delivered, read
    assert (after_bob, after_both, after_read) == ("sent", "delivered", "read")


def test_non_member_cannot_mark(messaging: MessagingService, team: Chat) -> None:
    # Given Dave outside the group
    send_many(messaging, team.chat_id, 1)
    # When he sends a receipt
    # Then the chat is not found
    with pytest.raises(NotFound):
        messaging.mark(DAVE, team.chat_id, "read", 1)


class MarkersMovedOnce(FakeChatRepository):
    """The first marker update finds the markers changed by another device."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def update_markers(self, chat: Chat, phone_number: str, delivered_seq: int, read_seq: int) -> None:
        self.attempts += 1
        if self.attempts == 1:
            member = chat.member(phone_number)
            assert member is not None
            super().update_markers(chat, phone_number, member.delivered_seq + 1, member.read_seq)
        super().update_markers(chat, phone_number, delivered_seq, read_seq)


def test_marker_race_is_retried_from_the_new_markers(
    users: FakeUserRepository, cursors: CursorCodec, clock: FakeClock
) -> None:
    # Given Bob's other device moves his delivered marker during his read receipt
    chats = MarkersMovedOnce()
    service, _ = service_with(chats, users, cursors, clock)
    chat = service.create_group(ALICE, "Team", [BOB, CAROL])
    send_many(service, chat.chat_id, 3)
    # When Bob reads up to 3
    service.mark(BOB, chat.chat_id, "read", 3)
    # Then the receipt is applied on the second try
    bob = service.get_chat(BOB, chat.chat_id).member(BOB)
    assert bob is not None
    assert chats.attempts == 2
    assert (bob.delivered_seq, bob.read_seq) == (3, 3)
