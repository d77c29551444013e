"""Profile changes: normalised and checked before anything is stored."""

from __future__ import annotations

import pytest

from chatflow.domain.users import validate_profile_changes
from chatflow.errors import ValidationFailed


def test_valid_changes_are_kept_and_trimmed() -> None:
    # Given valid values with surrounding spaces
    raw: dict[str, str | None] = {
        "displayName": "  Ada Lovelace ",
        "email": "ada@example.com",
        "avatarUrl": "https://example.com/ada.png",
    }
    # When they are validated
    changes = validate_profile_changes(raw)
    # Then they are kept, trimmed
    assert changes.values == {
        "displayName": "Ada Lovelace",
        "email": "ada@example.com",
        "avatarUrl": "https://example.com/ada.png",
    }


def test_username_is_stored_lower_case() -> None:
    # Given a username with capitals
    # When it is validated
    changes = validate_profile_changes({"username": "Ada_1815"})
    # Then it is lower-cased (usernames are case-insensitive)
    assert changes.values == {"username": "ada_1815"}
    assert changes.username_changes


def test_empty_string_or_none_clears_a_field() -> None:
    # Given empty, blank and null values
    # When they are validated
    changes = validate_profile_changes({"displayName": "", "email": "   ", "avatarUrl": None})
    # Then each one clears its field
    assert changes.values == {"displayName": None, "email": None, "avatarUrl": None}


def test_no_fields_means_no_changes() -> None:
    # Given an empty patch
    # When it is validated
    changes = validate_profile_changes({})
    # Then nothing changes, and the username is not touched
    assert changes.values == {}
    assert not changes.username_changes


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("displayName", "x" * 65),
        ("username", "ab"),
        ("username", "a" * 33),
        ("username", "ada lovelace"),
        ("username", "ada-l"),
        ("email", "not-an-email"),
        ("email", "ada@example"),
        ("email", "a" * 250 + "@example.com"),
        ("avatarUrl", "ftp://example.com/a.png"),
        ("avatarUrl", "https://example.com/" + "a" * 2048),
    ],
)
def test_invalid_field_is_reported_with_its_name(field: str, value: str) -> None:
    # Given one invalid field
    # When the changes are validated
    with pytest.raises(ValidationFailed) as caught:
        validate_profile_changes({field: value})
    # Then the error names that field
    assert [p.field for p in caught.value.details] == [field]


def test_every_invalid_field_is_reported_at_once() -> None:
    # Given two invalid fields and a valid one
    # When the changes are validated
    with pytest.raises(ValidationFailed) as caught:
        validate_profile_changes({"username": "x", "displayName": "Ada", "email": "nope"})
    # Then both invalid fields are reported
    assert {p.field for p in caught.value.details} == {"username", "email"}


def test_limits_are_inclusive() -> None:
    # Given values exactly at their length limits
    raw: dict[str, str | None] = {"displayName": "x" * 64, "username": "a" * 32}
    # When they are validated
    changes = validate_profile_changes(raw)
    # Then they are accepted
    assert changes.values == raw
