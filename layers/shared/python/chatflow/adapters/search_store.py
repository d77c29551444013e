"""The message search index in the search table (see chatflow.domain.search, docs/search.md).

Items (PK / SK), nothing else:
- ``CHAT#<chatId>`` / ``<word>#<sentAt>#<seq:012d>``: one per distinct indexed word of a
  message. Words hold no ``#`` (only word characters), so ``begins_with(SK, prefix)``
  finds every entry whose word starts with ``prefix``, and the rest of the key says which
  message it is, without reading the message.

Entries are written by ChatActivityFunction from the chats table's stream; writing the
same message twice writes the same keys, so redeliveries change nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from chatflow.adapters.aws_errors import dynamo_errors
from chatflow.adapters.dynamo import batch_write, to_raw, to_value
from chatflow.domain.clock import from_iso, to_iso
from chatflow.domain.search import IndexHits, MessageRef

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

SEQ_WIDTH = 12
# Chats queried at the same time by one search (the boto3 client pools 32 connections).
DEFAULT_CONCURRENCY = 8


def entry_key(word: str, ref: MessageRef) -> dict[str, str]:
    return {"PK": f"CHAT#{ref.chat_id}", "SK": f"{word}#{to_iso(ref.sent_at)}#{ref.seq:0{SEQ_WIDTH}d}"}


def ref_of(chat_id: str, sort_key: str) -> MessageRef:
    _, at, seq = sort_key.rsplit("#", 2)
    return MessageRef(from_iso(at), chat_id, int(seq))


class _Budget:
    """Index entries left to read, shared by the queries of one search."""

    def __init__(self, entries: int) -> None:
        self._left = entries
        self._lock = threading.Lock()
        self.spent = threading.Event()

    def take(self, count: int) -> bool:
        with self._lock:
            self._left -= count
            if self._left < 0:
                self.spent.set()
            return self._left >= 0


class DynamoSearchIndex:
    def __init__(self, table: str, client: DynamoDBClient, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self._table = table
        self._client = client
        self._concurrency = concurrency

    def index(self, messages: Mapping[MessageRef, Sequence[str]]) -> None:
        # Distinct keys: BatchWriteItem refuses a request that names one key twice (a word
        # repeated in a message; each message's entries name it, so messages never clash).
        keys = {(w, ref): None for ref, words in messages.items() for w in words}
        requests = [{"PutRequest": {"Item": to_raw(entry_key(w, ref))}} for w, ref in keys]
        batch_write(self._client, self._table, requests)

    def find(self, chat_ids: Sequence[str], prefix: str, *, max_entries: int) -> IndexHits:
        budget = _Budget(max_entries)
        chats = list(dict.fromkeys(chat_ids))
        if len(chats) <= 1:
            found = [self._find_in(cid, prefix, budget) for cid in chats]
        else:
            with ThreadPoolExecutor(max_workers=min(self._concurrency, len(chats))) as pool:
                found = list(pool.map(lambda cid: self._find_in(cid, prefix, budget), chats))
        refs = tuple(ref for chat_refs in found for ref in chat_refs)
        return IndexHits(refs, complete=not budget.spent.is_set())

    def _find_in(self, chat_id: str, prefix: str, budget: _Budget) -> list[MessageRef]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {":pk": to_value(f"CHAT#{chat_id}"), ":prefix": to_value(prefix)},
            "ProjectionExpression": "SK",
        }
        refs: list[MessageRef] = []
        while not budget.spent.is_set():
            with dynamo_errors():
                response = self._client.query(**query)
            items = response.get("Items", [])
            if not budget.take(len(items)):
                break
            refs.extend(ref_of(chat_id, str(item["SK"]["S"])) for item in items)
            if "LastEvaluatedKey" not in response:
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return refs
