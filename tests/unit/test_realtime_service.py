"""RealtimeService on in-memory fakes: who gets which frame, and which offline member an SMS."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from chatflow.api import realtime as frames
from chatflow.application.changes import ChatChanged, ConnectionExpired, PresenceChanged
from chatflow.application.realtime import Forwarding, RealtimeService
from chatflow.domain.chats import Chat, Member, Message
from chatflow.domain.realtime import CONNECTION_TTL, FORWARD_WINDOW, ForwardJob, Presence
from chatflow.errors import NotFound, Throttled
from tests.fakes import (
    EPOCH,
    FakeChatRepository,
    FakeClock,
    FakeConnectionRepository,
    FakeForwardLimiter,
    FakeForwardScheduler,
    FakeNotifier,
)
from tests.unit.conftest import ALICE, BOB, CAROL


@dataclass
class World:
    service: RealtimeService
    connections: FakeConnectionRepository
    notifier: FakeNotifier
    chats: FakeChatRepository
    waits: FakeForwardScheduler
    limiter: FakeForwardLimiter
    clock: FakeClock

    def connect(self, phone: str, connection_id: str) -> None:
        now = self.clock()
        self.connections.add(phone, connection_id, now=now, expires_at=now + CONNECTION_TTL)

    def types(self, connection_id: str) -> list[str]:
        return [frame["type"] for frame in self.notifier.frames_to(connection_id)]


AFTER = timedelta(seconds=60)


def world(*, gone: set[str] | None = None) -> World:
    clock = FakeClock()
    connections, notifier, chats = FakeConnectionRepository(), FakeNotifier(gone=gone), FakeChatRepository()
    waits, limiter = FakeForwardScheduler(), FakeForwardLimiter()
    service = RealtimeService(
        connections=connections,
        notifier=notifier,
        frames=frames,
        chats=chats,
        clock=clock,
        forwarding=Forwarding(waits=waits, limiter=limiter, after=AFTER),
    )
    return World(service, connections, notifier, chats, waits, limiter, clock)


def group(*phones: str, last_seq: int = 0, last_message: Message | None = None) -> Chat:
    members = tuple(Member(phone, None, EPOCH) for phone in phones)
    return Chat("g_1", "group", "team", ALICE, EPOCH, EPOCH, members, last_seq, last_message)


def message(seq: int, sender: str = ALICE) -> Message:
    return Message(f"m_{seq}", "g_1", seq, sender, "hello", f"c{seq}", EPOCH)


def with_message(chat: Chat, seq: int, sender: str = ALICE) -> Chat:
    return replace(chat, last_seq=seq, last_message=message(seq, sender))


@pytest.fixture
def w() -> World:
    return world()


def test_given_members_online_when_a_message_is_stored_then_each_of_their_connections_gets_it(
    w: World,
) -> None:
    # Given Alice on two devices and Bob on one, in a group
    w.connect(ALICE, "a1")
    w.connect(ALICE, "a2")
    w.connect(BOB, "b1")
    before = group(ALICE, BOB)

    # When Alice's message is stored
    w.service.on_change(ChatChanged(before, with_message(before, 1)))

    # Then every connection, the sender's included, gets one message.new
    assert w.types("a1") == w.types("a2") == w.types("b1") == ["message.new"]
    assert w.notifier.frames_to("b1")[0]["message"]["seq"] == 1


def test_given_an_offline_member_when_a_message_is_stored_then_only_they_get_a_wait(w: World) -> None:
    # Given Bob online and Carol with no connection
    w.connect(BOB, "b1")
    before = group(ALICE, BOB, CAROL)

    # When Alice's message is stored
    w.service.chat_changed(before, with_message(before, 1))

    # Then a wait starts for Carol alone, its job due ForwardAfterSeconds later, her budget taken
    assert w.waits.scheduled == [(ForwardJob("g_1", CAROL, 1), 60)]
    assert w.limiter.until[("g_1", CAROL)] == w.clock() + FORWARD_WINDOW
    assert w.limiter.seq[("g_1", CAROL)] == 1


def test_given_a_wait_on_when_more_messages_come_then_no_second_wait_starts(w: World) -> None:
    # Given Bob offline, his wait started by message 1
    before = group(ALICE, BOB)
    first = with_message(before, 1)
    w.service.chat_changed(before, first)

    # When messages 2 and 3 come within the window
    w.clock.advance(timedelta(seconds=30))
    second = with_message(first, 2)
    w.service.chat_changed(first, second)
    w.clock.advance(FORWARD_WINDOW - timedelta(seconds=31))
    w.service.chat_changed(second, with_message(second, 3))

    # Then Bob still has the one wait (its job forwards what is unread from message 1 on)
    assert w.waits.scheduled == [(ForwardJob("g_1", BOB, 1), 60)]


def test_given_a_wait_given_back_after_a_read_when_a_message_comes_then_a_new_wait_starts(w: World) -> None:
    # Given Bob's wait from message 1, given back when its job found it read
    before = group(ALICE, BOB)
    first = with_message(before, 1)
    w.service.chat_changed(before, first)
    w.limiter.release("g_1", BOB, seq=1)

    # When message 2 comes
    w.clock.advance(AFTER)
    w.service.chat_changed(first, with_message(first, 2))

    # Then a new wait starts from it
    assert [job for job, _ in w.waits.scheduled] == [ForwardJob("g_1", BOB, 1), ForwardJob("g_1", BOB, 2)]


def test_given_the_queue_refuses_when_a_wait_starts_then_its_budget_is_given_back(w: World) -> None:
    # Given a forward queue that refuses the next call
    w.waits.fail = Throttled("The queue is busy: retry in a moment.")
    before = group(ALICE, BOB)

    # When a message for offline Bob is stored, Then the error is raised (the record is retried)
    with pytest.raises(Throttled):
        w.service.chat_changed(before, with_message(before, 1))

    # And Bob's budget is free again for the retry, which starts the wait
    assert w.limiter.released == [("g_1", BOB)]
    assert not w.limiter.known_taken("g_1", BOB, now=w.clock())
    w.service.chat_changed(before, with_message(before, 1))
    assert w.waits.scheduled == [(ForwardJob("g_1", BOB, 1), 60)]


def test_given_a_gone_connection_when_a_frame_is_posted_to_it_then_it_is_removed() -> None:
    # Given Bob's connection gone on API Gateway's side
    w = world(gone={"b1"})
    w.connect(BOB, "b1")
    before = group(ALICE, BOB)

    # When a frame is posted to it
    w.service.chat_changed(before, with_message(before, 1))

    # Then the connection is forgotten and Bob is offline
    assert w.connections.owners == {}
    assert not w.connections.presence([BOB], now=w.clock())[BOB].online


def test_given_moved_read_marker_when_the_chat_changes_then_only_the_others_hear_it(w: World) -> None:
    # Given Alice and Bob online, after message 1
    w.connect(ALICE, "a1")
    w.connect(BOB, "b1")
    seen = with_message(group(ALICE, BOB), 1)

    # When Bob reads it
    bob = Member(BOB, None, EPOCH, delivered_seq=1, read_seq=1)
    w.service.chat_changed(seen, seen.with_members((seen.members[0], bob)))

    # Then Alice hears "read" by Bob; Bob hears nothing of his own receipt
    assert [(f["type"], f["status"], f["by"]) for f in w.notifier.frames_to("a1")] == [
        ("message.status", "read", BOB)
    ]
    assert w.types("b1") == []


def test_given_a_new_member_when_the_chat_changes_then_everyone_gets_the_chat(w: World) -> None:
    # Given Alice and Carol online
    w.connect(ALICE, "a1")
    w.connect(CAROL, "c1")
    before = group(ALICE, BOB)

    # When Carol is added
    w.service.chat_changed(before, group(ALICE, BOB, CAROL))

    # Then both get chat.updated
    assert w.types("a1") == w.types("c1") == ["chat.updated"]


def test_given_a_user_comes_online_when_presence_changes_then_their_contacts_hear_it(w: World) -> None:
    # Given Alice shares a chat with Bob (online); Carol shares none
    w.chats.create_chat(group(ALICE, BOB))
    w.connect(BOB, "b1")
    w.connect(CAROL, "c1")

    # When Alice comes online
    w.service.on_change(PresenceChanged(Presence(ALICE, (), None), Presence(ALICE, ("a1",), None)))

    # Then Bob hears it, Carol does not
    assert [(f["type"], f["phoneNumber"], f["online"]) for f in w.notifier.frames_to("b1")] == [
        ("presence", ALICE, True)
    ]
    assert w.types("c1") == []


def test_given_a_second_device_when_presence_changes_then_nobody_is_told(w: World) -> None:
    # Given Alice already online, in a chat with Bob
    w.chats.create_chat(group(ALICE, BOB))
    w.connect(BOB, "b1")

    # When her second device connects (still online)
    w.service.presence_changed(Presence(ALICE, ("a1",), None), Presence(ALICE, ("a1", "a2"), None))

    # Then no frame is sent
    assert w.notifier.posted == []


def test_given_an_expired_connection_when_the_ttl_deletes_it_then_its_owner_loses_it(w: World) -> None:
    # Given Bob's connection whose $disconnect never came
    w.connect(BOB, "b1")

    # When DynamoDB's TTL deletes its item
    w.service.on_change(ConnectionExpired(BOB, "b1"))

    # Then Bob is offline, last seen now
    presence = w.connections.presence([BOB], now=w.clock())[BOB]
    assert not presence.online
    assert presence.last_seen_at is not None


def test_given_a_member_typing_when_told_then_only_the_other_members_hear_it(w: World) -> None:
    # Given Alice and Bob online in a chat
    w.chats.create_chat(group(ALICE, BOB))
    w.connect(ALICE, "a1")
    w.connect(BOB, "b1")

    # When Alice types
    w.service.typing(ALICE, "g_1")

    # Then Bob hears it, Alice does not
    assert w.notifier.frames_to("b1") == [{"type": "typing", "chatId": "g_1", "phoneNumber": ALICE}]
    assert w.types("a1") == []


def test_given_a_stranger_when_they_type_in_a_chat_then_it_is_not_found(w: World) -> None:
    w.chats.create_chat(group(ALICE, BOB))

    with pytest.raises(NotFound):
        w.service.typing(CAROL, "g_1")


def test_given_a_signed_out_session_when_refused_then_it_gets_a_last_frame_and_is_closed(w: World) -> None:
    w.service.refuse("a1", frames.error_frame("unauthorized", "sign in again"))

    assert w.notifier.frames_to("a1") == [
        {"type": "error", "code": "unauthorized", "message": "sign in again"}
    ]
    assert w.notifier.closed == ["a1"]
