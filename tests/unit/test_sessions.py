"""Sessions: random tokens, stored as hashes, that expire; bearer header parsing."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from chatflow.domain.sessions import bearer_token, hash_token, issue_session
from tests.fakes import EPOCH

TTL = timedelta(days=30)


def test_token_hash_is_the_hex_sha256_of_the_token() -> None:
    # Given a token
    token = "abc123"
    # When it is hashed
    digest = hash_token(token)
    # Then the hash is its SHA-256 in hex, and stable
    assert digest == hashlib.sha256(b"abc123").hexdigest()
    assert hash_token(token) == digest


def test_issued_session_stores_only_the_hash_of_its_token() -> None:
    # Given a new session
    issued = issue_session("+14155550101", "u_1", EPOCH, TTL)
    # When we look at what would be stored
    session = issued.session
    # Then it holds the token's hash, never the token
    assert session.token_hash == hash_token(issued.token)
    assert issued.token not in vars(session).values()


def test_issued_tokens_are_random_and_long() -> None:
    # Given two sessions issued for the same user at the same time
    first = issue_session("+14155550101", "u_1", EPOCH, TTL)
    second = issue_session("+14155550101", "u_1", EPOCH, TTL)
    # When their tokens are compared
    # Then they differ and carry at least 256 bits
    assert first.token != second.token
    assert len(first.token) >= 43


def test_session_expires_after_its_ttl() -> None:
    # Given a session issued now with a 30-day lifetime
    session = issue_session("+14155550101", "u_1", EPOCH, TTL).session
    # When time passes
    # Then it is valid until just before its expiry and expired from then on
    assert session.expires_at == EPOCH + TTL
    assert not session.is_expired(EPOCH)
    assert not session.is_expired(EPOCH + TTL - timedelta(milliseconds=1))
    assert session.is_expired(EPOCH + TTL)
    assert session.is_expired(EPOCH + TTL + timedelta(days=1))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("  Bearer   abc  ", "abc"),
    ],
)
def test_bearer_header_yields_its_token(header: str, expected: str) -> None:
    # Given an Authorization header with the Bearer scheme
    # When it is parsed
    # Then the token comes out without spaces
    assert bearer_token(header) == expected


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer   ", "Basic abc", "abc", "Token abc"])
def test_missing_or_other_scheme_yields_no_token(header: str | None) -> None:
    # Given a missing header, an empty one or another scheme
    # When it is parsed
    # Then there is no token
    assert bearer_token(header) is None
