"""Messaging use cases about chats: direct chats, groups, membership, the inbox."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from chatflow.domain.chats import MAX_GROUP_MEMBERS, Chat, direct_chat_id
from chatflow.domain.identity import IdentityService
from chatflow.domain.messaging import MessagingService
from chatflow.domain.pagination import CursorCodec
from chatflow.errors import Forbidden, InvalidCursor, InvalidPhoneNumber, NotFound, ValidationFailed
from tests.fakes import FakeChatRepository, FakeClock, FakeUserRepository
from tests.unit.conftest import ALICE, BOB, CAROL, DAVE, ERIN


def members_of(chat: Chat) -> set[str]:
    return {m.phone_number for m in chat.members}


@pytest.fixture
def team(messaging: MessagingService) -> Chat:
    """A group Alice created with Bob and Carol."""
    return messaging.create_group(ALICE, "Team", [BOB, CAROL])


# ---- direct chats ----------------------------------------------------------------


def test_opening_a_direct_chat_creates_it(messaging: MessagingService) -> None:
    # Given no chat between Alice and Bob
    # When Alice opens one, with Bob's number in a local format
    opened = messaging.open_direct(ALICE, "(415) 555-0102")
    # Then a direct chat with both of them is created
    assert opened.created
    assert opened.chat.type == "direct"
    assert opened.chat.name is None
    assert members_of(opened.chat) == {ALICE, BOB}
    assert opened.chat.created_by == ALICE


def test_direct_chat_is_one_per_pair_whoever_creates_it(messaging: MessagingService) -> None:
    # Given Alice opened a chat with Bob
    first = messaging.open_direct(ALICE, BOB)
    # When Bob opens one with Alice
    second = messaging.open_direct(BOB, ALICE)
    # Then he gets the same chat, not a new one
    assert not second.created
    assert second.chat.chat_id == first.chat.chat_id


class RivalCreatesFirst(FakeChatRepository):
    """The other person's create lands between our read and our create."""

    def __init__(self, rival: Chat) -> None:
        super().__init__()
        self._rival: Chat | None = rival

    def create_chat(self, chat: Chat) -> None:
        if self._rival is not None:
            rival, self._rival = self._rival, None
            super().create_chat(rival)
        super().create_chat(chat)


def test_direct_chat_race_returns_the_chat_the_other_created(
    users: FakeUserRepository, cursors: CursorCodec, clock: FakeClock
) -> None:
    # Given Bob creates the Alice-Bob chat just after Alice checked it did not exist
    bobs = Chat(
        chat_id=direct_chat_id(ALICE, BOB),
        type="direct",
        name=None,
        created_by=BOB,
        created_at=clock(),
        last_activity_at=clock(),
        members=(),
    )
    chats = RivalCreatesFirst(bobs)
    service = MessagingService(chats=chats, users=users, cursors=cursors, clock=clock, sleep=lambda _: None)
    # When Alice's create fails with AlreadyExists
    opened = service.open_direct(ALICE, BOB)
    # Then she gets Bob's chat, as not created by her
    assert not opened.created
    assert opened.chat.created_by == BOB
    assert chats.get_chat(opened.chat.chat_id) == opened.chat


def test_concurrent_opens_make_one_direct_chat(
    messaging: MessagingService, chats: FakeChatRepository
) -> None:
    # Given Alice and Bob opening their chat at the same moment, many times over
    results: list[str] = []

    def open_as(caller: str, other: str) -> None:
        results.append(messaging.open_direct(caller, other).chat.chat_id)

    threads = [threading.Thread(target=open_as, args=pair) for pair in [(ALICE, BOB), (BOB, ALICE)] * 8]
    # When they all run
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then there is exactly one chat, and everyone got it
    assert len(set(results)) == 1
    assert len(results) == 16
    assert list(chats.chats) == results[:1]


def test_direct_chat_with_oneself_is_refused(messaging: MessagingService) -> None:
    # Given Alice
    # When she opens a direct chat with her own number
    # Then it is refused
    with pytest.raises(ValidationFailed):
        messaging.open_direct(ALICE, "4155550101")


def test_direct_chat_with_an_invalid_number_is_refused(messaging: MessagingService) -> None:
    # Given a member that is no phone number
    # When Alice opens a chat with it
    # Then InvalidPhoneNumber is raised
    with pytest.raises(InvalidPhoneNumber):
        messaging.open_direct(ALICE, "bob")


def test_members_show_display_names_of_those_who_have_accounts(
    messaging: MessagingService, identity: IdentityService
) -> None:
    # Given Bob signed up as "Bob" and Carol never signed in
    identity.sign_in(BOB)
    identity.update_me(BOB, {"displayName": "Bob"})
    # When Alice creates a group with both
    chat = messaging.create_group(ALICE, "Team", [BOB, CAROL])
    # Then Bob shows his name and Carol none (she will see the chat once she signs in)
    names = {m.phone_number: m.display_name for m in chat.members}
    assert names == {ALICE: None, BOB: "Bob", CAROL: None}


def test_renaming_a_user_renames_the_member_in_their_chats(
    messaging: MessagingService, identity: IdentityService, team: Chat
) -> None:
    # Given Bob is in Alice's group
    identity.sign_in(BOB)
    # When Bob sets his display name
    identity.update_me(BOB, {"displayName": "Bobby"})
    # Then the group shows it
    member = messaging.get_chat(ALICE, team.chat_id).member(BOB)
    assert member is not None
    assert member.display_name == "Bobby"


# ---- groups ----------------------------------------------------------------------


def test_creating_a_group_makes_the_caller_a_member_and_creator(team: Chat) -> None:
    # Given Alice created a group with Bob and Carol (fixture)
    # When we look at it
    # Then all three are members and Alice is the creator
    assert team.type == "group"
    assert team.name == "Team"
    assert members_of(team) == {ALICE, BOB, CAROL}
    assert team.created_by == ALICE
    assert team.last_seq == 0


@pytest.mark.parametrize("members", [[], [BOB], [BOB, BOB], [BOB, ALICE], [BOB, "+1 415 555 0102"]])
def test_group_needs_at_least_two_other_members(messaging: MessagingService, members: list[str]) -> None:
    # Given fewer than two distinct other members (the caller and duplicates do not count)
    # When Alice creates a group
    # Then it is refused
    with pytest.raises(ValidationFailed) as caught:
        messaging.create_group(ALICE, "Team", members)
    assert [p.field for p in caught.value.details] == ["members"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_group_needs_a_name(messaging: MessagingService, chats: FakeChatRepository, name: str) -> None:
    # Given no usable name
    # When Alice creates a group
    # Then it is refused and nothing is stored
    with pytest.raises(ValidationFailed):
        messaging.create_group(ALICE, name, [BOB, CAROL])
    assert chats.chats == {}


def test_group_with_invalid_members_reports_each_one(messaging: MessagingService) -> None:
    # Given two invalid members among valid ones
    # When Alice creates a group
    with pytest.raises(InvalidPhoneNumber) as caught:
        messaging.create_group(ALICE, "Team", [BOB, "nope", CAROL, "123"])
    # Then each invalid entry is reported by position
    assert [p.field for p in caught.value.details] == ["members[1]", "members[3]"]


def test_group_over_the_size_limit_is_refused(messaging: MessagingService) -> None:
    # Given more other members than a group may hold
    others = [f"+1415555{2000 + n:04d}" for n in range(MAX_GROUP_MEMBERS)]
    # When Alice creates the group
    # Then it is refused
    with pytest.raises(ValidationFailed):
        messaging.create_group(ALICE, "Crowd", others)


def test_get_chat_of_a_non_member_is_not_found(messaging: MessagingService, team: Chat) -> None:
    # Given a group Dave is not in
    # When Dave reads it
    # Then it is not found (its existence is not leaked)
    with pytest.raises(NotFound):
        messaging.get_chat(DAVE, team.chat_id)


def test_get_unknown_chat_is_not_found(messaging: MessagingService) -> None:
    # Given no such chat
    # When Alice reads it
    # Then it is not found
    with pytest.raises(NotFound):
        messaging.get_chat(ALICE, "g_missing")


# ---- adding members --------------------------------------------------------------


def test_member_can_add_members_to_a_group(messaging: MessagingService, team: Chat) -> None:
    # Given a group of Alice, Bob and Carol
    # When Bob adds Dave, and Carol again
    chat = messaging.add_members(BOB, team.chat_id, [DAVE, CAROL])
    # Then Dave is a member and Carol is there once
    assert members_of(chat) == {ALICE, BOB, CAROL, DAVE}
    assert len(chat.members) == 4


def test_added_member_starts_with_nothing_unread(messaging: MessagingService, team: Chat) -> None:
    # Given a group with three messages
    for n in range(3):
        messaging.send(ALICE, team.chat_id, f"hello {n}", f"c{n}")
    # When Dave is added
    chat = messaging.add_members(ALICE, team.chat_id, [DAVE])
    # Then his markers start at the last message: nothing unread, old statuses unaffected
    dave = chat.member(DAVE)
    assert dave is not None
    assert (dave.delivered_seq, dave.read_seq) == (3, 3)
    assert chat.unread_count(DAVE) == 0


def test_adding_only_existing_members_changes_nothing(messaging: MessagingService, team: Chat) -> None:
    # Given a group of Alice, Bob and Carol
    # When Alice adds Bob again
    chat = messaging.add_members(ALICE, team.chat_id, [BOB])
    # Then the chat is unchanged
    assert chat == team


def test_members_cannot_be_added_to_a_direct_chat(messaging: MessagingService) -> None:
    # Given a direct chat
    direct = messaging.open_direct(ALICE, BOB).chat
    # When Alice adds Carol
    # Then it is refused
    with pytest.raises(ValidationFailed):
        messaging.add_members(ALICE, direct.chat_id, [CAROL])


def test_non_member_cannot_add_members(messaging: MessagingService, team: Chat) -> None:
    # Given a group Dave is not in
    # When Dave adds Erin
    # Then the chat is not found for him
    with pytest.raises(NotFound):
        messaging.add_members(DAVE, team.chat_id, [ERIN])


def test_added_member_sees_the_chat_in_their_list(messaging: MessagingService, team: Chat) -> None:
    # Given Dave added to the group
    messaging.add_members(ALICE, team.chat_id, [DAVE])
    # When Dave lists his chats
    page, _ = messaging.list_chats(DAVE, limit=10, cursor=None)
    # Then the group is there
    assert [c.chat_id for c in page.items] == [team.chat_id]


def test_adding_past_the_size_limit_is_refused(messaging: MessagingService, team: Chat) -> None:
    # Given a group of three
    extra = [f"+1415555{2000 + n:04d}" for n in range(MAX_GROUP_MEMBERS - 2)]
    # When 254 more are added (257 in all)
    # Then it is refused
    with pytest.raises(ValidationFailed):
        messaging.add_members(ALICE, team.chat_id, extra)


# ---- removing members ------------------------------------------------------------


def test_creator_may_remove_any_member(messaging: MessagingService, team: Chat) -> None:
    # Given Alice's group
    # When Alice removes Bob
    messaging.remove_member(ALICE, team.chat_id, BOB)
    # Then Bob is no longer a member and no longer sees it
    assert members_of(messaging.get_chat(ALICE, team.chat_id)) == {ALICE, CAROL}
    with pytest.raises(NotFound):
        messaging.get_chat(BOB, team.chat_id)
    assert messaging.list_chats(BOB, limit=10, cursor=None)[0].items == []


def test_member_may_remove_itself(messaging: MessagingService, team: Chat) -> None:
    # Given Bob in Alice's group
    # When Bob removes himself
    messaging.remove_member(BOB, team.chat_id, "(415) 555-0102")
    # Then he is gone
    assert members_of(messaging.get_chat(ALICE, team.chat_id)) == {ALICE, CAROL}


def test_member_may_not_remove_others(messaging: MessagingService, team: Chat) -> None:
    # Given Bob in Alice's group
    # When Bob removes Carol
    # Then it is forbidden, and Carol stays
    with pytest.raises(Forbidden):
        messaging.remove_member(BOB, team.chat_id, CAROL)
    assert CAROL in members_of(messaging.get_chat(ALICE, team.chat_id))


def test_non_member_cannot_remove_anyone(messaging: MessagingService, team: Chat) -> None:
    # Given Dave outside the group
    # When Dave removes Bob
    # Then the chat is not found for him
    with pytest.raises(NotFound):
        messaging.remove_member(DAVE, team.chat_id, BOB)


def test_removing_a_non_member_is_not_found(messaging: MessagingService, team: Chat) -> None:
    # Given Dave outside the group
    # When the creator removes Dave
    # Then Dave is not found in the chat
    with pytest.raises(NotFound):
        messaging.remove_member(ALICE, team.chat_id, DAVE)


def test_members_cannot_be_removed_from_a_direct_chat(messaging: MessagingService) -> None:
    # Given a direct chat Alice created
    direct = messaging.open_direct(ALICE, BOB).chat
    # When Alice removes Bob
    # Then it is refused
    with pytest.raises(ValidationFailed):
        messaging.remove_member(ALICE, direct.chat_id, BOB)


# ---- listing chats ---------------------------------------------------------------


def test_list_chats_is_most_recent_activity_first_across_pages(
    messaging: MessagingService, clock: FakeClock
) -> None:
    # Given Alice in five direct chats, then messages that reorder them
    ids = {}
    for other in (BOB, CAROL, DAVE, ERIN, "+14155550106"):
        ids[other] = messaging.open_direct(ALICE, other).chat.chat_id
        clock.advance(timedelta(seconds=1))
    messaging.send(ALICE, ids[CAROL], "hi Carol", "c1")
    clock.advance(timedelta(seconds=1))
    messaging.send(BOB, ids[BOB], "hi Alice", "c2")
    expected = [ids[BOB], ids[CAROL], ids["+14155550106"], ids[ERIN], ids[DAVE]]
    # When she lists them two at a time
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = messaging.list_chats(ALICE, limit=2, cursor=cursor)
        seen.extend(c.chat_id for c in page.items)
        pages += 1
        if cursor is None:
            break
    # Then she sees each chat once, most recent activity first, in three pages
    assert seen == expected
    assert pages == 3


def test_list_chats_of_someone_without_chats_is_empty(messaging: MessagingService) -> None:
    # Given Dave in no chat
    # When he lists his chats
    page, cursor = messaging.list_chats(DAVE, limit=20, cursor=None)
    # Then the page is empty and final
    assert page.items == []
    assert cursor is None


def test_list_chats_cursor_of_another_user_is_invalid(messaging: MessagingService) -> None:
    # Given Alice has a next-page cursor
    for other in (BOB, CAROL, DAVE):
        messaging.open_direct(ALICE, other)
    _, cursor = messaging.list_chats(ALICE, limit=1, cursor=None)
    assert cursor is not None
    # When Bob uses it
    # Then it is an invalid cursor
    with pytest.raises(InvalidCursor):
        messaging.list_chats(BOB, limit=1, cursor=cursor)


def test_list_chats_rejects_a_tampered_cursor(messaging: MessagingService) -> None:
    # Given a valid cursor with its body changed
    for other in (BOB, CAROL):
        messaging.open_direct(ALICE, other)
    _, cursor = messaging.list_chats(ALICE, limit=1, cursor=None)
    assert cursor is not None
    # When it is used
    # Then it is an invalid cursor
    with pytest.raises(InvalidCursor):
        messaging.list_chats(ALICE, limit=1, cursor="x" + cursor)


def test_group_of_exactly_the_size_limit_is_allowed(messaging: MessagingService) -> None:
    # Given 255 others, making 256 members with the caller
    others = [f"+1415555{2000 + n:04d}" for n in range(MAX_GROUP_MEMBERS - 1)]
    # When Alice creates the group
    chat = messaging.create_group(ALICE, "Crowd", others)
    # Then it holds 256 members
    assert len(chat.members) == MAX_GROUP_MEMBERS
