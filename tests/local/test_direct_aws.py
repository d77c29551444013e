"""The pollers' direct clients answer as boto3 answers over moto: same messages, same records."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from local import moto_patches
from local.direct_aws import DirectClients
from local.specs import REGION

_CONFIG = Config(account_id_endpoint_mode="disabled")


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, config=_CONFIG)  # type: ignore[call-overload]


@pytest.fixture
def aws() -> Iterator[DirectClients]:
    with mock_aws():
        yield DirectClients(threading.RLock(), _client)


def _queue_pair(sqs: Any, *, max_receives: int | None = None) -> tuple[str, str]:
    """Two queues made alike (with a dead-letter queue each when ``max_receives``)."""
    urls = []
    for name in ("boto3", "direct"):
        attributes = {"VisibilityTimeout": "0"}
        if max_receives is not None:
            dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}
            )
        urls.append(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    return urls[0], urls[1]


def _comparable_message(message: dict[str, Any]) -> dict[str, Any]:
    attributes = dict(message.get("Attributes") or {})
    for volatile in ("SentTimestamp", "ApproximateFirstReceiveTimestamp"):
        assert attributes.pop(volatile, "0").isdigit()
    rest = {k: v for k, v in message.items() if k not in ("MessageId", "ReceiptHandle", "Attributes")}
    return rest | {"Attributes": attributes}


def test_received_messages_are_what_boto3_receives(aws: DirectClients) -> None:
    # Given two alike queues holding the same messages, one with message attributes
    sqs = _client("sqs")
    boto3_queue, direct_queue = _queue_pair(sqs)
    for url in (boto3_queue, direct_queue):
        sqs.send_message(QueueUrl=url, MessageBody='{"n": 1}')
        sqs.send_message(
            QueueUrl=url,
            MessageBody="second",
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )

    # When one is read through boto3 and the other through the direct client
    arguments = {"MaxNumberOfMessages": 10, "AttributeNames": ["All"], "MessageAttributeNames": ["All"]}
    through_boto3 = sqs.receive_message(QueueUrl=boto3_queue, WaitTimeSeconds=0, **arguments)["Messages"]
    direct = aws("sqs").receive_message(QueueUrl=direct_queue, WaitTimeSeconds=0, **arguments)["Messages"]

    # Then the messages are the same, but for their ids and receive times
    assert [_comparable_message(m) for m in direct] == [_comparable_message(m) for m in through_boto3]
    assert len(direct) == 2


def test_deleted_messages_are_gone_and_a_bad_handle_is_reported(aws: DirectClients) -> None:
    # Given a queue with two messages, received
    sqs = _client("sqs")
    _, queue = _queue_pair(sqs)
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    direct = aws("sqs")
    received = direct.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]

    # When both are deleted in a batch, with a third entry whose handle is not valid
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)]
    result = direct.delete_message_batch(
        QueueUrl=queue, Entries=[*entries, {"Id": "x", "ReceiptHandle": "nope"}]
    )

    # Then two succeed, the third fails as SQS says, and the queue is empty
    assert [s["Id"] for s in result["Successful"]] == ["0", "1"]
    assert [(f["Id"], f["Code"]) for f in result["Failed"]] == [("x", "ReceiptHandleIsInvalid")]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)


def test_a_message_received_too_often_moves_to_the_dead_letter_queue(aws: DirectClients) -> None:
    # Given a queue whose messages go to its dead-letter queue after 2 receives
    sqs = _client("sqs")
    _, queue = _queue_pair(sqs, max_receives=2)
    sqs.send_message(QueueUrl=queue, MessageBody="poison")
    direct = aws("sqs")

    # When the poller receives it three times without deleting it
    counts = []
    for _ in range(3):
        messages = direct.receive_message(QueueUrl=queue, AttributeNames=["All"]).get("Messages") or []
        counts += [m["Attributes"]["ApproximateReceiveCount"] for m in messages]

    # Then it came twice, then went to the dead-letter queue, as moto's SQS does it
    assert counts == ["1", "2"]
    dlq = sqs.get_queue_url(QueueName="direct-dlq")["QueueUrl"]
    assert sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0)["Messages"][0]["Body"] == "poison"


def _stream_table(dynamodb: Any, name: str) -> str:
    description = dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(description["TableDescription"]["LatestStreamArn"])


def _comparable_record(record: dict[str, Any]) -> dict[str, Any]:
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.pop("ApproximateCreationDateTime")
    assert isinstance(created, datetime)
    assert created.tzinfo is not None
    # moto sizes a record with its creation time in it: a digit more or less from run to run
    assert dynamodb.pop("SizeBytes") > 0
    return {k: v for k, v in record.items() if k not in ("eventID", "dynamodb")} | {"dynamodb": dynamodb}


def _read_all(
    streams: Any, arn: str, iterator_type: str = "TRIM_HORIZON", limit: int = 2
) -> list[dict[str, Any]]:
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=iterator_type)[
        "ShardIterator"
    ]
    records: list[dict[str, Any]] = []
    while True:
        response = streams.get_records(ShardIterator=iterator, Limit=limit)
        if not response["Records"]:
            return records
        records += response["Records"]
        iterator = response["NextShardIterator"]


def test_stream_records_are_what_boto3_reads(aws: DirectClients) -> None:
    # Given two alike tables with streams, the same writes made to each
    dynamodb = _client("dynamodb")
    arns = [_stream_table(dynamodb, name) for name in ("Boto3Table", "DirectTable")]
    for name in ("Boto3Table", "DirectTable"):
        dynamodb.put_item(TableName=name, Item={"PK": {"S": "a"}, "n": {"N": "1"}})
        dynamodb.update_item(
            TableName=name,
            Key={"PK": {"S": "a"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "2"}},
        )
        dynamodb.put_item(TableName=name, Item={"PK": {"S": "b"}})
        dynamodb.delete_item(TableName=name, Key={"PK": {"S": "a"}})

    # When one stream is read through boto3 and the other directly, two records at a time
    through_boto3 = _read_all(_client("dynamodbstreams"), arns[0])
    direct = _read_all(aws("dynamodbstreams"), arns[1])

    # Then the records are the same, in the same order (INSERT, MODIFY, INSERT, REMOVE)
    assert [_comparable_record(r) for r in direct] == [_comparable_record(r) for r in through_boto3]
    assert [r["eventName"] for r in direct] == ["INSERT", "MODIFY", "INSERT", "REMOVE"]


def test_a_stream_read_from_latest_or_after_a_record_starts_where_boto3_starts(aws: DirectClients) -> None:
    # Given a table with two records in its stream
    dynamodb = _client("dynamodb")
    arn = _stream_table(dynamodb, "Positions")
    for key in ("a", "b"):
        dynamodb.put_item(TableName="Positions", Item={"PK": {"S": key}})
    direct = aws("dynamodbstreams")
    shard = direct.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    first = _read_all(direct, arn)[0]["dynamodb"]["SequenceNumber"]

    # When it is read from LATEST (then a write), and after the first record
    latest = direct.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")[
        "ShardIterator"
    ]
    dynamodb.put_item(TableName="Positions", Item={"PK": {"S": "c"}})
    after = direct.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=first
    )["ShardIterator"]

    # Then LATEST sees only the new write, and AFTER_SEQUENCE_NUMBER the two after the first
    keys = [r["dynamodb"]["Keys"]["PK"]["S"] for r in direct.get_records(ShardIterator=latest)["Records"]]
    assert keys == ["c"]
    keys = [r["dynamodb"]["Keys"]["PK"]["S"] for r in direct.get_records(ShardIterator=after)["Records"]]
    assert keys == ["b", "c"]


def test_binary_values_reach_the_function_base64_encoded_as_lambda_sends_them(aws: DirectClients) -> None:
    # Given a stream record of an item with a binary attribute
    dynamodb = _client("dynamodb")
    arn = _stream_table(dynamodb, "Binary")
    dynamodb.put_item(TableName="Binary", Item={"PK": {"S": "a"}, "blob": {"B": b"\x00\x01"}})

    # When the poller reads it
    (record,) = _read_all(aws("dynamodbstreams"), arn)

    # Then the value is the base64 text Lambda's event carries (JSON-serialisable)
    assert record["dynamodb"]["NewImage"]["blob"] == {"B": base64.b64encode(b"\x00\x01").decode()}
    json.dumps({k: v for k, v in record["dynamodb"].items() if k != "ApproximateCreationDateTime"})


def test_a_delayed_message_is_not_received_before_its_delay_as_on_sqs(aws: DirectClients) -> None:
    # Given moto as the local stack patches it (its clock for delays among the patches), a
    # message delayed 1 s (per message, as the fan-out's forward waits are), one delayed by
    # its queue's DelaySeconds, and one not delayed
    moto_patches.install()
    sqs = _client("sqs")
    url = sqs.create_queue(QueueName="waits")["QueueUrl"]
    queue_delayed = sqs.create_queue(QueueName="delayed", Attributes={"DelaySeconds": "1"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    sqs.send_message(QueueUrl=queue_delayed, MessageBody="later too")
    sent = time.monotonic()

    # When the pollers' direct client reads both queues at once
    def bodies(queue: str) -> list[str]:
        messages = aws("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [m["Body"] for m in messages.get("Messages", [])]

    # Then only the message without a delay comes
    assert bodies(url) == ["now"]
    assert bodies(queue_delayed) == []

    # And the delayed ones come once their second is over, not before
    deadline = time.monotonic() + 10
    later: list[str] = []
    while len(later) < 2:  # (received messages stay invisible for the queues' 30 s)
        assert time.monotonic() < deadline, "the delayed messages never came"
        later += bodies(url) + bodies(queue_delayed)
        time.sleep(0.05)
    assert time.monotonic() - sent >= 1.0
    assert sorted(later) == ["later", "later too"]
