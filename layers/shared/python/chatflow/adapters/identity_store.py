"""Users, sessions and sign-in codes in the users table.

Items (PK / SK):
- ``USER#<phone>`` / ``PROFILE``: the user.
- ``USERNAME#<name>`` / ``CLAIM``: who holds a username (unique, case-insensitive).
- ``SESSION#<sha256(token)>`` / ``SESSION``: a session; ``ttl`` lets DynamoDB delete it once expired.
- ``OTP#<phone>`` / ``OTP``: the pending sign-in code (its hash, ``expiresAt``, ``failedTries``;
  ``ttl`` at expiry).
- ``OTPSENT#<phone>`` / ``OTPSENT``: when the number's codes of the last hour were made
  (``sentAt``, epoch milliseconds) and a ``version`` for optimistic locking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chatflow.adapters.aws_errors import (
    CONDITION_FAILED,
    CONDITION_REASON,
    TRANSACTION_CANCELLED,
    TRANSACTION_CONFLICT,
    dynamo_errors,
)
from chatflow.adapters.dynamo import Item, batch_get, from_raw, to_raw, to_value
from chatflow.domain.clock import from_iso, to_iso
from chatflow.domain.otp import RATE_WINDOW, Verification, seconds_until_allowed, sends_in_window
from chatflow.domain.sessions import Session
from chatflow.domain.users import ProfileChanges, User
from chatflow.errors import ConcurrentUpdate, RateLimited, Throttled, UsernameTaken

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

_FIELDS = {"displayName": "displayName", "username": "username", "email": "email", "avatarUrl": "avatarUrl"}


def user_key(phone: str) -> dict[str, Any]:
    return to_raw({"PK": f"USER#{phone}", "SK": "PROFILE"})


def _username_key(name: str) -> dict[str, Any]:
    return to_raw({"PK": f"USERNAME#{name}", "SK": "CLAIM"})


def _user_from_item(item: Item) -> User:
    return User(
        user_id=item["userId"],
        phone_number=item["phoneNumber"],
        created_at=from_iso(item["createdAt"]),
        display_name=item.get("displayName"),
        username=item.get("username"),
        email=item.get("email"),
        avatar_url=item.get("avatarUrl"),
        roles=frozenset(item.get("roles", [])),
    )


class DynamoUserRepository:
    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    def get(self, phone_number: str) -> User | None:
        with dynamo_errors():
            response = self._client.get_item(TableName=self._table, Key=user_key(phone_number))
        raw = response.get("Item")
        return _user_from_item(from_raw(raw)) if raw else None

    def create_if_absent(self, user: User) -> User:
        item = {
            "PK": f"USER#{user.phone_number}",
            "SK": "PROFILE",
            "userId": user.user_id,
            "phoneNumber": user.phone_number,
            "createdAt": to_iso(user.created_at),
        }
        with dynamo_errors(expect=CONDITION_FAILED) as call:
            self._client.put_item(
                TableName=self._table,
                Item=to_raw(item),
                ConditionExpression="attribute_not_exists(PK)",
            )
        if call.refused:
            existing = self.get(user.phone_number)
            if existing is None:  # pragma: no cover - users are never deleted
                raise ConcurrentUpdate("a conditional write found the item changed") from call.error
            return existing
        return user

    def update_profile(self, user: User, changes: ProfileChanges) -> User:
        sets: list[str] = []
        removes: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        for index, (field, value) in enumerate(changes.values.items()):
            names[f"#f{index}"] = _FIELDS[field]
            if value is None:
                removes.append(f"#f{index}")
            else:
                sets.append(f"#f{index} = :v{index}")
                values[f":v{index}"] = to_value(value)
        clauses = []
        if sets:
            clauses.append("SET " + ", ".join(sets))
        if removes:
            clauses.append("REMOVE " + ", ".join(removes))
        update: dict[str, Any] = {
            "Update": {
                "TableName": self._table,
                "Key": user_key(user.phone_number),
                "UpdateExpression": " ".join(clauses),
                "ExpressionAttributeNames": names,
                "ConditionExpression": "attribute_exists(PK)",
            }
        }
        if values:
            update["Update"]["ExpressionAttributeValues"] = values
        items: list[dict[str, Any]] = [update]
        new_name = changes.values.get("username") if changes.username_changes else user.username
        if changes.username_changes and new_name != user.username:
            if new_name is not None:
                items.append(
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": to_raw(
                                {
                                    "PK": f"USERNAME#{new_name}",
                                    "SK": "CLAIM",
                                    "phoneNumber": user.phone_number,
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(PK) OR phoneNumber = :me",
                            "ExpressionAttributeValues": {":me": to_value(user.phone_number)},
                        }
                    }
                )
            if user.username is not None:
                items.append({"Delete": {"TableName": self._table, "Key": _username_key(user.username)}})
        with dynamo_errors(expect=TRANSACTION_CANCELLED) as call:
            self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        if call.error is not None:
            if CONDITION_REASON in call.reasons[1:2]:
                taken = f"The username {new_name!r} is taken: choose another one."
                raise UsernameTaken(taken) from call.error
            raise call.error
        # The transaction applied exactly these changes: no need to read the user back.
        values = changes.values
        return replace(
            user,
            display_name=values.get("displayName", user.display_name),
            username=values.get("username", user.username),
            email=values.get("email", user.email),
            avatar_url=values.get("avatarUrl", user.avatar_url),
        )

    def display_names(self, phone_numbers: Sequence[str]) -> dict[str, str | None]:
        keys = [user_key(p) for p in dict.fromkeys(phone_numbers)]
        return {
            item["phoneNumber"]: item.get("displayName")
            for item in batch_get(self._client, self._table, keys)
        }


class DynamoSessionRepository:
    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    def put(self, session: Session) -> None:
        item = {
            "PK": f"SESSION#{session.token_hash}",
            "SK": "SESSION",
            "phoneNumber": session.phone_number,
            "userId": session.user_id,
            "createdAt": to_iso(session.created_at),
            "expiresAt": to_iso(session.expires_at),
            "ttl": int(session.expires_at.timestamp()),
        }
        with dynamo_errors():
            self._client.put_item(TableName=self._table, Item=to_raw(item))

    def get(self, token_hash: str) -> Session | None:
        with dynamo_errors():
            response = self._client.get_item(
                TableName=self._table,
                Key=to_raw({"PK": f"SESSION#{token_hash}", "SK": "SESSION"}),
            )
        raw = response.get("Item")
        if not raw:
            return None
        item = from_raw(raw)
        return Session(
            token_hash=token_hash,
            phone_number=item["phoneNumber"],
            user_id=item["userId"],
            created_at=from_iso(item["createdAt"]),
            expires_at=from_iso(item["expiresAt"]),
        )

    def delete(self, token_hash: str) -> None:
        with dynamo_errors():
            self._client.delete_item(
                TableName=self._table, Key=to_raw({"PK": f"SESSION#{token_hash}", "SK": "SESSION"})
            )


# A lost race on the send log is re-read and retried; only a storm of requests for one
# number exhausts these rounds.
_START_ROUNDS = 5


def _otp_key(phone: str) -> dict[str, Any]:
    return to_raw({"PK": f"OTP#{phone}", "SK": "OTP"})


def _sent_key(phone: str) -> dict[str, Any]:
    return to_raw({"PK": f"OTPSENT#{phone}", "SK": "OTPSENT"})


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class DynamoVerificationRepository:
    """Pending sign-in codes, and the hourly limit of codes per number.

    The limit holds under concurrency: the number's send log is rewritten with a
    condition on its ``version``, in the same transaction that stores the code, so two
    requests that read the same log cannot both use its last free slot.
    """

    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    def start(self, verification: Verification, *, now: datetime, per_hour: int) -> None:
        phone = verification.phone_number
        for _ in range(_START_ROUNDS):
            version, sent = self._send_log(phone)
            recent = sends_in_window(sent, now)
            wait = seconds_until_allowed(recent, now, per_hour)
            if wait:
                raise RateLimited(
                    f"{per_hour} codes were sent to this number in the last hour: retry in {wait} seconds.",
                    retry_after_seconds=wait,
                )
            if self._store(verification, version, [*recent, now], now):
                return
        raise Throttled("Too many code requests for this number at once: retry in a moment.")

    def get(self, phone_number: str) -> Verification | None:
        with dynamo_errors():
            response = self._client.get_item(
                TableName=self._table, Key=_otp_key(phone_number), ConsistentRead=True
            )
        raw = response.get("Item")
        if not raw:
            return None
        item = from_raw(raw)
        return Verification(
            phone_number=item["phoneNumber"],
            code_hash=item["codeHash"],
            expires_at=from_iso(item["expiresAt"]),
            failed_tries=int(item.get("failedTries", 0)),
        )

    def record_failure(self, phone_number: str) -> int:
        """Atomically add one try; ``ConcurrentUpdate`` if the code is gone (used, burned)."""
        with dynamo_errors():
            response = self._client.update_item(
                TableName=self._table,
                Key=_otp_key(phone_number),
                UpdateExpression="ADD failedTries :one",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues={":one": to_value(1)},
                ReturnValues="UPDATED_NEW",
            )
        return int(from_raw(response.get("Attributes", {}))["failedTries"])

    def delete(self, phone_number: str) -> None:
        """Delete the pending code; ``ConcurrentUpdate`` if it is already gone, so that a
        code is used (or burned) by one request only."""
        with dynamo_errors():
            self._client.delete_item(
                TableName=self._table,
                Key=_otp_key(phone_number),
                ConditionExpression="attribute_exists(PK)",
            )

    def _send_log(self, phone: str) -> tuple[int, list[datetime]]:
        with dynamo_errors():
            response = self._client.get_item(TableName=self._table, Key=_sent_key(phone), ConsistentRead=True)
        raw = response.get("Item")
        if not raw:
            return 0, []
        item = from_raw(raw)
        sent = [datetime.fromtimestamp(ms / 1000, tz=UTC) for ms in item.get("sentAt", [])]
        return int(item["version"]), sent

    def _store(self, verification: Verification, version: int, sent: list[datetime], now: datetime) -> bool:
        """Write the send log (if still at ``version``) and the code together; False on a lost race."""
        phone = verification.phone_number
        log = {
            "PK": f"OTPSENT#{phone}",
            "SK": "OTPSENT",
            "sentAt": [_millis(moment) for moment in sent],
            "version": version + 1,
            "ttl": int((now + RATE_WINDOW).timestamp()) + 1,
        }
        code = {
            "PK": f"OTP#{phone}",
            "SK": "OTP",
            "phoneNumber": phone,
            "codeHash": verification.code_hash,
            "expiresAt": to_iso(verification.expires_at),
            "failedTries": 0,
            "ttl": int(verification.expires_at.timestamp()) + 1,
        }
        put_log: dict[str, Any] = {"TableName": self._table, "Item": to_raw(log)}
        if version:
            put_log["ConditionExpression"] = "version = :v"
            put_log["ExpressionAttributeValues"] = {":v": to_value(version)}
        else:
            put_log["ConditionExpression"] = "attribute_not_exists(PK)"
        items: list[Any] = [{"Put": put_log}, {"Put": {"TableName": self._table, "Item": to_raw(code)}}]
        with dynamo_errors(expect=TRANSACTION_CANCELLED) as call:
            self._client.transact_write_items(TransactItems=items)
        if call.error is not None:
            if {CONDITION_REASON, TRANSACTION_CONFLICT} & set(call.reasons):
                return False  # another request changed the send log first: read it again
            raise call.error
        return True
