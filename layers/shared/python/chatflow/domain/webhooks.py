"""What the provider tells us: delivery receipts, and inbound SMS (STOP / START / HELP, replies).

An inbound opt-out keyword is recorded for the number that wrote and, when the provider
names it, for the SIM's ICCID (campaigns address SIMs, CONTRACT §4a); an opt-in keyword
removes both. Each STOP, each START and each HELP is answered by one transactional SMS,
queued as a SendSms command whose id comes from the inbound message (its provider id, else
a hash of the raw body), so a provider that retries its webhook does not make a second reply:
the gateway handles a command id once.

Any other text is a reply to a chat by SMS (``chatflow.domain.sms_replies``): it becomes the
member's message of the chat last forwarded to the number within 24 hours. Text that reaches
no chat gets one notice a day (``UNROUTED_REPLY``), never a message; keywords never become
messages.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from chatflow.domain.clock import Clock
from chatflow.domain.phone import normalize_phone
from chatflow.domain.sms import inbound_keyword, keyword_kind
from chatflow.domain.sms_replies import (
    UNROUTED_REPLY,
    IgnoredBecause,
    reply_client_message_id,
    unrouted_notice_command_id,
)
from chatflow.ports import OptOutRepository, SmsCommandRepository, SmsCommandSender

if TYPE_CHECKING:
    from chatflow.domain.sms_replies import SmsReplies

# Replies: GSM-7, one segment each (a test holds them to it), each says how to undo.
STOP_REPLY = (
    "ChatFlow: you are unsubscribed and will get no more messages from us, except sign-in codes "
    "you ask for. Reply START to subscribe again."
)
START_REPLY = (
    "ChatFlow: you are subscribed again to chat messages and offers by SMS. "
    "Reply STOP to unsubscribe, HELP for help."
)
HELP_REPLY = (
    "ChatFlow: chat messages, sign-in codes and offers by SMS. Msg & data rates may apply. "
    "Reply STOP to unsubscribe, START to subscribe again."
)
# YES is an everyday word: it opts back in only a number or SIM that is opted out.
_CONVERSATIONAL_OPT_IN = frozenset({"YES"})

InboundAction = Literal["opted_out", "opted_in", "help", "message", "none"]
# The replies' metadata (echoed in their SMS events).
_PURPOSES: dict[InboundAction, str] = {
    "opted_out": "opt-out-confirmation",
    "opted_in": "opt-in-confirmation",
    "help": "help-reply",
    "none": "unrouted-reply-notice",
}


@dataclass(frozen=True)
class InboundSms:
    """One inbound SMS as the provider reported it (CONTRACT §4a)."""

    sender: str
    text: str
    iccid: str | None = None
    inbound_id: str | None = None
    # The webhook's raw body: what identifies a retried webhook that carries no id.
    raw_body: bytes = b""


@dataclass(frozen=True)
class InboundResult:
    phone_number: str
    iccid: str | None
    action: InboundAction
    reply_command_id: str | None = None
    # Ordinary text: the message it became ("message"), or why it became none.
    chat_id: str | None = None
    message_id: str | None = None
    seq: int | None = None
    ignored_because: IgnoredBecause | None = None


def reply_command_id(sms: InboundSms) -> str:
    """The command id of the reply to ``sms``: the same for every delivery of one webhook."""
    source = f"id\n{sms.inbound_id}".encode() if sms.inbound_id else b"body\n" + sms.raw_body
    return f"sms-reply-{hashlib.sha256(source).hexdigest()[:40]}"


class WebhookService:
    def __init__(
        self,
        *,
        commands: SmsCommandRepository,
        opt_outs: OptOutRepository,
        replies: SmsCommandSender,
        clock: Clock,
        conversations: SmsReplies | None = None,
    ) -> None:
        self._commands = commands
        self._opt_outs = opt_outs
        self._replies = replies
        self._clock = clock
        self._conversations = conversations

    def receipt(self, *, provider_message_id: str, reference: str, status: str, at: datetime) -> bool:
        """Record a delivery receipt; False when the command is unknown or already has its receipt
        (a duplicate or a late, contradicting one: a status never moves back)."""
        return self._commands.record_receipt(
            reference, provider_message_id=provider_message_id, status=status, at=at
        )

    def inbound(self, sms: InboundSms) -> InboundResult:
        """Apply an inbound keyword and queue its reply; ordinary text (YES too, from a number
        not opted out) is a reply to a chat by SMS (``_conversation``).

        The opt-out is written before the reply is queued: if queuing fails the webhook
        fails, the provider retries it, and the retry writes the same opt-out again and
        queues the reply under the same command id.
        """
        phone = normalize_phone(sms.sender)
        destinations = [phone] if sms.iccid is None else [phone, sms.iccid]
        keyword = inbound_keyword(sms.text)
        kind = None if keyword is None else keyword_kind(keyword)
        if kind == "out":
            now = self._clock()
            for destination in destinations:
                self._opt_outs.opt_out(destination, at=now)
            return self._reply(sms, phone, "opted_out", STOP_REPLY)
        if kind == "in":
            if keyword in _CONVERSATIONAL_OPT_IN and not self._opt_outs.opted_out(destinations):
                return self._conversation(sms, phone, opted_out=False)
            for destination in destinations:
                self._opt_outs.opt_in(destination)
            return self._reply(sms, phone, "opted_in", START_REPLY)
        if kind == "help":
            return self._reply(sms, phone, "help", HELP_REPLY)
        return self._conversation(sms, phone, opted_out=None)

    def _conversation(self, sms: InboundSms, phone: str, *, opted_out: bool | None) -> InboundResult:
        """Ordinary text: a reply to the chat last forwarded to the number, else one notice a
        day (not to a number that opted out; ``opted_out`` None: not known yet)."""
        if self._conversations is None:
            return InboundResult(phone, sms.iccid, "none")
        outcome = self._conversations.reply(
            phone, sms.text, reply_client_message_id(sms.inbound_id, sms.raw_body)
        )
        if outcome.sent is not None:
            message = outcome.sent.message
            return InboundResult(
                phone,
                sms.iccid,
                "message",
                chat_id=message.chat_id,
                message_id=message.message_id,
                seq=message.seq,
            )
        ignored = InboundResult(
            phone, sms.iccid, "none", chat_id=outcome.chat_id, ignored_because=outcome.ignored_because
        )
        if outcome.ignored_because == "empty":
            return ignored
        if opted_out is None:
            opted_out = self._opt_outs.is_opted_out(phone)
        if opted_out:
            return ignored
        command_id = unrouted_notice_command_id(phone, self._clock())
        self._send_reply(sms, phone, "none", UNROUTED_REPLY, command_id)
        return replace(ignored, reply_command_id=command_id)

    def _reply(self, sms: InboundSms, phone: str, action: InboundAction, text: str) -> InboundResult:
        command_id = reply_command_id(sms)
        self._send_reply(sms, phone, action, text, command_id)
        return InboundResult(phone, sms.iccid, action, command_id)

    def _send_reply(
        self, sms: InboundSms, phone: str, action: InboundAction, text: str, command_id: str
    ) -> None:
        metadata = {"purpose": _PURPOSES[action]}
        if sms.inbound_id:
            metadata["inboundId"] = sms.inbound_id
        from chatflow.commands import SendSmsCommand  # on first use: not at cold start

        self._replies.send(
            SendSmsCommand(
                commandId=command_id,
                phoneNumber=phone,
                text=text,
                # Always sent, to an opted-out number too: the confirmation of STOP is the
                # one message carriers expect after it (docs/sms-gateway.md, "Opt-out").
                messageType="transactional",
                metadata=metadata,
            )
        )
