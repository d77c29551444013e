"""Unit-test fixtures: the domain services wired to the in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatflow.domain.identity import IdentityService
from chatflow.domain.messaging import MessagingService
from chatflow.domain.pagination import CursorCodec
from tests.fakes import FakeChatRepository, FakeClock, FakeSessionRepository, FakeUserRepository

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"
DAVE = "+14155550104"
ERIN = "+14155550105"
OPERATOR = "+14155550199"

SECRET = b"unit-test-cursor-secret-0123456789"
SESSION_TTL = timedelta(days=30)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(step=timedelta(milliseconds=1))


@pytest.fixture
def users() -> FakeUserRepository:
    return FakeUserRepository()


@pytest.fixture
def sessions() -> FakeSessionRepository:
    return FakeSessionRepository()


@pytest.fixture
def chats() -> FakeChatRepository:
    return FakeChatRepository()


@pytest.fixture
def cursors() -> CursorCodec:
    return CursorCodec(SECRET)


@pytest.fixture
def identity(
    users: FakeUserRepository, sessions: FakeSessionRepository, chats: FakeChatRepository, clock: FakeClock
) -> IdentityService:
    return IdentityService(
        users=users,
        sessions=sessions,
        clock=clock,
        session_ttl=SESSION_TTL,
        operators=frozenset({OPERATOR}),
        chats=chats,
    )


@pytest.fixture
def messaging(
    chats: FakeChatRepository, users: FakeUserRepository, cursors: CursorCodec, clock: FakeClock
) -> MessagingService:
    return MessagingService(chats=chats, users=users, cursors=cursors, clock=clock, sleep=lambda _: None)
