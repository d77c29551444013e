"""Replies by SMS on fakes: which gateway events record a route, where a reply goes, and what
ordinary inbound text that reaches no chat gets (CONTRACT §7)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatflow.domain.messaging import MessagingService
from chatflow.domain.sms import Encoding, segments
from chatflow.domain.sms_replies import (
    REPLY_WINDOW,
    UNROUTED_REPLY,
    ForwardRoute,
    SmsReplies,
    reply_client_message_id,
    route_of,
    unrouted_notice_command_id,
)
from chatflow.domain.webhooks import InboundSms, WebhookService
from tests.fakes import FakeChatRepository, FakeClock, FakeReplyRoutes, FakeSmsCommandSender
from tests.sms_fakes import InMemoryCommands, InMemoryOptOuts
from tests.unit.conftest import ALICE, BOB, CAROL


def _detail(**changes: object) -> dict[str, object]:
    detail: dict[str, object] = {
        "commandId": "fwd-1",
        "phoneNumber": BOB,
        "sentAt": "2026-12-04T10:00:05.120Z",
        "metadata": {"chatId": "d_1", "messageId": "m_1"},
    }
    return detail | changes


def test_the_smssent_of_a_forward_is_a_route_and_nothing_else_is() -> None:
    route = route_of("SmsSent", _detail())
    assert route is not None
    assert (route.phone_number, route.chat_id, route.sent_at.isoformat()) == (
        BOB,
        "d_1",
        "2026-12-04T10:00:05.120000+00:00",
    )
    assert route_of("SmsFailed", _detail()) is None  # the handset never got it
    assert route_of("SmsExpired", _detail()) is None
    assert route_of("SmsSent", _detail(metadata={"campaignId": "c_1"})) is None
    assert route_of("SmsSent", _detail(metadata=None)) is None
    assert route_of("SmsSent", _detail(phoneNumber=None, iccid="89440001")) is None
    assert route_of("SmsSent", _detail(sentAt="yesterday")) is None


def test_the_client_message_id_of_a_reply_is_the_inbound_id_or_a_hash_that_fits() -> None:
    assert reply_client_message_id("in_42", b"{}") == "sms-in_42"
    long_id = "x" * 200
    hashed = reply_client_message_id(long_id, b"{}")
    assert hashed == reply_client_message_id(long_id, b"other body")  # the id decides
    assert hashed.startswith("sms-")
    assert len(hashed) <= 128
    no_id = reply_client_message_id(None, b'{"from": "+1"}')
    assert no_id == reply_client_message_id(None, b'{"from": "+1"}')
    assert no_id != reply_client_message_id(None, b'{"from": "+2"}')


def test_the_unrouted_notice_is_once_per_number_per_utc_day(clock: FakeClock) -> None:
    now = clock()
    assert unrouted_notice_command_id(BOB, now) == unrouted_notice_command_id(BOB, now + timedelta(hours=1))
    assert unrouted_notice_command_id(BOB, now) != unrouted_notice_command_id(BOB, now + timedelta(days=1))
    assert unrouted_notice_command_id(BOB, now) != unrouted_notice_command_id(CAROL, now)
    notice = segments(UNROUTED_REPLY)
    assert (notice.encoding, notice.count) == (Encoding.GSM7, 1)


class Harness:
    def __init__(self, messaging: MessagingService, clock: FakeClock) -> None:
        self.routes = FakeReplyRoutes()
        self.opt_outs = InMemoryOptOuts()
        self.queue = FakeSmsCommandSender()
        self.clock = clock
        self.messaging = messaging
        self.replies = SmsReplies(routes=self.routes, messaging=lambda: messaging, clock=clock)
        self.webhooks = WebhookService(
            commands=InMemoryCommands(),
            opt_outs=self.opt_outs,
            replies=self.queue,
            clock=clock,
            conversations=self.replies,
        )

    def forwarded(self, phone: str, chat_id: str, ago: timedelta = timedelta(minutes=1)) -> None:
        assert self.replies.record_forward(ForwardRoute(phone, chat_id, self.clock() - ago))


@pytest.fixture
def harness(messaging: MessagingService, clock: FakeClock) -> Harness:
    return Harness(messaging, clock)


def test_a_route_lasts_24_hours_from_its_send(harness: Harness, chats: FakeChatRepository) -> None:
    chat = harness.messaging.open_direct(ALICE, BOB).chat
    sent_at = harness.clock()
    harness.replies.record_forward(ForwardRoute(BOB, chat.chat_id, sent_at))
    assert harness.routes.expiries[BOB] == sent_at + REPLY_WINDOW

    harness.clock.set(sent_at + REPLY_WINDOW - timedelta(seconds=1))
    assert harness.replies.reply(BOB, "just in time", "sms-a").sent is not None
    harness.clock.set(sent_at + REPLY_WINDOW)
    late = harness.replies.reply(BOB, "too late", "sms-b")
    assert (late.sent, late.ignored_because) == (None, "no_recent_forward")
    assert [m.text for m in chats.messages[chat.chat_id].values()] == ["just in time"]


def test_an_older_forward_recorded_late_does_not_move_the_route(harness: Harness) -> None:
    now = harness.clock()
    assert harness.replies.record_forward(ForwardRoute(BOB, "g_new", now))
    assert not harness.replies.record_forward(ForwardRoute(BOB, "d_old", now - timedelta(minutes=3)))
    assert not harness.replies.record_forward(ForwardRoute(BOB, "g_new", now))  # a duplicate event
    latest = harness.routes.latest(BOB)
    assert latest is not None
    assert latest.chat_id == "g_new"


def test_a_reply_is_the_members_message_via_sms(harness: Harness, chats: FakeChatRepository) -> None:
    chat = harness.messaging.open_direct(ALICE, BOB).chat
    harness.forwarded(BOB, chat.chat_id)

    result = harness.webhooks.inbound(InboundSms(sender="+1 415 555 0102", text=" ok! ", inbound_id="p-9"))

    [message] = chats.messages[chat.chat_id].values()
    assert (message.sender, message.text, message.via, message.client_message_id) == (
        BOB,
        "ok!",
        "sms",
        "sms-p-9",
    )
    assert (result.action, result.chat_id, result.message_id, result.seq) == (
        "message",
        chat.chat_id,
        message.message_id,
        1,
    )
    assert harness.queue.commands == []  # no reply SMS for a message


def test_text_with_no_route_gets_one_notice_and_none_when_opted_out(harness: Harness) -> None:
    first = harness.webhooks.inbound(InboundSms(sender=BOB, text="hello?", inbound_id="a"))
    again = harness.webhooks.inbound(InboundSms(sender=BOB, text="anyone?", inbound_id="b"))
    harness.opt_outs.opt_out(CAROL, at=harness.clock())
    carol = harness.webhooks.inbound(InboundSms(sender=CAROL, text="hello?", inbound_id="c"))
    empty = harness.webhooks.inbound(InboundSms(sender=BOB, text="   ", inbound_id="d"))

    assert (first.action, first.ignored_because) == ("none", "no_recent_forward")
    assert first.reply_command_id == again.reply_command_id  # the gateway sends it once
    assert [(c["phoneNumber"], c["text"], c["metadata"]) for c in harness.queue.commands] == [
        (BOB, UNROUTED_REPLY, {"purpose": "unrouted-reply-notice", "inboundId": "a"}),
        (BOB, UNROUTED_REPLY, {"purpose": "unrouted-reply-notice", "inboundId": "b"}),
    ]
    assert (carol.ignored_because, carol.reply_command_id) == ("no_recent_forward", None)
    assert (empty.ignored_because, empty.reply_command_id) == ("empty", None)


def test_a_number_that_left_the_chat_posts_nothing(harness: Harness, chats: FakeChatRepository) -> None:
    messaging = harness.messaging
    group = messaging.create_group(ALICE, "Trip", [BOB, CAROL])
    harness.forwarded(CAROL, group.chat_id)
    messaging.remove_member(CAROL, group.chat_id, CAROL)

    result = harness.webhooks.inbound(InboundSms(sender=CAROL, text="wait", inbound_id="x"))

    assert (result.action, result.ignored_because, result.chat_id) == ("none", "not_a_member", group.chat_id)
    assert chats.messages.get(group.chat_id, {}) == {}


def test_keywords_never_reach_the_chat(harness: Harness, chats: FakeChatRepository) -> None:
    chat = harness.messaging.open_direct(ALICE, BOB).chat
    harness.forwarded(BOB, chat.chat_id)

    actions = [
        harness.webhooks.inbound(InboundSms(sender=BOB, text=text, inbound_id=text)).action
        for text in ("HELP", "info", "STOP", "start", "yes")
    ]

    # YES opts back in a number that is opted out (Bob just sent STOP, then START: not any more)
    assert actions == ["help", "help", "opted_out", "opted_in", "message"]
    assert [m.text for m in chats.messages[chat.chat_id].values()] == ["yes"]
