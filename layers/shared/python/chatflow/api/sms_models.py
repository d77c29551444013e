"""Request and response models of the provider's callbacks (CONTRACT §4).

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
    sender: Annotated[str, Field(alias="from", min_length=1, max_length=64)]
    text: Annotated[str, Field(max_length=1600)]
    timestamp: datetime


class ReceiptOut(BaseModel):
    recorded: bool = Field(description="False for an unknown command or a receipt it already has")


class InboundOut(BaseModel):
    phoneNumber: str
    action: Literal["opted_out", "opted_in", "none"]
