"""Users and sessions in the users table.

Items (PK / SK):
- ``USER#<phone>`` / ``PROFILE``: the user.
- ``USERNAME#<name>`` / ``CLAIM``: who holds a username (unique, case-insensitive).
- ``SESSION#<sha256(token)>`` / ``SESSION``: a session; ``ttl`` lets DynamoDB delete it once expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chatflow.adapters.dynamo import (
    Item,
    batch_get,
    cancellation_codes,
    error_code,
    from_raw,
    to_raw,
    to_value,
    translate,
)
from chatflow.domain.clock import from_iso, to_iso
from chatflow.domain.sessions import Session
from chatflow.domain.users import ProfileChanges, User
from chatflow.errors import UsernameTaken

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
        try:
            response = self._client.get_item(TableName=self._table, Key=user_key(phone_number))
        except ClientError as exc:
            raise translate(exc) from exc
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
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_raw(item),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise translate(exc) from exc
            existing = self.get(user.phone_number)
            if existing is None:  # pragma: no cover - users are never deleted
                raise translate(exc) from exc
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
        try:
            self._client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            if (
                error_code(exc) == "TransactionCanceledException"
                and "ConditionalCheckFailed" in cancellation_codes(exc)[1:2]
            ):
                raise UsernameTaken(f"The username {new_name!r} is taken: choose another one.") from exc
            raise translate(exc) from exc
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
        try:
            self._client.put_item(TableName=self._table, Item=to_raw(item))
        except ClientError as exc:
            raise translate(exc) from exc

    def get(self, token_hash: str) -> Session | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=to_raw({"PK": f"SESSION#{token_hash}", "SK": "SESSION"}),
            )
        except ClientError as exc:
            raise translate(exc) from exc
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
        try:
            self._client.delete_item(
                TableName=self._table, Key=to_raw({"PK": f"SESSION#{token_hash}", "SK": "SESSION"})
            )
        except ClientError as exc:
            raise translate(exc) from exc
