"""Routes of SMS campaigns (CONTRACT §5); operators only, ``403 forbidden`` for others."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from chatflow.api.campaign_models import (
    CampaignOut,
    CampaignPage,
    CreateCampaignRequest,
    EstimateOut,
    PreviewOut,
    PreviewRequest,
    RecipientOut,
    RecipientPage,
    UploadOut,
    UploadTicketOut,
)
from chatflow.api.http import caller_of
from chatflow.api.params import Cursor, Limit, error_doc, ok_doc
from chatflow.api.responses import json_response
from chatflow.domain.campaigns import CampaignService
from chatflow.domain.pagination import DEFAULT_LIMIT

Status = Annotated[
    str | None,
    Query(
        description=(
            "Only recipients with this status: queued, sent, failed, delivered, skipped, expired or cancelled"
        )
    ),
]


_ERRORS: dict[int, Any] = {
    400: error_doc(
        "Invalid input (invalid_template says where the template is malformed; validFor is 60 to 1209600 s)"
    ),
    401: error_doc("Not signed in"),
    403: error_doc("Not an operator"),
    404: error_doc("No such campaign or upload"),
}
_CONFLICT: dict[int, Any] = {
    409: error_doc(
        "campaign_cancelled (a cancelled campaign cannot resume or pause) or "
        "campaign_completed (nothing left to pause, resume or cancel)"
    ),
}


def campaign_router(service: Callable[[], CampaignService]) -> Router:
    router = Router()

    def me() -> str:
        return caller_of(router).phone_number

    @router.post(
        "/v1/campaigns",
        tags=["campaigns"],
        summary="Create a campaign from a {{variable}} template",
        responses=ok_doc(CampaignOut, 201) | _ERRORS,
    )
    def create(body: CreateCampaignRequest) -> Response[CampaignOut]:
        campaign = service().create(
            me(),
            name=body.name,
            template=body.template,
            sender_id=body.senderId,
            valid_for=body.validFor,
            send_at=body.send_at(),
            rate_per_second=body.ratePerSecond,
            quiet_hours=body.quietHours.to_domain() if body.quietHours else None,
        )
        return json_response(201, CampaignOut.of(campaign))

    @router.post(
        "/v1/campaigns/preview",
        tags=["campaigns"],
        summary="Render a template for one recipient: its text, encoding, SMS parts and length",
        responses=ok_doc(PreviewOut) | _ERRORS,
    )
    def preview(body: PreviewRequest) -> PreviewOut:
        return PreviewOut.of(service().preview(me(), body.template, body.variables))

    @router.get(
        "/v1/campaigns",
        tags=["campaigns"],
        summary="Campaigns, newest first",
        responses=ok_doc(CampaignPage) | _ERRORS,
    )
    def list_campaigns(limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> CampaignPage:
        page, next_cursor = service().list(me(), limit=limit, cursor=cursor)
        return CampaignPage(items=[CampaignOut.of(c) for c in page.items], nextCursor=next_cursor)

    @router.get(
        "/v1/campaigns/<campaignId>",
        tags=["campaigns"],
        summary="A campaign with its live counts",
        responses=ok_doc(CampaignOut) | _ERRORS,
    )
    def get_campaign(campaignId: str) -> CampaignOut:
        return CampaignOut.of(service().get(me(), campaignId))

    @router.post(
        "/v1/campaigns/<campaignId>/pause",
        tags=["campaigns"],
        summary="Pause: nothing more is sent, commands already queued included, until resumed",
        responses=ok_doc(CampaignOut) | _ERRORS | _CONFLICT,
    )
    def pause(campaignId: str) -> CampaignOut:
        return CampaignOut.of(service().pause(me(), campaignId))

    @router.post(
        "/v1/campaigns/<campaignId>/resume",
        tags=["campaigns"],
        summary="Resume a paused campaign: sending again (scheduled while sendAt is ahead)",
        responses=ok_doc(CampaignOut) | _ERRORS | _CONFLICT,
    )
    def resume(campaignId: str) -> CampaignOut:
        return CampaignOut.of(service().resume(me(), campaignId))

    @router.post(
        "/v1/campaigns/<campaignId>/cancel",
        tags=["campaigns"],
        summary="Cancel for good: every recipient still queued ends cancelled, nothing more is sent",
        responses=ok_doc(CampaignOut) | _ERRORS | _CONFLICT,
    )
    def cancel(campaignId: str) -> CampaignOut:
        return CampaignOut.of(service().cancel(me(), campaignId))

    @router.get(
        "/v1/campaigns/<campaignId>/estimate",
        tags=["campaigns"],
        summary="Messages and SMS parts of the recipients loaded so far",
        responses=ok_doc(EstimateOut) | _ERRORS,
    )
    def estimate(campaignId: str) -> EstimateOut:
        return EstimateOut.of(service().estimate(me(), campaignId))

    @router.post(
        "/v1/campaigns/<campaignId>/uploads",
        tags=["campaigns"],
        summary="A presigned URL to PUT a CSV of recipients to",
        responses=ok_doc(UploadTicketOut, 201) | _ERRORS,
    )
    def create_upload(campaignId: str) -> Response[UploadTicketOut]:  # 409 when cancelled
        upload, url, expires = service().create_upload(me(), campaignId)
        ticket = UploadTicketOut(
            uploadId=upload.upload_id, uploadUrl=url, key=upload.key, expiresInSeconds=expires
        )
        return json_response(201, ticket)

    @router.get(
        "/v1/campaigns/<campaignId>/uploads/<uploadId>",
        tags=["campaigns"],
        summary="An upload: accepted, duplicate and invalid rows",
        responses=ok_doc(UploadOut) | _ERRORS,
    )
    def get_upload(campaignId: str, uploadId: str) -> UploadOut:
        return UploadOut.of(service().get_upload(me(), campaignId, uploadId))

    @router.get(
        "/v1/campaigns/<campaignId>/recipients",
        tags=["campaigns"],
        summary="Recipients and their status",
        responses=ok_doc(RecipientPage) | _ERRORS,
    )
    def recipients(
        campaignId: str, status: Status = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> RecipientPage:
        page, next_cursor = service().recipients(me(), campaignId, status=status, limit=limit, cursor=cursor)
        return RecipientPage(items=[RecipientOut.of(r) for r in page.items], nextCursor=next_cursor)

    return router
