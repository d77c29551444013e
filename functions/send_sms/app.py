"""SendSms consumer: commands from the SQS queue to the SMS provider (CONTRACT §4).

Each record is one command. The sends of a batch run concurrently (at most
``SMS_BATCH_CONCURRENCY`` at a time); each ends in one of:

- sent / failed / expired / duplicate / invalid: the message is done (deleted).
  ``SmsSent``, ``SmsFailed`` or ``SmsExpired`` follows from the command's record (see
  functions/sms_events); an invalid body is recorded for its ``SmsRejected`` and never
  retried;
- retry (a provider call failed) or wait (no slot of the provider-wide rate, or another
  delivery holds the command): the command is sent to the queue again, delayed by the
  backoff or the wait (``DelaySeconds``), and this message is done. A fresh message has a
  fresh receive count, so only crashes count toward the queue's ``maxReceiveCount``: a
  busy campaign can no longer dead-letter a command by bouncing it off the rate. If that
  send fails, the message's own visibility is set to the delay instead and it is reported
  as a batch item failure (SQS hands it back then; nothing is lost);
- an unexpected error: reported as a failure, retried after the queue's visibility
  timeout; after ``maxReceiveCount`` receives it lands in the dead-letter queue, whose
  consumer (functions/sms_dead_letters) ends it as ``SmsFailed`` ``dead_lettered``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import cache, partial
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    async_process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from chatflow.adapters import aws
from chatflow.adapters.sms_provider import HttpSmsProvider
from chatflow.adapters.sms_store import DynamoOptOutRepository, DynamoRateLimiter, DynamoSmsCommandRepository
from chatflow.commands import InvalidCommand, command_body, parse_command
from chatflow.domain.clock import utc_now
from chatflow.domain.gateway import SmsGateway
from chatflow.domain.sms import RetryPolicy
from chatflow.observability import logger, metrics
from chatflow.settings import AwsSettings, SmsGatewaySettings, load

AWS = load(AwsSettings)
SMS = load(SmsGatewaySettings)

# A batch whose every command waits for a retry is not an invocation error: each has its delay.
# SQS's longest message delay; the retry policy's longest delay is the same 15 minutes.
MAX_DELAY_SECONDS = 900
processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RetryLater(Exception):
    """The command is given back to the queue; its visibility says when it comes back."""


@cache
def gateway() -> SmsGateway:
    client = aws.dynamodb(AWS.region)
    provider = HttpSmsProvider(
        SMS.provider_base_url,
        lambda: aws.read_json_secret(AWS.region, SMS.provider_secret_arn)["apiKey"],
        timeout_seconds=SMS.provider_timeout_seconds,
    )
    return SmsGateway(
        provider=provider,
        commands=DynamoSmsCommandRepository(SMS.sms_table, client),
        opt_outs=DynamoOptOutRepository(SMS.sms_table, client),
        rate=DynamoRateLimiter(SMS.sms_table, client, SMS.rate_per_second),
        policy=RetryPolicy(max_attempts=SMS.max_attempts, base_seconds=SMS.retry_base_seconds),
        clock=utc_now,
        in_flight=SMS.concurrency * SMS.max_invocations,
    )


@cache
def senders() -> ThreadPoolExecutor:
    """The threads the sends of a batch run on: SMS_BATCH_CONCURRENCY at a time (asyncio's
    default executor would allow only cpu count + 4)."""
    return ThreadPoolExecutor(max_workers=SMS.concurrency, thread_name_prefix="send")


def handle(record: SQSRecord, deadline: datetime | None = None) -> None:
    try:
        sms = parse_command(record.body, record.message_id)
    except InvalidCommand as exc:
        DynamoSmsCommandRepository(SMS.sms_table, aws.dynamodb(AWS.region)).reject(
            reason=str(exc), body=record.body, at=utc_now()
        )
        logger.warning("command rejected", extra={"message_id": record.message_id, "reason": str(exc)})
        metrics.add_metric(name="SmsRejected", unit="Count", value=1)
        return
    outcome = gateway().handle(sms, deadline=deadline)
    logger.info(
        "command handled",
        extra={"command_id": sms.command_id, "outcome": outcome.kind, "detail": outcome.detail},
    )
    if outcome.kind in ("retry", "wait"):
        delay = min(outcome.delay_seconds, MAX_DELAY_SECONDS)
        try:
            aws.sqs(AWS.region).send_message(
                QueueUrl=SMS.send_sms_queue_url, MessageBody=command_body(sms), DelaySeconds=delay
            )
            return
        except ClientError as exc:
            logger.warning("command not sent again", extra={"command_id": sms.command_id, "error": str(exc)})
        try:
            aws.sqs(AWS.region).change_message_visibility(
                QueueUrl=SMS.send_sms_queue_url,
                ReceiptHandle=record.receipt_handle,
                VisibilityTimeout=outcome.delay_seconds,
            )
        except ClientError as exc:
            # The retry still happens, after the queue's own visibility timeout instead.
            logger.warning("visibility not changed", extra={"command_id": sms.command_id, "error": str(exc)})
        raise RetryLater(f"{sms.command_id}: retry in {outcome.delay_seconds} s ({outcome.detail})")


async def record_handler(record: SQSRecord, deadline: datetime | None = None) -> None:
    await asyncio.get_running_loop().run_in_executor(senders(), handle, record, deadline)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # The invocation's end: no attempt can outlive it, so its leases end then too.
    deadline = utc_now() + timedelta(milliseconds=context.get_remaining_time_in_millis())
    return async_process_partial_response(
        event=event,
        record_handler=partial(record_handler, deadline=deadline),
        processor=processor,
        context=context,
    )
