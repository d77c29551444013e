"""DynamoDB plumbing shared by the repositories: items, errors, batches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from chatflow.adapters.aws_errors import dynamo_errors
from chatflow.errors import Throttled

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

Item = dict[str, Any]
RawItem = Mapping[str, "AttributeValueTypeDef"]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

MAX_BATCH_ROUNDS = 8


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
    client: DynamoDBClient, table: str, keys: Sequence[dict[str, AttributeValueTypeDef]]
) -> list[Item]:
    """BatchGetItem in chunks of 100, retrying unprocessed keys."""
    found: list[Item] = []
    for chunk in _chunks(list(keys), 100):
        request: dict[str, Any] = {table: {"Keys": chunk}}
        for _ in range(MAX_BATCH_ROUNDS):
            with dynamo_errors():
                response = client.batch_get_item(RequestItems=request)
            found.extend(from_raw(raw) for raw in response.get("Responses", {}).get(table, []))
            request = dict(response.get("UnprocessedKeys") or {})
            if not request:
                break
        else:
            raise Throttled("The database is busy: retry in a moment.")
    return found


def batch_write(client: DynamoDBClient, table: str, requests: Sequence[dict[str, Any]]) -> None:
    """BatchWriteItem in chunks of 25, retrying unprocessed items."""
    for chunk in _chunks(list(requests), 25):
        pending: dict[str, Any] = {table: chunk}
        for _ in range(MAX_BATCH_ROUNDS):
            with dynamo_errors():
                response = client.batch_write_item(RequestItems=pending)
            pending = dict(response.get("UnprocessedItems") or {})
            if not pending:
                break
        else:
            raise Throttled("The database is busy: retry in a moment.")


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
