"""Loads uploaded CSVs of campaign recipients and queues their SendSms commands
(``chatflow.application.campaign_loading``: the jobs, their budget and their hand-over).

Two triggers: S3 (an object created: its load job is queued) and the campaign load queue
(each message is one job, run until the invocation's budget is spent).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, SQSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.application.campaign_loading import LoadJob
from chatflow.composition import Composition
from chatflow.observability import logger
from chatflow.settings import AwsSettings, CampaignLoaderSettings, SmsTableSettings

deps = Composition().require(AwsSettings, CampaignLoaderSettings, SmsTableSettings)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:s3":
        for upload in S3Event(event).records:
            # S3 sends keys URL-encoded (a space is "+"); Powertools decodes only S3Event.object_key.
            deps.campaign_loading().noticed(unquote_plus(upload.s3.get_object.key), upload.s3.get_object.etag)
        return {"batchItemFailures": []}
    failures = []
    for message in SQSEvent(event).records:
        try:
            deps.campaign_loading().run(
                LoadJob.of_message(message.body), context.get_remaining_time_in_millis
            )
        except Exception:
            logger.exception("load failed; SQS will redeliver", extra={"message_id": message.message_id})
            failures.append({"itemIdentifier": message.message_id})
    return {"batchItemFailures": failures}
