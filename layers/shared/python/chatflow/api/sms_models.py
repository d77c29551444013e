"""Request and response models of the provider's callbacks (CONTRACT §4, §4a).

Providers add fields over time: unknown fields are ignored here, unlike the client API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Callback(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ReceiptRequest(_Callback):
    id: Annotated[str, Field(min_length=1, max_length=256, description="The provider's message id")]
    reference: Annotated[str, Field(min_length=1, max_length=128, description="Our commandId")]
    status: Literal["delivered", "undelivered", "failed"]
    timestamp: datetime


class InboundRequest(_Callback):
    id: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=256,
            description="The provider's id of the inbound SMS: a retried webhook keeps it (one reply)",
        ),
    ] = None
    sender: Annotated[
        str, Field(alias="from", min_length=1, max_length=64, description="The number that wrote")
    ]
    iccid: Annotated[
        str | None,
        Field(
            pattern=r"^[0-9]{19,20}$",
            description="The sending SIM's ICCID (19-20 digits), when the provider knows it: opted out too",
        ),
    ] = None
    text: Annotated[str, Field(max_length=1600)]
    timestamp: datetime


class ReceiptOut(BaseModel):
    recorded: bool = Field(description="False for an unknown command or a receipt it already has")


class InboundOut(BaseModel):
    phoneNumber: str
    iccid: str | None = Field(
        description="The ICCID opted out or in with the number, if the provider gave one"
    )
    action: Literal["opted_out", "opted_in", "help", "message", "none"] = Field(
        description=(
            "What the text was: an opt-out keyword, an opt-in keyword, HELP / INFO, a reply that became "
            "a chat message, or ordinary text that reached no chat"
        )
    )
    replyCommandId: str | None = Field(
        description=(
            "The SendSms command of the reply (confirmation, help, or the daily notice that a text "
            "reached no chat), the same for a retried webhook"
        )
    )
    chatId: str | None = Field(
        default=None, description="The chat the reply went to (action message), or was meant for"
    )
    messageId: str | None = Field(
        default=None, description="The message the reply became (action message): one per inbound id"
    )
    ignoredBecause: Literal["no_recent_forward", "not_a_member", "empty"] | None = Field(
        default=None,
        description=(
            "Why ordinary text became no message: no chat was forwarded to the number in the last "
            "24 hours, the number left that chat, or the text is empty"
        ),
    )
