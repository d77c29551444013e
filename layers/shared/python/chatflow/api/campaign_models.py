"""Request and response models of the campaign routes (CONTRACT §5)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from chatflow.domain.campaigns import (
    DEFAULT_VALID_FOR,
    MAX_VALID_FOR,
    MIN_VALID_FOR,
    Campaign,
    CampaignRecipient,
    Preview,
    Upload,
)
from chatflow.domain.clock import to_iso


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


class CampaignOut(BaseModel):
    campaignId: str
    name: str
    template: str
    variables: list[str]
    senderId: str | None
    status: Literal["draft", "sending", "completed"]
    counts: CountsOut
    lastError: str | None
    validFor: int = Field(description="Seconds each SMS may wait to be sent once queued")
    createdAt: str

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignOut:
        c = campaign.counts
        return cls(
            campaignId=campaign.campaign_id,
            name=campaign.name,
            template=campaign.template,
            variables=list(campaign.variables),
            senderId=campaign.sender_id,
            status=campaign.status,
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
            createdAt=to_iso(campaign.created_at),
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
