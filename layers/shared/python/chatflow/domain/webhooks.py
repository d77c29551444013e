"""What the provider tells us: delivery receipts and inbound messages (STOP / START)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from chatflow.domain.clock import Clock
from chatflow.domain.phone import normalize_phone
from chatflow.domain.sms import opt_keyword
from chatflow.ports import OptOutRepository, SmsCommandRepository


@dataclass(frozen=True)
class InboundResult:
    phone_number: str
    action: Literal["opted_out", "opted_in", "none"]


class WebhookService:
    def __init__(self, *, commands: SmsCommandRepository, opt_outs: OptOutRepository, clock: Clock) -> None:
        self._commands = commands
        self._opt_outs = opt_outs
        self._clock = clock

    def receipt(self, *, provider_message_id: str, reference: str, status: str, at: datetime) -> bool:
        """Record a delivery receipt; False when the command is unknown or already has its receipt
        (a duplicate or a late, contradicting one: a status never moves back)."""
        return self._commands.record_receipt(
            reference, provider_message_id=provider_message_id, status=status, at=at
        )

    def inbound(self, *, sender: str, text: str) -> InboundResult:
        phone = normalize_phone(sender)
        keyword = opt_keyword(text)
        if keyword == "out":
            self._opt_outs.opt_out(phone, at=self._clock())
            return InboundResult(phone, "opted_out")
        if keyword == "in":
            self._opt_outs.opt_in(phone)
            return InboundResult(phone, "opted_in")
        return InboundResult(phone, "none")
