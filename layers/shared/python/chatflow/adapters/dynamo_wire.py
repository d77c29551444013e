"""Items as DynamoDB sends them: read past botocore's shape-by-shape parser.

botocore parses a JSON response by walking its output shape, and an item is a map of
``AttributeValue`` structures: for a 20-message history page that walk visits about 200
structures. It took 0.51 ms where ``json.loads`` of the same body takes 0.04 ms (one-off,
2026-12-05, this machine; a read's chats function runs 4 ms in all). A known cost
(boto/boto3#2928, boto/botocore#3238) that botocore offers no switch for.

``read_items_directly(client)`` registers a ``before-parse`` handler on one DynamoDB client:
for the reads that return items (``GetItem``, ``Query``, ``Scan``, ``BatchGetItem``) it
takes the item-bearing members out of the JSON body and hands them to botocore as
already parsed (botocore's own ``customized_response_dict`` hook), leaving the rest
(``Count``, ``ConsumedCapacity``, ``UnprocessedKeys``…) to botocore's parser. The result is
what botocore would have returned, value for value: an ``AttributeValue`` in JSON is
already what botocore builds from it except binary values, which are base64 in JSON and
``bytes`` after botocore; they are decoded here the same way. Error responses are left
alone. ``tests/unit/test_dynamo_wire.py`` compares both on generated items of every type.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.model import OperationModel
    from mypy_boto3_dynamodb.client import DynamoDBClient

# Per operation, the members of its output that hold items (or maps/lists of items), and
# how deep the items sit: 0 an item, 1 a list of items, 2 a map of lists of items.
ITEM_MEMBERS: dict[str, dict[str, int]] = {
    "GetItem": {"Item": 0},
    "Query": {"Items": 1, "LastEvaluatedKey": 0},
    "Scan": {"Items": 1, "LastEvaluatedKey": 0},
    "BatchGetItem": {"Responses": 2},
}
# A binary value's type tag as it appears in the JSON; its absence rules every binary out
# (inside a JSON string a quote is escaped, so the text cannot fake it; a false alarm, such
# as an attribute named "B", only costs the walk).
_BINARY_TAGS = (b'"B"', b'"BS"')


def read_items_directly(client: DynamoDBClient) -> None:
    """Make ``client`` read the items of its ``ITEM_MEMBERS`` reads from the JSON directly."""
    for operation in ITEM_MEMBERS:
        client.meta.events.register(f"before-parse.dynamodb.{operation}", take_items)


def take_items(
    operation_model: OperationModel,
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any],
    **_: Any,
) -> None:
    """botocore's ``before-parse`` handler: move the item members of a successful response
    from ``response_dict``'s body to ``customized_response_dict``, binary values decoded."""
    members = ITEM_MEMBERS.get(operation_model.name)
    body = response_dict.get("body")
    if not members or response_dict.get("status_code") != 200 or not isinstance(body, bytes):
        return
    try:
        document = json.loads(body)
    except ValueError:
        return  # botocore's parser reports it
    if not isinstance(document, dict) or not members.keys() & document.keys():
        return
    binary = any(tag in body for tag in _BINARY_TAGS)
    for name, depth in members.items():
        if name in document:
            value = document.pop(name)
            if binary:
                _decode_items(value, depth)
            customized_response_dict[name] = value
    response_dict["body"] = json.dumps(document).encode()


def _decode_items(value: Any, depth: int) -> None:
    if depth == 2:
        for items in value.values():
            _decode_items(items, 1)
    elif depth == 1:
        for item in value:
            _decode_item(item)
    else:
        _decode_item(value)


def _decode_item(item: dict[str, Any]) -> None:
    for attribute in item.values():
        _decode_binary(attribute)


def _decode_binary(attribute: dict[str, Any]) -> None:
    """Base64 to bytes in place, at any depth, as botocore's blob parser does."""
    if "B" in attribute:
        attribute["B"] = base64.b64decode(attribute["B"])
    elif "BS" in attribute:
        attribute["BS"] = [base64.b64decode(member) for member in attribute["BS"]]
    elif "M" in attribute:
        _decode_item(attribute["M"])
    elif "L" in attribute:
        for member in attribute["L"]:
            _decode_binary(member)
