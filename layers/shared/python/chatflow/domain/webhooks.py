"""What the provider tells us: delivery receipts, and inbound SMS (STOP / START / HELP).

An inbound opt-out keyword is recorded for the number that wrote and, when the provider
names it, for the SIM's ICCID (campaigns address SIMs, CONTRACT §4a); an opt-in keyword
removes both. Each STOP, each START and each HELP is answered by one transactional SMS,
queued as a SendSms command whose id comes from the inbound message (its provider id, else
a hash of the raw body), so a provider that retries its webhook does not make a second reply:
the gateway handles a command id once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from chatflow.domain.clock import Clock
from chatflow.domain.phone import normalize_phone
from chatflow.domain.sms import inbound_keyword, keyword_kind
from chatflow.ports import OptOutRepository, SmsCommandRepository, SmsCommandSender

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

InboundAction = Literal["opted_out", "opted_in", "help", "none"]
# The replies' metadata (echoed in their SMS events).
_PURPOSES: dict[InboundAction, str] = {
    "opted_out": "opt-out-confirmation",
    "opted_in": "opt-in-confirmation",
    "help": "help-reply",
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
    ) -> None:
        self._commands = commands
        self._opt_outs = opt_outs
        self._replies = replies
        self._clock = clock

    def receipt(self, *, provider_message_id: str, reference: str, status: str, at: datetime) -> bool:
        """Record a delivery receipt; False when the command is unknown or already has its receipt
        (a duplicate or a late, contradicting one: a status never moves back)."""
        return self._commands.record_receipt(
            reference, provider_message_id=provider_message_id, status=status, at=at
        )

    def inbound(self, sms: InboundSms) -> InboundResult:
        """Apply an inbound keyword and queue its reply; ordinary text changes nothing here.

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
                return InboundResult(phone, sms.iccid, "none")
            for destination in destinations:
                self._opt_outs.opt_in(destination)
            return self._reply(sms, phone, "opted_in", START_REPLY)
        if kind == "help":
            return self._reply(sms, phone, "help", HELP_REPLY)
        return InboundResult(phone, sms.iccid, "none")

    def _reply(self, sms: InboundSms, phone: str, action: InboundAction, text: str) -> InboundResult:
        command_id = reply_command_id(sms)
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
        return InboundResult(phone, sms.iccid, action, command_id)
