"""Use cases of identity: sign in, sessions, profiles."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from chatflow.domain.clock import Clock
from chatflow.domain.phone import normalize_phone
from chatflow.domain.sessions import IssuedSession, Session, hash_token, issue_session
from chatflow.domain.users import OPERATOR_ROLE, User, validate_profile_changes
from chatflow.errors import NotAuthenticated, NotFound
from chatflow.ports import ChatRepository, SessionRepository, UserRepository

AuthMode = Literal["phone"]


@dataclass(frozen=True)
class SignedIn:
    issued: IssuedSession
    user: User


class IdentityService:
    def __init__(
        self,
        *,
        users: UserRepository,
        sessions: SessionRepository,
        clock: Clock,
        session_ttl: timedelta,
        operators: frozenset[str],
        chats: ChatRepository | None = None,
    ) -> None:
        self._users = users
        self._sessions = sessions
        self._clock = clock
        self._session_ttl = session_ttl
        self._operators = operators
        self._chats = chats

    def sign_in(self, raw_phone: str) -> SignedIn:
        """``phone`` auth mode: the number alone identifies the user.

        The first session for a number creates its user.
        """
        phone = normalize_phone(raw_phone)
        now = self._clock()
        user = self._users.get(phone) or self._users.create_if_absent(
            User(user_id=f"u_{uuid.uuid4().hex}", phone_number=phone, created_at=now)
        )
        issued = issue_session(phone, user.user_id, now, self._session_ttl)
        self._sessions.put(issued.session)
        return SignedIn(issued=issued, user=self._with_roles(user))

    def authenticate(self, token: str | None) -> Session:
        if not token:
            raise NotAuthenticated("Sign in first: send Authorization: Bearer <token>.")
        session = self._sessions.get(hash_token(token))
        if session is None or session.is_expired(self._clock()):
            raise NotAuthenticated("The token is unknown, expired or signed out: sign in again.")
        return session

    def sign_out(self, token_hash: str) -> None:
        self._sessions.delete(token_hash)

    def me(self, phone: str) -> User:
        user = self._users.get(phone)
        if user is None:
            raise NotFound("No user exists for this session: sign in again.")
        return self._with_roles(user)

    def update_me(self, phone: str, raw_changes: dict[str, str | None]) -> User:
        changes = validate_profile_changes(raw_changes)
        user = self.me(phone)
        if not changes.values:
            return user
        updated = self._users.update_profile(user, changes)
        if self._chats is not None and updated.display_name != user.display_name:
            self._chats.rename_member(phone, updated.display_name)
        return self._with_roles(updated)

    def _with_roles(self, user: User) -> User:
        if user.phone_number in self._operators:
            return user.with_roles(frozenset({OPERATOR_ROLE}))
        return user
