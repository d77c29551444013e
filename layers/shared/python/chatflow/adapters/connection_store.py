"""WebSocket connections, presence and the SMS-forward budget in the connections table.

Items (PK / SK):
- ``USER#<phone>`` / ``PRESENCE``: ``connections``, a map of connection id → expiry
  (epoch ms), and ``lastSeenAt``. One item per user, so the fan-out reads the open
  connections of 100 members with one BatchGetItem, and presence changes show up on the
  table's stream as one item's old and new image.
- ``CONN#<id>`` / ``CONN``: the connection's owner, for ``$disconnect`` and for
  ``GoneException``, which only know the id; expires with the table's TTL.
- ``FWD#<chatId>#<phone>`` / ``FWD``: that member's SMS-forward budget for that chat: the
  wait holding it (``seq``, its first message), when the wait ends (``waitEnds``), until
  when no other wait starts (``until``), and ``sent`` once its SMS went out; expires with
  the table's TTL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from chatflow.adapters.aws_errors import REFUSED_WRITE, dynamo_errors
from chatflow.adapters.dynamo import batch_get, from_raw
from chatflow.domain.clock import from_iso, to_iso
from chatflow.domain.realtime import Presence, open_connections
from chatflow.errors import ConcurrentUpdate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

PRESENCE_SK = "PRESENCE"
CONNECTION_SK = "CONN"
_MAX_ATTEMPTS = 3
_PRUNE_AT_ONCE = 50


def presence_key(phone_number: str) -> dict[str, Any]:
    return {"PK": {"S": f"USER#{phone_number}"}, "SK": {"S": PRESENCE_SK}}


def _connection_key(connection_id: str) -> dict[str, Any]:
    return {"PK": {"S": f"CONN#{connection_id}"}, "SK": {"S": CONNECTION_SK}}


def _forward_key(chat_id: str, phone_number: str) -> dict[str, Any]:
    return {"PK": {"S": f"FWD#{chat_id}#{phone_number}"}, "SK": {"S": "FWD"}}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def presence_from_item(item: dict[str, Any], now: datetime) -> Presence:
    """A presence item (as stored, or an image from the stream) at ``now``."""
    expiries = {
        str(cid): datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
        for cid, ms in (item.get("connections") or {}).items()
    }
    last_seen = item.get("lastSeenAt")
    phone = str(item.get("PK", "USER#"))[len("USER#") :]
    return Presence(phone, open_connections(expiries, now), from_iso(last_seen) if last_seen else None)


class DynamoConnectionRepository:
    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    def add(self, phone_number: str, connection_id: str, *, now: datetime, expires_at: datetime) -> None:
        ttl = {"N": str(int(expires_at.timestamp()))}
        with dynamo_errors():
            self._client.put_item(
                TableName=self._table,
                Item={**_connection_key(connection_id), "phoneNumber": {"S": phone_number}, "ttl": ttl},
            )
        expiry = {"N": str(_ms(expires_at))}
        for _ in range(_MAX_ATTEMPTS):
            # The usual case: the user's presence item has its map already.
            with dynamo_errors(expect=REFUSED_WRITE) as call:
                response = self._client.update_item(
                    TableName=self._table,
                    Key=presence_key(phone_number),
                    UpdateExpression="SET connections.#c = :exp, updatedAt = :now",
                    ConditionExpression="attribute_exists(connections)",
                    ExpressionAttributeNames={"#c": connection_id},
                    ExpressionAttributeValues={":exp": expiry, ":now": {"S": to_iso(now)}},
                    ReturnValues="ALL_NEW",
                )
            if not call.refused:
                entries = response.get("Attributes", {}).get("connections", {}).get("M", {})
                self._prune(phone_number, entries, now)
                return
            # First connection ever: create the map (a concurrent first one may win).
            with dynamo_errors(expect=REFUSED_WRITE) as call:
                self._client.update_item(
                    TableName=self._table,
                    Key=presence_key(phone_number),
                    UpdateExpression="SET connections = :map, updatedAt = :now",
                    ConditionExpression="attribute_not_exists(connections)",
                    ExpressionAttributeValues={
                        ":map": {"M": {connection_id: expiry}},
                        ":now": {"S": to_iso(now)},
                    },
                )
            if not call.refused:
                return
        raise ConcurrentUpdate(f"Could not record connection {connection_id}: retry the connection.")

    def _prune(self, phone_number: str, entries: Mapping[str, Any], now: datetime) -> None:
        """Drop entries past their expiry (connections whose ``$disconnect`` never came), so
        the item does not grow; each only if it is still the expired one."""
        expired = [(cid, raw) for cid, raw in entries.items() if int(raw["N"]) <= _ms(now)]
        if not expired:
            return
        names = {f"#e{i}": cid for i, (cid, _) in enumerate(expired[:_PRUNE_AT_ONCE])}
        values = {f":e{i}": raw for i, (_, raw) in enumerate(expired[:_PRUNE_AT_ONCE])}
        # Refused: an entry changed meanwhile (the connection came back), or is gone already.
        with dynamo_errors(expect=REFUSED_WRITE):
            self._client.update_item(
                TableName=self._table,
                Key=presence_key(phone_number),
                UpdateExpression="REMOVE " + ", ".join(f"connections.{name}" for name in names),
                ConditionExpression=" AND ".join(f"connections.#e{i} = :e{i}" for i in range(len(names))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def remove(self, connection_id: str, *, now: datetime) -> str | None:
        with dynamo_errors():
            response = self._client.delete_item(
                TableName=self._table, Key=_connection_key(connection_id), ReturnValues="ALL_OLD"
            )
        phone = from_raw(response.get("Attributes") or {}).get("phoneNumber")
        if phone is None:
            return None
        self.forget(str(phone), connection_id, now=now)
        return str(phone)

    def forget(self, phone_number: str, connection_id: str, *, now: datetime) -> None:
        """Take the connection out of its owner's presence (``lastSeenAt`` = ``now``)."""
        # Refused: already removed (a retried $disconnect): nothing to do.
        with dynamo_errors(expect=REFUSED_WRITE):
            self._client.update_item(
                TableName=self._table,
                Key=presence_key(phone_number),
                UpdateExpression="REMOVE connections.#c SET lastSeenAt = :now, updatedAt = :now",
                ConditionExpression="attribute_exists(connections.#c)",
                ExpressionAttributeNames={"#c": connection_id},
                ExpressionAttributeValues={":now": {"S": to_iso(now)}},
            )

    def presence(self, phone_numbers: Sequence[str], *, now: datetime) -> dict[str, Presence]:
        unique = sorted(set(phone_numbers))
        items = batch_get(self._client, self._table, [presence_key(p) for p in unique])
        found = {p.phone_number: p for p in (presence_from_item(item, now) for item in items)}
        return {phone: found.get(phone, Presence(phone, (), None)) for phone in unique}


class DynamoForwardLimiter:
    """One wait (so at most one SMS forward) per chat and member per window: a conditional
    write of the window's end, owned by the wait's first ``seq``.

    It remembers the windows it took or saw taken (a refused write returns the item that
    refused it), so the fan-out spends no call on a member whose budget is known taken: while
    a wait is on, until it ends; once its SMS went out, until the window ends. A busy chat
    with an offline member costs one write per wait, not one per message. A wait given back
    (the member read everything, or came online) frees the budget for the next message."""

    def __init__(self, table: str, client: DynamoDBClient, *, remembered: int = 10_000) -> None:
        self._table = table
        self._client = client
        self._remembered = remembered
        self._until: dict[tuple[str, str], int] = {}  # (chat, phone) → known taken until, epoch ms

    def known_taken(self, chat_id: str, phone_number: str, *, now: datetime) -> bool:
        until = self._until.get((chat_id, phone_number))
        return until is not None and until > _ms(now)

    def acquire(
        self, chat_id: str, phone_number: str, *, now: datetime, window: timedelta, seq: int, wait: timedelta
    ) -> bool:
        if self.known_taken(chat_id, phone_number, now=now):
            return False
        until = now + window
        with dynamo_errors(expect=REFUSED_WRITE) as call:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **_forward_key(chat_id, phone_number),
                    "until": {"N": str(_ms(until))},
                    "waitEnds": {"N": str(_ms(now + wait))},
                    "seq": {"N": str(seq)},
                    "ttl": {"N": str(int(until.timestamp()) + 3600)},
                },
                ConditionExpression="attribute_not_exists(PK) OR #u <= :now",
                ExpressionAttributeNames={"#u": "until"},
                ExpressionAttributeValues={":now": {"N": str(_ms(now))}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        if call.error is not None:
            # The item that refused the write (ReturnValuesOnConditionCheckFailure).
            refusing: dict[str, Any] = cast("dict[str, Any]", call.error.response).get("Item") or {}
            if "until" in refusing:
                known = int(refusing["until"]["N"])
                if "sent" not in refusing:
                    # Still waiting: it may yet be given back (a read), so ask again once it ends.
                    known = min(known, int(refusing.get("waitEnds", {"N": "0"})["N"]))
                self._remember(chat_id, phone_number, known)
            return False
        self._remember(chat_id, phone_number, _ms(now + wait))
        return True

    def _remember(self, chat_id: str, phone_number: str, until_ms: int) -> None:
        if len(self._until) >= self._remembered:
            now = _ms(datetime.now(UTC))
            self._until = {key: end for key, end in self._until.items() if end > now}
            while len(self._until) >= self._remembered:  # all still open: drop the oldest
                del self._until[next(iter(self._until))]
        self._until[(chat_id, phone_number)] = until_ms

    def mark_sent(self, chat_id: str, phone_number: str, *, seq: int) -> bool:
        with dynamo_errors(expect=REFUSED_WRITE) as call:
            self._client.update_item(
                TableName=self._table,
                Key=_forward_key(chat_id, phone_number),
                UpdateExpression="SET sent = :yes",
                ConditionExpression="#s = :seq",
                ExpressionAttributeNames={"#s": "seq"},
                ExpressionAttributeValues={":seq": {"N": str(seq)}, ":yes": {"BOOL": True}},
            )
        return call.error is None

    def release(self, chat_id: str, phone_number: str, *, seq: int) -> None:
        self._until.pop((chat_id, phone_number), None)
        with dynamo_errors(expect=REFUSED_WRITE):
            self._client.delete_item(
                TableName=self._table,
                Key=_forward_key(chat_id, phone_number),
                ConditionExpression="#s = :seq AND attribute_not_exists(sent)",
                ExpressionAttributeNames={"#s": "seq"},
                ExpressionAttributeValues={":seq": {"N": str(seq)}},
            )
