"""SendSms dead letters: a command whose message crashed the consumer on every delivery.

SQS moves a SendSms message to the dead-letter queue after ``maxReceiveCount`` receives.
Only crashes and timeouts of the consumer use receives (retries and waits send the
command again as a fresh message), so a message here is one that could not be handled.
Each one still gets its terminal event (``chatflow.application.sms_sending.DeadLetters``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.composition import Composition
from chatflow.observability import logger, metrics
from chatflow.settings import AwsSettings, SmsTableSettings

deps = Composition().require(AwsSettings, SmsTableSettings)
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    deps.dead_letters().dead_lettered(
        record.body, record.message_id, int(record.attributes.approximate_receive_count)
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
