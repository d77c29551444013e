"""The events the SMS gateway publishes on its EventBridge bus (source ``chatflow.sms``).

These models describe the events as consumers receive them (the EventBridge envelope
around each ``detail``) and generate their schemas in ``docs/asyncapi.yaml``. The details
themselves are built by ``chatflow.domain.sms_events`` (the domain knows no pydantic);
tests validate what it builds, and every event the end-to-end tests see, against these
models, so the two cannot drift apart. Nothing imports this module at run time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

SOURCE = "chatflow.sms"

Iso = Annotated[
    str, Field(description="ISO 8601 UTC with milliseconds", examples=["2026-11-23T20:01:48.123Z"])
]
Metadata = Annotated[
    dict[str, str], Field(description="The command's metadata, echoed in every event of the command")
]
Sequence = Annotated[int, Field(ge=1, description="The event's place among its command's events (1, 2)")]
CommandId = Annotated[str, Field(min_length=1, max_length=128, description="The SendSms command's id")]
Phone = Annotated[str | SkipJsonSchema[None], Field(description="The destination number (E.164)")]
Iccid = Annotated[
    str | SkipJsonSchema[None], Field(pattern=r"^\d{19,20}$", description="The destination SIM")
]
# Exactly one of phoneNumber / iccid, as the command named its destination.
_ONE_DESTINATION: JsonDict = {"oneOf": [{"required": ["phoneNumber"]}, {"required": ["iccid"]}]}


class _Detail(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Addressed(_Detail):
    model_config = ConfigDict(json_schema_extra=_ONE_DESTINATION)

    commandId: CommandId
    phoneNumber: Phone = None
    iccid: Iccid = None


class SmsSentDetail(_Addressed):
    """The provider accepted the command's SMS (the command's one end)."""

    providerMessageId: str
    segments: Annotated[int, Field(ge=1)]
    encoding: Literal["GSM-7", "UCS-2"]
    attempts: Annotated[int, Field(ge=1, description="Provider calls made")]
    sentAt: Iso
    metadata: Metadata
    occurredAt: Iso
    sequence: Literal[1]


class SmsFailedDetail(_Addressed):
    """The command ended without a send: a permanent refusal, retries exhausted, opted out,
    or dead-lettered (the command's one end)."""

    errorCode: Annotated[str, Field(examples=["opted_out", "invalid_number", "dead_lettered"])]
    reason: str
    permanent: bool
    attempts: Annotated[int, Field(ge=0, description="Provider calls made")]
    failedAt: Iso
    metadata: Metadata
    occurredAt: Iso
    sequence: Literal[1]


class SmsExpiredDetail(_Addressed):
    """The command's validUntil passed before the provider accepted it: never sent (its one end)."""

    validUntil: Iso
    expiredAt: Iso
    attempts: Annotated[int, Field(ge=0)]
    metadata: Metadata
    occurredAt: Iso
    sequence: Literal[1]


class SmsReceiptDetail(_Detail):
    """A delivery receipt from the provider for a sent command."""

    commandId: CommandId
    providerMessageId: str
    status: str
    at: Iso
    metadata: Metadata
    occurredAt: Iso
    sequence: Literal[2]


class SmsDeliveredDetail(SmsReceiptDetail):
    """The provider's receipt says the SMS reached the handset."""

    status: Literal["delivered"]


class SmsUndeliveredDetail(SmsReceiptDetail):
    """The provider's receipt says the SMS could not be delivered."""

    status: Literal["undelivered", "failed"]


class SmsRejectedDetail(_Detail):
    """A queue message that is not a valid SendSms command (never retried)."""

    reason: Annotated[str, Field(description="What is wrong with the body")]
    body: Annotated[str, Field(description="The message body as it was received")]
    occurredAt: Iso | None
    sequence: Literal[1]


class _Event(BaseModel):
    """The EventBridge envelope, as a rule's target receives it."""

    model_config = ConfigDict(strict=True, frozen=True, populate_by_name=True)

    version: str
    id: str
    source: Literal["chatflow.sms"]
    # Always set by EventBridge; the local stack's emulated bus (moto) leaves it out.
    account: Annotated[str, Field(description="The AWS account id (absent on the local stack)")] = ""
    time: str
    region: str
    resources: list[str]


class SmsSent(_Event):
    detail_type: Literal["SmsSent"] = Field(alias="detail-type")
    detail: SmsSentDetail


class SmsFailed(_Event):
    detail_type: Literal["SmsFailed"] = Field(alias="detail-type")
    detail: SmsFailedDetail


class SmsExpired(_Event):
    detail_type: Literal["SmsExpired"] = Field(alias="detail-type")
    detail: SmsExpiredDetail


class SmsDelivered(_Event):
    detail_type: Literal["SmsDelivered"] = Field(alias="detail-type")
    detail: SmsDeliveredDetail


class SmsUndelivered(_Event):
    detail_type: Literal["SmsUndelivered"] = Field(alias="detail-type")
    detail: SmsUndeliveredDetail


class SmsRejected(_Event):
    detail_type: Literal["SmsRejected"] = Field(alias="detail-type")
    detail: SmsRejectedDetail


EVENTS: tuple[type[_Event], ...] = (SmsSent, SmsFailed, SmsExpired, SmsDelivered, SmsUndelivered, SmsRejected)
