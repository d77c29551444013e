"""Replies by SMS (CONTRACT §7): a member who gets a chat by SMS answers it by SMS.

Two halves, in two functions:

- **Where replies go.** Each ``SmsSent`` of a forward (a command whose metadata names a
  ``chatId``: ``chatflow.application.realtime``'s forwards, digests included) records, for the
  number it went to, that chat and when (``ForwardRoutesFunction``, an EventBridge rule). The
  most recent send wins, whatever order the events arrive in; a route is good for 24 hours.
  Recording it from the gateway's event, not when the forward is queued, means a forward that
  expired or failed (the handset never saw it) routes nothing.
- **A reply.** Inbound ordinary text (no STOP / START / HELP keyword: ``WebhookService``) from
  that number, within 24 hours of that send, becomes the member's next message of the chat,
  ``via: "sms"``, through ``MessagingService.send``: the same seq, inbox, search and real-time
  fan-out as an app message. Its ``clientMessageId`` comes from the inbound id, so a webhook
  the provider retries stores one message. The member must still be in the chat; the number
  needs no account (a member may be a number that never signed in: the sender is the number).

Text that reaches no chat (no forward in 24 hours, or no longer a member) is not stored; its
number gets one notice a day saying so (``UNROUTED_REPLY``), unless it opted out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from chatflow.domain.clock import Clock, from_iso
from chatflow.errors import NotFound
from chatflow.ports import ReplyRouteRepository

if TYPE_CHECKING:
    from chatflow.domain.messaging import MessagingService, Sent

REPLY_WINDOW = timedelta(hours=24)
_MAX_CLIENT_MESSAGE_ID = 128
# GSM-7, one segment (a test holds it to that): says why, and what to do instead.
UNROUTED_REPLY = (
    "ChatFlow: your message reached no chat. You can answer a chat by SMS for 24 hours after "
    "it last texted you; to write later, use ChatFlow."
)

# Why ordinary inbound text became no message.
IgnoredBecause = Literal["no_recent_forward", "not_a_member", "empty"]


@dataclass(frozen=True)
class ForwardRoute:
    """A chat forwarded to a number by SMS, and when the provider accepted it."""

    phone_number: str
    chat_id: str
    sent_at: datetime


@dataclass(frozen=True)
class ReplyOutcome:
    """The message a reply became (``sent``), or why it became none (``ignored_because``)."""

    sent: Sent | None
    chat_id: str | None = None
    ignored_because: IgnoredBecause | None = None


def route_of(detail_type: str, detail: Mapping[str, Any]) -> ForwardRoute | None:
    """The route an SMS gateway event records: only an ``SmsSent`` to a number whose metadata
    names a chat (a forward); None for anything else."""
    if detail_type != "SmsSent":
        return None
    metadata = detail.get("metadata")
    chat_id = metadata.get("chatId") if isinstance(metadata, Mapping) else None
    phone, sent_at = detail.get("phoneNumber"), detail.get("sentAt")
    if not (isinstance(chat_id, str) and chat_id and isinstance(phone, str) and isinstance(sent_at, str)):
        return None
    try:
        at = from_iso(sent_at)
    except ValueError:
        return None
    return ForwardRoute(phone_number=phone, chat_id=chat_id, sent_at=at)


def reply_client_message_id(inbound_id: str | None, raw_body: bytes) -> str:
    """The ``clientMessageId`` of the message an inbound SMS becomes: ``sms-<inbound id>``, the
    same for every delivery of one webhook (a hash when the id is long, or of the raw body
    when the provider gave none)."""
    if inbound_id and len(inbound_id) + 4 <= _MAX_CLIENT_MESSAGE_ID:
        return f"sms-{inbound_id}"
    source = f"id\n{inbound_id}".encode() if inbound_id else b"body\n" + raw_body
    return f"sms-{hashlib.sha256(source).hexdigest()[:40]}"


def unrouted_notice_command_id(phone_number: str, now: datetime) -> str:
    """One notice per number per UTC day: the gateway sends a command id once."""
    day = now.date().isoformat()
    return f"sms-unrouted-{hashlib.sha256(f'{phone_number}|{day}'.encode()).hexdigest()[:40]}"


class SmsReplies:
    def __init__(
        self,
        *,
        routes: ReplyRouteRepository,
        messaging: Callable[[], MessagingService],
        clock: Clock,
    ) -> None:
        self._routes = routes
        self._messaging = messaging  # made on the first reply only
        self._clock = clock

    def record_forward(self, route: ForwardRoute) -> bool:
        """Keep ``route`` as its number's, unless a later send is kept already (False then)."""
        return self._routes.record(route, expires_at=route.sent_at + REPLY_WINDOW)

    def reply(self, phone_number: str, text: str, client_message_id: str) -> ReplyOutcome:
        """Post ``text`` to the chat last forwarded to ``phone_number`` (within 24 hours) as
        that member's message, ``via: "sms"``."""
        if not text.strip():
            return ReplyOutcome(None, ignored_because="empty")
        route = self._routes.latest(phone_number)
        if route is None or route.sent_at + REPLY_WINDOW <= self._clock():
            return ReplyOutcome(None, ignored_because="no_recent_forward")
        try:
            # Not limited by the sender's send budget (docs/realtime.md, "Send limits").
            sent = self._messaging().send(
                phone_number, route.chat_id, text, client_message_id, via="sms", limited=False
            )
        except NotFound:  # removed from the chat since the forward
            return ReplyOutcome(None, chat_id=route.chat_id, ignored_because="not_a_member")
        return ReplyOutcome(sent, chat_id=route.chat_id)
