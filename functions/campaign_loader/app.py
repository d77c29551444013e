"""Loads uploaded CSVs of campaign recipients and queues their SendSms commands.

Two triggers, one job:

- S3 (``campaigns/<campaignId>/<name>.csv`` created): the upload is noted and a *load
  message* goes on the campaign load queue; nothing is read here, so an S3 event
  delivered twice only adds a message that finds the work done.
- The campaign load queue: each message loads (or resumes) one upload from its
  checkpoint, streaming the object, until the invocation's budget (rows, time) is
  spent; then it puts a new load message to go on in a fresh invocation. Recipients whose
  ICCID opted out (the SMS table's opt-outs) are stored ``skipped`` and never queued. So any file
  size works within Lambda's limits, and a crash resumes from the last checkpoint (SQS
  redelivers; after 5 failures the message is in the dead-letter queue, alarmed).

One load of a campaign at a time, under a lease (``CampaignLoader``): the message that
continues a load carries the token of the invocation that handed over (``token``), which
lets it resume at once. Any other job (the S3 notification's second delivery, a second
file, a continuation whose lease ran out and was taken over) finds the campaign busy
while a lease runs and comes back in ``BUSY_RETRY_SECONDS`` without a token, until it
finds its upload ended (nothing to do) or the campaign free (it resumes the upload from
its checkpoint, so no upload is left half loaded).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters import aws
from chatflow.adapters.campaign_store import DynamoCampaignRepository, S3RecipientFiles, SqsCommandQueue
from chatflow.adapters.sms_store import DynamoOptOutRepository
from chatflow.domain.campaigns import CampaignLoader
from chatflow.domain.clock import utc_now
from chatflow.observability import logger
from chatflow.settings import AwsSettings, CampaignLoaderSettings, load

AWS = load(AwsSettings)
SETTINGS = load(CampaignLoaderSettings)
_KEY = re.compile(r"^campaigns/(?P<campaign>[^/]+)/(?P<name>[^/]+)\.csv$")
_PRESIGNED = re.compile(r"^u_[0-9a-f]{32}$")
BUSY_RETRY_SECONDS = 30
# Leave this share of the invocation's time for the last chunk and the hand-over.
TIME_RESERVE = 0.3


@cache
def loader() -> CampaignLoader:
    dynamodb = aws.dynamodb(AWS.region)
    return CampaignLoader(
        campaigns=DynamoCampaignRepository(SETTINGS.campaigns_table, dynamodb),
        files=S3RecipientFiles(SETTINGS.campaign_bucket, aws.s3(AWS.region)),
        commands=SqsCommandQueue(SETTINGS.send_sms_queue_url, aws.sqs(AWS.region)),
        opt_outs=DynamoOptOutRepository(SETTINGS.sms_table, dynamodb),
        clock=utc_now,
    )


def _load_later(job: dict[str, str], delay: int = 0) -> None:
    """Put a load job on the campaign load queue: campaignId, uploadId, key (and token)."""
    aws.sqs(AWS.region).send_message(
        QueueUrl=SETTINGS.load_queue_url, MessageBody=json.dumps(job), DelaySeconds=delay
    )


def _job_of_object(record: dict[str, Any]) -> dict[str, str] | None:
    key = unquote_plus(record["s3"]["object"]["key"])
    found = _KEY.match(key)
    if found is None:
        logger.warning("not a campaign upload; ignored", extra={"key": key})
        return None
    name = found.group("name")
    etag = str(record["s3"]["object"].get("eTag", ""))
    # A presigned upload is named after its upload id; a file dropped in the bucket gets an
    # id from its key and content, so the same event twice is the same upload.
    upload_id = (
        name if _PRESIGNED.match(name) else "f_" + hashlib.sha256(f"{key}|{etag}".encode()).hexdigest()[:32]
    )
    return {"campaignId": found.group("campaign"), "uploadId": upload_id, "key": key}


def _run(job: dict[str, str], context: LambdaContext) -> None:
    timeout_ms = context.get_remaining_time_in_millis()
    rows = 0

    def budget() -> bool:
        nonlocal rows
        rows += 100
        left = context.get_remaining_time_in_millis()
        return rows < SETTINGS.max_rows_per_invocation and left > timeout_ms * TIME_RESERVE

    loaded = loader().load(
        job["campaignId"], job["uploadId"], job["key"], budget=budget, holding=job.get("token")
    )
    if loaded.done:
        upload = loaded.upload
        logger.info(
            "upload loaded",
            extra={
                "job": job,
                "status": upload.status if upload else "no campaign",
                "error": upload.error if upload else None,
            },
        )
        return
    # A busy job comes back without a token: whichever lease it had is no longer its own.
    plain = {name: job[name] for name in ("campaignId", "uploadId", "key")}
    logger.info("load continues in another invocation", extra={"job": plain, "busy": loaded.busy})
    if loaded.busy or loaded.token is None:
        _load_later(plain, BUSY_RETRY_SECONDS)
    else:
        _load_later(plain | {"token": loaded.token})


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    for record in event.get("Records") or []:
        if record.get("eventSource") == "aws:s3":
            job = _job_of_object(record)
            if job is not None:
                _load_later(job)
            continue
        try:
            _run(json.loads(record["body"]), context)
        except Exception:
            logger.exception("load failed; SQS will redeliver", extra={"message_id": record.get("messageId")})
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
