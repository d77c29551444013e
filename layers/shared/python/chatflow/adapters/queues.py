"""Messages an application puts back on its own SQS queue: a delayed job, a later retry.

SendSms commands have their own producer (``chatflow.adapters.sms_commands``); this is
for a consumer's own queue: the campaign loader's next chunk, a SendSms command sent
again with its backoff, or a message made visible again later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatflow.adapters.aws_errors import sqs_errors
from chatflow.errors import ChatFlowError

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


class QueueUnavailable(ChatFlowError):
    """SQS refused the call (``Throttled`` when it was throttling); the message it was about is
    still where it was."""

    code = "queue_unavailable"


class SqsQueue:
    """One queue; the client is asked for on each call (made once, on first use)."""

    def __init__(self, queue_url: str, client: Callable[[], SQSClient]) -> None:
        self._queue_url = queue_url
        self._client = client

    def send(self, body: str, *, delay_seconds: int = 0) -> None:
        with sqs_errors(otherwise=lambda exc: QueueUnavailable(f"The message could not be queued: {exc}")):
            self._client().send_message(
                QueueUrl=self._queue_url, MessageBody=body, DelaySeconds=delay_seconds
            )

    def show_later(self, receipt_handle: str, *, delay_seconds: int) -> None:
        """Make a received message visible again in ``delay_seconds`` (SQS hands it back then)."""
        with sqs_errors(
            otherwise=lambda exc: QueueUnavailable(f"The message's visibility could not be changed: {exc}")
        ):
            self._client().change_message_visibility(
                QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay_seconds
            )
