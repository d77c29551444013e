"""Signed, opaque cursors: they round-trip, and anything else is InvalidCursor."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatflow.domain.pagination import CursorCodec
from chatflow.errors import InvalidCursor
from tests.unit.conftest import SECRET

SCOPE = "chats|+14155550101"
POSITION = {"at": "2026-01-01T12:00:00.000Z", "chat": "d_abc"}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def codec() -> CursorCodec:
    return CursorCodec(SECRET)


def test_position_round_trips_through_a_cursor(codec: CursorCodec) -> None:
    # Given a position encoded as a cursor
    cursor = codec.encode(SCOPE, POSITION)
    # When it is decoded in the same scope
    # Then the same position comes back
    assert cursor is not None
    assert codec.decode(SCOPE, cursor) == POSITION


def test_no_position_means_no_cursor_and_back(codec: CursorCodec) -> None:
    # Given the last page (no position) and the first request (no cursor)
    # When they are encoded and decoded
    # Then both stay None
    assert codec.encode(SCOPE, None) is None
    assert codec.decode(SCOPE, None) is None


def test_cursor_is_opaque(codec: CursorCodec) -> None:
    # Given a cursor
    cursor = codec.encode(SCOPE, POSITION)
    # When a client looks at it
    # Then it is URL-safe text that does not show the position in clear
    assert cursor is not None
    assert "d_abc" not in cursor
    assert all(c.isalnum() or c in "-_." for c in cursor)


def test_tampered_body_is_rejected(codec: CursorCodec) -> None:
    # Given a cursor whose body was replaced by another position
    cursor = codec.encode(SCOPE, POSITION)
    assert cursor is not None
    _, _, signature = cursor.partition(".")
    forged = b64(json.dumps({"at": "2030-01-01T00:00:00.000Z", "chat": "d_abc"}).encode())
    # When it is decoded
    # Then it is rejected
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, f"{forged}.{signature}")


def test_tampered_signature_is_rejected(codec: CursorCodec) -> None:
    # Given a cursor with one character of its signature changed
    cursor = codec.encode(SCOPE, POSITION)
    assert cursor is not None
    flipped = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    # When it is decoded
    # Then it is rejected
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, flipped)


def test_cursor_from_another_scope_is_rejected(codec: CursorCodec) -> None:
    # Given a cursor issued to Alice for her chats
    cursor = codec.encode(SCOPE, POSITION)
    # When Bob (or another list) presents it
    # Then it is rejected
    with pytest.raises(InvalidCursor):
        codec.decode("chats|+14155550102", cursor)
    with pytest.raises(InvalidCursor):
        codec.decode("messages|+14155550101|d_abc|None", cursor)


def test_cursor_signed_with_another_secret_is_rejected(codec: CursorCodec) -> None:
    # Given a cursor from a codec with another secret
    cursor = CursorCodec(b"another-secret-of-enough-length").encode(SCOPE, POSITION)
    # When it is decoded here
    # Then it is rejected
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, cursor)


@pytest.mark.parametrize("garbage", ["", ".", "abc", "abc.", ".abc", "!!!.???", "a.b.c", "eyJ9.xyz", "%%%%"])
def test_garbage_cursor_is_rejected(codec: CursorCodec, garbage: str) -> None:
    # Given text that was never a cursor
    # When it is decoded
    # Then it is rejected as an invalid cursor
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, garbage)


def test_non_ascii_cursor_is_rejected_as_invalid(codec: CursorCodec) -> None:
    # Given a cursor with a non-ASCII character in its signature (e.g. ?cursor=abc.%C3%A9)
    # When it is decoded
    # Then it is rejected as an invalid cursor, not with another error
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, "abc.\u00e9")


def test_signed_non_object_position_is_rejected(codec: CursorCodec) -> None:
    # Given a correctly signed cursor whose body is JSON but not an object
    body = b64(b"[1,2]")
    cursor = f"{body}.{codec._sign(SCOPE, body)}"
    # When it is decoded
    # Then it is rejected
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, cursor)


def test_short_secret_is_refused() -> None:
    # Given a signing secret under 16 bytes
    # When a codec is made with it
    # Then it is refused
    with pytest.raises(ValueError):
        CursorCodec(b"short")


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=30))
positions = st.dictionaries(st.text(max_size=10), json_scalars, max_size=5)


@settings(max_examples=200, deadline=None)
@given(scope=st.text(max_size=40), position=positions)
def test_any_position_round_trips_in_its_scope(scope: str, position: dict[str, Any]) -> None:
    # Given any JSON position and scope
    codec = CursorCodec(SECRET)
    # When it is encoded and decoded
    cursor = codec.encode(scope, position)
    # Then the same position comes back
    assert codec.decode(scope, cursor) == position


@settings(max_examples=200, deadline=None)
@given(position=positions, other=st.text(min_size=1, max_size=10))
def test_any_cursor_is_rejected_in_another_scope(position: dict[str, Any], other: str) -> None:
    # Given any cursor of one scope
    codec = CursorCodec(SECRET)
    cursor = codec.encode(SCOPE, position)
    # When it is decoded in another scope
    # Then it is rejected
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE + other, cursor)
