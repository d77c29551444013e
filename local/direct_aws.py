"""The event-source pollers' AWS calls, served straight from moto's models in this process.

On AWS, Lambda's pollers are AWS's own machinery: they read a queue or a stream inside
AWS, not through the public API. The local stack's pollers (``local.sources``) ran every
poll through boto3 and the emulated AWS server: each ``ReceiveMessage`` or
``GetRecords`` cost a botocore request, an HTTP round trip, moto's request parsing and
response serializer, all in the stack's process and under the emulator's request lock
(the profile in docs/benchmarks.md: a third of the stack process's CPU, and requests of
the functions queued behind them). These clients answer the few calls the pollers make
on the hot path from moto's backends directly, under the same lock as the server's
requests, with the shapes botocore would have parsed; any other call goes to the real
boto3 client, so the change signal and everything else behave as before.

What differs from the boto3 path, on purpose: binary values stay base64 strings (as
Lambda puts them in an event), and stream iterators are positions, not moto iterator
objects (moto keeps every iterator it ever made).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from moto.dynamodb.models import dynamodb_backends
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import sqs_backends

from local.moto_patches import items_lock
from local.specs import ACCOUNT_ID, REGION

_SYSTEM_ATTRIBUTES = (
    "AWSTraceHeader",
    "ApproximateFirstReceiveTimestamp",
    "ApproximateReceiveCount",
    "MessageDeduplicationId",
    "MessageGroupId",
    "SenderId",
    "SentTimestamp",
    "SequenceNumber",
)


def _queue_name(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


class DirectSqs:
    """``receive_message`` and ``delete_message_batch`` from moto's SQS models; the rest via ``fallback``."""

    def __init__(self, lock: threading.RLock, fallback: Any) -> None:
        self._lock = lock
        self._fallback = fallback

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fallback, name)

    @property
    def _backend(self) -> Any:
        return sqs_backends[ACCOUNT_ID][REGION]

    def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        AttributeNames: list[str] | None = None,
        MessageAttributeNames: list[str] | None = None,
        WaitTimeSeconds: int = 0,
    ) -> dict[str, Any]:
        if not 1 <= MaxNumberOfMessages <= 10 or WaitTimeSeconds != 0:
            # Long polls and out-of-range counts: moto's own checks and waits.
            return dict(
                self._fallback.receive_message(
                    QueueUrl=QueueUrl,
                    MaxNumberOfMessages=MaxNumberOfMessages,
                    AttributeNames=AttributeNames or [],
                    MessageAttributeNames=MessageAttributeNames or [],
                    WaitTimeSeconds=WaitTimeSeconds,
                )
            )
        name = _queue_name(QueueUrl)
        wanted = set(AttributeNames or [])
        with self._lock:
            queue = self._backend.get_queue(name)
            messages = self._backend.receive_message(
                name, MaxNumberOfMessages, 0, queue.visibility_timeout, MessageAttributeNames or []
            )
            return {"Messages": [_message(m, wanted) for m in messages]} if messages else {}

    def delete_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        name = _queue_name(QueueUrl)
        successful: list[dict[str, str]] = []
        failed: list[dict[str, Any]] = []
        with self._lock:
            for entry in Entries:
                try:
                    self._backend.delete_message(name, entry["ReceiptHandle"])
                except ReceiptHandleIsInvalid:
                    failed.append(
                        {
                            "Id": entry["Id"],
                            "SenderFault": True,
                            "Code": "ReceiptHandleIsInvalid",
                            "Message": f'The input receipt handle "{entry["ReceiptHandle"]}" '
                            "is not a valid receipt handle.",
                        }
                    )
                else:
                    successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        with self._lock:
            self._backend.delete_message(_queue_name(QueueUrl), ReceiptHandle)
        return {}


def _message(message: Any, wanted: set[str]) -> dict[str, Any]:
    """One message as botocore parses moto's ReceiveMessage answer."""
    result: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.body_md5,
        "Body": message.body,
    }
    if len(message.message_attributes):
        result["MessageAttributes"] = {
            name: dict(value) for name, value in message.message_attributes.items()
        }
        result["MD5OfMessageAttributes"] = message.attribute_md5
    included = [n for n in _SYSTEM_ATTRIBUTES if "All" in wanted or n in wanted]
    if not included:
        return result
    attributes: dict[str, str] = {}
    values = {
        "SenderId": message.sender_id,
        "SentTimestamp": str(message.sent_timestamp),
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
        "MessageDeduplicationId": message.deduplication_id,
        "MessageGroupId": message.group_id,
        "SequenceNumber": message.sequence_number,
        "AWSTraceHeader": (message.system_attributes or {}).get("AWSTraceHeader", {}).get("StringValue"),
    }
    for name in included:
        if values[name] is not None:
            attributes[name] = values[name]
    result["Attributes"] = attributes
    return result


class DirectStreams:
    """``describe_stream``, ``get_shard_iterator`` and ``get_records`` from moto's tables."""

    def __init__(self, lock: threading.RLock, fallback: Any) -> None:
        self._lock = lock
        self._fallback = fallback

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fallback, name)

    @staticmethod
    def _backend() -> Any:
        return dynamodb_backends[ACCOUNT_ID][REGION]

    def _table(self, stream_arn: str) -> Any:
        table_name = stream_arn.split(":table/", 1)[1].split("/", 1)[0]
        return self._backend().get_table(table_name)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The server's request lock, then the tables' own (as a stream request takes it)."""
        with self._lock, items_lock(self._backend()):
            yield

    def describe_stream(self, *, StreamArn: str) -> dict[str, Any]:
        with self._locked():
            table = self._table(StreamArn)
            shard = table.stream_shard
            return {
                "StreamDescription": {
                    "StreamArn": StreamArn,
                    "StreamLabel": table.latest_stream_label,
                    "StreamStatus": "ENABLED" if table.latest_stream_label else "DISABLED",
                    "TableName": table.name,
                    "Shards": [shard.to_json()] if shard is not None else [],
                }
            }

    def get_shard_iterator(
        self,
        *,
        StreamArn: str,
        ShardId: str,
        ShardIteratorType: str,
        SequenceNumber: str | None = None,
    ) -> dict[str, Any]:
        with self._locked():
            shard = self._table(StreamArn).stream_shard
            if shard is None or shard.id != ShardId:
                return dict(
                    self._fallback.get_shard_iterator(
                        StreamArn=StreamArn,
                        ShardId=ShardId,
                        ShardIteratorType=ShardIteratorType,
                        **({"SequenceNumber": SequenceNumber} if SequenceNumber is not None else {}),
                    )
                )
            first = int(shard.starting_sequence_number)
            positions = {
                "TRIM_HORIZON": first,
                "LATEST": first + len(shard.items),
                "AT_SEQUENCE_NUMBER": int(SequenceNumber or first),
                "AFTER_SEQUENCE_NUMBER": int(SequenceNumber or first - 1) + 1,
            }
            return {"ShardIterator": f"{StreamArn}|{positions[ShardIteratorType]}"}

    def get_records(self, *, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        stream_arn, _, position_text = ShardIterator.rpartition("|")
        if not stream_arn.startswith("arn:") or not position_text.isdigit():
            return dict(self._fallback.get_records(ShardIterator=ShardIterator, Limit=Limit))
        position = int(position_text)
        with self._locked():
            shard = self._table(stream_arn).stream_shard
            start = max(0, position - int(shard.starting_sequence_number))
            records = [_stream_record(r.to_json()) for r in shard.items[start : start + Limit]]
        after = int(records[-1]["dynamodb"]["SequenceNumber"]) + 1 if records else position
        return {"Records": records, "NextShardIterator": f"{stream_arn}|{after}"}


def _stream_record(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of moto's record: its creation time an aware datetime as botocore gives it,
    binary values base64 text as in a Lambda event (moto keeps them as bytes)."""
    dynamodb = {
        key: _wire_image(value) if key in ("Keys", "NewImage", "OldImage") else value
        for key, value in record["dynamodb"].items()
    }
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime) and created.tzinfo is None:
        dynamodb["ApproximateCreationDateTime"] = created.replace(tzinfo=UTC)
    return {**record, "dynamodb": dynamodb}


def _wire_image(image: dict[str, Any]) -> dict[str, Any]:
    return {name: _wire_value(value) for name, value in image.items()}


def _wire_value(value: dict[str, Any]) -> dict[str, Any]:
    """One attribute value in DynamoDB's JSON: B and BS base64-encoded, M and L walked."""
    (kind, inner), *_ = value.items()
    if kind == "B" and isinstance(inner, bytes):
        return {"B": base64.b64encode(inner).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v for v in inner]}
    if kind == "M":
        return {"M": _wire_image(inner)}
    if kind == "L":
        return {"L": [_wire_value(v) for v in inner]}
    return value


class DirectClients:
    """A client factory for the pollers: direct SQS and streams clients, boto3 for the rest."""

    def __init__(self, lock: threading.RLock, boto3_client: Any) -> None:
        self._lock = lock
        self._boto3_client = boto3_client

    def __call__(self, service: str) -> Any:
        if service == "sqs":
            return DirectSqs(self._lock, self._boto3_client("sqs"))
        if service == "dynamodbstreams":
            return DirectStreams(self._lock, self._boto3_client("dynamodbstreams"))
        return self._boto3_client(service)
