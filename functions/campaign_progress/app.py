"""Moves campaign recipients forward from the SMS gateway's events (an EventBridge rule).

Only events carrying ``metadata.campaignId`` reach this function. Each moves its
recipient at most once and the campaign's counts in the same write; a duplicate or a
late event finds the recipient past it and changes nothing.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.composition import Composition
from chatflow.domain.campaigns import progress_of
from chatflow.domain.clock import utc_now
from chatflow.observability import logger
from chatflow.settings import AwsSettings, CampaignSettings

deps = Composition().require(AwsSettings, CampaignSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bus_event = EventBridgeEvent(event)
    detail_type = bus_event.get("detail-type")  # absent from a malformed event: ignored below
    progress = progress_of(str(detail_type), bus_event.get("detail") or {}, utc_now())
    if progress is None:
        logger.warning("not a campaign event; ignored", extra={"detail_type": detail_type})
        return {"applied": False}
    applied = deps.campaign_repository().apply(progress)
    logger.info(
        "recipient progress",
        extra={
            "campaign": progress.campaign_id,
            "iccid": progress.iccid,
            "to": progress.to,
            "applied": applied,
        },
    )
    return {"applied": applied}
