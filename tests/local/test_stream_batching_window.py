"""A DynamoDB stream's batching window, as the local stack's poller keeps it: records written
within ``MaximumBatchingWindowInSeconds`` of the first one go to the function in one batch;
a test draining the streams gets what is there at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from local.sources import StreamSource
from local.specs import REGION
from local.template import EventSourceMapping

_CONFIG = Config(account_id_endpoint_mode="disabled")


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, config=_CONFIG)  # type: ignore[call-overload]


@pytest.fixture
def stream_arn() -> Iterator[str]:
    with mock_aws():
        dynamodb = _client("dynamodb")
        dynamodb.create_table(
            TableName="t",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )
        # One client for every write, made here: a new boto3 client takes tens of milliseconds
        # (hundreds on a busy machine), enough to push a write out of the window under test.
        _writer[:] = [dynamodb]
        yield str(dynamodb.describe_table(TableName="t")["Table"]["LatestStreamArn"])
        _writer.clear()


_writer: list[Any] = []  # the fixture's DynamoDB client


def put(item_id: str) -> None:
    _writer[0].put_item(TableName="t", Item={"id": {"S": item_id}})


def source(
    arn: str, window: float, batches: list[list[str]], *, batching_window: bool = True
) -> StreamSource:
    mapping = EventSourceMapping(
        logical_id="M",
        function="F",
        source_arn=arn,
        batch_size=3,
        batching_window_seconds=window,
        starting_position="TRIM_HORIZON",
    )

    def invoke(function: str, event: dict[str, Any], trigger: str) -> None:
        batches.append([r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]])

    return StreamSource(mapping, _client, invoke, {}, batching_window=batching_window)


def test_records_written_within_the_window_go_in_one_batch(stream_arn: str) -> None:
    # Given a stream feeding a function with a 1 s batching window, and a first record
    batches: list[list[str]] = []
    poller = source(stream_arn, 1.0, batches)
    put("a")

    # When two more are written while the poller waits out the window
    polling = threading.Thread(target=poller.poll_once)
    polling.start()
    time.sleep(0.2)
    put("b")
    put("c")
    polling.join(timeout=10)

    # Then the function gets the three in one batch, in order
    assert batches == [["a", "b", "c"]]


def test_a_full_batch_goes_without_waiting_out_the_window(stream_arn: str) -> None:
    # Given a stream with a batch size of 3 and a 60 s window, and three records written
    batches: list[list[str]] = []
    poller = source(stream_arn, 60.0, batches)
    for item_id in ("a", "b", "c", "d"):
        put(item_id)

    # When the poller polls
    started = time.monotonic()
    poller.poll_once()

    # Then the full batch goes at once, and the fourth record waits for the next batch
    assert batches == [["a", "b", "c"]]
    assert time.monotonic() - started < 30


def test_with_no_window_or_when_draining_a_poll_hands_over_what_is_there(stream_arn: str) -> None:
    # Given a record on a stream, read by a poller with no window and by one draining
    # (a test's drain_streams) a stream whose mapping has a 60 s window
    put("a")
    no_window: list[list[str]] = []
    draining: list[list[str]] = []

    # When each polls once
    started = time.monotonic()
    source(stream_arn, 0.0, no_window).poll_once()
    source(stream_arn, 60.0, draining, batching_window=False).poll_once()

    # Then each delivered the record at once
    assert no_window == [["a"]]
    assert draining == [["a"]]
    assert time.monotonic() - started < 30
