"""Bad input on every route: always the contract's error shape and status, never a 500 (contract §0)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto import mock_aws

from local.stack import InProcessStack
from local.template import Template
from tests.integration.conftest import ApiClient, assert_error

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"
DAVE = "+14155550104"

MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Route:
    """A route of template.yaml, with a request that it accepts."""

    method: str
    path: str
    valid: dict[str, Any] | None = None
    required: tuple[str, ...] = ()
    public: bool = False
    paginated: bool = False
    # Served in AuthMode=otp only; these tests run in phone mode, where it answers 409.
    otp_only: bool = False
    # Query parameters a valid request always has (merged under each test's own).
    query: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


ROUTES = [
    Route("POST", "/v1/verifications", {"phoneNumber": ALICE}, ("phoneNumber",), public=True, otp_only=True),
    Route("POST", "/v1/sessions", {"phoneNumber": ALICE}, ("phoneNumber",), public=True),
    Route("DELETE", "/v1/sessions/current"),
    Route("GET", "/v1/users/me"),
    Route("PATCH", "/v1/users/me", {"displayName": "Al"}),
    Route("POST", "/v1/chats", {"type": "direct", "members": [DAVE]}, ("type", "members")),
    Route("GET", "/v1/chats", paginated=True),
    Route("GET", "/v1/chats/{chatId}"),
    Route("POST", "/v1/chats/{chatId}/members", {"members": [DAVE]}, ("members",)),
    Route("DELETE", "/v1/chats/{chatId}/members/{phoneNumber}"),
    Route(
        "POST",
        "/v1/chats/{chatId}/messages",
        {"text": "hi", "clientMessageId": "new-1"},
        ("text", "clientMessageId"),
    ),
    Route(
        "POST",
        "/v1/messages",
        {"to": DAVE, "text": "hi", "clientMessageId": "new-1"},
        ("to", "text", "clientMessageId"),
    ),
    Route("GET", "/v1/chats/{chatId}/messages", paginated=True),
    Route("POST", "/v1/chats/{chatId}/receipts", {"type": "read", "upToSeq": 1}, ("type", "upToSeq")),
    Route("GET", "/v1/search", paginated=True, query=(("q", "m"),)),
    Route("GET", "/v1/chats/{chatId}/presence"),
    Route("GET", "/v1/health", public=True),
    Route("GET", "/v1/openapi.json", public=True),
]
BODY_ROUTES = [r for r in ROUTES if r.valid is not None]
AUTHENTICATED_ROUTES = [r for r in ROUTES if not r.public]
LIST_ROUTES = [r for r in ROUTES if r.paginated]


@dataclass
class World:
    """Alice, Bob and Carol in a group Alice created, and Alice and Bob in a direct chat.

    Each chat holds two messages (from Bob), so every list has more than one page at ``limit=1``.
    """

    api: ApiClient
    alice: str
    bob: str
    group: str
    direct: str
    tokens: dict[str, str] = field(default_factory=dict)

    def path(self, route: Route, chat_id: str | None = None) -> str:
        return route.path.format(chatId=chat_id or self.group, phoneNumber=CAROL)

    def call(self, route: Route, body: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("token", self.alice)
        kwargs["query"] = dict(route.query) | (kwargs.get("query") or {})
        return self.api.call(route.method, self.path(route), body, **kwargs)

    def first_page_cursor(self, path: str, token: str, **query: Any) -> str:
        response = self.api.call("GET", path, token=token, query={"limit": 1, **query})
        assert response.status == 200, response.body
        cursor = response.json()["nextCursor"]
        assert isinstance(cursor, str)
        return cursor


def build_world(api: ApiClient) -> World:
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    group = api.create_group(alice, [BOB, CAROL])
    direct = api.open_direct(alice, BOB)
    for chat_id in (group, direct):
        for i in range(2):
            assert api.send(bob, chat_id, f"m{i}").status == 201
    api.stack.drain_streams()
    return World(api=api, alice=alice, bob=bob, group=group, direct=direct)


@pytest.fixture
def world(api: ApiClient) -> World:
    return build_world(api)


def _ids(routes: list[Route]) -> list[str]:
    return [r.id for r in routes]


WRONG_TYPES: list[tuple[str, str, Any]] = [
    ("POST /v1/verifications", "phoneNumber", 14155550101),
    ("POST /v1/verifications", "phoneNumber", None),
    ("POST /v1/verifications", "phoneNumber", [ALICE]),
    ("POST /v1/sessions", "phoneNumber", 14155550101),
    ("POST /v1/sessions", "phoneNumber", None),
    ("POST /v1/sessions", "phoneNumber", [ALICE]),
    ("POST /v1/sessions", "code", 123456),
    ("PATCH /v1/users/me", "displayName", 5),
    ("PATCH /v1/users/me", "username", ["alice"]),
    ("PATCH /v1/users/me", "email", {"address": "a@example.com"}),
    ("PATCH /v1/users/me", "avatarUrl", True),
    ("POST /v1/chats", "members", "x"),
    ("POST /v1/chats", "members", [5]),
    ("POST /v1/chats", "members", []),
    ("POST /v1/chats", "type", "channel"),
    ("POST /v1/chats", "type", 1),
    ("POST /v1/chats", "name", 5),
    ("POST /v1/chats/{chatId}/members", "members", "x"),
    ("POST /v1/chats/{chatId}/members", "members", []),
    ("POST /v1/chats/{chatId}/members", "members", None),
    ("POST /v1/chats/{chatId}/messages", "text", 5),
    ("POST /v1/chats/{chatId}/messages", "text", None),
    ("POST /v1/chats/{chatId}/messages", "text", ["hi"]),
    ("POST /v1/chats/{chatId}/messages", "clientMessageId", 5),
    ("POST /v1/chats/{chatId}/messages", "clientMessageId", ""),
    ("POST /v1/chats/{chatId}/messages", "clientMessageId", "x" * 129),
    ("POST /v1/messages", "to", 14155550104),
    ("POST /v1/messages", "text", 5),
    ("POST /v1/messages", "clientMessageId", None),
    ("POST /v1/chats/{chatId}/receipts", "upToSeq", "3"),
    ("POST /v1/chats/{chatId}/receipts", "upToSeq", 1.5),
    ("POST /v1/chats/{chatId}/receipts", "upToSeq", True),
    ("POST /v1/chats/{chatId}/receipts", "upToSeq", 0),
    ("POST /v1/chats/{chatId}/receipts", "upToSeq", -1),
    ("POST /v1/chats/{chatId}/receipts", "type", "seen"),
    ("POST /v1/chats/{chatId}/receipts", "type", None),
]
_BY_ID = {r.id: r for r in ROUTES}


BAD_NUMBERS = ["abc", "", "   ", "123", "+1 415 555", "+999 1234567", "+1415555010199999", "1" * 41]


def _bad_phone_requests(bad: str) -> list[tuple[str, str, dict[str, Any] | None, str | None]]:
    """(method, path, body, the detail field when one is given) of each route taking a number."""
    return [
        ("POST", "/v1/sessions", {"phoneNumber": bad}, "phoneNumber"),
        ("POST", "/v1/chats", {"type": "direct", "members": [bad]}, "members"),
        ("POST", "/v1/chats", {"type": "group", "name": "g", "members": [BOB, bad, CAROL]}, "members[1]"),
        ("POST", "/v1/chats/{group}/members", {"members": [DAVE, bad]}, "members[1]"),
        ("POST", "/v1/messages", {"to": bad, "text": "hi", "clientMessageId": "c-9"}, "to"),
    ]


TEXT_ROUTES = [_BY_ID["POST /v1/chats/{chatId}/messages"], _BY_ID["POST /v1/messages"]]


def _tamperings(cursor: str) -> list[str]:
    body, _, signature = cursor.partition(".")
    decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged_position = {k: (v + 1 if isinstance(v, int) else v + "0") for k, v in decoded.items()}
    forged = base64.urlsafe_b64encode(json.dumps(forged_position).encode()).rstrip(b"=").decode()
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return [
        f"{forged}.{signature}",  # another position under the old signature
        f"{body}.{flipped}",  # a signature changed by one character
        body,  # the signature cut off
        f"{body}.",
        f".{signature}",
        cursor[:-1],
        cursor + "A",
        "not-a-cursor",
        base64.urlsafe_b64encode(b'{"seq": 1}').decode(),
    ]


BAD_AUTHORIZATIONS = {
    "unknown-token": "Bearer c29tZS1yYW5kb20tdG9rZW4tdGhhdC13YXMtbmV2ZXItaXNzdWVk",
    "empty-bearer": "Bearer ",
    "bearer-only": "Bearer",
    "basic-scheme": "Basic YWxpY2U6c2VjcmV0",
    "no-scheme": "c29tZS10b2tlbg",
    "garbage": "Bearer \u00e9\u00e9 \u00e9",
}


# ---- requests that succeed (each on a fresh stack) -------------------------------------


def test_every_route_of_the_template_is_covered_here() -> None:
    # Given the routes template.yaml declares
    declared = {(r.method, r.path) for r in Template.load().http_routes()}

    # When compared with the routes these tests exercise (the provider's signed callbacks
    # have their bad input covered in test_sms_gateway.py: they need a signature first;
    # the operators' campaign routes in test_campaigns_api.py: they need the role first)
    signed = {("POST", "/v1/sms/receipts"), ("POST", "/v1/sms/inbound")}
    operators = {
        (r.method, r.path) for r in Template.load().http_routes() if r.path.startswith("/v1/campaigns")
    }
    covered = {(r.method, r.path) for r in ROUTES} | signed | operators

    # Then none is left out
    assert covered == declared


@pytest.mark.parametrize("route", BODY_ROUTES, ids=_ids(BODY_ROUTES))
def test_the_valid_request_of_each_body_route_is_accepted(world: World, route: Route) -> None:
    # Given the request these tests break in every other way
    # When it is sent as is
    response = world.call(route, route.valid)

    # Then it succeeds (phone mode refuses otp-only routes as a whole), so each
    # rejection below is about the one thing broken
    if route.otp_only:
        assert_error(response, 409, "code_not_required")
    else:
        assert 200 <= response.status < 300, (response.status, response.body)


def test_text_of_4096_chars_after_trimming_is_accepted(world: World) -> None:
    for text in ["x" * 4096, "  " + "y" * 4096 + "  ", "é" * 4096, "😀" * 4096]:
        # Given a message of exactly 4096 characters once trimmed
        # When it is sent
        response = world.api.send(world.alice, world.group, text)

        # Then it is stored trimmed
        assert response.status == 201, response.body
        assert response.json()["text"] == text.strip()


class TestRefusedRequests:
    """Requests the API refuses, and reads that change nothing.

    They share one stack (a refused request must change nothing), which keeps this many
    cases fast; no test here may change the world.
    """

    @pytest.fixture(scope="class")
    @classmethod
    def world(cls) -> Iterator[World]:
        with mock_aws():
            yield build_world(ApiClient(InProcessStack.create(parameters={"AuthMode": "phone"})))

    @pytest.mark.parametrize(
        ("route", "missing"),
        [(r, name) for r in BODY_ROUTES for name in r.required],
        ids=[f"{r.id}-{name}" for r in BODY_ROUTES for name in r.required],
    )
    def test_a_missing_required_field_is_400_naming_it(
        self, world: World, route: Route, missing: str
    ) -> None:
        # Given a valid body without one required field
        assert route.valid is not None
        body = {k: v for k, v in route.valid.items() if k != missing}

        # When it is sent
        response = world.call(route, body)

        # Then the answer is 400 with that field in details
        error = assert_error(response, 400, "validation_error")
        assert {"field": missing, "message": "is required"} in error["details"]

    @pytest.mark.parametrize("route", BODY_ROUTES, ids=_ids(BODY_ROUTES))
    def test_a_missing_body_is_400(self, world: World, route: Route) -> None:
        # Given a route that takes a JSON body
        # When the request has no body at all
        response = world.call(route)

        # Then the answer is 400 asking for the body
        error = assert_error(response, 400, "validation_error")
        assert [d["field"] for d in error["details"]] == ["body"]

    @pytest.mark.parametrize("route", BODY_ROUTES, ids=_ids(BODY_ROUTES))
    def test_a_json_body_that_is_not_an_object_is_400(self, world: World, route: Route) -> None:
        for raw in ["[]", '"text"', "42", "null", "true"]:
            # Given a route that takes a JSON object
            # When the body is JSON but not an object
            response = world.call(route, raw_body=raw)

            # Then the answer is 400 pointing at the body
            error = assert_error(response, 400, "validation_error")
            assert [d["field"] for d in error["details"]] == ["body"], raw

    @pytest.mark.parametrize("route", BODY_ROUTES, ids=_ids(BODY_ROUTES))
    def test_a_body_that_is_not_json_is_400_invalid_json(self, world: World, route: Route) -> None:
        for raw in ["{not json", '{"text": "hi",}', "{'text': 'hi'}", '{"a": 1} trailing', "\x00"]:
            # Given a route that takes a JSON body
            # When the body is not valid JSON
            response = world.call(route, raw_body=raw)

            # Then the answer is 400 invalid_json
            assert_error(response, 400, "invalid_json")

    @pytest.mark.parametrize("route", BODY_ROUTES, ids=_ids(BODY_ROUTES))
    def test_a_body_that_is_not_utf8_is_400_invalid_json(self, world: World, route: Route) -> None:
        for raw in [b'{"text": "\xff"}', b"\xfe\xff{}", b"\x80"]:
            # Given a route that takes a JSON body
            # When the body's bytes are not UTF-8 (API Gateway hands them over base64-encoded)
            response = world.call(route, raw_body=raw)

            # Then the answer is 400 invalid_json, not a 500
            assert_error(response, 400, "invalid_json")

    @pytest.mark.parametrize("route", BODY_ROUTES, ids=_ids(BODY_ROUTES))
    def test_an_unknown_field_is_400_naming_it(self, world: World, route: Route) -> None:
        # Given a valid body with one field the route does not know
        assert route.valid is not None
        body = {**route.valid, "isAdmin": True}

        # When it is sent
        response = world.call(route, body)

        # Then the answer is 400 naming the unknown field, and nothing was done
        error = assert_error(response, 400, "validation_error")
        assert [d["field"] for d in error["details"]] == ["isAdmin"]

    @pytest.mark.parametrize("route", BODY_ROUTES, ids=_ids(BODY_ROUTES))
    def test_a_field_of_the_wrong_type_or_range_is_400_naming_it(self, world: World, route: Route) -> None:
        cases = [(name, value) for route_id, name, value in WRONG_TYPES if route_id == route.id]
        assert cases
        for name, value in cases:
            # Given a valid body with one field of the wrong type or out of range
            assert route.valid is not None
            body = {**route.valid, name: value}

            # When it is sent
            response = world.call(route, body)

            # Then the answer is 400 naming that field (or an item of it)
            error = assert_error(response, 400, "validation_error")
            fields = [d["field"] for d in error["details"]]
            assert fields, error
            assert all(f == name or f.startswith(f"{name}[") for f in fields), (name, value, fields)

    def test_a_wrong_type_never_reaches_storage(self, world: World) -> None:
        # Given Bob's receipt with upToSeq as a string
        route = _BY_ID["POST /v1/chats/{chatId}/receipts"]

        # When it is sent
        response = world.call(route, {"type": "read", "upToSeq": "3"}, token=world.bob)

        # Then it is refused and nothing moved: Alice still has Bob's two messages unread
        assert_error(response, 400, "validation_error")
        alice_view = world.api.call("GET", f"/v1/chats/{world.group}", token=world.alice).json()
        assert alice_view["unreadCount"] == 2

    @pytest.mark.parametrize(
        "which", range(5), ids=["session", "direct-chat", "group-chat", "add-members", "send-direct"]
    )
    def test_a_bad_phone_number_is_400_invalid_phone_number(self, world: World, which: int) -> None:
        for bad in BAD_NUMBERS:
            # Given a request with a phone number that is not a valid number
            method, path, body, detail_field = _bad_phone_requests(bad)[which]

            # When it is sent
            response = world.api.call(method, path.format(group=world.group), body, token=world.alice)

            # Then the answer is 400 invalid_phone_number (with details naming the field, if any)
            error = assert_error(response, 400, "invalid_phone_number")
            if error.get("details"):
                assert [d["field"] for d in error["details"]] == [detail_field], bad

    def test_a_bad_phone_number_in_the_member_path_is_400_invalid_phone_number(self, world: World) -> None:
        for bad in ["abc", "123", "%20", "+1%20415"]:
            # Given the group's creator
            # When she removes a "member" whose number is not a number
            response = world.api.call("DELETE", f"/v1/chats/{world.group}/members/{bad}", token=world.alice)

            # Then the answer is 400 invalid_phone_number
            assert_error(response, 400, "invalid_phone_number")

    def test_a_bad_phone_number_creates_nothing(self, world: World) -> None:
        # Given Alice's current chats
        before = world.api.call("GET", "/v1/chats", token=world.alice).json()["items"]

        # When she sends to an invalid number
        response = world.api.call(
            "POST", "/v1/messages", {"to": "nope", "text": "hi", "clientMessageId": "c-x"}, token=world.alice
        )

        # Then it is refused and no chat appeared
        assert_error(response, 400, "invalid_phone_number")
        world.api.stack.drain_streams()
        assert world.api.call("GET", "/v1/chats", token=world.alice).json()["items"] == before

    @pytest.mark.parametrize("route", TEXT_ROUTES, ids=_ids(TEXT_ROUTES))
    def test_text_empty_after_trimming_or_over_4096_chars_is_400(self, world: World, route: Route) -> None:
        for text in ["", " ", "     ", "\n\t \r\n", "a" * 4097, " " + "b" * 4097 + " "]:
            # Given a message whose text is blank or too long
            assert route.valid is not None
            body = {**route.valid, "text": text}

            # When it is sent
            response = world.call(route, body)

            # Then the answer is 400 naming the text
            error = assert_error(response, 400, "validation_error")
            assert [d["field"] for d in error["details"]] == ["text"], text[:10]

        # And nothing was stored, nor any chat created
        history = world.api.call("GET", f"/v1/chats/{world.group}/messages", token=world.alice).json()
        assert [m["seq"] for m in history["items"]] == [2, 1]
        world.api.stack.drain_streams()
        assert len(world.api.call("GET", "/v1/chats", token=world.alice).json()["items"]) == 2

    @pytest.mark.parametrize("route", ROUTES, ids=_ids(ROUTES))
    def test_a_body_over_64_kib_is_413(self, world: World, route: Route) -> None:
        # Given a body one byte over 64 KiB (valid JSON)
        raw = json.dumps({"text": "x" * MAX_BODY})
        assert len(raw.encode()) > MAX_BODY

        # When it is sent to any route
        response = world.call(route, raw_body=raw)

        # Then the answer is 413 payload_too_large
        assert_error(response, 413, "payload_too_large")

    def test_a_body_of_64_kib_in_multibyte_characters_is_measured_in_bytes(self, world: World) -> None:
        # Given a body under 64 Ki characters but over 64 KiB in UTF-8
        raw = json.dumps({"text": "é" * 40_000, "clientMessageId": "c-1"}, ensure_ascii=False)
        assert len(raw) < MAX_BODY < len(raw.encode())

        # When it is sent
        response = world.api.call(
            "POST", f"/v1/chats/{world.group}/messages", raw_body=raw, token=world.alice
        )

        # Then it is too large
        assert_error(response, 413, "payload_too_large")

    def test_a_body_of_exactly_64_kib_is_not_too_large(self, world: World) -> None:
        # Given a body of exactly 64 KiB (its text is too long for a message)
        prefix, suffix = '{"clientMessageId": "c-1", "text": "', '"}'
        raw = prefix + "x" * (MAX_BODY - len(prefix) - len(suffix)) + suffix
        assert len(raw.encode()) == MAX_BODY

        # When it is sent
        response = world.api.call(
            "POST", f"/v1/chats/{world.group}/messages", raw_body=raw, token=world.alice
        )

        # Then the size is accepted and the text is what is refused
        error = assert_error(response, 400, "validation_error")
        assert [d["field"] for d in error["details"]] == ["text"]

    @pytest.mark.parametrize("route", LIST_ROUTES, ids=_ids(LIST_ROUTES))
    def test_a_limit_outside_1_to_100_is_400(self, world: World, route: Route) -> None:
        for limit in ["0", "101", "abc", "-1", "1.5", "", "1e2"]:
            # Given a list route
            # When it is asked for a page of an invalid size
            response = world.call(route, query={"limit": limit})

            # Then the answer is 400 naming limit
            error = assert_error(response, 400, "validation_error")
            assert [d["field"] for d in error["details"]] == ["limit"], limit

    @pytest.mark.parametrize("route", LIST_ROUTES, ids=_ids(LIST_ROUTES))
    def test_limits_1_and_100_are_accepted(self, world: World, route: Route) -> None:
        for limit in ["1", "100"]:
            # Given a list route
            # When it is asked for the smallest or largest page
            response = world.call(route, query={"limit": limit})

            # Then the page has at most that many items
            assert response.status == 200, response.body
            assert len(response.json()["items"]) <= int(limit)

    def test_an_invalid_after_seq_is_400(self, world: World) -> None:
        for after_seq in ["-1", "abc", "1.5", ""]:
            # Given a chat's history
            # When it is asked for messages after an invalid seq
            response = world.api.call(
                "GET", f"/v1/chats/{world.group}/messages", token=world.alice, query={"afterSeq": after_seq}
            )

            # Then the answer is 400 naming afterSeq
            error = assert_error(response, 400, "validation_error")
            assert [d["field"] for d in error["details"]] == ["afterSeq"], after_seq

    @pytest.mark.parametrize("route", LIST_ROUTES, ids=_ids(LIST_ROUTES))
    def test_a_tampered_cursor_is_400_invalid_cursor(self, world: World, route: Route) -> None:
        path = world.path(route)
        for tampered in _tamperings(world.first_page_cursor(path, world.alice, **dict(route.query))):
            # Given a genuine cursor of this list, altered
            # When it is used
            response = world.call(route, token=world.alice, query={"limit": 1, "cursor": tampered})

            # Then the answer is 400 invalid_cursor
            assert_error(response, 400, "invalid_cursor")

    @pytest.mark.parametrize("route", LIST_ROUTES, ids=_ids(LIST_ROUTES))
    def test_a_cursor_of_another_user_is_400_invalid_cursor(self, world: World, route: Route) -> None:
        # Given Alice's cursor of a list Bob can read too
        path = world.path(route)
        cursor = world.first_page_cursor(path, world.alice, **dict(route.query))

        # When Bob uses it
        response = world.call(route, token=world.bob, query={"limit": 1, "cursor": cursor})

        # Then the answer is 400 invalid_cursor
        assert_error(response, 400, "invalid_cursor")

    def test_a_cursor_of_another_chat_is_400_invalid_cursor(self, world: World) -> None:
        # Given Alice's history cursor of the group
        cursor = world.first_page_cursor(f"/v1/chats/{world.group}/messages", world.alice)

        # When she uses it on the history of her direct chat
        response = world.api.call(
            "GET",
            f"/v1/chats/{world.direct}/messages",
            token=world.alice,
            query={"limit": 1, "cursor": cursor},
        )

        # Then the answer is 400 invalid_cursor
        assert_error(response, 400, "invalid_cursor")

    def test_a_cursor_of_another_list_is_400_invalid_cursor(self, world: World) -> None:
        # Given Alice's cursor of her chat list
        cursor = world.first_page_cursor("/v1/chats", world.alice)

        # When she uses it on a chat's history
        response = world.api.call(
            "GET",
            f"/v1/chats/{world.group}/messages",
            token=world.alice,
            query={"limit": 1, "cursor": cursor},
        )

        # Then the answer is 400 invalid_cursor
        assert_error(response, 400, "invalid_cursor")

    def test_a_history_cursor_used_for_catch_up_is_400_invalid_cursor(self, world: World) -> None:
        # Given Alice's cursor of the newest-first history
        path = f"/v1/chats/{world.group}/messages"
        cursor = world.first_page_cursor(path, world.alice)

        # When she uses it for an afterSeq catch-up of the same chat
        response = world.api.call(
            "GET", path, token=world.alice, query={"limit": 1, "cursor": cursor, "afterSeq": 0}
        )

        # Then the answer is 400 invalid_cursor (the two lists run in opposite directions)
        assert_error(response, 400, "invalid_cursor")

    @pytest.mark.parametrize("route", AUTHENTICATED_ROUTES, ids=_ids(AUTHENTICATED_ROUTES))
    def test_a_request_without_a_token_is_401_unauthorized(self, world: World, route: Route) -> None:
        # Given a route that needs a session
        # When it is called without Authorization (with an otherwise valid request)
        response = world.call(route, route.valid, token=None)

        # Then the answer is 401 unauthorized
        assert_error(response, 401, "unauthorized")

    @pytest.mark.parametrize("route", AUTHENTICATED_ROUTES, ids=_ids(AUTHENTICATED_ROUTES))
    def test_a_request_with_a_bad_token_is_401_unauthorized(self, world: World, route: Route) -> None:
        for name, authorization in BAD_AUTHORIZATIONS.items():
            # Given a route that needs a session
            # When it is called with an Authorization header that holds no valid token
            response = world.call(route, route.valid, token=None, headers={"authorization": authorization})

            # Then the answer is 401 unauthorized
            assert response.status == 401, name
            assert_error(response, 401, "unauthorized")

    def test_a_bearer_scheme_in_any_case_is_accepted(self, world: World) -> None:
        # Given Alice's token
        # When she sends it with the scheme in lower case
        response = world.api.call("GET", "/v1/users/me", headers={"authorization": f"bearer {world.alice}"})

        # Then she is recognised
        assert response.status == 200, response.body
        assert response.json()["phoneNumber"] == ALICE

    @pytest.mark.parametrize("route", AUTHENTICATED_ROUTES, ids=_ids(AUTHENTICATED_ROUTES))
    def test_a_signed_out_token_is_401_unauthorized(self, world: World, route: Route) -> None:
        # Given Alice signed out of one session
        token = world.api.sign_in(ALICE)
        assert world.api.call("DELETE", "/v1/sessions/current", token=token).status == 204

        # When that session's token is used
        response = world.call(route, route.valid, token=token)

        # Then the answer is 401 unauthorized
        assert_error(response, 401, "unauthorized")

    def test_error_messages_carry_no_internals(self, world: World) -> None:
        # Given a handful of bad requests
        responses = [
            world.api.call("POST", "/v1/chats", raw_body="{bad", token=world.alice),
            world.api.call("POST", "/v1/chats", {"type": "direct", "members": ["x"]}, token=world.alice),
            world.api.call("GET", "/v1/chats", query={"cursor": "x.y"}, token=world.alice),
            world.api.call("GET", "/v1/chats/nope", token=world.alice),
            world.api.call("GET", "/v1/users/me"),
        ]

        # Then no body mentions a traceback, an AWS error or a table
        for response in responses:
            assert response.status < 500, response.body
            assert not re.search(
                r"Traceback|botocore|ClientError|ConditionalCheck|dynamodb|PK|SK", response.body
            ), response.body
