"""The SMS table: command records (the outbox), rejections, opt-outs and the provider-wide rate.

Items (PK / SK):

- ``CMD#<commandId>`` / ``STATE``: one command's state, only moving forward
  (``sending`` → ``sent`` | ``failed``; a receipt adds ``delivery``); its stream is what
  the events publisher reads. Kept 30 days (``ttl``): a command id is idempotent for
  that long.
- ``REJ#<uuid>`` / ``REJ``: an invalid command, for its ``SmsRejected`` event; 7 days.
- ``OPTOUT#<destination>`` / ``OPTOUT``: the number, or the SIM (ICCID), sent STOP.
- ``RATE#<epoch second>`` / ``RATE``: sends granted in that second, all invocations
  together; expires after a minute.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chatflow.adapters.aws_errors import CONDITION_FAILED, dynamo_errors
from chatflow.adapters.dynamo import RawItem, batch_get, from_raw, to_raw, to_value
from chatflow.domain.clock import to_iso
from chatflow.domain.sms import Claim, OutgoingSms
from chatflow.domain.sms_events import CommandSnapshot, Rejection

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

COMMAND_RETENTION = timedelta(days=30)
FINAL_STATUSES = ("sent", "failed", "expired")
REJECTION_RETENTION = timedelta(days=7)
_STATE = "STATE"


def _command_key(command_id: str) -> dict[str, Any]:
    return to_raw({"PK": f"CMD#{command_id}", "SK": _STATE})


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _described(sms: OutgoingSms, now: datetime) -> dict[str, Any]:
    """The values that describe a command on its record (set when the record is made)."""
    return {
        ":id": sms.command_id,
        ":to": sms.to,
        ":tt": sms.to_type,
        ":mt": sms.message_type,
        ":md": dict(sms.metadata),
        ":ttl": int((now + COMMAND_RETENTION).timestamp()),
    }


class DynamoSmsCommandRepository:
    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    def claim(self, sms: OutgoingSms, *, now: datetime, lease_until: datetime) -> Claim:
        values = _described(sms, now) | {
            ":sending": "sending",
            ":zero": 0,
            ":lease": _ms(lease_until),
            ":nowms": _ms(now),
            ":now": to_iso(now),
        }
        if sms.valid_until:
            values[":vu"] = to_iso(sms.valid_until)
        with dynamo_errors(expect=CONDITION_FAILED) as call:
            response = self._client.update_item(
                TableName=self._table,
                Key=_command_key(sms.command_id),
                UpdateExpression=(
                    "SET #s = :sending, #n = if_not_exists(#n, :zero), "
                    "leaseUntil = :lease, updatedAt = :now, commandId = :id, #to = :to, toType = :tt, "
                    "messageType = :mt, #md = :md, createdAt = if_not_exists(createdAt, :now), "
                    "#ttl = if_not_exists(#ttl, :ttl)" + (", validUntil = :vu" if sms.valid_until else "")
                ),
                ConditionExpression="attribute_not_exists(PK) OR (#s = :sending AND leaseUntil < :nowms)",
                ExpressionAttributeNames={
                    "#s": "status",
                    "#to": "to",
                    "#ttl": "ttl",
                    "#n": "attempts",
                    "#md": "metadata",
                },
                ExpressionAttributeValues={k: to_value(v) for k, v in values.items()},
                ReturnValues="ALL_NEW",
            )
        if call.refused:
            return self._refused_claim(sms.command_id)
        item = from_raw(response["Attributes"])
        return Claim("claimed", int(item["attempts"]), lease_until)

    def _refused_claim(self, command_id: str) -> Claim:
        with dynamo_errors():
            key = _command_key(command_id)
            raw = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        item = from_raw(raw.get("Item") or {})
        attempts = int(item.get("attempts", 0))
        if item.get("status") in FINAL_STATUSES:
            return Claim("final", attempts)
        lease = item.get("leaseUntil")
        until = datetime.fromtimestamp(int(lease) / 1000, tz=UTC) if lease else None
        return Claim("busy", attempts, until)

    def _finish(self, command_id: str, sets: Mapping[str, Any], *, removes: tuple[str, ...] = ()) -> None:
        """Apply ``sets`` (and ``removes``) while the command is still being sent."""
        names = {"#s": "status"} | {f"#a{i}": name for i, name in enumerate(sets)}
        names |= {f"#r{i}": name for i, name in enumerate(removes)}
        values = {f":v{i}": to_value(value) for i, value in enumerate(sets.values())}
        update = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(sets)))
        if removes:
            update += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        with dynamo_errors(expect=CONDITION_FAILED) as call:
            self._client.update_item(
                TableName=self._table,
                Key=_command_key(command_id),
                UpdateExpression=update,
                ConditionExpression="#s = :sending",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values | {":sending": to_value("sending")},
            )
        if call.refused:
            return  # already ended by an earlier delivery of the same command: keep that outcome

    def mark_sent(
        self,
        command_id: str,
        *,
        provider_message_id: str,
        segments: int,
        encoding: str,
        attempts: int,
        at: datetime,
    ) -> None:
        when = to_iso(at)
        sets = {
            "status": "sent",
            "providerMessageId": provider_message_id,
            "segments": segments,
            "encoding": encoding,
            "attempts": attempts,
            "sentAt": when,
            "updatedAt": when,
        }
        self._finish(command_id, sets, removes=("leaseUntil",))

    def mark_failed(
        self, command_id: str, *, error_code: str, reason: str, permanent: bool, attempts: int, at: datetime
    ) -> None:
        when = to_iso(at)
        sets = {
            "status": "failed",
            "errorCode": error_code,
            "reason": reason,
            "permanent": permanent,
            "attempts": attempts,
            "failedAt": when,
            "updatedAt": when,
        }
        self._finish(command_id, sets, removes=("leaseUntil",))

    def mark_expired(self, command_id: str, *, valid_until: datetime, at: datetime) -> None:
        when = to_iso(at)
        sets = {"status": "expired", "validUntil": to_iso(valid_until), "expiredAt": when, "updatedAt": when}
        self._finish(command_id, sets, removes=("leaseUntil",))

    def mark_dead_lettered(self, sms: OutgoingSms, *, reason: str, at: datetime) -> bool:
        when = to_iso(at)
        values = _described(sms, at) | {
            ":failed": "failed",
            ":sending": "sending",
            ":code": "dead_lettered",
            ":reason": reason,
            ":false": False,
            ":zero": 0,
            ":now": when,
        }
        with dynamo_errors(expect=CONDITION_FAILED) as call:
            self._client.update_item(
                TableName=self._table,
                Key=_command_key(sms.command_id),
                # Also when no attempt ever created the record (it crashed before its claim):
                # the record's creation is what publishes the SmsFailed.
                UpdateExpression=(
                    "SET #s = :failed, errorCode = :code, reason = :reason, #p = :false, "
                    "failedAt = :now, updatedAt = :now, #n = if_not_exists(#n, :zero), "
                    "commandId = :id, #to = if_not_exists(#to, :to), toType = if_not_exists(toType, :tt), "
                    "messageType = if_not_exists(messageType, :mt), #md = if_not_exists(#md, :md), "
                    "createdAt = if_not_exists(createdAt, :now), #ttl = if_not_exists(#ttl, :ttl) "
                    "REMOVE leaseUntil"
                ),
                ConditionExpression="attribute_not_exists(PK) OR #s = :sending",
                ExpressionAttributeNames={
                    "#s": "status",
                    "#p": "permanent",
                    "#n": "attempts",
                    "#to": "to",
                    "#md": "metadata",
                    "#ttl": "ttl",
                },
                ExpressionAttributeValues={k: to_value(v) for k, v in values.items()},
            )
        return call.refused is None  # refused: it ended meanwhile (sent, failed or expired)

    def release(self, command_id: str, *, error_code: str, reason: str, attempts: int | None = None) -> None:
        sets: dict[str, Any] = {"leaseUntil": 0, "lastError": f"{error_code}: {reason}"}
        if attempts is not None:
            sets["attempts"] = attempts
        self._finish(command_id, sets)

    def record_receipt(self, command_id: str, *, provider_message_id: str, status: str, at: datetime) -> bool:
        with dynamo_errors(expect=CONDITION_FAILED) as call:
            self._client.update_item(
                TableName=self._table,
                Key=_command_key(command_id),
                UpdateExpression="SET #d = :d, deliveryAt = :at, receiptProviderId = :pid",
                ConditionExpression="attribute_exists(PK) AND attribute_not_exists(#d) AND #s <> :failed",
                ExpressionAttributeNames={"#s": "status", "#d": "delivery"},
                ExpressionAttributeValues={
                    ":d": to_value(status),
                    ":at": to_value(to_iso(at)),
                    ":pid": to_value(provider_message_id),
                    ":failed": to_value("failed"),
                },
            )
        return call.refused is None

    def reject(self, *, reason: str, body: str, at: datetime) -> None:
        item = {
            "PK": f"REJ#{uuid.uuid4().hex}",
            "SK": "REJ",
            "reason": reason,
            "body": body[:10_000],
            "at": to_iso(at),
            "ttl": int((at + REJECTION_RETENTION).timestamp()),
        }
        with dynamo_errors():
            self._client.put_item(TableName=self._table, Item=to_raw(item))


class DynamoOptOutRepository:
    """Opt-outs by destination, an E.164 number or an ICCID: ``OPTOUT#<destination>`` / ``OPTOUT``.

    Every item has ``destination``; a number's item also keeps ``phoneNumber``, the only
    attribute of items written before ICCIDs could opt out (they are still read).
    """

    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    @staticmethod
    def _key(destination: str) -> dict[str, Any]:
        return to_raw({"PK": f"OPTOUT#{destination}", "SK": "OPTOUT"})

    def is_opted_out(self, destination: str) -> bool:
        with dynamo_errors():
            response = self._client.get_item(TableName=self._table, Key=self._key(destination))
        return "Item" in response

    def opted_out(self, destinations: Sequence[str]) -> set[str]:
        items = batch_get(self._client, self._table, [self._key(d) for d in sorted(set(destinations))])
        return {str(item.get("destination") or item["phoneNumber"]) for item in items}

    def opt_out(self, destination: str, *, at: datetime) -> None:
        item = {"PK": f"OPTOUT#{destination}", "SK": "OPTOUT", "destination": destination, "at": to_iso(at)}
        if destination.startswith("+"):
            item["phoneNumber"] = destination
        with dynamo_errors():
            self._client.put_item(TableName=self._table, Item=to_raw(item))

    def opt_in(self, destination: str) -> None:
        with dynamo_errors():
            self._client.delete_item(TableName=self._table, Key=self._key(destination))


class DynamoRateLimiter:
    """At most ``per_second`` sends per wall-clock second, across every concurrent invocation.

    One counter item per second. An invocation takes its tokens a few at a time (a tenth
    of the rate, at most 10) and spends them from memory, so a busy batch makes one write
    per few sends instead of one per send; tokens it has not spent when the second ends
    are lost, which errs on the safe side of the limit.
    """

    def __init__(self, table: str, client: DynamoDBClient, per_second: int) -> None:
        self._table = table
        self._client = client
        self.per_second = per_second
        self._chunk = max(1, min(10, per_second // 10))
        self._lock = threading.Lock()
        self._second = -1
        self._left = 0

    def acquire(self, now: datetime) -> float:
        second = int(now.timestamp())
        with self._lock:
            if second == self._second and self._left > 0:
                self._left -= 1
                return 0.0
            for size in dict.fromkeys((self._chunk, 1)):
                if self._take(second, size):
                    self._second, self._left = second, size - 1
                    return 0.0
        return max(0.001, second + 1 - now.timestamp())

    def _take(self, second: int, size: int) -> bool:
        with dynamo_errors(expect=CONDITION_FAILED) as call:
            self._client.update_item(
                TableName=self._table,
                Key=to_raw({"PK": f"RATE#{second}", "SK": "RATE"}),
                UpdateExpression="ADD granted :n SET #ttl = :ttl",
                ConditionExpression="attribute_not_exists(granted) OR granted <= :most",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":n": to_value(size),
                    ":most": to_value(self.per_second - size),
                    ":ttl": to_value(second + 60),
                },
            )
        return call.refused is None


def snapshot(raw: RawItem | None) -> CommandSnapshot | None:
    """A command record from a stream image; None for other items or no image."""
    if not raw:
        return None
    item = from_raw(raw)
    if not str(item.get("PK", "")).startswith("CMD#"):
        return None
    return CommandSnapshot(
        command_id=str(item["commandId"]),
        status=str(item.get("status", "")),
        to=str(item.get("to", "")),
        to_type=str(item.get("toType", "phone")),
        attempts=int(item.get("attempts", 0)),
        provider_message_id=item.get("providerMessageId") or item.get("receiptProviderId"),
        segments=item.get("segments"),
        encoding=item.get("encoding"),
        sent_at=item.get("sentAt"),
        error_code=item.get("errorCode"),
        reason=item.get("reason"),
        permanent=item.get("permanent"),
        failed_at=item.get("failedAt"),
        delivery=item.get("delivery"),
        delivery_at=item.get("deliveryAt"),
        valid_until=item.get("validUntil"),
        expired_at=item.get("expiredAt"),
        metadata={str(k): str(v) for k, v in (item.get("metadata") or {}).items()},
    )


def rejection(raw: RawItem | None) -> Rejection | None:
    """An invalid command's record from a stream image (new records only)."""
    if not raw:
        return None
    item = from_raw(raw)
    if not str(item.get("PK", "")).startswith("REJ#"):
        return None
    return Rejection(reason=str(item["reason"]), body=str(item["body"]), at=item.get("at"))
