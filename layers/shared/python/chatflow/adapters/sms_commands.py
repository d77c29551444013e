"""SendSms commands (CONTRACT §4) dropped on the SMS gateway's queue."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chatflow.adapters import aws
from chatflow.adapters.dynamo import error_code
from chatflow.errors import Throttled

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

_THROTTLING_CODES = frozenset({"ThrottlingException", "RequestThrottled", "KmsThrottled"})


class SqsSmsCommandSender:
    """Sends each command as one SQS message; the client is made on first use unless given."""

    def __init__(self, queue_url: str, *, region: str, client: SQSClient | None = None) -> None:
        self._queue_url = queue_url
        self._region = region
        self._client = client

    def send(self, command: Mapping[str, Any]) -> None:
        client = self._client or aws.sqs(self._region)
        try:
            client.send_message(
                QueueUrl=self._queue_url, MessageBody=json.dumps(command, separators=(",", ":"))
            )
        except ClientError as exc:
            if error_code(exc) in _THROTTLING_CODES:
                raise Throttled("The SMS queue is busy: retry in a moment.") from exc
            raise
