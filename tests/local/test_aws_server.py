"""Emulated AWS: transactions stay atomic without moto's table copies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local.aws_server import EmulatedAws


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    EmulatedAws.reset()
    aws = EmulatedAws()
    aws.start()
    client = boto3.client(
        "dynamodb",
        endpoint_url=aws.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    client.create_table(
        TableName="t",
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        yield client
    finally:
        aws.stop()
        EmulatedAws.reset()


def _put(pk: str, condition: str | None = None) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": "t", "Item": {"PK": {"S": pk}, "n": {"N": "1"}}}
    if condition:
        put["ConditionExpression"] = condition
    return {"Put": put}


def test_a_cancelled_transaction_writes_nothing_and_says_which_condition_failed(dynamodb: Any) -> None:
    # Given an item that exists
    dynamodb.put_item(TableName="t", Item={"PK": {"S": "b"}})

    # When a transaction writes a new item and one that must not exist yet
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=[_put("a"), _put("b", "attribute_not_exists(PK)")])

    # Then it is cancelled with the reasons in order, and the first write did not happen
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert "Item" not in dynamodb.get_item(TableName="t", Key={"PK": {"S": "a"}})


def test_a_transaction_whose_conditions_hold_applies_every_write(dynamodb: Any) -> None:
    dynamodb.transact_write_items(
        TransactItems=[
            _put("a", "attribute_not_exists(PK)"),
            {
                "Update": {
                    "TableName": "t",
                    "Key": {"PK": {"S": "c"}},
                    "UpdateExpression": "ADD #n :one",
                    "ExpressionAttributeNames": {"#n": "n"},
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    )
    assert dynamodb.get_item(TableName="t", Key={"PK": {"S": "a"}})["Item"]["n"] == {"N": "1"}
    assert dynamodb.get_item(TableName="t", Key={"PK": {"S": "c"}})["Item"]["n"] == {"N": "1"}
