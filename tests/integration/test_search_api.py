"""Message search through the HTTP API and the chats table's stream (contract §2 ``GET /v1/search``)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from local.stack import InProcessStack
from tests.integration.conftest import ApiClient, assert_error

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"
DAVE = "+14155550104"


def next_millisecond() -> None:
    """Sent times have millisecond precision: keep "newest first" unambiguous."""
    time.sleep(0.002)


def send_all(api: ApiClient, token: str, chat_id: str, *texts: str) -> None:
    for text in texts:
        next_millisecond()
        response = api.send(token, chat_id, text)
        assert response.status == 201, response.body


def search(api: ApiClient, token: str, q: str, **query: Any) -> dict[str, Any]:
    response = api.call("GET", "/v1/search", token=token, query={"q": q, **query})
    assert response.status == 200, response.body
    body = response.json()
    assert set(body) == {"items", "nextCursor"}
    return dict(body)


def found_texts(api: ApiClient, token: str, q: str, **query: Any) -> list[str]:
    body = search(api, token, q, limit=100, **query)
    assert body["nextCursor"] is None
    return [m["text"] for m in body["items"]]


def replay_chat_activity_stream(stack: InProcessStack) -> int:
    """Deliver every record of the chats table's stream to ChatActivityFunction again, from
    the start (what Lambda does after a failed batch, or a lost checkpoint)."""

    def strict_invoke(function: str, event: dict[str, Any], trigger: str) -> Any:
        response = stack.invoke(function, event, trigger)
        assert not (response or {}).get("batchItemFailures"), response
        return response

    replay = stack.stream_reader("ChatActivityFunction", strict_invoke)
    delivered = 0
    while count := replay.poll_once():
        delivered += count
    return delivered


# ---- what is found -------------------------------------------------------------------------


def test_matches_from_all_the_callers_chats_come_newest_first(api: ApiClient) -> None:
    # Given Alice has a direct chat and a group, with matching messages interleaved in time
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    direct = api.open_direct(alice, BOB)
    group = api.create_group(alice, [BOB, CAROL])
    send_all(api, alice, direct, "Lunch at noon?")
    send_all(api, bob, group, "who wants lunch", "nothing to see here")
    send_all(api, bob, direct, "lunch sounds good")
    api.stack.drain_streams()

    # When she searches "lunch"
    body = search(api, alice, "lunch")

    # Then the three lunch messages come from both chats, newest first, as Messages
    assert [m["text"] for m in body["items"]] == ["lunch sounds good", "who wants lunch", "Lunch at noon?"]
    assert [m["chatId"] for m in body["items"]] == [direct, group, direct]
    assert body["nextCursor"] is None
    newest = body["items"][0]
    assert set(newest) == {
        "messageId",
        "chatId",
        "seq",
        "sender",
        "text",
        "clientMessageId",
        "sentAt",
        "status",
        "via",
    }
    assert (newest["sender"], newest["seq"], newest["status"], newest["via"]) == (BOB, 2, "sent", "app")


def test_every_word_of_the_query_must_match(api: ApiClient) -> None:
    # Given messages with one, the other, or both words
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    send_all(api, alice, chat_id, "project deadline moved", "project kickoff", "deadline for taxes")
    api.stack.drain_streams()

    # When Alice searches both words
    # Then only the message with both comes back
    assert found_texts(api, alice, "deadline project") == ["project deadline moved"]


def test_word_prefixes_match_whatever_the_case_and_accents(api: ApiClient) -> None:
    # Given messages with capitals and accents
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    send_all(api, alice, chat_id, "Hello, World!", "Un café crème", "helicopter")
    api.stack.drain_streams()

    # When she searches by word beginnings, in other cases, without accents
    # Then the messages are found; a prefix inside a word is not a match
    assert found_texts(api, alice, "hel wor") == ["Hello, World!"]
    assert found_texts(api, alice, "HEL") == ["helicopter", "Hello, World!"]
    assert found_texts(api, alice, "cafe CREME") == ["Un café crème"]
    assert found_texts(api, alice, "orld") == []


def test_pages_cover_every_match_once_and_only_the_last_is_short(api: ApiClient) -> None:
    # Given 7 matching messages across two chats, between messages that do not match
    alice = api.sign_in(ALICE)
    direct = api.open_direct(alice, BOB)
    group = api.create_group(alice, [BOB, CAROL])
    expected: list[str] = []
    for n in range(7):
        chat_id = direct if n % 2 else group
        send_all(api, alice, chat_id, f"status report {n}", f"unrelated chatter {n}")
        expected.insert(0, f"status report {n}")
    api.stack.drain_streams()

    # When Alice pages through "report" three at a time
    pages = api.all_pages("/v1/search", alice, limit=3, query={"q": "report"})

    # Then the pages are 3, 3, 1 long, newest first, without gaps or repeats
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [m["text"] for page in pages for m in page] == expected


def test_an_exactly_full_last_page_has_no_cursor(api: ApiClient) -> None:
    # Given exactly 2 matching messages
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    send_all(api, alice, chat_id, "alpha one", "alpha two")
    api.stack.drain_streams()

    # When a page of 2 is asked for
    body = search(api, alice, "alpha", limit=2)

    # Then both come and there is no next page
    assert len(body["items"]) == 2
    assert body["nextCursor"] is None


def test_chat_id_limits_the_search_to_that_chat(api: ApiClient) -> None:
    # Given matching messages in two chats
    alice = api.sign_in(ALICE)
    direct = api.open_direct(alice, BOB)
    group = api.create_group(alice, [BOB, CAROL])
    send_all(api, alice, direct, "invoice for bob")
    send_all(api, alice, group, "invoice for the team")
    api.stack.drain_streams()

    # When Alice searches one chat
    # Then only that chat's message comes back
    assert found_texts(api, alice, "invoice", chatId=group) == ["invoice for the team"]


# ---- what is never found -----------------------------------------------------------------


def test_other_users_chats_are_never_returned(api: ApiClient) -> None:
    # Given Bob and Carol talk about "secret" in a chat Alice is not in, and Alice has her own chat
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    theirs = api.open_direct(bob, CAROL)
    mine = api.open_direct(alice, DAVE)
    send_all(api, bob, theirs, "the secret is out")
    send_all(api, alice, mine, "a secret of mine")
    api.stack.drain_streams()

    # When Alice searches "secret"
    # Then she finds only her own message
    assert found_texts(api, alice, "secret") == ["a secret of mine"]


def test_a_chat_the_caller_is_not_in_is_404(api: ApiClient) -> None:
    # Given a chat of Bob and Carol, with a matching message
    alice = api.sign_in(ALICE)
    bob = api.sign_in(BOB)
    theirs = api.open_direct(bob, CAROL)
    send_all(api, bob, theirs, "the secret is out")
    api.stack.drain_streams()

    # When Alice searches in it, or in a chat that does not exist
    response = api.call("GET", "/v1/search", token=alice, query={"q": "secret", "chatId": theirs})
    missing = api.call("GET", "/v1/search", token=alice, query={"q": "secret", "chatId": "g_nope"})

    # Then both are the same 404 (existence is not leaked)
    first = assert_error(response, 404, "not_found")
    second = assert_error(missing, 404, "not_found")
    assert first["message"].replace(theirs, "X") == second["message"].replace("g_nope", "X")


def test_a_removed_member_no_longer_finds_the_groups_messages(api: ApiClient) -> None:
    # Given Carol was in a group where "budget" was discussed, then was removed
    alice = api.sign_in(ALICE)
    carol = api.sign_in(CAROL)
    group = api.create_group(alice, [BOB, CAROL])
    send_all(api, alice, group, "budget draft")
    api.stack.drain_streams()
    assert found_texts(api, carol, "budget") == ["budget draft"]
    assert api.call("DELETE", f"/v1/chats/{group}/members/{CAROL}", token=alice).status == 204
    api.stack.drain_streams()

    # When she searches again
    # Then nothing comes back
    assert found_texts(api, carol, "budget") == []


def test_a_redelivered_stream_record_does_not_duplicate_results(api: ApiClient) -> None:
    # Given indexed messages, one of which matches "hel" under two words
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    send_all(api, alice, chat_id, "hello, can you help", "hello again")
    api.stack.drain_streams()

    # When every stream record is delivered to the index again
    assert replay_chat_activity_stream(api.stack) > 0

    # Then each message is still found once
    assert found_texts(api, alice, "hel") == ["hello again", "hello, can you help"]
    assert found_texts(api, alice, "hello") == ["hello again", "hello, can you help"]


# ---- bad requests -------------------------------------------------------------------------


@pytest.mark.parametrize("q", ["", "   ", "?!", "..."])
def test_a_query_without_words_is_400(api: ApiClient, q: str) -> None:
    # Given a signed-in user
    alice = api.sign_in(ALICE)

    # When she searches for nothing but spaces or punctuation
    response = api.call("GET", "/v1/search", token=alice, query={"q": q})

    # Then it is a 400 pointing at q, saying a word is needed
    error = assert_error(response, 400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["q"]
    assert "word" in error["message"]


def test_a_missing_q_is_400(api: ApiClient) -> None:
    # Given a signed-in user, When she searches without q, Then q is reported missing
    alice = api.sign_in(ALICE)
    error = assert_error(api.call("GET", "/v1/search", token=alice), 400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["q"]


@pytest.mark.parametrize("limit", [0, 101])
def test_a_limit_out_of_range_is_400(api: ApiClient, limit: int) -> None:
    # Given a signed-in user, When she asks for a page size outside 1-100, Then it is refused
    alice = api.sign_in(ALICE)
    response = api.call("GET", "/v1/search", token=alice, query={"q": "hello", "limit": limit})
    error = assert_error(response, 400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["limit"]


def test_a_tampered_cursor_is_400_invalid_cursor(api: ApiClient) -> None:
    # Given a real next cursor of a search
    alice = api.sign_in(ALICE)
    chat_id = api.open_direct(alice, BOB)
    send_all(api, alice, chat_id, "report one", "report two")
    api.stack.drain_streams()
    cursor = search(api, alice, "report", limit=1)["nextCursor"]
    assert cursor

    # When it is edited, or used for another query or by another user
    body, _, signature = cursor.partition(".")
    tampered = f"{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{signature}"
    bob = api.sign_in(BOB)
    responses = [
        api.call("GET", "/v1/search", token=alice, query={"q": "report", "cursor": tampered}),
        api.call("GET", "/v1/search", token=alice, query={"q": "two", "cursor": cursor}),
        api.call("GET", "/v1/search", token=bob, query={"q": "report", "cursor": cursor}),
    ]

    # Then each is 400 invalid_cursor
    for response in responses:
        assert_error(response, 400, "invalid_cursor")


def test_search_needs_a_token(api: ApiClient) -> None:
    # Given no token, When searching, Then it is 401
    assert_error(api.call("GET", "/v1/search", query={"q": "hello"}), 401, "unauthorized")
