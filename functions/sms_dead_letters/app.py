"""SendSms dead letters: a command whose message crashed the consumer on every delivery.

SQS moves a SendSms message to the dead-letter queue after ``maxReceiveCount`` receives.
Only crashes and timeouts of the consumer use receives (retries and waits send the
command again as a fresh message), so a message here is one that could not be handled.
Each one still gets its terminal event: the command's record becomes ``failed`` with
``errorCode: "dead_lettered"`` (``SmsFailed`` follows from the record, like every other
outcome), unless it ended meanwhile. A body that is not a valid command is recorded as
rejected (``SmsRejected``), as the consumer would have done.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters import aws
from chatflow.adapters.sms_store import DynamoSmsCommandRepository
from chatflow.commands import InvalidCommand, parse_command
from chatflow.domain.clock import utc_now
from chatflow.observability import logger, metrics
from chatflow.settings import AwsSettings, SmsDeadLetterSettings, load

AWS = load(AwsSettings)
SETTINGS = load(SmsDeadLetterSettings)

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def commands() -> DynamoSmsCommandRepository:
    return DynamoSmsCommandRepository(SETTINGS.sms_table, aws.dynamodb(AWS.region))


def record_handler(record: SQSRecord) -> None:
    receives = record.attributes.approximate_receive_count
    try:
        # The original message's id: a command without its own id was known by it.
        sms = parse_command(record.body, record.message_id)
    except InvalidCommand as exc:
        commands().reject(reason=str(exc), body=record.body, at=utc_now())
        logger.warning("dead letter rejected", extra={"message_id": record.message_id, "reason": str(exc)})
        return
    reason = (
        f"the SendSms consumer failed on every delivery ({receives} receives); the message was dead-lettered"
    )
    ended = commands().mark_dead_lettered(sms, reason=reason, at=utc_now())
    logger.error(
        "command dead-lettered",
        extra={"command_id": sms.command_id, "receives": receives, "marked_failed": ended},
    )
    if ended:
        metrics.add_metric(name="SmsDeadLettered", unit="Count", value=1)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
