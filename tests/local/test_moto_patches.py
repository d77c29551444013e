"""The patches of moto (local/moto_patches.py) against moto itself, and under threads.

Differential tests run the same operations, with the same failures, on moto as it is and
with one patch applied, and compare what a client observes: results, errors and
cancellation reasons, the items stored, and the stream records. A speed-up must observe
the same; a fidelity fix must observe the same except for the difference it exists for,
which its tests spell out. The threaded tests pause one request inside moto and show that
no other request gets in.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import boto3
import moto
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.sqs.models import sqs_backends

from local import moto_patches

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
T = TypeVar("T")
REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements" / "dev.txt"


@dataclass
class Aws:
    dynamodb: Any
    streams: Any
    sqs: Any


@contextmanager
def moto_with(*patches: str) -> Iterator[Aws]:
    """A fresh in-process moto with only ``patches`` applied (none: moto as it is)."""
    config = Config(account_id_endpoint_mode="disabled")
    with moto_patches.applied(*patches), mock_aws():
        yield Aws(
            dynamodb=boto3.client("dynamodb", region_name=REGION, config=config),
            streams=boto3.client("dynamodbstreams", region_name=REGION, config=config),
            sqs=boto3.client("sqs", region_name=REGION, config=config),
        )


def differential(patch: str, scenario: Callable[[Aws], T]) -> tuple[T, T]:
    """What ``scenario`` observes on moto as it is, then with ``patch`` applied."""
    with moto_with() as aws:
        unpatched = scenario(aws)
    with moto_with(patch) as aws:
        patched = scenario(aws)
    return unpatched, patched


def outcome(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A call's answer as a client sees it: the response, or the error and its reasons."""
    try:
        response = call()
    except ClientError as error:
        return {
            "error": error.response["Error"],
            "reasons": error.response.get("CancellationReasons"),
        }
    return {"ok": {key: value for key, value in response.items() if key != "ResponseMetadata"}}


# ---- a table with a stream ----------------------------------------------------------------------


def create_table(aws: Aws) -> str:
    """Table ``t`` (PK, SK) streaming new and old images; its stream ARN."""
    aws.dynamodb.create_table(
        TableName="t",
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(aws.dynamodb.describe_table(TableName="t")["Table"]["LatestStreamArn"])


def key(pk: str, sk: str = "s") -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def items(aws: Aws) -> list[dict[str, Any]]:
    found = aws.dynamodb.scan(TableName="t", ConsistentRead=True)["Items"]
    return sorted(found, key=lambda item: (item["PK"]["S"], item["SK"]["S"]))


def stream_records(aws: Aws, arn: str, iterator: str | None = None) -> list[dict[str, Any]]:
    """The stream's records as a reader sees them, from a new iterator at the start unless given."""
    if iterator is None:
        iterator = start_iterator(aws, arn)
    records = aws.streams.get_records(ShardIterator=iterator)["Records"]
    return [
        {
            "eventName": record["eventName"],
            "SequenceNumber": record["dynamodb"]["SequenceNumber"],
            "Keys": record["dynamodb"]["Keys"],
            "NewImage": record["dynamodb"].get("NewImage"),
            "OldImage": record["dynamodb"].get("OldImage"),
        }
        for record in records
    ]


def start_iterator(aws: Aws, arn: str) -> str:
    shard = aws.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    return str(
        aws.streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
    )


def put(pk: str, condition: str | None = None, **attributes: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"TableName": "t", "Item": key(pk) | attributes}
    if condition:
        operation["ConditionExpression"] = condition
    return {"Put": operation}


def update(pk: str, expression: str, values: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"TableName": "t", "Key": key(pk), "UpdateExpression": expression, **options}
    if values:
        operation["ExpressionAttributeValues"] = values
    return {"Update": operation}


def seed(aws: Aws) -> None:
    """Items ``a`` (n = 1, text), ``b`` (n = 2) and ``c`` (n = 3), each written once."""
    aws.dynamodb.put_item(TableName="t", Item=key("a") | {"n": {"N": "1"}, "text": {"S": "hello"}})
    aws.dynamodb.put_item(TableName="t", Item=key("b") | {"n": {"N": "2"}})
    aws.dynamodb.update_item(
        TableName="t",
        Key=key("c"),
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "3"}},
    )


BIG = {"S": "x" * 300_000}  # two of these pass the item size limit

# Transactions, each after ``seed``: those that succeed, and those that fail in each way moto knows.
TRANSACTIONS: dict[str, list[dict[str, Any]]] = {
    "writes of every kind": [
        put("new", "attribute_not_exists(PK)", text={"S": "fresh"}),
        update("a", "SET n = n + :one, tags = :tags", {":one": {"N": "1"}, ":tags": {"SS": ["x", "y"]}}),
        update("created", "ADD hits :one", {":one": {"N": "1"}}),
        {
            "Delete": {
                "TableName": "t",
                "Key": key("b"),
                "ConditionExpression": "n = :two",
                "ExpressionAttributeValues": {":two": {"N": "2"}},
            }
        },
        {"ConditionCheck": {"TableName": "t", "Key": key("c"), "ConditionExpression": "attribute_exists(n)"}},
    ],
    "a failed condition, with the old item": [
        put("new"),
        update(
            "a",
            "SET n = :nine",
            {":nine": {"N": "9"}},
            ConditionExpression="n = :nine",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        put("b", "attribute_not_exists(PK)"),
    ],
    "two operations on one item": [put("new"), update("a", "SET n = :n", {":n": {"N": "5"}}), put("a")],
    "more than 100 operations": [put(f"p{i}") for i in range(101)],
    "a table that does not exist, after a write": [
        put("new"),
        update("a", "SET n = :n", {":n": {"N": "6"}}),
        {"Delete": {"TableName": "nowhere", "Key": key("x")}},
    ],
    "an update that fails only when applied, third of four": [
        put("new"),
        update("created", "SET n = :n", {":n": {"N": "7"}}),
        update("a", "SET n = #t + :one", {":one": {"N": "1"}}, ExpressionAttributeNames={"#t": "text"}),
        put("other"),
    ],
    "an item over the size limit, third of four writes": [
        put("new"),
        update("a", "SET n = :n", {":n": {"N": "8"}}),
        put("huge", big1=BIG, big2=BIG),
        put("other"),
    ],
    "an update growing an item past the size limit, third of four": [
        put("new", big1=BIG),
        update("created", "SET n = :n", {":n": {"N": "7"}}),
        update("b", "SET big1 = :big, big2 = :big", {":big": BIG}),
        put("other"),
    ],
}


def transaction_observations(transaction: list[dict[str, Any]]) -> Callable[[Aws], dict[str, Any]]:
    def scenario(aws: Aws) -> dict[str, Any]:
        arn = create_table(aws)
        seed(aws)
        result = outcome(lambda: aws.dynamodb.transact_write_items(TransactItems=transaction))
        return {"outcome": result, "items": items(aws), "stream": stream_records(aws, arn)}

    return scenario


# ---- TransactWriteItems -------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(TRANSACTIONS))
def test_the_patched_transaction_observes_what_moto_observes(case: str) -> None:
    # Given a transaction (succeeding, or failing in one of the ways moto knows)
    scenario = transaction_observations(TRANSACTIONS[case])

    # When it runs on moto, then on moto with the patched transaction
    unpatched, patched = differential("dynamodb.transact_write_items", scenario)

    # Then the answer, the items and the stream records are the same
    assert patched == unpatched


@pytest.mark.parametrize(
    "case",
    [
        "an update that fails only when applied, third of four",
        "an item over the size limit, third of four writes",
        "an update growing an item past the size limit, third of four",
        "a table that does not exist, after a write",
    ],
)
def test_a_transaction_failing_mid_apply_leaves_no_item_change_and_no_stream_record(case: str) -> None:
    with moto_with(*moto_patches.PATCH_NAMES) as aws:
        # Given items and their stream records
        arn = create_table(aws)
        seed(aws)
        before_items, before_stream = items(aws), stream_records(aws, arn)

        # When a transaction whose first writes apply fails on a later one
        result = outcome(lambda: aws.dynamodb.transact_write_items(TransactItems=TRANSACTIONS[case]))

        # Then it fails, and no item and no stream record is left of its first writes
        assert "error" in result
        assert items(aws) == before_items
        assert stream_records(aws, arn) == before_stream


def test_a_stream_reader_keeps_seeing_new_records_after_a_cancelled_transaction() -> None:
    with moto_with(*moto_patches.PATCH_NAMES) as aws:
        # Given a stream reader that has read the records so far and holds its next iterator
        arn = create_table(aws)
        seed(aws)
        response = aws.streams.get_records(ShardIterator=start_iterator(aws, arn))
        assert len(response["Records"]) == 3

        # When a transaction is cancelled, then an item is written
        cancelled = outcome(
            lambda: aws.dynamodb.transact_write_items(
                TransactItems=[put("new"), put("a", "attribute_not_exists(PK)")]
            )
        )
        aws.dynamodb.put_item(TableName="t", Item=key("later"))

        # Then the reader's iterator gives the later write, and nothing of the cancelled one
        assert cancelled["error"]["Code"] == "TransactionCanceledException"
        seen = stream_records(aws, arn, response["NextShardIterator"])
        assert [(r["eventName"], r["Keys"]["PK"]["S"]) for r in seen] == [("INSERT", "later")]


def test_moto_alone_shows_a_reader_a_cancelled_write_and_hides_later_ones() -> None:
    # (Why the transaction patch rolls back in place: moto puts a copy of the table back,
    # and a reader's iterator stays on the table object the cancelled writes went to.)
    with moto_with() as aws:
        # Given a stream reader holding its next iterator
        arn = create_table(aws)
        seed(aws)
        response = aws.streams.get_records(ShardIterator=start_iterator(aws, arn))

        # When a transaction is cancelled after its first write, then an item is written
        transaction = [put("new"), put("a", "attribute_not_exists(PK)")]
        outcome(lambda: aws.dynamodb.transact_write_items(TransactItems=transaction))
        aws.dynamodb.put_item(TableName="t", Item=key("later"))

        # Then moto's reader sees the cancelled write and never the later one
        seen = stream_records(aws, arn, response["NextShardIterator"])
        assert [(r["eventName"], r["Keys"]["PK"]["S"]) for r in seen] == [("INSERT", "new")]


# ---- UpdateItem ---------------------------------------------------------------------------------

# Updates, each after ``seed``, that moto and DynamoDB answer alike.
UPDATES: dict[str, dict[str, Any]] = {
    "creating an item": {
        "Key": key("new"),
        "UpdateExpression": "SET n = :n, tags = :tags",
        "ExpressionAttributeValues": {":n": {"N": "1"}, ":tags": {"L": [{"S": "x"}]}},
        "ReturnValues": "ALL_NEW",
    },
    "creating an item with ADD and if_not_exists": {
        "Key": key("new"),
        "UpdateExpression": "ADD hits :one SET created = if_not_exists(created, :now)",
        "ExpressionAttributeValues": {":one": {"N": "1"}, ":now": {"S": "2026-01-01"}},
        "ReturnValues": "UPDATED_NEW",
    },
    "changing an item": {
        "Key": key("a"),
        "UpdateExpression": "SET n = n + :one REMOVE #t",
        "ExpressionAttributeNames": {"#t": "text"},
        "ExpressionAttributeValues": {":one": {"N": "1"}},
        "ReturnValues": "ALL_OLD",
    },
    "a failed condition, with the old item": {
        "Key": key("a"),
        "UpdateExpression": "SET n = :n",
        "ConditionExpression": "n = :n",
        "ExpressionAttributeValues": {":n": {"N": "5"}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    },
    "a failed condition on a missing item": {
        "Key": key("new"),
        "UpdateExpression": "SET n = :n",
        "ConditionExpression": "attribute_exists(PK)",
        "ExpressionAttributeValues": {":n": {"N": "5"}},
    },
    "an operand of the wrong type": {
        "Key": key("a"),
        "UpdateExpression": "SET n = #t + :one",
        "ExpressionAttributeNames": {"#t": "text"},
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    },
    "an undefined value on a new item": {"Key": key("new"), "UpdateExpression": "SET n = :missing"},
    "a key of the wrong type": {
        "Key": {"PK": {"N": "1"}, "SK": {"S": "s"}},
        "UpdateExpression": "SET n = :n",
        "ExpressionAttributeValues": {":n": {"N": "5"}},
    },
    "a table that does not exist": {
        "TableName": "nowhere",
        "Key": key("a"),
        "UpdateExpression": "SET n = :n",
        "ExpressionAttributeValues": {":n": {"N": "5"}},
    },
}


def update_observations(request: dict[str, Any]) -> Callable[[Aws], dict[str, Any]]:
    def scenario(aws: Aws) -> dict[str, Any]:
        arn = create_table(aws)
        seed(aws)
        result = outcome(lambda: aws.dynamodb.update_item(**({"TableName": "t"} | request)))
        return {"outcome": result, "items": items(aws), "stream": stream_records(aws, arn)}

    return scenario


def without_keys_only_inserts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """moto's records without the keys-only INSERT it streams before the real one (renumbered)."""
    kept = [r for r in records if not (r["eventName"] == "INSERT" and set(r["NewImage"]) == {"PK", "SK"})]
    first = int(records[0]["SequenceNumber"]) if records else 0
    return [r | {"SequenceNumber": str(first + i)} for i, r in enumerate(kept)]


@pytest.mark.parametrize("case", list(UPDATES))
def test_the_patched_update_observes_what_moto_observes_but_one_insert_per_new_item(case: str) -> None:
    # Given an update (of a new or an existing item, succeeding or failing)
    scenario = update_observations(UPDATES[case])

    # When it runs on moto, then on moto with the patched UpdateItem
    unpatched, patched = differential("dynamodb.update_item", scenario)

    # Then the answer and the items are the same, and the stream records are moto's
    # without the keys-only INSERT moto streams first when an update creates an item
    assert patched["outcome"] == unpatched["outcome"]
    assert patched["items"] == unpatched["items"]
    assert patched["stream"] == without_keys_only_inserts(unpatched["stream"])


def test_an_update_creating_an_item_streams_one_insert_with_the_whole_item() -> None:
    with moto_with("dynamodb.update_item") as aws:
        # Given a table with a stream
        arn = create_table(aws)

        # When an update creates an item
        aws.dynamodb.update_item(
            TableName="t",
            Key=key("new"),
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        )

        # Then one INSERT is streamed, with the whole new item, as DynamoDB streams it
        records = stream_records(aws, arn)
        assert [(r["eventName"], r["NewImage"], r["OldImage"]) for r in records] == [
            ("INSERT", key("new") | {"n": {"N": "1"}}, None)
        ]


def test_moto_alone_streams_a_keys_only_insert_before_the_item_an_update_creates() -> None:
    # (Why product code had to skip keys-only images: the patch's reason to exist.)
    with moto_with() as aws:
        arn = create_table(aws)
        aws.dynamodb.update_item(
            TableName="t",
            Key=key("new"),
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        )
        images = [r["NewImage"] for r in stream_records(aws, arn)]
        assert images == [key("new"), key("new") | {"n": {"N": "1"}}]


@pytest.mark.parametrize("target", ["new", "b"])
def test_an_update_failing_half_way_changes_nothing(target: str) -> None:
    # Given an update that sets a small attribute, then one that passes the item size limit
    request = {
        "TableName": "t",
        "Key": key(target),
        "UpdateExpression": "SET small = :small, big1 = :big, big2 = :big",
        "ExpressionAttributeValues": {":small": {"S": "x"}, ":big": BIG},
    }

    def scenario(aws: Aws) -> dict[str, Any]:
        arn = create_table(aws)
        seed(aws)
        before = {"items": items(aws), "stream": stream_records(aws, arn)}
        result = outcome(lambda: aws.dynamodb.update_item(**request))
        return {"outcome": result, "before": before, "items": items(aws), "stream": stream_records(aws, arn)}

    # When it runs on moto, then on moto with the patched UpdateItem
    unpatched, patched = differential("dynamodb.update_item", scenario)

    # Then both refuse it alike; with the patch nothing changed, as in DynamoDB, while moto
    # leaves the part before the failure (the small attribute, or a keys-only new item)
    assert patched["outcome"] == unpatched["outcome"]
    assert patched["outcome"]["error"]["Code"] == "ValidationException"
    assert (patched["items"], patched["stream"]) == (patched["before"]["items"], patched["before"]["stream"])
    assert unpatched["items"] != unpatched["before"]["items"]


def page_answers(aws: Aws) -> dict[str, Any]:
    """Queries and scans that moto cuts at 1 MB: items of 90 to 300 KB of ASCII or multi-byte
    text, numbers, sets and maps of maps and lists (sized by ``Item.size``), read forwards,
    backwards, page by page, and the sizes moto gives each stored item."""
    create_table(aws)
    for n in range(12):
        wide = n % 3 == 0  # two bytes a character
        text = ("é" if wide else "x") * ((90_000 + 19_000 * n) // (2 if wide else 1))
        item = key("big", f"{n:02d}") | {
            "t": {"S": text},
            "n": {"N": str(10**n)},
            "ss": {"SS": ["a", "ü" * n or "b"]},
            "m": {
                "M": {
                    "k": {"NS": ["1", "2"]},
                    "ñ": {"B": b"\x00" * n},
                    "in": {
                        "M": {"ü": {"S": "é" * n}, "l": {"L": [{"M": {"x": {"N": str(n)}}}, {"NULL": True}]}}
                    },
                }
            },
            "ünïcode-name": {"BOOL": True},
        }
        aws.dynamodb.put_item(TableName="t", Item=item)

    def read_all(operation: Callable[..., dict[str, Any]], **arguments: Any) -> list[Any]:
        pages, start = [], None
        while True:
            answer = operation(TableName="t", **arguments, **({"ExclusiveStartKey": start} if start else {}))
            pages.append([item["SK"]["S"] for item in answer["Items"]])
            start = answer.get("LastEvaluatedKey")
            if not start:
                return pages

    by_pk = {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "big"}}}
    backend = moto.dynamodb.models.dynamodb_backends[ACCOUNT][REGION]
    stored = backend.get_table("t").items
    return {
        "forwards": read_all(aws.dynamodb.query, **by_pk),
        "backwards": read_all(aws.dynamodb.query, **by_pk, ScanIndexForward=False),
        "scan": read_all(aws.dynamodb.scan),
        "sizes": sorted(item.size() for partition in stored.values() for item in partition.values()),
    }


def test_pages_end_at_1_mb_as_moto_sizes_items() -> None:
    # Given items of 90 to 300 KB of every kind of value, some names and text multi-byte
    # When they are queried and scanned page by page on moto, then on moto sizing items in one loop
    unpatched, patched = differential("dynamodb.plain_values", page_answers)

    # Then every item has the same size, and every page ends where moto's ends (at 1 MB)
    assert patched == unpatched
    assert len(patched["forwards"]) > 2
    assert patched["sizes"][0] > 90_000


# ---- Item(), expressions, moto's module list ----------------------------------------------------


@pytest.mark.parametrize("patch", ["dynamodb.item_init", "dynamodb.plain_values"])
def test_items_are_sized_and_refused_as_moto_sizes_and_refuses_them(patch: str) -> None:
    # Given items of many attributes, around the size limit, and nested
    wide = key("wide") | {f"a{i}": {"N": str(i)} for i in range(60)}
    under = key("under") | {"big": {"S": "x" * 399_000}}
    over = key("over") | {"big1": {"S": "x" * 200_000}, "big2": {"S": "x" * 205_000}}
    nested = key("nested") | {"m": {"M": {"l": {"L": [{"S": "x"}, {"N": "1"}, {"BOOL": True}]}}}}
    bad_number = key("nan") | {"n": {"N": "not a number"}}

    def scenario(aws: Aws) -> dict[str, Any]:
        create_table(aws)
        results = [
            outcome(partial(aws.dynamodb.put_item, TableName="t", Item=item))
            for item in (wide, under, over, nested, bad_number)
        ]
        batch = outcome(
            lambda: aws.dynamodb.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": over}}]})
        )
        return {"results": results, "batch": batch, "items": items(aws)}

    # When they are written on moto, then on moto with the patch (Item(), or values' sizes)
    unpatched, patched = differential(patch, scenario)

    # Then the same are stored and the same refused, with the same errors
    assert patched == unpatched
    assert [r.get("error", {}).get("Code") for r in patched["results"]] == [
        None,
        None,
        "ValidationException",
        None,
        "ValidationException",
    ]


def test_items_at_the_size_limit_are_kept_and_refused_as_moto_sizes_them() -> None:
    # Given items of 404,999 to 405,002 bytes as moto sizes them (its limit is 405,000):
    # multi-byte text, a number, a set and a map, each also grown past the limit by an update
    def at(total: int) -> dict[str, Any]:
        # 6 bytes of keys ("PK" "b", "SK" "s"), "n" + 9 digits, "l" + a list (1 + 1), "t" + text
        text = "é" * 1000 + "x" * (total - 6 - 10 - 3 - 1 - 2000)
        return {
            "PK": {"S": "b"},
            "SK": {"S": str(total)},
            "n": {"N": "123456789"},
            "l": {"L": [{"BOOL": True}]},
            "t": {"S": text},
        }

    def scenario(aws: Aws) -> dict[str, Any]:
        create_table(aws)
        puts = {
            total: outcome(partial(aws.dynamodb.put_item, TableName="t", Item=at(total)))
            for total in range(404_990, 405_010)
        }
        grown = outcome(
            partial(
                aws.dynamodb.update_item,
                TableName="t",
                Key={"PK": {"S": "b"}, "SK": {"S": "404990"}},
                UpdateExpression="SET m = :m",
                ExpressionAttributeValues={":m": {"M": {"k": {"NS": ["1", "22"]}, "ü": {"S": "ß"}}}},
            )
        )
        return {"puts": puts, "grown": grown, "items": [i["SK"] for i in items(aws)]}

    # When they are written on moto, then on moto sizing plain values without type questions
    unpatched, patched = differential("dynamodb.plain_values", scenario)

    # Then the same are kept and the same refused
    assert patched == unpatched
    kept = [total for total, answer in patched["puts"].items() if "ok" in answer]
    assert kept
    assert max(kept) < 405_009


UPDATE_EXPRESSIONS = [
    ("SET " + ", ".join(f"a{i} = :v" for i in range(40)), {}),
    (
        "SET m.child = :v, l = list_append(if_not_exists(l, :empty), :list) REMOVE #t ADD n :one",
        {"#t": "text"},
    ),
    ("SET #x = :v DELETE s :set", {"#x": "x"}),
    ("SET a = :v SET b = :v", {}),
    ("SET a = :v REMOVE a", {}),
    ("SET a = :undefined", {}),
    ("SET a = #undefined", {}),
    ("ADD #t :one", {"#t": "text"}),
    ("SET text = :v", {}),
    ("SET n = n + :v", {}),
    ("SET m.deep.path = :v", {}),
]


UPDATE_VALUES = {
    ":v": {"S": "v"},
    ":one": {"N": "1"},
    ":empty": {"L": []},
    ":list": {"L": [{"S": "x"}]},
    ":set": {"SS": ["x"]},
}


@pytest.mark.parametrize(("expression", "names"), UPDATE_EXPRESSIONS)
def test_update_expressions_are_traversed_and_refused_as_moto_does(
    expression: str, names: dict[str, str]
) -> None:
    # Given an update expression (valid, or invalid in one of the ways the traversals find)
    values = UPDATE_VALUES

    def scenario(aws: Aws) -> dict[str, Any]:
        create_table(aws)
        aws.dynamodb.put_item(
            TableName="t",
            Item=key("a") | {"m": {"M": {}}, "n": {"N": "1"}, "text": {"S": "t"}, "s": {"SS": ["x", "y"]}},
        )
        request: dict[str, Any] = {
            "TableName": "t",
            "Key": key("a"),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": {k: v for k, v in values.items() if k in expression},
        }
        if names:
            request["ExpressionAttributeNames"] = names
        if not request["ExpressionAttributeValues"]:
            del request["ExpressionAttributeValues"]
        return {"outcome": outcome(lambda: aws.dynamodb.update_item(**request)), "items": items(aws)}

    # When it runs on moto, then on moto with the patched traversals
    unpatched, patched = differential("dynamodb.expression_traversal", scenario)

    # Then the answer and the item are the same
    assert patched == unpatched


@pytest.mark.parametrize(
    ("expression", "names"), [*UPDATE_EXPRESSIONS, ("SET = :v", {}), ("SET a = :v,", {}), ("SET PK = :v", {})]
)
@pytest.mark.parametrize("base", [(), ("dynamodb.update_item",)], ids=["moto", "with-update_item"])
def test_update_expressions_parsed_once_answer_as_parsed_each_time(
    expression: str, names: dict[str, str], base: tuple[str, ...]
) -> None:
    # Given an update expression (valid, invalid, or not an expression at all), sent three
    # times to an existing item, three times to items that do not exist yet, and in a transaction
    def request(item_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"TableName": "t", "Key": key(item_id), "UpdateExpression": expression}
        values = {k: v for k, v in UPDATE_VALUES.items() if k in expression}
        if values:
            body["ExpressionAttributeValues"] = values
        if names:
            body["ExpressionAttributeNames"] = names
        return body

    def scenario(aws: Aws) -> dict[str, Any]:
        create_table(aws)
        aws.dynamodb.put_item(
            TableName="t",
            Item=key("a") | {"m": {"M": {}}, "n": {"N": "1"}, "text": {"S": "t"}, "s": {"SS": ["x", "y"]}},
        )
        answers = [outcome(lambda: aws.dynamodb.update_item(**request("a"))) for _ in range(3)]
        for i in range(3):
            answers.append(outcome(functools.partial(aws.dynamodb.update_item, **request(f"new{i}"))))
        transaction = [{"Update": request("b")}]
        answers.append(outcome(lambda: aws.dynamodb.transact_write_items(TransactItems=transaction)))
        return {"answers": answers, "items": items(aws)}

    # When it runs without and with the expressions parsed once (on moto's update, and on ours)
    with moto_with(*base) as aws:
        parsed_each_time = scenario(aws)
    with moto_with(*base, "dynamodb.update_expressions") as aws:
        parsed_once = scenario(aws)

    # Then every answer and every item are the same
    assert parsed_once == parsed_each_time


def test_moto_server_routes_with_the_same_list_of_services() -> None:
    # Given moto's list of its services, as it is
    with moto_patches.applied():
        listed = list(moto.backends.list_of_moto_modules())

    # When the list is read with the patch
    with moto_patches.applied("core.moto_modules"):
        patched = list(moto.backends.list_of_moto_modules())

    # Then it is the same list
    assert patched == listed
    assert "dynamodb" in patched


# ---- SQS ----------------------------------------------------------------------------------------


def queue_observations(aws: Aws) -> dict[str, Any]:
    """Sends (one delayed, FIFO duplicates, one past retention), receives, and every count."""
    standard = aws.sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    fifo = aws.sqs.create_queue(
        QueueName="q.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    sent = [
        aws.sqs.send_message(QueueUrl=standard, MessageBody="a"),
        aws.sqs.send_message(QueueUrl=standard, MessageBody="b"),
        aws.sqs.send_message(QueueUrl=standard, MessageBody="old"),
        aws.sqs.send_message(QueueUrl=standard, MessageBody="later", DelaySeconds=60),
        aws.sqs.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g"),
        aws.sqs.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g"),
    ]
    # "old" was sent two minutes ago: past the queue's 60 s retention
    queue = sqs_backends[ACCOUNT][REGION].queues["q"]
    old = next(m for m in queue._messages if m.body == "old")
    old.sent_timestamp = int(old.sent_timestamp or 0) - 120_000  # type: ignore[assignment]
    received = aws.sqs.receive_message(
        QueueUrl=standard, MaxNumberOfMessages=10, VisibilityTimeout=60, AttributeNames=["All"]
    )["Messages"]
    fifo_received = aws.sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]
    varying = {"CreatedTimestamp", "LastModifiedTimestamp"}
    return {
        "sent": [{k: v for k, v in s.items() if k in ("MD5OfMessageBody", "SequenceNumber")} for s in sent],
        "received": sorted((m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in received),
        "fifo": [m["Body"] for m in fifo_received],
        "attributes": [
            {
                k: v
                for k, v in aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
                    "Attributes"
                ].items()
                if k not in varying
            }
            for url in (standard, fifo)
        ],
    }


@pytest.mark.parametrize("patch", ["sqs.message_clock", "sqs.queue_attributes", "sqs.retention"])
def test_queues_send_receive_and_count_as_moto_does(patch: str) -> None:
    # Given sends, receives and counts on a standard queue and a FIFO queue
    # When they run on moto, then on moto with one SQS patch
    unpatched, patched = differential(patch, queue_observations)

    # Then every answer and every count is the same
    assert patched == unpatched
    assert patched["received"] == [("a", "1"), ("b", "1")]
    assert patched["fifo"] == ["same"]


# ---- EventBridge --------------------------------------------------------------------------------


def event_deliveries(aws: Aws) -> list[dict[str, Any]]:
    """Events put on a bus, delivered to a queue as they are, through an input transformer,
    and through paths that match nothing: the bodies the queues receive."""
    events = boto3.client("events", region_name=REGION)
    plain = aws.sqs.create_queue(QueueName="plain")["QueueUrl"]
    shaped = aws.sqs.create_queue(QueueName="shaped")["QueueUrl"]
    arn = "arn:aws:sqs:us-east-1:123456789012:{}"
    events.put_rule(Name="sms", EventPattern='{"source": ["chatflow.sms"]}')
    events.put_targets(
        Rule="sms",
        Targets=[
            {"Id": "plain", "Arn": arn.format("plain")},
            {
                "Id": "shaped",
                "Arn": arn.format("shaped"),
                "InputTransformer": {
                    "InputPathsMap": {
                        "to": "$.detail.to",
                        "first": "$.detail.parts[0]",
                        "none": "$.detail.nope",
                    },
                    "InputTemplate": '{"to": "<to>", "first": <first>, "none": "<none>"}',
                },
            },
        ],
    )
    for n in range(3):
        detail = {"to": f"+1415555010{n}", "parts": [{"n": n}], "text": "é ✓"}
        events.put_events(
            Entries=[{"Source": "chatflow.sms", "DetailType": "SmsSent", "Detail": json.dumps(detail)}]
        )
    received = []
    for url in (plain, shaped):
        for message in aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]:
            body = json.loads(message["Body"])
            received.append({k: v for k, v in body.items() if k not in ("id", "time")})
    return sorted(received, key=json.dumps)


def test_events_reach_their_targets_as_moto_delivers_them() -> None:
    # Given events put on a bus whose rule has a plain target and an input transformer
    # When they run on moto, then with the cached input paths
    unpatched, patched = differential("events.input_paths", event_deliveries)

    # Then every target receives the same bodies
    assert patched == unpatched
    assert len(patched) == 6
    assert {"to": "+14155550101", "first": {"n": 1}, "none": "<none>"} in patched


# ---- the locks, the version, applying and removing ----------------------------------------------


def test_the_locks_change_no_answer() -> None:
    # Given writes of every kind, then reads of every kind
    def scenario(aws: Aws) -> dict[str, Any]:
        observed = transaction_observations(TRANSACTIONS["writes of every kind"])(aws)
        observed["batch"] = outcome(
            lambda: aws.dynamodb.batch_get_item(RequestItems={"t": {"Keys": [key("a"), key("new")]}})
        )
        observed["query"] = outcome(
            lambda: aws.dynamodb.query(
                TableName="t",
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": {"S": "a"}},
            )
        )
        observed["transact_get"] = outcome(
            lambda: aws.dynamodb.transact_get_items(
                TransactItems=[{"Get": {"TableName": "t", "Key": key("a")}}]
            )
        )
        return observed

    # When they run on moto, then on moto with the locks
    unpatched, patched = differential("dynamodb.locks", scenario)

    # Then every answer is the same
    assert patched == unpatched


def test_install_refuses_an_untested_moto_and_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_patches.applied():
        # Given a moto version the patches were not tested with
        monkeypatch.setattr(moto, "__version__", "5.3.0")

        # When the patches are installed
        with pytest.raises(moto_patches.UntestedMotoVersion) as refused:
            moto_patches.install()

        # Then the error names both versions and the ways out, and moto is left as it was
        message = str(refused.value)
        assert "moto 5.3.0 is installed" in message
        assert "5.2.5" in message
        assert "requirements/dev.txt" in message
        assert "TESTED_MOTO_VERSIONS" in message
        assert moto_patches.applied_names() == ()


def test_the_pinned_moto_is_the_tested_one() -> None:
    # Given the moto that requirements/dev.txt pins
    pins = [line for line in REQUIREMENTS.read_text().splitlines() if line.startswith("moto==")]

    # Then it is the installed one, and one the patches were tested with
    assert len(pins) == 1
    pinned = pins[0].removeprefix("moto==").split()[0]
    assert pinned == moto.__version__
    assert pinned in moto_patches.TESTED_MOTO_VERSIONS


def test_removing_the_patches_gives_moto_back_its_own_methods() -> None:
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.sqs.models import Queue

    # Given moto's own methods
    with moto_patches.applied():
        own = (
            vars(DynamoDBBackend)["transact_write_items"],
            vars(DynamoDBBackend)["update_item"],
            vars(DynamoHandler)["call_action"],
            vars(Queue)["attributes"],
        )
        assert "call_action" not in vars(DynamoDBStreamsHandler)

    # When every patch is applied, then removed
    with moto_patches.applied(*moto_patches.PATCH_NAMES):
        patched = (
            vars(DynamoDBBackend)["transact_write_items"],
            vars(DynamoDBBackend)["update_item"],
            vars(DynamoHandler)["call_action"],
            vars(Queue)["attributes"],
        )
    with moto_patches.applied():
        back = (
            vars(DynamoDBBackend)["transact_write_items"],
            vars(DynamoDBBackend)["update_item"],
            vars(DynamoHandler)["call_action"],
            vars(Queue)["attributes"],
        )
        streams_back = "call_action" in vars(DynamoDBStreamsHandler)

    # Then each was replaced while applied and is moto's own again after
    assert all(p is not o for p, o in zip(patched, own, strict=True))
    assert all(b is o for b, o in zip(back, own, strict=True))
    assert not streams_back


# ---- under threads: a request paused inside moto keeps every other one out ----------------------


@contextmanager
def paused_before_writing(pk: str) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Whoever first writes item ``pk`` stops just before storing it (its checks done) until released."""
    reached, release = threading.Event(), threading.Event()
    original = Table.put_item

    def put_item(self: Table, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if item_attrs.get("PK") == {"S": pk} and not reached.is_set():
            reached.set()
            assert release.wait(10), "never released"
        return original(self, item_attrs, *args, **kwargs)

    with mock.patch.object(Table, "put_item", put_item):
        yield reached, release


SEND = [  # message 2 of a chat: the chat's last seq moves from 1 to 2, the message, its client id
    update(
        "chat",
        "SET lastSeq = :two",
        {":one": {"N": "1"}, ":two": {"N": "2"}},
        ConditionExpression="lastSeq = :one",
    ),
    put("msg-2", "attribute_not_exists(PK)", text={"S": "hi"}),
    put("cmid-x", "attribute_not_exists(PK)", seq={"N": "2"}),
]


def chat_with_one_message(aws: Aws) -> str:
    arn = create_table(aws)
    aws.dynamodb.put_item(TableName="t", Item=key("chat") | {"lastSeq": {"N": "1"}})
    return arn


def in_thread(pool: ThreadPoolExecutor, call: Callable[[], T]) -> Future[T]:
    return pool.submit(call)


def still_waiting(future: Future[Any], seconds: float = 0.3) -> bool:
    try:
        future.result(timeout=seconds)
    except FutureTimeout:
        return True
    return False


def test_a_reader_waits_for_a_transaction_paused_between_two_writes_and_sees_all_of_it() -> None:
    with moto_with(*moto_patches.PATCH_NAMES) as aws, ThreadPoolExecutor(2) as pool:
        # Given a transaction paused after its first write, before its second
        chat_with_one_message(aws)
        with paused_before_writing("msg-2") as (reached, release):
            sending = in_thread(pool, lambda: aws.dynamodb.transact_write_items(TransactItems=SEND))
            assert reached.wait(10)

            # When another thread reads the chat and its new message
            reading = in_thread(
                pool,
                lambda: aws.dynamodb.transact_get_items(
                    TransactItems=[{"Get": {"TableName": "t", "Key": key(k)}} for k in ("chat", "msg-2")]
                ),
            )

            # Then the read waits for the transaction, and sees all of it
            assert still_waiting(reading)
            release.set()
        sending.result(timeout=10)
        chat, message = (r.get("Item") for r in reading.result(timeout=10)["Responses"])
        assert chat["lastSeq"] == {"N": "2"}
        assert message is not None


def test_moto_alone_lets_a_reader_see_half_a_transaction() -> None:
    # (The control: without the lock the same pause lets the reader in.)
    with moto_with() as aws, ThreadPoolExecutor(2) as pool:
        chat_with_one_message(aws)
        with paused_before_writing("msg-2") as (reached, release):
            sending = in_thread(pool, lambda: aws.dynamodb.transact_write_items(TransactItems=SEND))
            assert reached.wait(10)
            chat = aws.dynamodb.get_item(TableName="t", Key=key("chat"))["Item"]
            message = aws.dynamodb.get_item(TableName="t", Key=key("msg-2")).get("Item")
            release.set()
        sending.result(timeout=10)
        assert (chat["lastSeq"], message) == ({"N": "2"}, None)


def test_a_conditional_write_racing_a_paused_transaction_waits_then_fails_its_condition() -> None:
    with moto_with(*moto_patches.PATCH_NAMES) as aws, ThreadPoolExecutor(2) as pool:
        # Given a transaction paused after checking and writing its first item
        chat_with_one_message(aws)
        with paused_before_writing("msg-2") as (reached, release):
            sending = in_thread(pool, lambda: aws.dynamodb.transact_write_items(TransactItems=SEND))
            assert reached.wait(10)

            # When another thread claims the same client id (a retry of the same message)
            retry = in_thread(
                pool,
                lambda: outcome(
                    lambda: aws.dynamodb.put_item(
                        TableName="t",
                        Item=key("cmid-x") | {"seq": {"N": "99"}},
                        ConditionExpression="attribute_not_exists(PK)",
                    )
                ),
            )

            # Then it waits for the transaction, which stores its message, and then fails
            assert still_waiting(retry)
            release.set()
        sending.result(timeout=10)
        assert retry.result(timeout=10)["error"]["Code"] == "ConditionalCheckFailedException"
        stored = aws.dynamodb.get_item(TableName="t", Key=key("cmid-x"))["Item"]
        assert stored["seq"] == {"N": "2"}


def test_moto_alone_erases_a_write_made_while_a_transaction_it_cancels_was_paused() -> None:
    # (The control: moto's rollback puts back a copy of the table taken before the race.)
    with moto_with() as aws, ThreadPoolExecutor(2) as pool:
        chat_with_one_message(aws)
        with paused_before_writing("msg-2") as (reached, release):
            sending = in_thread(
                pool, lambda: outcome(lambda: aws.dynamodb.transact_write_items(TransactItems=SEND))
            )
            assert reached.wait(10)
            retry = outcome(
                lambda: aws.dynamodb.put_item(
                    TableName="t",
                    Item=key("cmid-x") | {"seq": {"N": "99"}},
                    ConditionExpression="attribute_not_exists(PK)",
                )
            )
            release.set()
        assert "ok" in retry
        assert sending.result(timeout=10)["error"]["Code"] == "TransactionCanceledException"
        assert "Item" not in aws.dynamodb.get_item(TableName="t", Key=key("cmid-x"))


def test_a_stream_reader_waits_for_a_paused_transaction_and_sees_nothing_of_its_rollback() -> None:
    with moto_with(*moto_patches.PATCH_NAMES) as aws, ThreadPoolExecutor(2) as pool:
        # Given a transaction paused after its first write, whose next write is too big
        arn = create_table(aws)
        seed(aws)
        before = stream_records(aws, arn)
        doomed = [put("new"), put("huge", big1=BIG, big2=BIG)]
        with paused_before_writing("huge") as (reached, release):
            sending = in_thread(
                pool, lambda: outcome(lambda: aws.dynamodb.transact_write_items(TransactItems=doomed))
            )
            assert reached.wait(10)

            # When another thread reads the stream
            reading = in_thread(pool, lambda: stream_records(aws, arn))

            # Then it waits, and sees none of the rolled-back transaction's records
            assert still_waiting(reading)
            release.set()
        assert sending.result(timeout=10)["error"]["Code"] == "ValidationException"
        assert reading.result(timeout=10) == before


def test_transactions_from_many_threads_take_every_seq_once() -> None:
    # Given a counter, and threads that each take the next value 15 times by transaction
    # (read, then write with "lastSeq = read", retried when another thread got there first)
    threads, rounds = 4, 15
    with moto_with(*moto_patches.PATCH_NAMES) as aws:
        chat_with_one_message(aws)

        def take(thread: int) -> list[int]:
            taken: list[int] = []
            while len(taken) < rounds:
                last = int(aws.dynamodb.get_item(TableName="t", Key=key("chat"))["Item"]["lastSeq"]["N"])
                transaction = [
                    update(
                        "chat",
                        "SET lastSeq = :next",
                        {":last": {"N": str(last)}, ":next": {"N": str(last + 1)}},
                        ConditionExpression="lastSeq = :last",
                    ),
                    put(f"msg-{last + 1}", "attribute_not_exists(PK)", thread={"N": str(thread)}),
                ]
                result = outcome(partial(aws.dynamodb.transact_write_items, TransactItems=transaction))
                if "error" in result:  # another thread took it first: read again
                    assert result["error"]["Code"] == "TransactionCanceledException", result
                    continue
                taken.append(last + 1)
            return taken

        # When they all run at once
        with ThreadPoolExecutor(threads) as pool:
            taken = [f.result(timeout=60) for f in [pool.submit(take, t) for t in range(threads)]]

        # Then every value was taken exactly once, each with its message
        every = sorted(seq for values in taken for seq in values)
        assert every == list(range(2, 2 + threads * rounds))
        messages = [i for i in items(aws) if i["PK"]["S"].startswith("msg-")]
        assert len(messages) == threads * rounds


# ---- answers with items: the AttributeValue short path -------------------------------------------

RICH_ITEM = {
    "PK": {"S": "rich"},
    "SK": {"S": "s"},
    "text": {"S": "héllo ✓"},
    "empty": {"S": ""},
    "count": {"N": "-12.5e3"},
    "blob": {"B": b"\x00\xff binary"},
    "names": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2.5"]},
    "blobs": {"BS": [b"\x01", b"\x02\x03"]},
    "nothing": {"NULL": True},
    "yes": {"BOOL": True},
    "no": {"BOOL": False},
    "map": {
        "M": {
            "inner": {"M": {"deep": {"L": [{"S": "x"}, {"N": "1"}, {"B": b"\x09"}, {"NULL": True}]}}},
            "flag": {"BOOL": False},
            "blank": {"M": {}},
        }
    },
    "list": {"L": [{"M": {"k": {"SS": ["z"]}}}, {"L": []}, {"BOOL": True}]},
}


def item_answers(aws: Aws) -> dict[str, Any]:
    """Every kind of answer that carries items, for an item with every kind of value."""
    arn = create_table(aws)
    aws.dynamodb.put_item(TableName="t", Item=RICH_ITEM)
    aws.dynamodb.put_item(TableName="t", Item={"PK": {"S": "rich"}, "SK": {"S": "t"}, "n": {"N": "1"}})
    return {
        "get": outcome(lambda: aws.dynamodb.get_item(TableName="t", Key=key("rich"))),
        "query": outcome(
            lambda: aws.dynamodb.query(
                TableName="t",
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": {"S": "rich"}},
            )
        ),
        "scan": outcome(lambda: aws.dynamodb.scan(TableName="t")),
        "batch": outcome(lambda: aws.dynamodb.batch_get_item(RequestItems={"t": {"Keys": [key("rich")]}})),
        "transact_get": outcome(
            lambda: aws.dynamodb.transact_get_items(
                TransactItems=[{"Get": {"TableName": "t", "Key": key("rich")}}]
            )
        ),
        "update": outcome(
            lambda: aws.dynamodb.update_item(
                TableName="t",
                Key=key("rich"),
                UpdateExpression="SET #m.added = :v",
                ExpressionAttributeNames={"#m": "map"},
                ExpressionAttributeValues={":v": {"L": [{"B": b"\x07"}]}},
                ReturnValues="ALL_NEW",
            )
        ),
        "condition_failed": outcome(
            lambda: aws.dynamodb.put_item(
                TableName="t",
                Item={"PK": {"S": "rich"}, "SK": {"S": "s"}},
                ConditionExpression="attribute_not_exists(PK)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        ),
        "stream": stream_records(aws, arn),
    }


@pytest.mark.parametrize(
    "patch",
    [
        "core.json_attribute_values",
        "core.json_item_lists",
        "dynamodb.plain_values",
        "dynamodb.answers_to_dict",
    ],
)
def test_items_are_answered_as_moto_answers_them(patch: str) -> None:
    # Given an item with every kind of DynamoDB value, read and returned every way there is
    # When that runs on moto, then on moto with the patch (the AttributeValue short path,
    # or plain values compared, sized and copied without type questions)
    unpatched, patched = differential(patch, item_answers)

    # Then every answer is the same, binaries and nested values included
    assert patched == unpatched
    assert patched["get"]["ok"]["Item"] == RICH_ITEM
    assert patched["condition_failed"]["error"]["Code"] == "ConditionalCheckFailedException"


# Every kind of value moto's serializer writes as it is, nested, with empty and multi-byte
# ones and characters JSON escapes: the items of core.json_item_lists's short path.
PLAIN_ITEM = {
    "PK": {"S": "plain"},
    "SK": {"S": "s"},
    "text": {"S": 'héllo ✓ "quoted" \\ \n\t\u0000'},
    "empty": {"S": ""},
    "count": {"N": "-12.5e3"},
    "names": {"SS": ["a", "ü"]},
    "numbers": {"NS": ["1", "2.5"]},
    "nothing": {"NULL": True},
    "yes": {"BOOL": True},
    "no": {"BOOL": False},
    "map": {
        "M": {
            "inner": {"M": {"deep": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}, {"SS": ["y"]}]}}},
            "blank": {"M": {}},
            "ñame": {"S": "é"},
        }
    },
    "list": {"L": [{"M": {"k": {"NS": ["3"]}}}, {"L": []}, {"BOOL": False}]},
}


def item_list_bodies(aws: Aws) -> dict[str, bytes]:
    """The raw JSON bodies of answers that list items (Query, Scan, BatchGetItem): items whose
    values are all written as they are, beside items with a binary at the top, deep in a map
    and deep in a list; pages, a projection, the other way, counts and empty lists."""
    create_table(aws)
    for item in (
        PLAIN_ITEM,
        RICH_ITEM,
        PLAIN_ITEM | key("mixed", "a"),
        key("mixed", "b") | {"m": {"M": {"x": {"M": {"b": {"B": b"\x01"}}}, "s": {"S": "t"}}}},
        key("mixed", "c") | {"l": {"L": [{"S": "a"}, {"BS": [b"\x02", b"\x03"]}]}, "n": {"N": "7"}},
        PLAIN_ITEM | key("mixed", "d"),
        key("mixed", "e"),
    ):
        aws.dynamodb.put_item(TableName="t", Item=item)
    bodies: list[bytes] = []

    def keep_body(response_dict: dict[str, Any], **_: Any) -> None:
        bodies.append(response_dict["body"])

    def body(call: Callable[[], Any]) -> bytes:
        call()
        return bodies[-1]

    by_mixed = {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "mixed"}}}
    query, scan = partial(aws.dynamodb.query, TableName="t"), partial(aws.dynamodb.scan, TableName="t")
    aws.dynamodb.meta.events.register("before-parse.dynamodb", keep_body)
    return {
        "query": body(partial(query, **by_mixed)),
        "backwards": body(partial(query, **by_mixed, ScanIndexForward=False)),
        "page": body(partial(query, **by_mixed, Limit=2)),
        "projected": body(
            partial(
                query,
                **by_mixed,
                ProjectionExpression="SK, #m, #l",
                ExpressionAttributeNames={"#m": "map", "#l": "l"},
            )
        ),
        "plain": body(
            partial(
                query, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "plain"}}
            )
        ),
        "count": body(partial(query, **by_mixed, Select="COUNT")),
        "none": body(
            partial(query, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "-"}})
        ),
        "scan": body(scan),
        "batch": body(
            lambda: aws.dynamodb.batch_get_item(
                RequestItems={
                    "t": {"Keys": [key("plain"), key("rich"), key("mixed", "b"), key("mixed", "d")]}
                }
            )
        ),
    }


def test_item_lists_are_written_byte_for_byte_as_moto_writes_them() -> None:
    # Given items whose values moto writes as they are, beside items with binaries, listed by
    # every answer that lists items
    answers: list[bool] = []
    written_as_is = moto_patches._written_as_is

    def recorded(values: Any) -> bool:
        answers.append(written_as_is(values))
        return answers[-1]

    # When that runs on moto, then on moto handing such items over as they are
    with mock.patch.object(moto_patches, "_written_as_is", recorded):
        unpatched, patched = differential("core.json_item_lists", item_list_bodies)

    # Then every answer is the same JSON text, byte for byte; both paths were taken
    assert patched == unpatched
    assert True in answers
    assert False in answers
    assert json.loads(patched["plain"])["Items"][0] == json.loads(json.dumps(PLAIN_ITEM))
    assert b'"B": "AQ=="' in patched["query"]


def _stable(value: Any) -> Any:
    """An answer with what differs between two runs named instead of given (times, the
    stream's label, ids)."""
    if isinstance(value, dict):
        return {
            key: ("<varies>" if key in {"LatestStreamLabel", "LatestStreamArn", "TableId"} else _stable(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_stable(item) for item in value]
    if isinstance(value, datetime):
        return "<datetime>"
    return value


def table_answers(aws: Aws) -> dict[str, Any]:
    """Answers that describe tables: nested structures, numbers, booleans and times."""
    create_table(aws)
    aws.dynamodb.put_item(TableName="t", Item=key("a"))
    return {
        "describe": _stable(outcome(lambda: aws.dynamodb.describe_table(TableName="t"))),
        "list": outcome(lambda: aws.dynamodb.list_tables()),
        "ttl": outcome(
            lambda: aws.dynamodb.update_time_to_live(
                TableName="t", TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
            )
        ),
        "backups": _stable(outcome(lambda: aws.dynamodb.describe_continuous_backups(TableName="t"))),
        "missing": outcome(lambda: aws.dynamodb.describe_table(TableName="nope")),
    }


def test_tables_are_described_as_moto_describes_them() -> None:
    # Given a table with a stream and an item, described every way there is
    # When that runs on moto, then on moto walking plain answers without model checks
    unpatched, patched = differential("dynamodb.answers_to_dict", table_answers)

    # Then every answer is the same, times included (as times)
    assert patched == unpatched
    assert patched["describe"]["ok"]["Table"]["CreationDateTime"] == "<datetime>"
    assert patched["describe"]["ok"]["Table"]["ItemCount"] >= 0
    assert patched["missing"]["error"]["Code"] == "ResourceNotFoundException"


# ---- Query: one partition -------------------------------------------------------------------------


def query_answers(aws: Aws) -> dict[str, Any]:
    """Queries with conditions, order, pages, filters and projections over several partitions,
    one through an index, and one of an empty partition."""
    aws.dynamodb.create_table(
        TableName="t",
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "G", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByG",
                "KeySchema": [
                    {"AttributeName": "G", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for partition in ("a", "b", "c"):
        for n in (7, 0, 11, 3, 9, 1, 5, 10, 2, 8, 4, 6):  # out of key order, as writes come
            aws.dynamodb.put_item(
                TableName="t",
                Item={
                    "PK": {"S": partition},
                    "SK": {"S": f"m#{n:03d}"},
                    "G": {"S": "even" if n % 2 == 0 else "odd"},
                    "n": {"N": str(n)},
                },
            )

    def query(**arguments: Any) -> dict[str, Any]:
        return outcome(lambda: aws.dynamodb.query(TableName="t", **arguments))

    def pages(**arguments: Any) -> list[dict[str, Any]]:
        answers, start = [], None
        while True:
            answer = aws.dynamodb.query(
                TableName="t", Limit=5, **arguments, **({"ExclusiveStartKey": start} if start else {})
            )
            answers.append({k: v for k, v in answer.items() if k != "ResponseMetadata"})
            start = answer.get("LastEvaluatedKey")
            if not start:
                return answers

    by_b = {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "b"}}}
    return {
        "all": query(**by_b),
        "backwards": query(**by_b, ScanIndexForward=False, Limit=4),
        "between": query(
            KeyConditionExpression="PK = :pk AND SK BETWEEN :low AND :high",
            ExpressionAttributeValues={":pk": {"S": "a"}, ":low": {"S": "m#003"}, ":high": {"S": "m#007"}},
        ),
        "prefix": query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :p)",
            ExpressionAttributeValues={":pk": {"S": "c"}, ":p": {"S": "m#01"}},
        ),
        "filtered": query(
            KeyConditionExpression="PK = :pk",
            FilterExpression="n > :n",
            ProjectionExpression="SK, n",
            ExpressionAttributeValues={":pk": {"S": "a"}, ":n": {"N": "8"}},
        ),
        "count": query(**by_b, Select="COUNT"),
        "empty": query(KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "zzz"}}),
        "pages": pages(**by_b),
        "pages_backwards": pages(**by_b, ScanIndexForward=False),
        "index": query(
            IndexName="ByG", KeyConditionExpression="G = :g", ExpressionAttributeValues={":g": {"S": "odd"}}
        ),
        "bad": query(KeyConditionExpression="SK = :sk", ExpressionAttributeValues={":sk": {"S": "m#001"}}),
    }


def numeric_key_answers(aws: Aws) -> dict[str, Any]:
    """Queries of a partition whose sort key is a number, written out of order: a number's
    order is not its text's (2 < 10, -3 < 1.5)."""
    aws.dynamodb.create_table(
        TableName="n",
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for number in ("10", "2", "-3", "1.5", "100", "0", "33", "-0.25"):
        aws.dynamodb.put_item(TableName="n", Item={"PK": {"S": "p"}, "SK": {"N": number}})
    by_p = {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "p"}}}

    def query(**arguments: Any) -> dict[str, Any]:
        return outcome(lambda: aws.dynamodb.query(TableName="n", **arguments))

    return {
        "forwards": query(**by_p),
        "backwards": query(**by_p, ScanIndexForward=False, Limit=3),
        "after": query(**by_p, ExclusiveStartKey={"PK": {"S": "p"}, "SK": {"N": "1.5"}}, Limit=3),
        "range": query(
            KeyConditionExpression="PK = :pk AND SK > :low",
            ExpressionAttributeValues={":pk": {"S": "p"}, ":low": {"N": "1"}},
        ),
    }


def test_queries_of_a_numeric_sort_key_answer_what_moto_answers() -> None:
    # Given a partition whose sort key is a number, written out of order
    # When it is queried on moto, then on moto querying one partition
    unpatched, patched = differential("dynamodb.query_partition", numeric_key_answers)

    # Then the answers are the same, in the numbers' order
    assert patched == unpatched
    keys = [item["SK"]["N"] for item in patched["forwards"]["ok"]["Items"]]
    assert keys == ["-3", "-0.25", "0", "1.5", "2", "10", "33", "100"]


def comparison_answers(aws: Aws) -> dict[str, Any]:
    """Every comparison moto makes of attribute values, for every type: key lookups, a binary
    sort key's order and range, conditions and filters."""
    aws.dynamodb.create_table(
        TableName="c",
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "B"},
        ],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    values: list[dict[str, Any]] = [
        {"S": "b"},
        {"N": "12"},
        {"B": b"\x02"},
        {"BOOL": True},
        {"NULL": True},
        {"SS": ["x", "y"]},
        {"NS": ["1", "2"]},
        {"L": [{"S": "x"}, {"N": "1"}]},
        {"M": {"k": {"S": "v"}}},
    ]
    for number, value in enumerate(values):
        aws.dynamodb.put_item(
            TableName="c",
            Item={"PK": {"S": "p"}, "SK": {"B": bytes([9 - number])}, "v": value, "i": {"N": str(number)}},
        )
    answers: dict[str, Any] = {
        "order": outcome(
            lambda: aws.dynamodb.query(
                TableName="c",
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": {"S": "p"}},
            )
        ),
        "range": outcome(
            lambda: aws.dynamodb.query(
                TableName="c",
                KeyConditionExpression="PK = :pk AND SK BETWEEN :low AND :high",
                ExpressionAttributeValues={
                    ":pk": {"S": "p"},
                    ":low": {"B": b"\x03"},
                    ":high": {"B": b"\x06"},
                },
            )
        ),
        "get": outcome(
            lambda: aws.dynamodb.get_item(TableName="c", Key={"PK": {"S": "p"}, "SK": {"B": b"\x09"}})
        ),
    }
    for number, value in enumerate(values):
        for operator in ("=", "<>"):
            answers[f"{number}{operator}"] = outcome(
                partial(
                    aws.dynamodb.scan,
                    TableName="c",
                    FilterExpression=f"v {operator} :v",
                    ExpressionAttributeValues={":v": value},
                )
            )
        # Order (<, >=) only between values of one type: moto fails comparing a map with a string
        ordered = "AND v >= :v AND NOT v < :v" if next(iter(value)) in ("S", "N", "B") else ""
        answers[f"{number}condition"] = outcome(
            partial(
                aws.dynamodb.put_item,
                TableName="c",
                Item={
                    "PK": {"S": "p"},
                    "SK": {"B": bytes([9 - number])},
                    "v": value,
                    "i": {"N": str(number)},
                },
                ConditionExpression=f"v = :v AND i IN (:i, :other) {ordered}",
                ExpressionAttributeValues={":v": value, ":i": {"N": str(number)}, ":other": {"N": "99"}},
            )
        )
    answers["contains"] = outcome(
        lambda: aws.dynamodb.scan(
            TableName="c", FilterExpression="contains(v, :x)", ExpressionAttributeValues={":x": {"S": "x"}}
        )
    )
    return answers


@pytest.mark.parametrize("patch", ["dynamodb.plain_values", "dynamodb.query_partition"])
def test_values_compare_as_moto_compares_them(patch: str) -> None:
    # Given a value of every type, compared every way moto compares values
    # When that runs on moto, then on moto comparing plain values without type questions
    # (or querying the binary sort key's window of the partition)
    unpatched, patched = differential(patch, comparison_answers)

    # Then every answer is the same: the binary keys' order, ranges, filters and conditions
    assert patched == unpatched
    keys = [item["SK"]["B"] for item in patched["order"]["ok"]["Items"]]
    assert keys == sorted(keys)
    assert len(patched["range"]["ok"]["Items"]) == 4
    assert patched["0="]["ok"]["Count"] == 1
    assert all("ok" in patched[f"{number}condition"] for number in range(9))


@pytest.mark.parametrize(
    "patch",
    ["dynamodb.query_partition", "dynamodb.plain_values", "dynamodb.answers_to_dict", "core.json_item_lists"],
)
def test_queries_answer_what_moto_answers(patch: str) -> None:
    # Given three partitions of twelve items, queried every way the application does and more
    # When that runs on moto, then on moto with the patch (querying one partition, or
    # plain values compared, sized and copied without type questions)
    unpatched, patched = differential(patch, query_answers)

    # Then every answer, page and error is the same
    assert patched == unpatched
    assert [i["SK"]["S"] for i in patched["backwards"]["ok"]["Items"]] == ["m#011", "m#010", "m#009", "m#008"]
    assert len(patched["pages"]) == 3
    assert "error" in patched["bad"]


def test_requests_are_dispatched_to_the_same_actions_with_method_names_listed_once() -> None:
    # Given every kind of DynamoDB answer, and SQS sends, receives and counts
    def scenario(aws: Aws) -> dict[str, Any]:
        observed = item_answers(aws)
        observed["queues"] = queue_observations(aws)
        return observed

    # When that runs on moto, then on moto listing each response class's methods once
    unpatched, patched = differential("core.method_names", scenario)

    # Then every answer is the same
    assert patched == unpatched
    assert patched["get"]["ok"]["Item"] == RICH_ITEM


# ---- Query: the page's window of one partition ---------------------------------------------------

# Sort keys of one partition, written out of order: runs that share a prefix (the chats table's
# CMID#, MSG# and ~META items; META was its key before), a prefix that is itself a key, and keys on
# both sides of them.
STRING_KEYS = (
    "MSG#0003",
    "CMID#b",
    "MSG#0001",
    "META",
    "A",
    "MSG#0010",
    "CMID#a",
    "MSG",
    "MSG#0002",
    "~META",
    "z",
)
NUMBER_KEYS = ("10", "-3", "2", "0.5", "100", "0", "7")
# Key conditions, each with its values by sort key type; None where it has no value of that type.
KEY_CONDITIONS: dict[str, dict[str, tuple[Any, ...] | None]] = {
    "SK = :a": {"S": ({"S": "META"},), "N": ({"N": "2"},)},
    "SK = :a ": {"S": ({"S": "MSG#0004"},), "N": ({"N": "3"},)},  # a key that is not stored
    "SK < :a": {"S": ({"S": "MSG#0002"},), "N": ({"N": "2"},)},
    "SK <= :a": {"S": ({"S": "MSG#0002"},), "N": ({"N": "2"},)},
    "SK > :a": {"S": ({"S": "META"},), "N": ({"N": "0"},)},
    "SK >= :a": {"S": ({"S": "META"},), "N": ({"N": "0"},)},
    "SK BETWEEN :a AND :b": {"S": ({"S": "MSG#0001"}, {"S": "MSG#9999"}), "N": ({"N": "0"}, {"N": "10"})},
    "SK BETWEEN :a AND :b ": {"S": ({"S": "MSG#5"}, {"S": "MSG#0"}), "N": ({"N": "9"}, {"N": "1"})},  # empty
    "begins_with(SK, :a)": {"S": ({"S": "MSG#"},), "N": None},
    "begins_with(SK, :a) ": {"S": ({"S": "MSG"},), "N": None},  # the prefix is a key too
    "begins_with(SK, :a)  ": {"S": ({"S": "Q"},), "N": None},  # no key has it
}


def window_answers(key_type: str, keys: tuple[str, ...]) -> Callable[[Aws], dict[str, Any]]:
    """Every key condition moto handles, both ways, with every page size, read page by page
    from the first page to the last, then from start keys stored and not stored; with a
    filter, a projection and a count; in a partition between two others."""

    def scenario(aws: Aws) -> dict[str, Any]:
        aws.dynamodb.create_table(
            TableName="w",
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": key_type},
            ],
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for partition in ("o", "p", "q"):
            for n, sort_key in enumerate(keys):
                aws.dynamodb.put_item(
                    TableName="w",
                    Item={"PK": {"S": partition}, "SK": {key_type: sort_key}, "n": {"N": str(n)}},
                )
        answers: dict[str, Any] = {}
        for condition, values_by_type in KEY_CONDITIONS.items():
            values = values_by_type[key_type]
            if values is None:
                continue
            names = {":pk": {"S": "p"}} | dict(zip((":a", ":b"), values, strict=False))
            query = {
                "TableName": "w",
                "KeyConditionExpression": f"PK = :pk AND {condition}",
                "ExpressionAttributeValues": names,
            }
            for forward in (True, False):
                for limit in (None, 1, 2, 3, len(keys)):
                    answers[f"{condition}|{forward}|{limit}|pages"] = pages(aws, query, forward, limit, None)
                for start in (keys[0], keys[3], keys[-1]):
                    answers[f"{condition}|{forward}|2|from {start}"] = pages(aws, query, forward, 2, start)
                answers[f"{condition}|{forward}|from a key not stored"] = pages(
                    aws, query, forward, 2, "MSG#0005" if key_type == "S" else "5"
                )
            answers[f"{condition}|filtered"] = outcome(
                partial(
                    aws.dynamodb.query,
                    **query | {"ExpressionAttributeValues": names | {":n": {"N": "3"}}},
                    FilterExpression="n > :n",
                    ProjectionExpression="SK",
                    Limit=3,
                )
            )
            answers[f"{condition}|count"] = outcome(
                partial(aws.dynamodb.query, **query, Select="COUNT", Limit=2)
            )
        return answers

    def pages(
        aws: Aws, query: dict[str, Any], forward: bool, limit: int | None, start: str | None
    ) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        start_key = {"PK": {"S": "p"}, "SK": {key_type: start}} if start is not None else None
        while len(answers) <= len(keys) + 1:
            answer = outcome(
                partial(
                    aws.dynamodb.query,
                    **query,
                    ScanIndexForward=forward,
                    **({"Limit": limit} if limit else {}),
                    **({"ExclusiveStartKey": start_key} if start_key else {}),
                )
            )
            answers.append(answer)
            start_key = answer.get("ok", {}).get("LastEvaluatedKey")
            if not start_key:
                break
        return answers

    return scenario


@pytest.mark.parametrize(("key_type", "keys"), [("S", STRING_KEYS), ("N", NUMBER_KEYS)])
def test_query_pages_hold_what_moto_walks_to(key_type: str, keys: tuple[str, ...]) -> None:
    # Given a partition whose sort keys were written out of order, between two others
    # When every key condition reads it both ways, page by page, from the first page or from a
    # start key, on moto, then on moto shown only the page's window of the partition
    unpatched, patched = differential("dynamodb.query_partition", window_answers(key_type, keys))

    # Then every page, its LastEvaluatedKey, count and error is the same
    assert patched == unpatched
    # (and the scenario reads what it means to: pages that end, pages that carry on)
    prefix = patched["begins_with(SK, :a)|False|2|pages"] if key_type == "S" else None
    if prefix is not None:
        assert [[item["SK"]["S"] for item in page["ok"]["Items"]] for page in prefix] == [
            ["MSG#0010", "MSG#0003"],
            ["MSG#0002", "MSG#0001"],
            [],
        ]
    assert len(patched["SK > :a|True|1|pages"]) > 3
