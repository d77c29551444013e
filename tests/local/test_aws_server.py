"""Emulated AWS: transactions stay atomic without moto's table copies; items are sized as moto does;
streams carry what DynamoDB's would (local/moto_patches.py)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any, Literal

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.aws_server import EmulatedAws


def _client_of(aws: EmulatedAws, service: Literal["dynamodb", "sqs"]) -> Any:
    return boto3.client(
        service,
        endpoint_url=aws.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def _dynamodb_of(aws: EmulatedAws) -> Any:
    return _client_of(aws, "dynamodb")


def _create_table(client: Any, name: str = "t") -> None:
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    EmulatedAws.reset()
    aws = EmulatedAws()
    aws.start()
    client = _dynamodb_of(aws)
    _create_table(client)
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


def test_an_item_with_many_attributes_is_stored_whole(dynamodb: Any) -> None:
    # Given an item of 50 attributes of every kind (sized once each by the speed-up)
    item: dict[str, Any] = {"PK": {"S": "wide"}}
    for i in range(49):
        item[f"a{i}"] = [{"S": f"v{i}"}, {"N": str(i)}, {"L": [{"S": "x"}]}, {"M": {"k": {"BOOL": True}}}][
            i % 4
        ]

    # When it is written
    dynamodb.put_item(TableName="t", Item=item)

    # Then it reads back unchanged
    assert dynamodb.get_item(TableName="t", Key={"PK": {"S": "wide"}})["Item"] == item


def test_an_item_over_the_size_limit_is_refused_as_moto_refuses_it(dynamodb: Any) -> None:
    # Given an item whose attributes are each small but add up to more than 400 KB
    item = {"PK": {"S": "big"}, **{f"a{i}": {"S": "x" * 100_000} for i in range(5)}}

    # When it is written, alone or in a batch
    with pytest.raises(ClientError) as alone:
        dynamodb.put_item(TableName="t", Item=item)
    with pytest.raises(ClientError) as batched:
        dynamodb.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": item}}]})

    # Then both are moto's size error, and nothing is stored
    for refused in (alone, batched):
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert "Item size has exceeded the maximum allowed size" in refused.value.response["Error"]["Message"]
    assert "Item" not in dynamodb.get_item(TableName="t", Key={"PK": {"S": "big"}})


def test_queue_counts_stay_exact_with_the_sqs_speed_ups() -> None:
    # Given a queue of the emulated AWS (counted in one pass; not counted at all while sending)
    EmulatedAws.reset()
    aws = EmulatedAws()
    aws.start()
    try:
        sqs = _client_of(aws, "sqs")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]

        # When three messages are sent, one of them delayed, and one is received
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": "a", "MessageBody": "a"},
                {"Id": "b", "MessageBody": "b"},
                {"Id": "c", "MessageBody": "c", "DelaySeconds": 60},
            ],
        )
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)["Messages"]
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    finally:
        aws.stop()
        EmulatedAws.reset()

    # Then each count is exact
    assert len(received) == 1
    assert counts["ApproximateNumberOfMessages"] == "1"
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert counts["ApproximateNumberOfMessagesDelayed"] == "1"
    assert counts["MessageRetentionPeriod"] == "345600"


def test_an_update_that_creates_an_item_streams_it_once_whole_through_the_server() -> None:
    # Given a table with a stream on the emulated AWS server
    EmulatedAws.reset()
    aws = EmulatedAws()
    aws.start()
    try:
        options: dict[str, Any] = {
            "endpoint_url": aws.url,
            "region_name": "us-east-1",
            "aws_access_key_id": "x",
            "aws_secret_access_key": "x",
            "config": Config(account_id_endpoint_mode="disabled"),
        }
        dynamodb = boto3.client("dynamodb", **options)
        streams = boto3.client("dynamodbstreams", **options)
        dynamodb.create_table(
            TableName="t",
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        arn = dynamodb.describe_table(TableName="t")["Table"]["LatestStreamArn"]

        # When an update creates an item
        dynamodb.update_item(
            TableName="t",
            Key={"PK": {"S": "new"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        )
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    finally:
        aws.stop()
        EmulatedAws.reset()

    # Then the stream has one INSERT with the whole item, as DynamoDB's would
    assert [(r["eventName"], r["dynamodb"]["NewImage"]) for r in records] == [
        ("INSERT", {"PK": {"S": "new"}, "n": {"N": "1"}})
    ]


def test_a_background_snapshot_holds_the_state_of_its_moment_and_restores(tmp_path: Any) -> None:
    # Given an emulated AWS with one item stored
    EmulatedAws.reset()
    aws = EmulatedAws()
    aws.start()
    client = _dynamodb_of(aws)
    state = tmp_path / "aws-state.pickle"
    try:
        _create_table(client)
        client.put_item(TableName="t", Item={"PK": {"S": "before"}})

        # When it snapshots in the background (a forked child writes the file), then goes on
        aws.save(state, {"note": "saved"}, in_background=True)
        client.put_item(TableName="t", Item={"PK": {"S": "after"}})
    finally:
        aws.stop()
        EmulatedAws.reset()

    # Then the file restores the state of the snapshot's moment, and the extra saved with it
    extra = EmulatedAws.load(state)
    restored = EmulatedAws()
    restored.start()
    try:
        keys = sorted(item["PK"]["S"] for item in _dynamodb_of(restored).scan(TableName="t")["Items"])
    finally:
        restored.stop()
        EmulatedAws.reset()
    assert keys == ["before"]
    assert extra == {"note": "saved"}
    assert not list(tmp_path.glob("*.tmp*"))


_LIST_TABLES = {
    "X-Amz-Target": "DynamoDB_20120810.ListTables",
    "Content-Type": "application/x-amz-json-1.0",
    "Authorization": "AWS4-HMAC-SHA256 Credential=x/20261203/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host, Signature=x",
}


def _list_tables_on(connection: http.client.HTTPConnection) -> None:
    connection.request("POST", "/", body=b"{}", headers=_LIST_TABLES)
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read()) == {"TableNames": []}
    assert not response.will_close, "the server asked to close a keep-alive connection"


def test_a_client_keeps_one_connection_across_requests() -> None:
    # werkzeug's server closed every connection: each AWS call of a function paid a new
    # TCP connection and a new server thread.
    EmulatedAws.reset()
    aws = EmulatedAws()
    aws.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", aws.port, timeout=5)
        sockets = set()
        for _ in range(3):
            _list_tables_on(connection)
            sockets.add(id(connection.sock))
        assert len(sockets) == 1
        connection.close()
    finally:
        aws.stop()
        EmulatedAws.reset()


def test_every_worker_and_poller_keeps_its_connection_however_many_there_are() -> None:
    # Given as many idle keep-alive clients as the whole template's workers and pollers hold
    # (cheroot's default kept 10 and closed the rest after each request: a new TCP connect
    # for a third of the functions' AWS calls)
    EmulatedAws.reset()
    aws = EmulatedAws()
    aws.start()
    try:
        clients = [http.client.HTTPConnection("127.0.0.1", aws.port, timeout=5) for _ in range(40)]
        for client in clients:
            _list_tables_on(client)
        first_sockets = [id(client.sock) for client in clients]
        # When each of them calls again, Then each still speaks on its first connection
        for client in clients:
            _list_tables_on(client)
        assert [id(client.sock) for client in clients] == first_sockets
        for client in clients:
            client.close()
    finally:
        aws.stop()
        EmulatedAws.reset()


def test_a_write_wakes_the_pollers_of_what_it_wrote_and_only_them() -> None:
    # Given the emulated AWS serving two tables and a queue, and the counts pollers wait on
    EmulatedAws.reset()
    aws = EmulatedAws()
    aws.start()
    try:
        dynamodb = _dynamodb_of(aws)
        _create_table(dynamodb)
        _create_table(dynamodb, "other")
        sqs = _client_of(aws, "sqs")
        queue = sqs.create_queue(QueueName="work")["QueueUrl"]
        topics = {"t": ["dynamodb:t"], "other": ["dynamodb:other"], "work": ["sqs:work"]}

        def counts() -> dict[str, int]:
            return {name: aws.changes.of(watched) for name, watched in topics.items()}

        writes: list[tuple[str, Any]] = [
            ("t", lambda: dynamodb.put_item(TableName="t", Item={"PK": {"S": "a"}})),
            ("t", lambda: dynamodb.transact_write_items(TransactItems=[_put("b")])),
            (
                "t",
                lambda: dynamodb.update_item(
                    TableName="t",
                    Key={"PK": {"S": "a"}},
                    UpdateExpression="SET n = :n",
                    ExpressionAttributeValues={":n": {"N": "2"}},
                ),
            ),
            ("work", lambda: sqs.send_message(QueueUrl=queue, MessageBody="x")),
        ]
        for written, write in writes:
            before = counts()

            # When a request writes one of them
            write()

            # Then the count of what it wrote moved, and no other: only its pollers wake
            after = counts()
            assert {name for name in topics if after[name] != before[name]} == {written}, written

        # And a read wakes nobody
        before = counts()
        dynamodb.get_item(TableName="t", Key={"PK": {"S": "a"}})
        assert counts() == before
    finally:
        aws.stop()
        EmulatedAws.reset()
