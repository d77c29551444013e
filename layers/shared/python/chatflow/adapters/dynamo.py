"""DynamoDB plumbing shared by the repositories: items, errors, batches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chatflow.errors import ConcurrentUpdate, Throttled

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

Item = dict[str, Any]
RawItem = Mapping[str, "AttributeValueTypeDef"]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)
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


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: ClientError, *, conflict: type[Exception] = ConcurrentUpdate) -> Exception:
    """Map a DynamoDB error code to the application's exception tree."""
    code = error_code(exc)
    if code == "ConditionalCheckFailedException":
        return conflict("a conditional write found the item changed")
    if code in THROTTLING_CODES:
        return Throttled("The database is busy: retry in a moment.")
    return exc


def cancellation_codes(exc: ClientError) -> list[str]:
    """The per-item reason codes of a cancelled transaction ("None" where the item was fine)."""
    reasons = exc.response.get("CancellationReasons") or []
    return [str(r.get("Code", "None")) for r in reasons]


def batch_get(
    client: DynamoDBClient, table: str, keys: Sequence[dict[str, AttributeValueTypeDef]]
) -> list[Item]:
    """BatchGetItem in chunks of 100, retrying unprocessed keys."""
    found: list[Item] = []
    for chunk in _chunks(list(keys), 100):
        request: dict[str, Any] = {table: {"Keys": chunk}}
        for _ in range(MAX_BATCH_ROUNDS):
            try:
                response = client.batch_get_item(RequestItems=request)
            except ClientError as exc:
                raise translate(exc) from exc
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
            try:
                response = client.batch_write_item(RequestItems=pending)
            except ClientError as exc:
                raise translate(exc) from exc
            pending = dict(response.get("UnprocessedItems") or {})
            if not pending:
                break
        else:
            raise Throttled("The database is busy: retry in a moment.")


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
