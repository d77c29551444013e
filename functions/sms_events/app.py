"""Publishes the SMS events from the SMS table's stream (the transactional outbox:
``chatflow.application.sms_outbox``). The events of a whole batch go out together, ten per
``PutEvents`` call, so this reports partial failures itself: from the first record of the
group that could not be published.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters.streams import sms_change
from chatflow.composition import Composition
from chatflow.observability import logger, metrics
from chatflow.settings import SmsEventsSettings

deps = Composition().require(SmsEventsSettings)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    retry_from = deps.sms_outbox().publish(sms_change(record) for record in event.records)
    return {"batchItemFailures": [{"itemIdentifier": retry_from}] if retry_from else []}
