"""Sessions and profiles through the HTTP API (contract §1)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from moto import mock_aws

from local.stack import InProcessStack
from tests.integration.conftest import ApiClient, assert_error

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"
OPERATOR = "+14155550199"

ISO_MILLIS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# ---- sign in -------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["(415) 555-0101", "+1 415 555 0101", "415.555.0101", "0014155550101"])
def test_sign_in_returns_a_token_and_the_user_in_e164(api: ApiClient, written: str) -> None:
    # Given a phone number written in a common format
    # When its owner signs in
    response = api.call("POST", "/v1/sessions", {"phoneNumber": written})

    # Then a session is created for the E.164 number
    assert response.status == 201, response.body
    body = response.json()
    assert set(body) == {"token", "expiresAt", "user"}
    assert isinstance(body["token"], str)
    assert len(body["token"]) >= 32
    assert ISO_MILLIS_Z.match(body["expiresAt"]), body["expiresAt"]
    user = body["user"]
    assert set(user) == {
        "userId",
        "phoneNumber",
        "displayName",
        "username",
        "email",
        "avatarUrl",
        "roles",
        "createdAt",
    }
    assert user["phoneNumber"] == ALICE
    assert user["roles"] == []
    assert ISO_MILLIS_Z.match(user["createdAt"]), user["createdAt"]


def test_signing_in_again_keeps_the_same_user(api: ApiClient) -> None:
    # Given a user who signed in once
    first = api.call("POST", "/v1/sessions", {"phoneNumber": "(415) 555-0101"})
    assert first.status == 201, first.body

    # When the same number signs in again, written differently
    second = api.call("POST", "/v1/sessions", {"phoneNumber": "+1 415 555 0101"})

    # Then it is the same user, with a new token
    assert second.status == 201, second.body
    assert second.json()["user"]["userId"] == first.json()["user"]["userId"]
    assert second.json()["token"] != first.json()["token"]


def test_each_session_token_works_independently(api: ApiClient) -> None:
    # Given a user signed in on two devices
    phone_token = api.sign_in(ALICE)
    laptop_token = api.sign_in(ALICE)

    # When signing out on one device
    signed_out = api.call("DELETE", "/v1/sessions/current", token=phone_token)
    assert signed_out.status == 204, signed_out.body

    # Then the other device stays signed in
    me = api.call("GET", "/v1/users/me", token=laptop_token)
    assert me.status == 200, me.body


def test_sign_out_answers_204_and_the_token_is_refused_at_once(api: ApiClient) -> None:
    # Given a signed-in user
    token = api.sign_in(ALICE)
    assert api.call("GET", "/v1/users/me", token=token).status == 200

    # When they sign out
    response = api.call("DELETE", "/v1/sessions/current", token=token)

    # Then the answer is 204 with no body, and the token no longer works anywhere
    assert response.status == 204
    assert response.body == ""
    assert_error(api.call("GET", "/v1/users/me", token=token), 401, "unauthorized")
    assert_error(api.call("GET", "/v1/chats", token=token), 401, "unauthorized")
    assert_error(api.call("DELETE", "/v1/sessions/current", token=token), 401, "unauthorized")


# ---- profile -------------------------------------------------------------------------


def test_get_me_returns_the_callers_profile(api: ApiClient) -> None:
    # Given a signed-in user
    signed = api.call("POST", "/v1/sessions", {"phoneNumber": ALICE}).json()

    # When they read their profile
    response = api.call("GET", "/v1/users/me", token=signed["token"])

    # Then it is the user of the session, with empty profile fields
    assert response.status == 200, response.body
    me = response.json()
    assert me == signed["user"]
    assert me["displayName"] is None
    assert me["username"] is None
    assert me["email"] is None
    assert me["avatarUrl"] is None


def test_patch_me_sets_profile_fields(api: ApiClient) -> None:
    # Given a signed-in user
    token = api.sign_in(ALICE)
    changes = {
        "displayName": "Alice Liddell",
        "username": "alice",
        "email": "alice@example.com",
        "avatarUrl": "https://example.com/alice.png",
    }

    # When they set every profile field
    response = api.call("PATCH", "/v1/users/me", changes, token=token)

    # Then the answer and later reads show them
    assert response.status == 200, response.body
    for field, value in changes.items():
        assert response.json()[field] == value
    assert api.call("GET", "/v1/users/me", token=token).json() == response.json()


def test_patch_me_leaves_fields_not_sent_unchanged(api: ApiClient) -> None:
    # Given a user with a display name and an email
    token = api.sign_in(ALICE)
    api.call("PATCH", "/v1/users/me", {"displayName": "Alice", "email": "a@example.com"}, token=token)

    # When they change only the email
    response = api.call("PATCH", "/v1/users/me", {"email": "alice@example.com"}, token=token)

    # Then the display name is kept
    assert response.status == 200, response.body
    assert response.json()["displayName"] == "Alice"
    assert response.json()["email"] == "alice@example.com"


def test_patch_me_clears_fields_sent_as_null(api: ApiClient) -> None:
    # Given a user with a full profile
    token = api.sign_in(ALICE)
    full = {
        "displayName": "Alice",
        "username": "alice",
        "email": "alice@example.com",
        "avatarUrl": "https://example.com/a.png",
    }
    assert api.call("PATCH", "/v1/users/me", full, token=token).status == 200

    # When they send null for every field
    response = api.call("PATCH", "/v1/users/me", dict.fromkeys(full), token=token)

    # Then every field is cleared
    assert response.status == 200, response.body
    me = api.call("GET", "/v1/users/me", token=token).json()
    for field in full:
        assert response.json()[field] is None
        assert me[field] is None


def test_a_cleared_username_can_be_taken_by_someone_else(api: ApiClient) -> None:
    # Given Alice held the username "alice" and released it
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    assert api.call("PATCH", "/v1/users/me", {"username": "alice"}, token=alice).status == 200
    assert api.call("PATCH", "/v1/users/me", {"username": None}, token=alice).status == 200

    # When Bob claims it
    response = api.call("PATCH", "/v1/users/me", {"username": "alice"}, token=bob)

    # Then he gets it
    assert response.status == 200, response.body
    assert response.json()["username"] == "alice"


def test_username_taken_by_another_user_is_409(api: ApiClient) -> None:
    # Given Alice holds the username "alice"
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    assert api.call("PATCH", "/v1/users/me", {"username": "alice"}, token=alice).status == 200

    # When Bob asks for the same username (in another case)
    response = api.call("PATCH", "/v1/users/me", {"username": "Alice", "displayName": "Bob"}, token=bob)

    # Then it is a conflict, and nothing of Bob's change is stored
    assert_error(response, 409, "username_taken")
    bob_me = api.call("GET", "/v1/users/me", token=bob).json()
    assert bob_me["username"] is None
    assert bob_me["displayName"] is None


def test_setting_ones_own_username_again_is_fine(api: ApiClient) -> None:
    # Given Alice holds the username "alice"
    alice = api.sign_in(ALICE)
    assert api.call("PATCH", "/v1/users/me", {"username": "alice"}, token=alice).status == 200

    # When she sets it again
    response = api.call("PATCH", "/v1/users/me", {"username": "alice"}, token=alice)

    # Then nothing conflicts
    assert response.status == 200, response.body
    assert response.json()["username"] == "alice"


def test_display_name_change_shows_in_the_callers_existing_chats(api: ApiClient) -> None:
    # Given Alice is in a direct chat with Bob and a group with Bob and Carol
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    direct = api.open_direct(alice, BOB)
    group = api.create_group(alice, [BOB, CAROL])

    # When Alice sets her display name
    response = api.call("PATCH", "/v1/users/me", {"displayName": "Alice L."}, token=alice)
    assert response.status == 200, response.body

    # Then the other members see it in both chats
    for chat_id in (direct, group):
        chat = api.call("GET", f"/v1/chats/{chat_id}", token=bob).json()
        names = {m["phoneNumber"]: m["displayName"] for m in chat["members"]}
        assert names[ALICE] == "Alice L."
        assert names[BOB] is None


def test_display_name_is_used_for_chats_created_after_it_was_set(api: ApiClient) -> None:
    # Given Bob set his display name
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    api.call("PATCH", "/v1/users/me", {"displayName": "Bobby"}, token=bob)

    # When Alice opens a chat with him
    chat_id = api.open_direct(alice, BOB)

    # Then the chat shows his name
    chat = api.call("GET", f"/v1/chats/{chat_id}", token=alice).json()
    assert {m["phoneNumber"]: m["displayName"] for m in chat["members"]} == {ALICE: None, BOB: "Bobby"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "a b"),
        ("username", "ab"),
        ("email", "not-an-email"),
        ("avatarUrl", "ftp://example.com/a.png"),
        ("displayName", "x" * 65),
    ],
)
def test_invalid_profile_field_is_400_naming_the_field(api: ApiClient, field: str, value: str) -> None:
    # Given a signed-in user
    token = api.sign_in(ALICE)

    # When they send an invalid value for one field
    response = api.call("PATCH", "/v1/users/me", {field: value}, token=token)

    # Then the answer is 400 with that field in details
    error = assert_error(response, 400, "validation_error")
    assert [d["field"] for d in error["details"]] == [field]


# ---- roles ---------------------------------------------------------------------------


@pytest.fixture
def operator_api() -> Iterator[ApiClient]:
    with mock_aws():
        parameters = {"OperatorPhoneNumbers": OPERATOR, "AuthMode": "phone"}
        yield ApiClient(InProcessStack.create(parameters=parameters))


def test_numbers_listed_in_operator_phone_numbers_get_the_operator_role(operator_api: ApiClient) -> None:
    # Given a stack whose OperatorPhoneNumbers lists a number
    # When that number signs in (in another format)
    response = operator_api.call("POST", "/v1/sessions", {"phoneNumber": "(415) 555-0199"})

    # Then the user has the operator role, in the session and in its profile
    assert response.status == 201, response.body
    assert response.json()["user"]["roles"] == ["operator"]
    me = operator_api.call("GET", "/v1/users/me", token=response.json()["token"])
    assert me.json()["roles"] == ["operator"]


def test_other_numbers_get_no_role(operator_api: ApiClient) -> None:
    # Given a stack with one operator number
    # When another number signs in
    response = operator_api.call("POST", "/v1/sessions", {"phoneNumber": ALICE})

    # Then the user has no role
    assert response.status == 201, response.body
    assert response.json()["user"]["roles"] == []
