"""SendSms commands (CONTRACT §4) dropped on the SMS gateway's queue."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chatflow.adapters import aws
from chatflow.adapters.aws_errors import sqs_errors
from chatflow.errors import Throttled

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

_BATCH_ROUNDS = 3


class SqsSmsCommandSender:
    """Sends each command as one SQS message; the client is made on first use unless given."""

    def __init__(self, queue_url: str, *, region: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._region = region
        self._client = client

    def send(self, command: Mapping[str, Any]) -> None:
        client = self._client or aws.sqs(self._region)
        with sqs_errors():
            client.send_message(
                QueueUrl=self._queue_url, MessageBody=json.dumps(command, separators=(",", ":"))
            )

    def send_all(self, commands: Sequence[Mapping[str, Any]]) -> None:
        """SendMessageBatch by 10; entries SQS fails are sent again, up to 3 rounds."""
        client = self._client or aws.sqs(self._region)
        for start in range(0, len(commands), 10):
            pending = {
                str(i): json.dumps(command, separators=(",", ":"))
                for i, command in enumerate(commands[start : start + 10])
            }
            for _ in range(_BATCH_ROUNDS):
                entries = [{"Id": key, "MessageBody": body} for key, body in pending.items()]
                with sqs_errors():
                    response = client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)  # type: ignore[arg-type]
                pending = {f["Id"]: pending[f["Id"]] for f in response.get("Failed", [])}
                if not pending:
                    break
            else:
                raise Throttled(f"{len(pending)} SMS commands could not be queued: retry in a moment.")
