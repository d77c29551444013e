"""A whole SMS-forward wait on in-memory fakes: the fan-out starts it, ``DelayedForwards``
ends it (one digest SMS, or nothing), and the budget holds one SMS per 10 minutes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from chatflow.api import realtime as frames
from chatflow.application.forwards import DelayedForwards
from chatflow.application.realtime import Forwarding, RealtimeService
from chatflow.domain.chats import Chat, Member, Message
from chatflow.domain.realtime import CONNECTION_TTL, FORWARD_WINDOW, ForwardJob
from tests.fakes import (
    EPOCH,
    FakeChatRepository,
    FakeClock,
    FakeConnectionRepository,
    FakeForwardLimiter,
    FakeForwardScheduler,
    FakeNotifier,
    FakeSmsCommandSender,
)
from tests.sms_fakes import InMemoryOptOuts
from tests.unit.conftest import ALICE, BOB, CAROL

AFTER = timedelta(seconds=60)


@dataclass
class World:
    fanout: RealtimeService
    forwards: DelayedForwards
    chats: FakeChatRepository
    connections: FakeConnectionRepository
    waits: FakeForwardScheduler
    limiter: FakeForwardLimiter
    sender: FakeSmsCommandSender
    opt_outs: InMemoryOptOuts
    clock: FakeClock

    def write(self, sender: str, text: str) -> None:
        """``sender``'s message stored, and the fan-out run on its change."""
        before = self.chats.get_chat("g_1")
        assert before is not None
        seq = before.last_seq + 1
        message = Message(f"m_{seq}", "g_1", seq, sender, text, f"c{seq}", self.clock())
        after = self.chats.append_message(before, message)
        self.fanout.chat_changed(before, after)

    def read(self, phone: str, up_to: int) -> None:
        chat = self.chats.get_chat("g_1")
        assert chat is not None
        self.chats.update_markers(chat, phone, up_to, up_to)

    def end_waits(self) -> list[str]:
        """Run every job scheduled so far, ``AFTER`` later; the outcomes."""
        self.clock.advance(AFTER)
        jobs, self.waits.scheduled = [job for job, _ in self.waits.scheduled], []
        return [self.forwards.finish(job) for job in jobs]


@pytest.fixture
def w() -> World:
    clock = FakeClock()
    chats, connections = FakeChatRepository(), FakeConnectionRepository()
    waits, limiter = FakeForwardScheduler(), FakeForwardLimiter()
    sender, opt_outs = FakeSmsCommandSender(), InMemoryOptOuts()
    members = (Member(ALICE, "Ana", EPOCH), Member(BOB, "Ben", EPOCH), Member(CAROL, None, EPOCH))
    chats.create_chat(Chat("g_1", "group", "Trip", ALICE, EPOCH, EPOCH, members))
    fanout = RealtimeService(
        connections=connections,
        notifier=FakeNotifier(),
        frames=frames,
        chats=chats,
        clock=clock,
        forwarding=Forwarding(waits=waits, limiter=limiter, after=AFTER),
    )
    forwards = DelayedForwards(
        chats=chats, connections=connections, opt_outs=opt_outs, limiter=limiter, sender=sender, clock=clock
    )
    now = clock()
    connections.add(ALICE, "a1", now=now, expires_at=now + CONNECTION_TTL)  # Ana has the app open
    return World(fanout, forwards, chats, connections, waits, limiter, sender, opt_outs, clock)


def to(w: World, phone: str) -> list[str]:
    return [c["text"] for c in w.sender.commands if c["phoneNumber"] == phone]


def test_given_a_burst_when_the_wait_ends_then_each_offline_member_gets_one_digest(w: World) -> None:
    w.write(ALICE, "see you at 8")
    w.write(BOB, "ok")
    w.write(ALICE, "bring snacks")

    w.end_waits()

    # Ben wrote (his marker moved with his message): he gets what came after it
    assert to(w, BOB) == ["Ana: bring snacks"]
    assert to(w, CAROL) == ["3 new messages in Trip: Ana: see you at 8 / Ben: ok / Ana: bring snacks"]
    [command] = [c for c in w.sender.commands if c["phoneNumber"] == CAROL]
    assert command["commandId"] == f"fwd-g_1-{CAROL.lstrip('+')}-1"
    assert command["metadata"] == {
        "chatId": "g_1",
        "messageId": "m_3",
        "fromSeq": "1",
        "upToSeq": "3",
        "messages": "3",
    }


def test_given_a_read_before_the_wait_ends_then_nothing_is_sent_and_the_budget_is_free(w: World) -> None:
    w.write(ALICE, "call me")
    w.read(CAROL, 1)

    assert w.end_waits().count("nothing_unread") == 1
    assert to(w, CAROL) == []

    # And her next message starts a new wait at once, whose SMS is that message
    w.write(ALICE, "now?")
    w.end_waits()
    assert to(w, CAROL) == ["Ana: now?"]


def test_given_a_member_online_again_when_the_wait_ends_then_nothing_is_sent(w: World) -> None:
    w.write(ALICE, "hello")
    now = w.clock()
    w.connections.add(CAROL, "c1", now=now, expires_at=now + CONNECTION_TTL)

    w.end_waits()

    assert to(w, CAROL) == []
    assert not w.limiter.known_taken("g_1", CAROL, now=w.clock())


def test_given_an_opted_out_member_then_no_sms_and_no_new_wait_for_the_window(w: World) -> None:
    w.opt_outs.destinations.add(CAROL)
    w.write(ALICE, "one")
    assert w.end_waits().count("opted_out") == 1

    w.write(ALICE, "two")

    assert to(w, CAROL) == []
    assert w.waits.scheduled == []  # (and Ben's budget holds: his SMS went out)


def test_given_an_sms_sent_then_no_other_for_10_minutes_then_a_new_wait(w: World) -> None:
    w.write(ALICE, "first")
    w.end_waits()
    w.clock.advance(FORWARD_WINDOW - AFTER - timedelta(seconds=1))
    w.write(ALICE, "second")
    assert w.waits.scheduled == []

    w.clock.advance(timedelta(seconds=2))
    w.write(ALICE, "third")
    w.end_waits()

    assert to(w, CAROL) == ["Ana: first", "Ana: third"]


def test_given_a_job_delivered_again_after_a_read_then_it_sends_nothing_and_frees_nothing(w: World) -> None:
    # Given Carol's wait ended with an SMS
    w.write(ALICE, "hi")
    [job] = [j for j, _ in w.waits.scheduled if j.phone_number == CAROL]
    w.end_waits()
    # When she reads it, and the same job is delivered again
    w.read(CAROL, 1)
    outcome = w.forwards.finish(job)

    # Then nothing more is sent, and her budget holds for the window
    assert outcome == "nothing_unread"
    assert to(w, CAROL) == ["Ana: hi"]
    assert w.limiter.known_taken("g_1", CAROL, now=w.clock())


def test_given_a_stale_job_when_another_wait_holds_the_budget_then_it_sends_nothing(w: World) -> None:
    w.write(ALICE, "hi")
    w.limiter.seq[("g_1", CAROL)] = 7  # (another wait took the budget since)

    assert w.forwards.finish(ForwardJob("g_1", CAROL, 1)) == "taken"
    assert to(w, CAROL) == []


def test_given_a_member_who_left_when_the_wait_ends_then_nothing_is_sent(w: World) -> None:
    w.write(ALICE, "hi")
    chat = w.chats.get_chat("g_1")
    assert chat is not None
    w.chats.chats["g_1"] = replace(chat, members=tuple(m for m in chat.members if m.phone_number != CAROL))

    w.end_waits()

    assert to(w, CAROL) == []
