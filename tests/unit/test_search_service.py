"""The search use case on in-memory fakes: order, pages, budgets and membership."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chatflow.domain.messaging import MessagingService
from chatflow.domain.pagination import CursorCodec
from chatflow.domain.search import MessageRef, SearchResults, SearchService, index_words
from chatflow.errors import InvalidCursor, NotFound, ValidationFailed
from tests.fakes import FakeChatRepository, FakeClock, FakeSearchIndex, FakeUserRepository
from tests.unit.conftest import ALICE, BOB, CAROL, DAVE


@pytest.fixture
def index() -> FakeSearchIndex:
    return FakeSearchIndex()


def make_search(
    chats: FakeChatRepository, index: FakeSearchIndex, cursors: CursorCodec, **budgets: int
) -> SearchService:
    return SearchService(chats=chats, index=index, cursors=cursors, **budgets)


@pytest.fixture
def search(chats: FakeChatRepository, index: FakeSearchIndex, cursors: CursorCodec) -> SearchService:
    return make_search(chats, index, cursors)


def index_everything(chats: FakeChatRepository, index: FakeSearchIndex) -> None:
    """What ChatActivityFunction does from the stream: index every stored message."""
    index.index(
        {
            MessageRef.of(message): index_words(message.text)
            for stored in chats.messages.values()
            for message in stored.values()
        }
    )


def send(messaging: MessagingService, chat_id: str, *texts: str, sender: str = ALICE) -> None:
    for text in texts:
        messaging.send(sender, chat_id, text, f"{chat_id}-{text}-{len(text)}-{id(text)}")


def every_page(
    search: SearchService, caller: str, q: str, *, limit: int, chat_id: str | None = None
) -> list[SearchResults]:
    pages: list[SearchResults] = []
    cursor: str | None = None
    while True:
        page = search.search(caller, q, chat_id=chat_id, limit=limit, cursor=cursor)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 200, "pagination does not end"


def texts(results: SearchResults) -> list[str]:
    return [m.text for m in results.messages]


def test_matches_of_every_chat_come_newest_first(
    messaging: MessagingService, chats: FakeChatRepository, index: FakeSearchIndex, search: SearchService
) -> None:
    # Given Alice's two chats with matching messages interleaved in time, and one that does not match
    direct = messaging.open_direct(ALICE, BOB).chat.chat_id
    group = messaging.create_group(ALICE, "Team", [BOB, CAROL]).chat_id
    send(messaging, direct, "lunch one")
    send(messaging, group, "lunch two", "dinner")
    send(messaging, direct, "lunch three")
    index_everything(chats, index)

    # When she searches "lunch"
    found = search.search(ALICE, "lunch", chat_id=None, limit=20, cursor=None)

    # Then the three lunches come, newest first, and nothing else
    assert texts(found) == ["lunch three", "lunch two", "lunch one"]
    assert found.next_cursor is None


def test_a_one_word_page_is_fetched_in_one_read(
    messaging: MessagingService, chats: FakeChatRepository, index: FakeSearchIndex, search: SearchService
) -> None:
    # Given 60 matching messages
    chat_id = messaging.open_direct(ALICE, BOB).chat.chat_id
    send(messaging, chat_id, *(f"report {n}" for n in range(60)))
    index_everything(chats, index)
    reads_before = chats.message_reads

    # When the first page of 20 is asked for
    found = search.search(ALICE, "report", chat_id=None, limit=20, cursor=None)

    # Then one read of 21 candidates answers it (the 21st only says there is more)
    assert len(found.messages) == 20
    assert found.next_cursor is not None
    assert chats.message_reads - reads_before == 1


def test_pages_at_the_same_millisecond_neither_skip_nor_repeat(
    chats: FakeChatRepository, users: FakeUserRepository, index: FakeSearchIndex, cursors: CursorCodec
) -> None:
    # Given messages in three chats all sent at the same instant (a clock that stands still)
    messaging = MessagingService(
        chats=chats, users=users, cursors=cursors, clock=FakeClock(), sleep=lambda _: None
    )
    chat_ids = [messaging.open_direct(ALICE, other).chat.chat_id for other in (BOB, CAROL, DAVE)]
    for chat_id in chat_ids:
        send(messaging, chat_id, *(f"same {n}" for n in range(7)))
    index_everything(chats, index)
    search = make_search(chats, index, cursors)

    # When Alice pages through "same" three at a time
    pages = every_page(search, ALICE, "same", limit=3)

    # Then every message comes exactly once, and only the last page is short
    listed = [(m.chat_id, m.seq) for page in pages for m in page.messages]
    assert len(listed) == len(set(listed)) == 21
    assert all(len(page.messages) == 3 for page in pages[:-1])


def test_a_query_matching_too_many_entries_is_refused(
    messaging: MessagingService, chats: FakeChatRepository, index: FakeSearchIndex, cursors: CursorCodec
) -> None:
    # Given more messages starting with "a" than a request may read
    chat_id = messaging.open_direct(ALICE, BOB).chat.chat_id
    send(messaging, chat_id, *(f"a{n}" for n in range(6)))
    index_everything(chats, index)
    search = make_search(chats, index, cursors, max_index_entries=5)

    # When Alice searches "a"
    # Then it is a 400 asking for more letters
    with pytest.raises(ValidationFailed) as caught:
        search.search(ALICE, "a", chat_id=None, limit=20, cursor=None)
    assert [d.field for d in caught.value.details] == ["q"]
    assert "type more" in caught.value.message


def test_when_the_check_budget_runs_out_the_cursor_goes_on_where_it_stopped(
    messaging: MessagingService, chats: FakeChatRepository, index: FakeSearchIndex, cursors: CursorCodec
) -> None:
    # Given 10 messages with "meeting", of which only the 2 oldest also say "friday"
    chat_id = messaging.open_direct(ALICE, BOB).chat.chat_id
    send(messaging, chat_id, "meeting friday a", "meeting friday b")
    send(messaging, chat_id, *(f"meeting monday {n}" for n in range(8)))
    index_everything(chats, index)
    # And a request may check only 3 messages
    search = make_search(chats, index, cursors, max_candidates=3)

    # When Alice pages through "meeting friday"
    pages = every_page(search, ALICE, "meeting friday", limit=20)

    # Then each page checks 3 messages (short pages that go on), and the two matches come
    # once each, newest first
    assert [len(p.messages) for p in pages] == [0, 0, 1, 1]
    assert [m.text for p in pages for m in p.messages] == ["meeting friday b", "meeting friday a"]


def test_a_chat_the_caller_left_is_not_searched_even_if_its_inbox_entry_lingers(
    messaging: MessagingService, chats: FakeChatRepository, index: FakeSearchIndex, search: SearchService
) -> None:
    # Given Carol was removed from a group, but her inbox entry is still there (the stream lags)
    group = messaging.create_group(ALICE, "Team", [BOB, CAROL])
    send(messaging, group.chat_id, "secret plan")
    messaging.remove_member(ALICE, group.chat_id, CAROL)
    chats.inbox.setdefault(CAROL, {})[group.chat_id] = group.created_at + timedelta(seconds=1)
    index_everything(chats, index)

    # When Carol searches for it
    found = search.search(CAROL, "secret", chat_id=None, limit=20, cursor=None)

    # Then nothing of that chat comes back
    assert found.messages == []


def test_searching_a_chat_of_someone_else_is_not_found(
    messaging: MessagingService, chats: FakeChatRepository, index: FakeSearchIndex, search: SearchService
) -> None:
    # Given a chat of Alice and Bob
    chat_id = messaging.open_direct(ALICE, BOB).chat.chat_id

    # When Carol searches in it, Then it does not exist for her
    with pytest.raises(NotFound):
        search.search(CAROL, "hello", chat_id=chat_id, limit=20, cursor=None)


def test_a_cursor_of_another_query_is_refused(
    messaging: MessagingService, chats: FakeChatRepository, index: FakeSearchIndex, search: SearchService
) -> None:
    # Given a next cursor of the search "report"
    chat_id = messaging.open_direct(ALICE, BOB).chat.chat_id
    send(messaging, chat_id, "report one", "report two")
    index_everything(chats, index)
    cursor = search.search(ALICE, "report", chat_id=None, limit=1, cursor=None).next_cursor
    assert cursor is not None

    # When it is used with another query, or by another user
    # Then it is an invalid cursor
    with pytest.raises(InvalidCursor):
        search.search(ALICE, "one", chat_id=None, limit=1, cursor=cursor)
    with pytest.raises(InvalidCursor):
        search.search(BOB, "report", chat_id=None, limit=1, cursor=cursor)


def test_the_same_query_written_differently_shares_its_cursor(
    messaging: MessagingService, chats: FakeChatRepository, index: FakeSearchIndex, search: SearchService
) -> None:
    # Given a next cursor of "Report ONE"
    chat_id = messaging.open_direct(ALICE, BOB).chat.chat_id
    send(messaging, chat_id, "report one", "one report")
    index_everything(chats, index)
    cursor = search.search(ALICE, "Report ONE", chat_id=None, limit=1, cursor=None).next_cursor

    # When the next page is asked for as "one report" (the same words)
    found = search.search(ALICE, "one report", chat_id=None, limit=1, cursor=cursor)

    # Then it continues the same search
    assert texts(found) == ["report one"]
