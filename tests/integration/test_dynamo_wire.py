"""The functions' DynamoDB client reads items directly, and gets what a plain boto3 client gets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore import parsers
from moto import mock_aws

from chatflow.adapters import aws

REGION = "us-east-1"
TABLE = "Items"
ITEMS: list[dict[str, Any]] = [
    {
        "PK": {"S": "A"},
        "SK": {"S": f"#{n}"},
        "n": {"N": str(n)},
        "blob": {"B": bytes([n, 0, 255])},
        "blobs": {"BS": [b"x", bytes([n])]},
        "nested": {"M": {"B": {"L": [{"B": b"\x01"}, {"S": "s"}, {"NULL": True}, {"BOOL": False}]}}},
        "tags": {"SS": ["a", "b"]},
        "scores": {"NS": ["1", "2.5"]},
    }
    for n in range(1, 6)
]


@pytest.fixture
def clients() -> Iterator[tuple[Any, Any]]:
    """The functions' client (``aws.dynamodb``) and a plain boto3 one, on a table of ``ITEMS``."""
    with mock_aws():
        aws.reset_clients()
        plain = boto3.client("dynamodb", region_name=REGION)
        plain.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for item in ITEMS:
            plain.put_item(TableName=TABLE, Item=item)
        yield aws.dynamodb(REGION), plain
        aws.reset_clients()


def reads(client: Any) -> list[dict[str, Any]]:
    """One of each read that returns items, the ResponseMetadata (request ids, dates) left out."""
    key = {"PK": {"S": "A"}, "SK": {"S": "#3"}}
    answers = [
        client.get_item(TableName=TABLE, Key=key),
        client.get_item(TableName=TABLE, Key={"PK": {"S": "A"}, "SK": {"S": "none"}}),
        client.query(
            TableName=TABLE,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": "A"}},
            ScanIndexForward=False,
            Limit=3,
        ),
        client.scan(TableName=TABLE, Limit=2),
        client.batch_get_item(RequestItems={TABLE: {"Keys": [key, {"PK": {"S": "A"}, "SK": {"S": "#1"}}]}}),
    ]
    for answer in answers:
        answer.pop("ResponseMetadata")
    return answers


def test_the_functions_client_reads_what_a_plain_client_reads(clients: tuple[Any, Any]) -> None:
    # Given items with every attribute type, binary ones at every depth
    functions_client, plain = clients
    # When both clients make the same reads
    # Then they get the same answers: items, pages' keys, counts; bytes for binary values
    direct = reads(functions_client)
    assert direct == reads(plain)
    assert direct[0]["Item"]["nested"]["M"]["B"]["L"][0] == {"B": b"\x01"}
    assert direct[2]["LastEvaluatedKey"] == {"PK": {"S": "A"}, "SK": {"S": "#3"}}


def test_botocore_parses_no_item_of_the_functions_reads(
    clients: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the bodies botocore's parser is handed
    bodies: list[bytes] = []
    parse = parsers.JSONParser.parse

    def seen(self: parsers.JSONParser, response: dict[str, Any], shape: Any) -> Any:
        bodies.append(response["body"])
        return parse(self, response, shape)

    monkeypatch.setattr(parsers.JSONParser, "parse", seen)
    functions_client, plain = clients
    # When the functions' client reads, then a plain client
    reads(functions_client)
    directly, bodies[:] = list(bodies), []
    reads(plain)
    # Then botocore walked no item for the first (only counts), all of them for the second
    assert directly
    assert not any(b'"PK"' in body for body in directly)
    # (GetItem 1; the Query's 3 and its LastEvaluatedKey; the Scan's 2 and its key; 2 batched)
    assert sum(body.count(b'"PK"') for body in bodies) == 1 + (3 + 1) + (2 + 1) + 2
