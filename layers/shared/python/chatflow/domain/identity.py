"""Use cases of identity: sign in (by SMS code or by phone number), sessions, profiles."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, NamedTuple

from chatflow.domain.clock import Clock, to_iso
from chatflow.domain.otp import (
    CODE_TTL,
    CODES_PER_HOUR,
    MAX_TRIES,
    CodeNotRequired,
    InvalidCode,
    Verification,
    code_matches,
    generate_code,
    hash_code,
    normalize_code,
    sms_text,
)
from chatflow.domain.phone import normalize_phone
from chatflow.domain.sessions import IssuedSession, Session, hash_token, issue_session
from chatflow.domain.users import OPERATOR_ROLE, User, validate_profile_changes
from chatflow.errors import ConcurrentUpdate, NotAuthenticated, NotFound
from chatflow.ports import (
    ChatRepository,
    SessionRepository,
    SmsCommandSender,
    UserRepository,
    VerificationRepository,
)

AuthMode = Literal["otp", "phone"]


@dataclass(frozen=True)
class SignedIn:
    issued: IssuedSession
    user: User


class VerificationStarted(NamedTuple):
    phone_number: str
    expires_in_seconds: int


class IdentityService:
    """Sign-in, sessions and profiles.

    ``auth_mode`` ``otp`` needs ``verifications`` and ``sms``. The default, ``phone``,
    serves the composition roots that never sign anyone in (the authorizer); the
    identity function always passes the stack's mode.
    """

    def __init__(
        self,
        *,
        users: UserRepository,
        sessions: SessionRepository,
        clock: Clock,
        session_ttl: timedelta,
        operators: frozenset[str],
        chats: ChatRepository | None = None,
        auth_mode: AuthMode = "phone",
        verifications: VerificationRepository | None = None,
        sms: SmsCommandSender | None = None,
        new_code: Callable[[], str] = generate_code,
    ) -> None:
        self._otp: tuple[VerificationRepository, SmsCommandSender] | None = None
        if auth_mode == "otp":
            if verifications is None or sms is None:
                raise ValueError("auth mode otp needs a verification repository and an SMS command sender")
            self._otp = (verifications, sms)
        self._users = users
        self._sessions = sessions
        self._clock = clock
        self._session_ttl = session_ttl
        self._operators = operators
        self._chats = chats
        self._new_code = new_code

    def start_verification(self, raw_phone: str) -> VerificationStarted:
        """``otp`` mode: store a new code for the number (replacing any earlier one) and
        send it by SMS. ``RateLimited`` past ``CODES_PER_HOUR`` codes in an hour;
        ``CodeNotRequired`` in ``phone`` mode, where no code is ever sent."""
        if self._otp is None:
            raise CodeNotRequired(
                "This service signs in by phone number alone (AuthMode=phone) and sends no code: "
                'POST /v1/sessions with {"phoneNumber"}.'
            )
        verifications, sms = self._otp
        phone = normalize_phone(raw_phone)
        now = self._clock()
        code = self._new_code()
        verification = Verification(
            phone_number=phone, code_hash=hash_code(phone, code), expires_at=now + CODE_TTL
        )
        verifications.start(verification, now=now, per_hour=CODES_PER_HOUR)
        from chatflow.commands import SendSmsCommand  # on first use: not at cold start

        sms.send(
            SendSmsCommand(
                commandId=f"otp-{uuid.uuid4().hex}",
                phoneNumber=phone,
                text=sms_text(code),
                messageType="transactional",
                metadata={"purpose": "sign-in"},
                # A code that arrives after it expired is no use: the gateway drops it then.
                validUntil=to_iso(verification.expires_at),
            )
        )
        return VerificationStarted(phone, int(CODE_TTL.total_seconds()))

    def sign_in(self, raw_phone: str, code: str | None = None) -> SignedIn:
        """Start a session for the number; the first session for a number creates its user.

        ``otp`` mode: ``code`` must be the number's pending code (used up by this call).
        ``phone`` mode: the number alone identifies the user; ``code`` is ignored.
        """
        phone = normalize_phone(raw_phone)
        if self._otp is not None:
            self._use_code(self._otp[0], phone, code)
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

    def _use_code(self, verifications: VerificationRepository, phone: str, raw_code: str | None) -> None:
        """Accept the pending code of ``phone`` once, or raise ``InvalidCode``.

        Every try is counted *before* the comparison: concurrent guesses each get their
        own count from the atomic increment, so no more than ``MAX_TRIES`` of them are
        ever compared. A right code is deleted at once (a right code's count is never
        read again); the ``MAX_TRIES``-th wrong one deletes (burns) the code.
        """
        code = normalize_code(raw_code)
        verification = verifications.get(phone)
        if verification is None or self._clock() >= verification.expires_at:
            raise InvalidCode(
                "No valid code for this number: it expired, was already used or was never sent. "
                "Ask for a new one: POST /v1/verifications."
            )
        try:
            tries = verifications.record_failure(phone)
            if tries <= MAX_TRIES and code_matches(verification, code):
                verifications.delete(phone)
                return
            if tries == MAX_TRIES:
                verifications.delete(phone)
        except ConcurrentUpdate as exc:  # another try used or burned the code meanwhile
            raise InvalidCode(
                "This code is no longer valid: ask for a new one with POST /v1/verifications."
            ) from exc
        if tries >= MAX_TRIES:
            raise InvalidCode(
                f"Wrong code {MAX_TRIES} times: this code no longer works. "
                "Ask for a new one: POST /v1/verifications."
            )
        left = MAX_TRIES - tries
        raise InvalidCode(f"Wrong code: check the SMS and try again ({left} {_tries(left)} left).")

    def _with_roles(self, user: User) -> User:
        if user.phone_number in self._operators:
            return user.with_roles(frozenset({OPERATOR_ROLE}))
        return user


def _tries(count: int) -> str:
    return "try" if count == 1 else "tries"
