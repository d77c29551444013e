"""SendSms consumer: commands from the SQS queue to the SMS provider (CONTRACT §4).

Each record is one command (``chatflow.application.sms_sending``: sent, failed, expired,
or sent to the queue again with its delay). The sends of a batch run concurrently, at
most ``SMS_BATCH_CONCURRENCY`` at a time, each on a thread of ``senders()``.
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

from chatflow.composition import Composition
from chatflow.domain.clock import utc_now
from chatflow.observability import logger, metrics
from chatflow.settings import AwsSettings, SmsGatewaySettings, SmsTableSettings

deps = Composition().require(AwsSettings, SmsGatewaySettings, SmsTableSettings)
# A batch whose every command waits for a retry is not an invocation error: each has its delay.
processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@cache
def senders() -> ThreadPoolExecutor:
    """SMS_BATCH_CONCURRENCY threads (asyncio's default executor would allow only cpu count + 4)."""
    concurrency = deps.settings(SmsGatewaySettings).concurrency
    return ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send")


async def record_handler(record: SQSRecord, deadline: datetime | None = None) -> None:
    handle = partial(deps.sms_sending().handle, deadline=deadline)
    await asyncio.get_running_loop().run_in_executor(
        senders(), handle, record.body, record.message_id, record.receipt_handle
    )


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
