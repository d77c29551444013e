"""Identity use cases: sign in, authenticate, sign out, profiles."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatflow.domain.identity import IdentityService
from chatflow.domain.otp import CodeNotRequired
from chatflow.domain.sessions import hash_token
from chatflow.domain.users import OPERATOR_ROLE
from chatflow.errors import InvalidPhoneNumber, NotAuthenticated, NotFound, UsernameTaken, ValidationFailed
from tests.fakes import FakeChatRepository, FakeClock, FakeSessionRepository, FakeUserRepository
from tests.unit.conftest import ALICE, BOB, CAROL, OPERATOR, SESSION_TTL


def test_first_sign_in_creates_the_user(identity: IdentityService, users: FakeUserRepository) -> None:
    # Given a number that never signed in
    # When it signs in, written in a local format
    signed = identity.sign_in("(415) 555-0101")
    # Then a user exists for its E.164 number, without roles
    assert signed.user.phone_number == ALICE
    assert signed.user.user_id.startswith("u_")
    assert signed.user.roles == frozenset()
    assert users.get(ALICE) == signed.user


def test_second_sign_in_returns_the_same_user(identity: IdentityService) -> None:
    # Given a number that signed in once
    first = identity.sign_in(ALICE)
    # When it signs in again
    second = identity.sign_in("+1 415 555 0101")
    # Then it is the same user, with a new token
    assert second.user.user_id == first.user.user_id
    assert second.issued.token != first.issued.token


@pytest.mark.parametrize("code", ["123456", "wrong", ""])
def test_phone_mode_ignores_any_code(identity: IdentityService, code: str) -> None:
    # Given the phone-mode service and a number that never asked for a code
    # When it signs in with whatever code
    signed = identity.sign_in(ALICE, code)
    # Then the number alone signs it in
    assert signed.user.phone_number == ALICE


def test_phone_mode_sends_no_code(identity: IdentityService) -> None:
    # Given the phone-mode service
    # When a code is asked for
    # Then it answers that no code is needed (POST /v1/verifications answers 409)
    with pytest.raises(CodeNotRequired) as raised:
        identity.start_verification(ALICE)
    assert raised.value.code == "code_not_required"


def test_sign_in_stores_the_session_by_token_hash(
    identity: IdentityService, sessions: FakeSessionRepository, clock: FakeClock
) -> None:
    # Given a clock at a known time
    now = clock()
    clock.set(now)
    # When a number signs in
    signed = identity.sign_in(ALICE)
    # Then the session is stored under the token's hash and expires after the TTL
    stored = sessions.get(hash_token(signed.issued.token))
    assert stored is not None
    assert stored.phone_number == ALICE
    assert stored.user_id == signed.user.user_id
    assert stored.expires_at == now + SESSION_TTL
    assert signed.issued.token not in sessions.sessions


def test_sign_in_with_an_invalid_number_is_rejected(identity: IdentityService) -> None:
    # Given text that is no phone number
    # When it is used to sign in
    # Then InvalidPhoneNumber is raised
    with pytest.raises(InvalidPhoneNumber):
        identity.sign_in("not a phone")


def test_operators_get_the_operator_role(identity: IdentityService) -> None:
    # Given a number listed as an operator
    # When it signs in, and reads its profile
    signed = identity.sign_in(OPERATOR)
    # Then it has the operator role, and others do not
    assert OPERATOR_ROLE in signed.user.roles
    assert OPERATOR_ROLE in identity.me(OPERATOR).roles
    assert OPERATOR_ROLE not in identity.sign_in(BOB).user.roles


def test_authenticate_accepts_a_valid_token(identity: IdentityService) -> None:
    # Given a signed-in user
    signed = identity.sign_in(ALICE)
    # When its token is authenticated
    session = identity.authenticate(signed.issued.token)
    # Then the session names the user
    assert session.phone_number == ALICE
    assert session.user_id == signed.user.user_id


@pytest.mark.parametrize("token", [None, "", "unknown-token"])
def test_authenticate_rejects_missing_or_unknown_tokens(identity: IdentityService, token: str | None) -> None:
    # Given no token or a token that was never issued
    # When it is authenticated
    # Then NotAuthenticated is raised
    with pytest.raises(NotAuthenticated):
        identity.authenticate(token)


def test_authenticate_rejects_an_expired_token(identity: IdentityService, clock: FakeClock) -> None:
    # Given a token issued 30 days ago
    signed = identity.sign_in(ALICE)
    clock.set(signed.issued.session.expires_at)
    # When it is authenticated at its expiry
    # Then it is refused
    with pytest.raises(NotAuthenticated):
        identity.authenticate(signed.issued.token)


def test_authenticate_accepts_a_token_just_before_expiry(identity: IdentityService, clock: FakeClock) -> None:
    # Given a token about to expire
    signed = identity.sign_in(ALICE)
    clock.set(signed.issued.session.expires_at - timedelta(seconds=1))
    # When it is authenticated
    # Then it still works
    assert identity.authenticate(signed.issued.token).phone_number == ALICE


def test_signed_out_token_stops_working_at_once(identity: IdentityService) -> None:
    # Given a signed-in user
    signed = identity.sign_in(ALICE)
    # When it signs out
    identity.sign_out(signed.issued.session.token_hash)
    # Then its token is refused
    with pytest.raises(NotAuthenticated):
        identity.authenticate(signed.issued.token)


def test_signing_out_one_session_keeps_the_others(identity: IdentityService) -> None:
    # Given a user signed in on two devices
    phone = identity.sign_in(ALICE)
    laptop = identity.sign_in(ALICE)
    # When the phone signs out
    identity.sign_out(phone.issued.session.token_hash)
    # Then the laptop's token still works
    assert identity.authenticate(laptop.issued.token).phone_number == ALICE


def test_me_of_an_unknown_number_is_not_found(identity: IdentityService) -> None:
    # Given a number with no user
    # When its profile is read
    # Then NotFound is raised
    with pytest.raises(NotFound):
        identity.me(ALICE)


def test_update_me_changes_the_profile(identity: IdentityService) -> None:
    # Given a signed-in user
    identity.sign_in(ALICE)
    # When it changes its profile
    updated = identity.update_me(ALICE, {"username": "Ada", "email": "ada@example.com"})
    # Then the changes are stored and returned
    assert updated.username == "ada"
    assert updated.email == "ada@example.com"
    assert identity.me(ALICE).username == "ada"


def test_update_me_with_a_taken_username_is_refused(identity: IdentityService) -> None:
    # Given Bob holds the username "ada"
    identity.sign_in(ALICE)
    identity.sign_in(BOB)
    identity.update_me(BOB, {"username": "ada"})
    # When Alice asks for it, in other case
    # Then UsernameTaken is raised and Alice keeps no username
    with pytest.raises(UsernameTaken):
        identity.update_me(ALICE, {"username": "ADA"})
    assert identity.me(ALICE).username is None


def test_a_username_given_up_can_be_taken_by_another(identity: IdentityService) -> None:
    # Given Bob had "ada" and changed to "bob"
    identity.sign_in(ALICE)
    identity.sign_in(BOB)
    identity.update_me(BOB, {"username": "ada"})
    identity.update_me(BOB, {"username": "bob"})
    # When Alice asks for "ada"
    updated = identity.update_me(ALICE, {"username": "ada"})
    # Then she gets it
    assert updated.username == "ada"


def test_keeping_ones_own_username_is_not_a_conflict(identity: IdentityService) -> None:
    # Given Alice holds "ada"
    identity.sign_in(ALICE)
    identity.update_me(ALICE, {"username": "ada"})
    # When she sends it again with another field
    updated = identity.update_me(ALICE, {"username": "ada", "displayName": "Ada"})
    # Then it is accepted
    assert (updated.username, updated.display_name) == ("ada", "Ada")


def test_update_me_with_invalid_fields_changes_nothing(identity: IdentityService) -> None:
    # Given a signed-in user
    identity.sign_in(ALICE)
    # When a patch has an invalid field
    with pytest.raises(ValidationFailed):
        identity.update_me(ALICE, {"displayName": "Ada", "email": "nope"})
    # Then nothing was stored
    assert identity.me(ALICE).display_name is None


def test_display_name_change_renames_the_member_in_chats(
    identity: IdentityService, chats: FakeChatRepository
) -> None:
    # Given a signed-in user
    identity.sign_in(ALICE)
    # When she sets a display name
    identity.update_me(ALICE, {"displayName": "Ada"})
    # Then her name is refreshed in her chats
    assert chats.renames == [(ALICE, "Ada")]


def test_other_profile_changes_do_not_rename_the_member(
    identity: IdentityService, chats: FakeChatRepository
) -> None:
    # Given a user named Ada
    identity.sign_in(ALICE)
    identity.update_me(ALICE, {"displayName": "Ada"})
    # When she changes her email, or sends the same name again
    identity.update_me(ALICE, {"email": "ada@example.com"})
    identity.update_me(ALICE, {"displayName": "Ada"})
    # Then no further rename happens
    assert chats.renames == [(ALICE, "Ada")]


def test_empty_patch_returns_the_user_unchanged(identity: IdentityService) -> None:
    # Given an operator
    identity.sign_in(OPERATOR)
    # When it sends an empty patch
    user = identity.update_me(OPERATOR, {})
    # Then its profile comes back unchanged, with its role
    assert user.display_name is None
    assert OPERATOR_ROLE in user.roles


def test_identity_works_without_a_chat_repository(
    users: FakeUserRepository, sessions: FakeSessionRepository, clock: FakeClock
) -> None:
    # Given an identity service with no chats wired (the authorizer's case)
    service = IdentityService(
        users=users, sessions=sessions, clock=clock, session_ttl=SESSION_TTL, operators=frozenset()
    )
    service.sign_in(CAROL)
    # When a display name changes
    updated = service.update_me(CAROL, {"displayName": "Carol"})
    # Then the profile changes all the same
    assert updated.display_name == "Carol"
