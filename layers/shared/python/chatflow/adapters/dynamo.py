"""DynamoDB plumbing shared by the repositories: items and batches (errors: ``aws_errors``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from chatflow.adapters.aws_errors import dynamo_errors
from chatflow.adapters.batch_retry import BatchRetry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

Item = dict[str, Any]
RawItem = Mapping[str, "AttributeValueTypeDef"]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Unprocessed keys and items are sent again with backoff and jitter, 8 calls at most per chunk.
BATCH_RETRY = BatchRetry(rounds=8, first_delay=0.05, max_delay=1.0)


def to_raw(item: Mapping[str, Any]) -> dict[str, AttributeValueTypeDef]:
    return {key: _serializer.serialize(value) for key, value in item.items() if value is not None}


def to_value(value: Any) -> AttributeValueTypeDef:
    return _serializer.serialize(value)


def from_raw(raw: RawItem) -> Item:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in raw.items()}


def _plain(value: Any) -> Any:
    """Decimals back to ints (we store only integers), recursively."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return value


def batch_get(
    client: DynamoDBClient,
    table: str,
    keys: Sequence[dict[str, AttributeValueTypeDef]],
    *,
    retry: BatchRetry = BATCH_RETRY,
    consistent: bool = False,
) -> list[Item]:
    """BatchGetItem in chunks of 100; unprocessed keys are read again (``BatchRetry``).
    ``consistent``: strongly consistent reads (as ``GetItem``'s ``ConsistentRead``)."""
    found: list[Item] = []

    def get(pending: list[Any]) -> list[Any]:
        with dynamo_errors():
            response = client.batch_get_item(
                RequestItems={table: {"Keys": pending, "ConsistentRead": consistent}}
            )
        found.extend(from_raw(raw) for raw in response.get("Responses", {}).get(table, []))
        unprocessed: dict[str, Any] = dict(response.get("UnprocessedKeys") or {})
        return list(unprocessed.get(table, {}).get("Keys", []))

    for chunk in _chunks(list(keys), 100):
        retry.run(chunk, get, what="DynamoDB reads")
    return found


def batch_write(
    client: DynamoDBClient, table: str, requests: Sequence[dict[str, Any]], *, retry: BatchRetry = BATCH_RETRY
) -> None:
    """BatchWriteItem in chunks of 25; unprocessed items are written again (``BatchRetry``)."""

    def write(pending: list[Any]) -> list[Any]:
        with dynamo_errors():
            response = client.batch_write_item(RequestItems={table: pending})
        return list((response.get("UnprocessedItems") or {}).get(table, []))

    for chunk in _chunks(list(requests), 25):
        retry.run(chunk, write, what="DynamoDB writes")


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
