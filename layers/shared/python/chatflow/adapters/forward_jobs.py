"""SMS-forward waits on the forward queue: one SQS message per wait, delayed by the wait.

The fan-out puts a job when an offline member's wait starts (``SendMessageBatch`` by 10,
each entry with ``DelaySeconds``: SQS hands it to ``ForwardsFunction`` when the wait is
over); the job's body is ``{"chatId", "phoneNumber", "fromSeq"}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

from chatflow.adapters import aws
from chatflow.adapters.aws_errors import sqs_errors
from chatflow.adapters.batch_retry import BatchRetry
from chatflow.domain.realtime import ForwardJob

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

MAX_ENTRIES_PER_CALL = 10
MAX_DELAY_SECONDS = 900  # SQS's longest per-message delay


class _JobBody(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    chatId: Annotated[str, Field(min_length=1)]
    phoneNumber: Annotated[str, Field(min_length=2)]
    fromSeq: Annotated[int, Field(ge=1)]


def job_body(job: ForwardJob) -> str:
    return json.dumps({"chatId": job.chat_id, "phoneNumber": job.phone_number, "fromSeq": job.from_seq})


def parse_job(body: str) -> ForwardJob:
    """The job in a forward queue message (``pydantic.ValidationError`` when it is not one)."""
    parsed = _JobBody.model_validate_json(body)
    return ForwardJob(chat_id=parsed.chatId, phone_number=parsed.phoneNumber, from_seq=parsed.fromSeq)


class SqsForwardScheduler:
    """Jobs on the forward queue, each delayed by the wait. The client is the one given, or
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

    def schedule(self, jobs: Sequence[ForwardJob], *, delay_seconds: int) -> None:
        """SendMessageBatch by 10; the entries SQS fails are sent again (``BatchRetry``), then
        ``Throttled`` names how many never went."""
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay_seconds must be 0 to {MAX_DELAY_SECONDS}, got {delay_seconds}")
        client = self._sqs()

        def send(pending: dict[str, str]) -> dict[str, str]:
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": key, "MessageBody": body, "DelaySeconds": delay_seconds}
                for key, body in pending.items()
            ]
            with sqs_errors():
                response = client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            return {failed["Id"]: pending[failed["Id"]] for failed in response.get("Failed", [])}

        for start in range(0, len(jobs), MAX_ENTRIES_PER_CALL):
            batch = jobs[start : start + MAX_ENTRIES_PER_CALL]
            self._retry.run({str(i): job_body(j) for i, j in enumerate(batch)}, send, what="forward jobs")
