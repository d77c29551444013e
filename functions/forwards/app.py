"""The end of each SMS-forward wait: what an offline member still has not read, as one SMS.

The fan-out puts one job per wait on the forward queue, delayed by ``ForwardAfterSeconds``;
SQS hands it here when the wait is over (``chatflow.application.forwards.DelayedForwards``
decides: one digest SMS, or nothing when it was read). Records are handled one by one with
partial batch failures: a failed job comes back, then goes to the dead-letter queue; a job
delivered twice queues the same SendSms command (its id names the wait), sent once.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters.forward_jobs import parse_job
from chatflow.composition import Composition
from chatflow.observability import logger, metrics
from chatflow.settings import (
    AwsSettings,
    ConnectionsSettings,
    SendSmsQueueSettings,
    SmsTableSettings,
    TableSettings,
)

deps = Composition().require(
    AwsSettings, TableSettings, ConnectionsSettings, SmsTableSettings, SendSmsQueueSettings
)
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    deps.delayed_forwards().finish(parse_job(record.body))


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
