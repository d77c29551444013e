"""SendSms commands (CONTRACT §4) on the SMS gateway's queue: the one SQS producer of commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatflow.adapters import aws
from chatflow.adapters.aws_errors import sqs_errors
from chatflow.adapters.batch_retry import BatchRetry

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

    from chatflow.commands import SendSmsCommand

MAX_ENTRIES_PER_CALL = 10


class SqsSmsCommandSender:
    """Each command is one SQS message, ``command.body()``. The client is the one given, or
    made on first use for ``region``."""

    def __init__(
        self,
        queue_url: str,
        *,
        region: str | None = None,
        client: SQSClient | None = None,
        retry: BatchRetry | None = None,
    ) -> None:
        if client is None and region is None:
            raise ValueError("give the SQS client or the region to make it in")
        self._queue_url = queue_url
        self._region = region
        self._client = client
        self._retry = retry or BatchRetry()

    def _sqs(self) -> SQSClient:
        return self._client or aws.sqs(str(self._region))

    def send(self, command: SendSmsCommand) -> None:
        with sqs_errors():
            self._sqs().send_message(QueueUrl=self._queue_url, MessageBody=command.body())

    def send_all(self, commands: Sequence[SendSmsCommand]) -> None:
        """SendMessageBatch by 10; the entries SQS fails are sent again (``BatchRetry``), then
        ``Throttled`` names how many never went."""
        client = self._sqs()

        def send(pending: dict[str, str]) -> dict[str, str]:
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": key, "MessageBody": body} for key, body in pending.items()
            ]
            with sqs_errors():
                response = client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            return {failed["Id"]: pending[failed["Id"]] for failed in response.get("Failed", [])}

        for start in range(0, len(commands), MAX_ENTRIES_PER_CALL):
            batch = commands[start : start + MAX_ENTRIES_PER_CALL]
            self._retry.run({str(i): c.body() for i, c in enumerate(batch)}, send, what="SendSms commands")
