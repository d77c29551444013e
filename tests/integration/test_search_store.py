"""The search table's adapter on moto: idempotent entries, prefix reads, the read budget."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from chatflow.adapters.search_store import DynamoSearchIndex
from chatflow.domain.search import MessageRef
from local.stack import InProcessStack

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

SENT = datetime(2026, 11, 24, 10, 0, 0, 123_000, tzinfo=UTC)


@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        stack = InProcessStack.create(parameters={"AuthMode": "phone"})
        yield stack.template.physical_ids["SearchTable"]


@pytest.fixture
def client(table: str) -> DynamoDBClient:
    return boto3.client("dynamodb", region_name="us-east-1")


def ref(chat_id: str, seq: int) -> MessageRef:
    return MessageRef(SENT + timedelta(milliseconds=seq), chat_id, seq)


def stored_items(client: DynamoDBClient, table: str) -> int:
    return int(client.scan(TableName=table, Select="COUNT")["Count"])


def test_indexing_a_message_twice_stores_its_entries_once(table: str, client: DynamoDBClient) -> None:
    # Given a message with three distinct words (one repeated)
    index = DynamoSearchIndex(table, client)
    words = ["hello", "again", "hello", "world"]

    # When it is indexed twice (a redelivered stream record)
    index.index({ref("c1", 1): words})
    index.index({ref("c1", 1): words})

    # Then there is one entry per distinct word
    assert stored_items(client, table) == 3


def test_a_prefix_finds_every_word_it_begins_and_nothing_else(table: str, client: DynamoDBClient) -> None:
    # Given messages with "hello", "help", "shell" in one chat and "hello" in another
    index = DynamoSearchIndex(table, client)
    index.index({ref("c1", 1): ["hello", "bob"], ref("c1", 2): ["help"], ref("c1", 3): ["shell"]})
    index.index({ref("c2", 1): ["hello"]})

    # When "hel" is looked up in the first chat
    hits = index.find(["c1"], "hel", max_entries=100)

    # Then the messages with "hello" and "help" are found, with their times, and reading was complete
    assert sorted(hits.refs) == [ref("c1", 1), ref("c1", 2)]
    assert hits.complete


def test_many_chats_are_read_and_merged(table: str, client: DynamoDBClient) -> None:
    # Given 25 chats (more than are read at once) with one matching message each
    index = DynamoSearchIndex(table, client, concurrency=4)
    chats = [f"c{n}" for n in range(25)]
    for chat_id in chats:
        index.index({ref(chat_id, 1): ["report"]})

    # When they are all searched
    hits = index.find(chats, "rep", max_entries=1000)

    # Then every chat's message is found once
    assert sorted(hits.refs) == sorted(ref(chat_id, 1) for chat_id in chats)
    assert hits.complete


def test_reading_stops_past_the_budget(table: str, client: DynamoDBClient) -> None:
    # Given 12 messages under "alpha"
    index = DynamoSearchIndex(table, client)
    for seq in range(1, 13):
        index.index({ref("c1", seq): ["alpha"]})

    # When they are looked up with a budget of 10 entries
    hits = index.find(["c1"], "alpha", max_entries=10)

    # Then the reading is reported incomplete
    assert not hits.complete
