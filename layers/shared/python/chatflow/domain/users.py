"""Users and their profiles."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from chatflow.errors import FieldProblem, ValidationFailed

OPERATOR_ROLE = "operator"

USERNAME_PATTERN = re.compile(r"^[a-z0-9_]{3,32}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
MAX_DISPLAY_NAME = 64
MAX_EMAIL = 254
MAX_AVATAR_URL = 2048


@dataclass(frozen=True)
class User:
    user_id: str
    phone_number: str
    created_at: datetime
    display_name: str | None = None
    username: str | None = None
    email: str | None = None
    avatar_url: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)

    def with_roles(self, extra: frozenset[str]) -> User:
        return replace(self, roles=self.roles | extra)


@dataclass(frozen=True)
class ProfileChanges:
    """Fields a user asked to change; ``None`` in ``values`` clears the field."""

    values: dict[str, str | None]

    @property
    def username_changes(self) -> bool:
        return "username" in self.values


def validate_profile_changes(raw: dict[str, str | None]) -> ProfileChanges:
    """Normalise and check the fields of ``PATCH /v1/users/me``.

    Usernames are case-insensitive (stored lower-case); empty strings clear a field.
    """
    problems: list[FieldProblem] = []
    values: dict[str, str | None] = {}
    for name, value in raw.items():
        cleaned = value.strip() if isinstance(value, str) else None
        if cleaned == "":
            cleaned = None
        if cleaned is not None:
            problem = _check(name, cleaned)
            if problem:
                problems.append(FieldProblem(name, problem))
                continue
            if name == "username":
                cleaned = cleaned.lower()
        values[name] = cleaned
    if problems:
        raise ValidationFailed(
            "Some profile fields are invalid: fix them and retry.", details=tuple(problems)
        )
    return ProfileChanges(values)


def _check(name: str, value: str) -> str | None:
    if name == "displayName" and len(value) > MAX_DISPLAY_NAME:
        return f"must be at most {MAX_DISPLAY_NAME} characters"
    if name == "username" and not USERNAME_PATTERN.match(value.lower()):
        return "must be 3-32 characters: letters, digits or _"
    if name == "email" and (len(value) > MAX_EMAIL or not EMAIL_PATTERN.match(value)):
        return "must be an email address such as ada@example.com"
    if name == "avatarUrl" and (len(value) > MAX_AVATAR_URL or not value.startswith(("https://", "http://"))):
        return f"must be an http(s) URL of at most {MAX_AVATAR_URL} characters"
    return None
