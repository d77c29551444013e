"""Chats, messages and inboxes in the chats table.

Items (PK / SK), and why (see docs/architecture.md for every access pattern):
- ``CHAT#<id>`` / ``~META``: the chat, its members with their delivered/read markers,
  ``lastSeq`` and ``lastMessage``. One item, so a single read answers "is the caller a
  member", "what is the next seq" and "what is every message's status". Its sort key
  sorts after every message's (``~`` is above the digits), so the newest page of a
  history, the read a client makes on opening a chat, is one Query that starts with it.
- ``CHAT#<id>`` / ``MSG#<seq:012d>``: a message; history is one Query in either direction.
- ``CMID#<sender>#<clientMessageId>`` / ``CMID``: the idempotency record of a message.
- ``RATE#<phone>`` / ``SEND``: a user's send limit, one number (``tat``, the theoretical
  arrival time of GCRA, ``chatflow.domain.send_limit``); read with the chat in one
  BatchGetItem and written in the send's own transaction (no stream consumer looks at it).
- ``INBOX#<phone>`` / ``CHAT#<id>``: a member's entry for a chat; the ``ByActivity`` index
  (``GSI1PK`` = ``INBOX#<phone>``, ``GSI1SK`` = ``<lastActivityAt>#<chatId>``) lists a
  user's chats by recent activity. The stream of this table keeps it current.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from chatflow.adapters.aws_errors import (
    CONDITION_FAILED,
    CONDITION_REASON,
    REFUSED_WRITE,
    TRANSACTION_CANCELLED,
    TRANSACTION_CONFLICT,
    dynamo_errors,
)
from chatflow.adapters.dynamo import Item, batch_get, batch_write, from_raw, to_raw, to_value
from chatflow.domain.chats import Chat, Member, Message
from chatflow.domain.clock import from_iso, to_iso
from chatflow.domain.pagination import Page, Position
from chatflow.domain.send_limit import RateSpend
from chatflow.errors import AlreadyExists, ConcurrentUpdate, InvalidCursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

ACTIVITY_INDEX = "ByActivity"
SEQ_WIDTH = 12
_LAST_SEQ_KEY = "MSG#" + "9" * SEQ_WIDTH
# The chat's own item: above every message of its partition (see the module's docstring).
CHAT_SK = "~META"
# A transaction holds at most 100 items: the chat plus up to 99 inbox entries.
_MAX_TRANSACT_MEMBERS = 99


def chat_key(chat_id: str) -> dict[str, Any]:
    return to_raw({"PK": f"CHAT#{chat_id}", "SK": CHAT_SK})


def rate_key(sender: str) -> dict[str, Any]:
    return to_raw({"PK": f"RATE#{sender}", "SK": "SEND"})


def msg_sk(seq: int) -> str:
    return f"MSG#{seq:0{SEQ_WIDTH}d}"


def _member_item(member: Member) -> dict[str, Any]:
    return {
        "n": member.display_name,
        "j": to_iso(member.joined_at),
        "d": member.delivered_seq,
        "r": member.read_seq,
    }


def message_item(message: Message) -> Item:
    item: Item = {
        "messageId": message.message_id,
        "chatId": message.chat_id,
        "seq": message.seq,
        "sender": message.sender,
        "text": message.text,
        "clientMessageId": message.client_message_id,
        "sentAt": to_iso(message.sent_at),
    }
    if message.via != "app":  # stored only when not the default: older items have none
        item["via"] = message.via
    return item


def message_from_item(item: Item) -> Message:
    return Message(
        message_id=item["messageId"],
        chat_id=item["chatId"],
        seq=int(item["seq"]),
        sender=item["sender"],
        text=item["text"],
        client_message_id=item["clientMessageId"],
        sent_at=from_iso(item["sentAt"]),
        via="sms" if item.get("via") == "sms" else "app",
    )


def chat_from_item(item: Item) -> Chat:
    members = sorted(
        (
            Member(
                phone_number=phone,
                display_name=entry.get("n"),
                joined_at=from_iso(entry["j"]),
                delivered_seq=int(entry.get("d", 0)),
                read_seq=int(entry.get("r", 0)),
            )
            for phone, entry in item.get("members", {}).items()
        ),
        key=lambda m: (m.joined_at, m.phone_number),
    )
    last = item.get("lastMessage")
    return Chat(
        chat_id=item["chatId"],
        type=item["type"],
        name=item.get("name"),
        created_by=item["createdBy"],
        created_at=from_iso(item["createdAt"]),
        last_activity_at=from_iso(item["lastActivityAt"]),
        members=tuple(members),
        last_seq=int(item.get("lastSeq", 0)),
        last_message=message_from_item(last) if last else None,
    )


def inbox_item(phone: str, chat_id: str, activity: datetime) -> Item:
    stamp = to_iso(activity)
    return {
        "PK": f"INBOX#{phone}",
        "SK": f"CHAT#{chat_id}",
        "GSI1PK": f"INBOX#{phone}",
        "GSI1SK": f"{stamp}#{chat_id}",
        "chatId": chat_id,
        "activityAt": stamp,
    }


INBOX_WRITE_CONCURRENCY = 16


@cache
def _io_pool() -> ThreadPoolExecutor:
    """DynamoDB calls made beside the invocation's own thread: inbox writes
    (``project_inbox``) and a history's page (``chat_with_messages``)."""
    return ThreadPoolExecutor(max_workers=INBOX_WRITE_CONCURRENCY, thread_name_prefix="dynamodb")


class DynamoChatRepository:
    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    # ---- chats -------------------------------------------------------------------

    def get_chat(self, chat_id: str) -> Chat | None:
        with dynamo_errors():
            response = self._client.get_item(
                TableName=self._table, Key=chat_key(chat_id), ConsistentRead=True
            )
        raw = response.get("Item")
        return chat_from_item(from_raw(raw)) if raw else None

    def chat_for_send(self, chat_id: str, sender: str) -> tuple[Chat | None, int | None]:
        """One strongly consistent BatchGetItem, the cost of the ``GetItem`` of the chat alone
        in calls; a TransactGetItems would cost twice the read capacity for an isolation the
        send does not need (its write is conditional on both items)."""
        items = batch_get(self._client, self._table, [chat_key(chat_id), rate_key(sender)], consistent=True)
        chat = next((chat_from_item(i) for i in items if i["SK"] == CHAT_SK), None)
        tat = next((int(i["tat"]) for i in items if i["SK"] == "SEND"), None)
        return chat, tat

    def get_chats(self, chat_ids: Sequence[str]) -> dict[str, Chat]:
        items = batch_get(self._client, self._table, [chat_key(cid) for cid in dict.fromkeys(chat_ids)])
        return {item["chatId"]: chat_from_item(item) for item in items}

    def create_chat(self, chat: Chat) -> None:
        meta = {
            "PK": f"CHAT#{chat.chat_id}",
            "SK": CHAT_SK,
            "chatId": chat.chat_id,
            "type": chat.type,
            "name": chat.name,
            "createdBy": chat.created_by,
            "createdAt": to_iso(chat.created_at),
            "lastActivityAt": to_iso(chat.last_activity_at),
            "lastSeq": chat.last_seq,
            "members": {m.phone_number: _member_item(m) for m in chat.members},
        }
        inbox = [inbox_item(m.phone_number, chat.chat_id, chat.last_activity_at) for m in chat.members]
        put_meta: dict[str, Any] = {
            "TableName": self._table,
            "Item": to_raw(meta),
            "ConditionExpression": "attribute_not_exists(PK)",
        }
        transaction: list[Any] = [{"Put": put_meta}]
        transaction.extend({"Put": {"TableName": self._table, "Item": to_raw(i)}} for i in inbox)
        with dynamo_errors(expect=REFUSED_WRITE) as call:
            if len(inbox) <= _MAX_TRANSACT_MEMBERS:
                self._client.transact_write_items(TransactItems=transaction)
                return
            self._client.put_item(**put_meta)
        if call.error is not None:
            if call.refused == CONDITION_FAILED or call.reasons[:1] == [CONDITION_REASON]:
                raise AlreadyExists(f"chat {chat.chat_id} exists") from call.error
            raise call.error
        # Large groups: the inbox entries follow the chat. Were this to fail half-way,
        # the stream projection of the chat's creation writes them again.
        batch_write(self._client, self._table, [{"PutRequest": {"Item": to_raw(i)}} for i in inbox])

    def add_members(self, chat: Chat, members: Sequence[Member]) -> Chat:
        names = {f"#p{i}": m.phone_number for i, m in enumerate(members)}
        values: dict[str, Any] = {f":m{i}": to_value(_member_item(m)) for i, m in enumerate(members)}
        values[":room"] = to_value(256 - len(members))
        sets = ", ".join(f"members.#p{i} = if_not_exists(members.#p{i}, :m{i})" for i in range(len(members)))
        with dynamo_errors():
            response = self._client.update_item(
                TableName=self._table,
                Key=chat_key(chat.chat_id),
                UpdateExpression=f"SET {sets}",
                ConditionExpression="attribute_exists(PK) AND size(members) <= :room",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        updated = chat_from_item(from_raw(response["Attributes"]))
        batch_write(
            self._client,
            self._table,
            [
                {
                    "PutRequest": {
                        "Item": to_raw(inbox_item(m.phone_number, chat.chat_id, updated.last_activity_at))
                    }
                }
                for m in members
            ],
        )
        return updated

    def remove_member(self, chat: Chat, phone_number: str) -> None:
        with dynamo_errors():
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": chat_key(chat.chat_id),
                            "UpdateExpression": "REMOVE members.#p",
                            "ExpressionAttributeNames": {"#p": phone_number},
                        }
                    },
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": to_raw({"PK": f"INBOX#{phone_number}", "SK": f"CHAT#{chat.chat_id}"}),
                        }
                    },
                ]
            )

    # ---- messages ----------------------------------------------------------------

    def append_message(self, chat: Chat, message: Message, *, spend: RateSpend | None = None) -> Chat:
        body = message_item(message)
        sent_at = to_iso(message.sent_at)
        with dynamo_errors(expect=TRANSACTION_CANCELLED) as call:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": chat_key(chat.chat_id),
                            "UpdateExpression": (
                                "SET lastSeq = :seq, lastActivityAt = :at, lastMessage = :msg, "
                                "members.#me.d = :seq, members.#me.r = :seq"
                            ),
                            "ConditionExpression": "lastSeq = :prev AND attribute_exists(members.#me)",
                            "ExpressionAttributeNames": {"#me": message.sender},
                            "ExpressionAttributeValues": {
                                ":seq": to_value(message.seq),
                                ":prev": to_value(chat.last_seq),
                                ":at": to_value(sent_at),
                                ":msg": to_value(body),
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": to_raw({"PK": f"CHAT#{chat.chat_id}", "SK": msg_sk(message.seq), **body}),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": to_raw(
                                {
                                    "PK": f"CMID#{message.sender}#{message.client_message_id}",
                                    "SK": "CMID",
                                    "message": body,
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                    # (the idempotency record is the third item: its reason tells a replay)
                    *self._rate_puts(spend),
                ]
            )
        if call.error is not None:
            reasons = call.reasons
            if len(reasons) >= 3 and reasons[2] == CONDITION_REASON:
                raise AlreadyExists("clientMessageId already used") from call.error
            if CONDITION_REASON in reasons or TRANSACTION_CONFLICT in reasons:
                raise ConcurrentUpdate("another message took this seq") from call.error
            raise call.error
        members = tuple(
            Member(m.phone_number, m.display_name, m.joined_at, message.seq, message.seq)
            if m.phone_number == message.sender
            else m
            for m in chat.members
        )
        return Chat(
            chat_id=chat.chat_id,
            type=chat.type,
            name=chat.name,
            created_by=chat.created_by,
            created_at=chat.created_at,
            last_activity_at=message.sent_at,
            members=members,
            last_seq=message.seq,
            last_message=message,
        )

    def _rate_puts(self, spend: RateSpend | None) -> list[Any]:
        """The sender's new TAT, if it is still the one read (or there was none); nothing
        for a send that is not limited."""
        if spend is None:
            return []
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": to_raw({"PK": f"RATE#{spend.sender}", "SK": "SEND", "tat": spend.tat}),
        }
        if spend.previous is None:
            put["ConditionExpression"] = "attribute_not_exists(PK)"
        else:
            put["ConditionExpression"] = "tat = :prev"
            put["ExpressionAttributeValues"] = {":prev": to_value(spend.previous)}
        return [{"Put": put}]

    def get_message_by_client_id(self, sender: str, client_message_id: str) -> Message | None:
        with dynamo_errors():
            response = self._client.get_item(
                TableName=self._table,
                Key=to_raw({"PK": f"CMID#{sender}#{client_message_id}", "SK": "CMID"}),
                ConsistentRead=True,
            )
        raw = response.get("Item")
        return message_from_item(from_raw(raw)["message"]) if raw else None

    def get_messages(self, keys: Sequence[tuple[str, int]]) -> list[Message]:
        raw_keys = [to_raw({"PK": f"CHAT#{cid}", "SK": msg_sk(seq)}) for cid, seq in dict.fromkeys(keys)]
        return [message_from_item(item) for item in batch_get(self._client, self._table, raw_keys)]

    def chat_with_messages(
        self, chat_id: str, *, limit: int, position: Position | None, after_seq: int | None
    ) -> tuple[Chat | None, Callable[[], Page[Message]]]:
        """The chat and a page of its history.

        The newest page (no cursor, no ``afterSeq``: the read of a chat being opened) is one
        strongly consistent ``Query`` down from the chat's item, which sorts above its
        messages, through the newest ``limit`` messages: one call instead of two. Any other
        page does not reach the chat's item; its ``Query`` runs on a pool thread while this
        one reads the chat, so it waits for one DynamoDB round trip, not two (boto3 clients
        are thread-safe; a page whose chat the caller may not see is read and dropped)."""
        if position is None and after_seq is None:
            chat, page = self._chat_and_newest(chat_id, limit)
            return chat, lambda: page
        future = _io_pool().submit(
            self.list_messages, chat_id, limit=limit, position=position, after_seq=after_seq
        )
        return self.get_chat(chat_id), future.result

    def _chat_and_newest(self, chat_id: str, limit: int) -> tuple[Chat | None, Page[Message]]:
        # The chat's item counts towards Limit: it is the first item read.
        query = self._history_query(chat_id, limit=limit + 1, position=None, after_seq=None, high=CHAT_SK)
        with dynamo_errors():
            response = self._client.query(**query, ConsistentRead=True)
        items = [from_raw(raw) for raw in response.get("Items", [])]
        if not items or items[0]["SK"] != CHAT_SK:
            return None, Page([], None)
        return chat_from_item(items[0]), self._page(items[1:], response.get("LastEvaluatedKey"))

    def list_messages(
        self, chat_id: str, *, limit: int, position: Position | None, after_seq: int | None
    ) -> Page[Message]:
        query = self._history_query(chat_id, limit=limit, position=position, after_seq=after_seq)
        with dynamo_errors():
            response = self._client.query(**query)
        items = [from_raw(raw) for raw in response.get("Items", [])]
        return self._page(items, response.get("LastEvaluatedKey"))

    def _history_query(
        self,
        chat_id: str,
        *,
        limit: int,
        position: Position | None,
        after_seq: int | None,
        high: str = _LAST_SEQ_KEY,
    ) -> dict[str, Any]:
        """A history page's ``Query``: newest first, or oldest first after ``after_seq``; from
        ``position`` (a cursor's) on when given."""
        pk = f"CHAT#{chat_id}"
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": to_value(pk),
                ":low": to_value(msg_sk((after_seq or 0) + 1)),
                ":high": to_value(high),
            },
            "ScanIndexForward": after_seq is not None,
            "Limit": limit,
        }
        if position is not None:
            seq = position.get("seq")
            if not isinstance(seq, int):
                raise InvalidCursor("The cursor is not valid for this list: omit it to start again.")
            query["ExclusiveStartKey"] = to_raw({"PK": pk, "SK": msg_sk(seq)})
        return query

    @staticmethod
    def _page(items: list[Item], last_key: dict[str, Any] | None) -> Page[Message]:
        messages = [message_from_item(item) for item in items]
        next_position = {"seq": int(from_raw(last_key)["SK"][4:])} if last_key else None
        return Page(messages, next_position)

    def list_inbox(self, phone_number: str, *, limit: int, position: Position | None) -> Page[str]:
        pk = f"INBOX#{phone_number}"
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": ACTIVITY_INDEX,
            "KeyConditionExpression": "GSI1PK = :pk",
            "ExpressionAttributeValues": {":pk": to_value(pk)},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if position is not None:
            at, chat_id = position.get("at"), position.get("chat")
            if not isinstance(at, str) or not isinstance(chat_id, str):
                raise InvalidCursor("The cursor is not valid for this list: omit it to start again.")
            query["ExclusiveStartKey"] = to_raw(
                {"PK": pk, "SK": f"CHAT#{chat_id}", "GSI1PK": pk, "GSI1SK": f"{at}#{chat_id}"}
            )
        with dynamo_errors():
            response = self._client.query(**query)
        items = [from_raw(raw) for raw in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        next_position = None
        if last:
            key = from_raw(last)
            at, _, chat_id = str(key["GSI1SK"]).rpartition("#")
            next_position = {"at": at, "chat": chat_id}
        return Page([item["chatId"] for item in items], next_position)

    def inbox_chat_ids(self, phone_number: str) -> list[str]:
        # The table, not the ByActivity index: its keys do not move while it is read.
        return self._all_inbox_chat_ids(phone_number)

    def update_markers(self, chat: Chat, phone_number: str, delivered_seq: int, read_seq: int) -> None:
        member = chat.member(phone_number)
        if member is None:
            raise ConcurrentUpdate("not a member any more")
        with dynamo_errors():
            self._client.update_item(
                TableName=self._table,
                Key=chat_key(chat.chat_id),
                UpdateExpression="SET members.#p.d = :d, members.#p.r = :r",
                ConditionExpression="members.#p.d = :od AND members.#p.r = :or",
                ExpressionAttributeNames={"#p": phone_number},
                ExpressionAttributeValues={
                    ":d": to_value(delivered_seq),
                    ":r": to_value(read_seq),
                    ":od": to_value(member.delivered_seq),
                    ":or": to_value(member.read_seq),
                },
            )

    def rename_member(self, phone_number: str, display_name: str | None) -> None:
        for chat_id in self._all_inbox_chat_ids(phone_number):
            with dynamo_errors(expect=CONDITION_FAILED):  # no longer a member: nothing to rename
                self._client.update_item(
                    TableName=self._table,
                    Key=chat_key(chat_id),
                    UpdateExpression="SET members.#p.n = :n",
                    ConditionExpression="attribute_exists(members.#p)",
                    ExpressionAttributeNames={"#p": phone_number},
                    ExpressionAttributeValues={":n": to_value(display_name)},
                )

    # ---- inbox projection (driven by the table's stream) ----------------------------

    def project_inbox(
        self, chat_id: str, activity: datetime, members: Sequence[str], removed: Sequence[str]
    ) -> None:
        """Move each member's inbox entry forward to ``activity``; drop removed members'.

        One conditional write per member (it only moves forward, so retries are harmless);
        a group's writes go out several at a time, a direct chat's two one after the other.
        Each is a PutItem of the whole entry (``inbox_item``: an entry has no other
        attribute), which leaves the same item as an UpdateItem setting each attribute
        would, without an update expression to parse and apply (half the emulator's time).
        """
        stamp = to_iso(activity)

        def move(phone: str) -> None:
            with dynamo_errors(expect=CONDITION_FAILED):  # already at or past ``activity``
                self._client.put_item(
                    TableName=self._table,
                    Item=to_raw(inbox_item(phone, chat_id, activity)),
                    ConditionExpression="attribute_not_exists(activityAt) OR activityAt < :a",
                    ExpressionAttributeValues={":a": to_value(stamp)},
                )

        if len(members) <= 2:
            for phone in members:
                move(phone)
        else:
            list(_io_pool().map(move, members))  # list(): re-raise the first failure
        if removed:
            batch_write(
                self._client,
                self._table,
                [
                    {"DeleteRequest": {"Key": to_raw({"PK": f"INBOX#{p}", "SK": f"CHAT#{chat_id}"})}}
                    for p in removed
                ],
            )

    def _all_inbox_chat_ids(self, phone_number: str) -> list[str]:
        chat_ids: list[str] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": to_value(f"INBOX#{phone_number}")},
            "ProjectionExpression": "chatId",
        }
        while True:
            with dynamo_errors():
                response = self._client.query(**query)
            chat_ids.extend(from_raw(raw)["chatId"] for raw in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return chat_ids
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
