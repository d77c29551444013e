"""Request and response models of the campaign routes (CONTRACT §5)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chatflow.domain.campaign_control import QuietHours
from chatflow.domain.campaigns import (
    DEFAULT_VALID_FOR,
    MAX_VALID_FOR,
    MIN_VALID_FOR,
    Campaign,
    CampaignRecipient,
    Estimate,
    Preview,
    Upload,
)
from chatflow.domain.clock import to_iso, utc_now

_HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class QuietHoursIn(BaseModel):
    """No SMS from ``start`` to ``end`` in the recipient's local time (wraps midnight)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    start: Annotated[str, Field(pattern=_HH_MM, description="HH:MM, 24-hour, such as 21:00")]
    end: Annotated[str, Field(pattern=_HH_MM, description="HH:MM, 24-hour, such as 08:00")]

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursIn:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self

    def to_domain(self) -> QuietHours:
        return QuietHours.parse(self.start, self.end)


class CreateCampaignRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    template: Annotated[
        str, Field(min_length=1, max_length=1600, description="Message text; variables as {{name}}")
    ]
    senderId: Annotated[str | None, Field(min_length=1, max_length=20)] = None
    validFor: Annotated[
        int,
        Field(
            ge=MIN_VALID_FOR,
            le=MAX_VALID_FOR,
            description="Seconds each SMS may wait to be sent once queued; then it expires, unsent",
        ),
    ] = DEFAULT_VALID_FOR
    sendAt: Annotated[
        str | None,
        Field(
            description="ISO-8601 with a time zone: the campaign is scheduled and sends nothing before then",
            examples=["2026-12-24T09:00:00Z"],
        ),
    ] = None
    ratePerSecond: Annotated[
        int | None,
        Field(ge=1, description="At most this many of the campaign's SMS per second; below SmsRatePerSecond"),
    ] = None
    quietHours: Annotated[
        QuietHoursIn | None,
        Field(description="No SMS in this window of the recipient's local time; sends wait for its end"),
    ] = None

    @field_validator("sendAt")
    @classmethod
    def _moment(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("must be an ISO-8601 date and time, such as 2026-12-24T09:00:00Z") from None
        if moment.tzinfo is None:
            raise ValueError("must say its time zone (Z for UTC), such as 2026-12-24T09:00:00Z")
        return value

    def send_at(self) -> datetime | None:
        return (
            datetime.fromisoformat(self.sendAt.replace("Z", "+00:00")).astimezone(UTC)
            if self.sendAt
            else None
        )


class PreviewRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    template: Annotated[
        str, Field(min_length=1, max_length=1600, description="Message text; variables as {{name}}")
    ]
    variables: Annotated[
        dict[str, Annotated[str, Field(max_length=1600)]],
        Field(max_length=100, description="A value for each variable, as a recipient's CSV row would give"),
    ] = {}


class PreviewOut(BaseModel):
    """The text a recipient would get, and how it travels."""

    text: str
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int = Field(description="SMS parts the text is sent (and billed) as")
    characters: int

    @classmethod
    def of(cls, preview: Preview) -> PreviewOut:
        return cls(
            text=preview.text,
            encoding="UCS-2" if preview.encoding == "UCS-2" else "GSM-7",
            segments=preview.segments,
            characters=preview.characters,
        )


class CountsOut(BaseModel):
    """Recipients by status; they add up to ``total``."""

    total: int
    queued: int
    sent: int
    failed: int
    delivered: int
    skipped: int = Field(description="Opted out when loaded: never queued")
    expired: int = Field(description="Not sent within the campaign's validFor")
    cancelled: int


class QuietHoursOut(BaseModel):
    start: str
    end: str


class CampaignOut(BaseModel):
    campaignId: str
    name: str
    template: str
    variables: list[str]
    senderId: str | None
    status: Literal["draft", "scheduled", "sending", "paused", "cancelled", "completed"] = Field(
        description=(
            "draft (no recipients), scheduled (sendAt ahead), sending, paused, cancelled, "
            "completed (nothing left queued)"
        )
    )
    counts: CountsOut
    lastError: str | None
    validFor: int = Field(description="Seconds each SMS may wait to be sent once queued (or from sendAt)")
    sendAt: str | None = Field(description="Nothing is sent before then")
    ratePerSecond: int | None = Field(description="The campaign's own limit, below the gateway's")
    quietHours: QuietHoursOut | None = Field(
        description="No SMS in this window of the recipient's local time"
    )
    createdAt: str

    @classmethod
    def of(cls, campaign: Campaign, now: datetime | None = None) -> CampaignOut:
        c = campaign.counts
        quiet = campaign.quiet_hours.text() if campaign.quiet_hours else None
        return cls(
            campaignId=campaign.campaign_id,
            name=campaign.name,
            template=campaign.template,
            variables=list(campaign.variables),
            senderId=campaign.sender_id,
            status=campaign.shown_status(now or utc_now()),
            counts=CountsOut(
                total=c.total,
                queued=c.queued,
                sent=c.sent,
                failed=c.failed,
                delivered=c.delivered,
                skipped=c.skipped,
                expired=c.expired,
                cancelled=c.cancelled,
            ),
            lastError=campaign.last_error,
            validFor=campaign.valid_for,
            sendAt=to_iso(campaign.send_at) if campaign.send_at else None,
            ratePerSecond=campaign.rate_per_second,
            quietHours=QuietHoursOut(start=quiet[0], end=quiet[1]) if quiet else None,
            createdAt=to_iso(campaign.created_at),
        )


class EncodingsOut(BaseModel):
    """Messages by encoding: GSM-7 (160 characters in one SMS) or UCS-2 (70)."""

    gsm7: int = Field(alias="GSM-7")
    ucs2: int = Field(alias="UCS-2")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class EstimateOut(BaseModel):
    """What the recipients loaded so far amount to (skipped ones excluded: never sent)."""

    messages: int = Field(description="SMS messages: one per queued recipient")
    segments: int = Field(description="SMS parts they are sent and billed as")
    encodings: EncodingsOut

    @classmethod
    def of(cls, estimate: Estimate) -> EstimateOut:
        return cls(
            messages=estimate.messages,
            segments=estimate.segments,
            encodings=EncodingsOut(gsm7=estimate.gsm7, ucs2=estimate.ucs2),
        )


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    nextCursor: str | None


class UploadTicketOut(BaseModel):
    uploadId: str
    uploadUrl: str = Field(description="PUT the CSV here (a presigned S3 URL)")
    key: str
    expiresInSeconds: int


class RowErrorOut(BaseModel):
    row: int = Field(description="Row number as a spreadsheet shows it (the header is row 1)")
    message: str


class UploadOut(BaseModel):
    uploadId: str
    key: str
    status: Literal["pending", "processing", "accepted", "rejected"]
    accepted: int
    duplicates: int
    invalidRows: int
    skipped: int = Field(description="Rows whose ICCID had opted out: recipients, never queued")
    errors: list[RowErrorOut] = Field(description="The first 100 rows that were skipped, and why")
    error: str | None = Field(description="Why the whole file was rejected")

    @classmethod
    def of(cls, upload: Upload) -> UploadOut:
        return cls(
            uploadId=upload.upload_id,
            key=upload.key,
            status=upload.status,
            accepted=upload.accepted,
            duplicates=upload.duplicates,
            invalidRows=upload.invalid_rows,
            skipped=upload.skipped,
            errors=[RowErrorOut(row=e.row, message=e.message) for e in upload.errors],
            error=upload.error,
        )


class RecipientOut(BaseModel):
    iccid: str
    status: Literal["queued", "sent", "failed", "delivered", "skipped", "expired", "cancelled"]
    attempts: int
    lastError: str | None
    providerMessageId: str | None
    updatedAt: str | None

    @classmethod
    def of(cls, recipient: CampaignRecipient) -> RecipientOut:
        return cls(
            iccid=recipient.iccid,
            status=recipient.status,
            attempts=recipient.attempts,
            lastError=recipient.last_error,
            providerMessageId=recipient.provider_message_id,
            updatedAt=to_iso(recipient.updated_at) if recipient.updated_at else None,
        )


class RecipientPage(BaseModel):
    items: list[RecipientOut]
    nextCursor: str | None
