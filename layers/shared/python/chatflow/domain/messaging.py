"""Use cases of chats and messages."""

from __future__ import annotations

import random
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chatflow.domain.chats import (
    MAX_GROUP_MEMBERS,
    Chat,
    Member,
    Message,
    MessageVia,
    ReceiptType,
    advance_markers,
    clean_group_name,
    clean_text,
    direct_chat_id,
)
from chatflow.domain.clock import Clock
from chatflow.domain.pagination import CursorCodec, Page
from chatflow.domain.phone import normalize_phone
from chatflow.domain.send_limit import SendLimit
from chatflow.errors import (
    AlreadyExists,
    ConcurrentUpdate,
    Conflict,
    FieldProblem,
    Forbidden,
    InvalidCursor,
    InvalidPhoneNumber,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from chatflow.ports import ChatRepository, UserRepository

# Under heavy contention many senders race for the next seq of one chat; each lost
# race costs one re-read. The cap only bounds pathological cases.
MAX_SEND_ATTEMPTS = 60
MAX_MARKER_ATTEMPTS = 20
# A chat whose remembered state was found stale (someone else wrote it) is read before
# each send for this long: a busy chat does not waste a refused write on every message.
STALE_PAUSE = timedelta(seconds=60)
# Chats and senders remembered per execution environment, the least recently used dropped.
REMEMBERED_LIMIT = 1024
# Writes from memory stop for a STALE_PAUSE once MISSES_ALLOWED of the last ATTEMPTS_WATCHED
# were refused as stale: with many environments sharing the chats, memory is seldom
# right, and a refused transaction costs more than the read it saves (write units).
ATTEMPTS_WATCHED = 20
MISSES_ALLOWED = 2


class LastWrites:
    """What this execution environment's sends last stored: each chat as its write left it,
    each sender's send TAT (``MessagingService.send`` writes from them without reading
    first; the write's conditions refuse it when they are stale). Thread-safe."""

    def __init__(self, limit: int = REMEMBERED_LIMIT) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._chats: OrderedDict[str, Chat] = OrderedDict()
        self._tats: OrderedDict[str, int] = OrderedDict()
        self._paused: dict[str, datetime] = {}
        self._outcomes: deque[bool] = deque(maxlen=ATTEMPTS_WATCHED)
        self._off_until: datetime | None = None

    def recall(
        self, chat_id: str, sender: str, *, limited: bool, now: datetime
    ) -> tuple[Chat, int | None] | None:
        """The chat and the sender's TAT as this environment last wrote them; None when either
        is unknown (a limited send needs the TAT), the chat was lately found stale, or too
        many writes from memory were refused lately."""
        with self._lock:
            chat = self._chats.get(chat_id)
            tat = self._tats.get(sender)
            paused_until = self._paused.get(chat_id)
            if (
                chat is None
                or (limited and tat is None)
                or (paused_until is not None and now < paused_until)
                or (self._off_until is not None and now < self._off_until)
            ):
                return None
            return chat, tat if limited else None

    def remember(self, chat: Chat, sender: str, tat: int | None) -> None:
        with self._lock:
            self._chats[chat.chat_id] = chat
            self._chats.move_to_end(chat.chat_id)
            if tat is not None:
                self._tats[sender] = tat
                self._tats.move_to_end(sender)
            for remembered in (self._chats, self._tats):
                while len(remembered) > self._limit:
                    remembered.popitem(last=False)

    def forget(self, chat_id: str) -> None:
        with self._lock:
            self._chats.pop(chat_id, None)

    def written(self) -> None:
        """A write from memory was stored."""
        with self._lock:
            self._outcomes.append(True)

    def stale(self, chat_id: str, now: datetime) -> None:
        """A write from memory was refused: somebody else changed the chat (or the TAT)."""
        with self._lock:
            self._chats.pop(chat_id, None)
            self._paused[chat_id] = now + STALE_PAUSE
            for key in [k for k, until in self._paused.items() if until <= now]:
                del self._paused[key]
            self._outcomes.append(False)
            if self._outcomes.count(False) >= MISSES_ALLOWED:
                self._off_until = now + STALE_PAUSE
                self._outcomes.clear()


@dataclass(frozen=True)
class Sent:
    message: Message
    chat: Chat
    created: bool


@dataclass(frozen=True)
class Opened:
    chat: Chat
    created: bool


def chat_not_found(chat_id: str) -> NotFound:
    return NotFound(f"Chat {chat_id!r} does not exist or you are not a member of it.")


class MessagingService:
    def __init__(
        self,
        *,
        chats: ChatRepository,
        users: UserRepository,
        cursors: CursorCodec,
        clock: Clock,
        sleep: Callable[[float], None],
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        send_limit: SendLimit | None = None,
        last_writes: LastWrites | None = None,
    ) -> None:
        self._chats = chats
        self._send_limit = send_limit
        self._last_writes = last_writes if last_writes is not None else LastWrites()
        self._users = users
        self._cursors = cursors
        self._clock = clock
        self._sleep = sleep
        self._new_id = new_id

    # ---- chats -------------------------------------------------------------------

    def open_direct(self, caller: str, raw_other: str) -> Opened:
        other = self._other_party(caller, raw_other)
        chat_id = direct_chat_id(caller, other)
        existing = self._chats.get_chat(chat_id)
        if existing is not None:
            return Opened(existing, created=False)
        return self._create_direct(caller, other)

    def _other_party(self, caller: str, raw_other: str) -> str:
        other = normalize_phone(raw_other)
        if other == caller:
            raise ValidationFailed(
                "A direct chat needs another person's number, not your own.",
                details=(FieldProblem("members", "must be another person's phone number"),),
            )
        return other

    def _create_direct(self, caller: str, other: str) -> Opened:
        chat_id = direct_chat_id(caller, other)
        now = self._clock()
        chat = Chat(
            chat_id=chat_id,
            type="direct",
            name=None,
            created_by=caller,
            created_at=now,
            last_activity_at=now,
            members=self._new_members([caller, other]),
        )
        try:
            self._chats.create_chat(chat)
        except AlreadyExists:
            # The other person created it at the same moment: theirs is the one chat.
            stored = self._chats.get_chat(chat_id)
            if stored is None:  # pragma: no cover - a chat is never deleted
                raise
            return Opened(stored, created=False)
        return Opened(chat, created=True)

    def create_group(self, caller: str, name: str, raw_members: Sequence[str]) -> Chat:
        others = self._distinct_numbers(raw_members, exclude=caller)
        if len(others) < 2:
            raise ValidationFailed(
                "A group needs at least 2 other members: for one person, create a direct chat.",
                details=(FieldProblem("members", "must list at least 2 other phone numbers"),),
            )
        self._check_size(len(others) + 1)
        now = self._clock()
        chat = Chat(
            chat_id=f"g_{self._new_id()}",
            type="group",
            name=clean_group_name(name),
            created_by=caller,
            created_at=now,
            last_activity_at=now,
            members=self._new_members([caller, *others]),
        )
        self._chats.create_chat(chat)
        return chat

    def get_chat(self, caller: str, chat_id: str) -> Chat:
        chat = self._chats.get_chat(chat_id)
        if chat is None or not chat.is_member(caller):
            raise chat_not_found(chat_id)
        return chat

    def list_chats(self, caller: str, *, limit: int, cursor: str | None) -> tuple[Page[Chat], str | None]:
        scope = f"chats|{caller}"
        page = self._chats.list_inbox(caller, limit=limit, position=self._cursors.decode(scope, cursor))
        found = self._chats.get_chats(page.items)
        # An inbox entry can briefly outlive a membership (removal races the stream);
        # such chats are not the caller's any more and are left out.
        chats = [found[cid] for cid in page.items if cid in found and found[cid].is_member(caller)]
        return Page(chats, page.next_position), self._cursors.encode(scope, page.next_position)

    def add_members(self, caller: str, chat_id: str, raw_members: Sequence[str]) -> Chat:
        chat = self.get_chat(caller, chat_id)
        if chat.type != "group":
            raise ValidationFailed(
                "Members can only be added to group chats: create a group to talk with more people.",
                details=(FieldProblem("chatId", "is a direct chat"),),
            )
        new = [p for p in self._distinct_numbers(raw_members) if not chat.is_member(p)]
        if not new:
            return chat
        self._check_size(len(chat.members) + len(new))
        joined = tuple(
            replace(m, delivered_seq=chat.last_seq, read_seq=chat.last_seq) for m in self._new_members(new)
        )
        return self._chats.add_members(chat, joined)

    def remove_member(self, caller: str, chat_id: str, raw_phone: str) -> None:
        chat = self.get_chat(caller, chat_id)
        target = normalize_phone(raw_phone)
        if chat.type != "group":
            raise ValidationFailed("Members cannot be removed from a direct chat.")
        if not chat.is_member(target):
            raise NotFound(f"{target} is not a member of this chat.")
        if target != caller and caller != chat.created_by:
            raise Forbidden("Only the group's creator can remove other members; you may remove yourself.")
        self._chats.remove_member(chat, target)

    # ---- messages ----------------------------------------------------------------

    def send(
        self,
        caller: str,
        chat_id: str,
        text: str,
        client_message_id: str,
        *,
        fresh: tuple[Chat, int | None] | None = None,
        limited: bool = True,
        via: MessageVia = "app",
    ) -> Sent:
        """Store a message as the chat's next seq.

        ``fresh``: the chat and the caller's send TAT just read (``_read_for_send``), to save a
        read. Without it, a send first tries from what this environment's last send of the
        chat stored (``LastWrites``): no read at all when nobody else wrote since, and when
        somebody did, the write's conditions (the chat's last seq, the sender still a member,
        the TAT) refuse it and the send goes on as below, from a read. ``limited``: whether
        the caller's send limit applies (``RateLimited`` over it); messages that are not
        typed in the app (SMS replies) pass ``False``. The limit is spent in the message's
        own write, so a send that stores nothing (a replay, a lost race) spends nothing.
        ``via`` says how it was written (``sms``: a reply to a forward,
        ``chatflow.domain.sms_replies``)."""
        cleaned = clean_text(text)
        limit = self._send_limit if limited else None
        if fresh is None:
            known = self._last_writes.recall(chat_id, caller, limited=limit is not None, now=self._clock())
            if known is not None:
                try:
                    sent = self._store(caller, known, cleaned, client_message_id, limit, via)
                except ConcurrentUpdate:  # somebody else wrote the chat (or the TAT) since
                    self._last_writes.stale(chat_id, self._clock())
                except AlreadyExists:  # a resend: the original, with the chat as it is now
                    self._last_writes.forget(chat_id)
                    chat, _ = self._read_for_send(caller, chat_id, limited=False)
                    return self._original(caller, chat, client_message_id)
                except RateLimited:  # decided again from a read, as below
                    self._last_writes.forget(chat_id)
                else:
                    self._last_writes.written()
                    return sent
        for attempt in range(MAX_SEND_ATTEMPTS):
            if fresh is not None and attempt == 0:
                chat, stored_tat = fresh
            else:
                chat, stored_tat = self._read_for_send(caller, chat_id, limited=limit is not None)
            try:
                return self._store(caller, (chat, stored_tat), cleaned, client_message_id, limit, via)
            except RateLimited:
                # A retry of a message already stored is answered, never refused: it costs
                # this one read only when the sender is over the limit.
                replayed = self._chats.get_message_by_client_id(caller, client_message_id)
                if replayed is None:
                    raise
                return self._replayed(replayed, chat)
            except AlreadyExists:
                return self._original(caller, chat, client_message_id)
            except ConcurrentUpdate:
                self._sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311 - jitter, not crypto
        raise Conflict("The chat is too busy right now: retry the same request (it is idempotent).")

    def _store(
        self,
        caller: str,
        known: tuple[Chat, int | None],
        text: str,
        client_message_id: str,
        limit: SendLimit | None,
        via: MessageVia,
    ) -> Sent:
        """Write the message as the next seq of ``known``'s chat, spending the limit from its
        TAT; raises ``RateLimited``, ``AlreadyExists`` (the clientMessageId is taken) or
        ``ConcurrentUpdate`` (the chat or the TAT changed since ``known``)."""
        chat, stored_tat = known
        sent_at = self._clock()
        spend = limit.spend(caller, stored_tat, sent_at) if limit is not None else None
        message = Message(
            message_id=f"m_{self._new_id()}",
            chat_id=chat.chat_id,
            seq=chat.last_seq + 1,
            sender=caller,
            text=text,
            client_message_id=client_message_id,
            sent_at=sent_at,
            via=via,
        )
        stored = self._chats.append_message(chat, message, spend=spend)
        self._last_writes.remember(stored, caller, spend.tat if spend is not None else None)
        return Sent(message, stored, created=True)

    def send_direct(self, caller: str, raw_to: str, text: str, client_message_id: str) -> Sent:
        clean_text(text)  # reject bad input before creating a chat for it
        other = self._other_party(caller, raw_to)
        chat_id = direct_chat_id(caller, other)
        # One read gives the chat (if it exists) and the caller's send TAT, as for any send.
        existing, stored_tat = self._chat_and_tat(chat_id, caller, limited=self._send_limit is not None)
        if existing is None:
            if self._send_limit is not None:
                # Over the limit, no chat is created for a message that will not be stored.
                self._send_limit.spend(caller, stored_tat, self._clock())
            existing = self._create_direct(caller, other).chat
        return self.send(caller, chat_id, text, client_message_id, fresh=(existing, stored_tat))

    def list_messages(
        self, caller: str, chat_id: str, *, limit: int, cursor: str | None, after_seq: int | None
    ) -> tuple[Page[Message], Chat, str | None]:
        scope = f"messages|{caller}|{chat_id}|{after_seq}"
        try:
            position = self._cursors.decode(scope, cursor)
        except InvalidCursor:
            self.get_chat(caller, chat_id)  # a chat the caller may not see is a 404 first
            raise
        # The chat (membership) and the page are read at the same time: one round trip less
        chat, page_of_messages = self._chats.chat_with_messages(
            chat_id, limit=limit, position=position, after_seq=after_seq
        )
        if chat is None or not chat.is_member(caller):
            raise chat_not_found(chat_id)
        page = page_of_messages()
        return page, chat, self._cursors.encode(scope, page.next_position)

    def mark(self, caller: str, chat_id: str, receipt: ReceiptType, up_to_seq: int) -> Chat:
        for _ in range(MAX_MARKER_ATTEMPTS):
            chat = self.get_chat(caller, chat_id)
            if up_to_seq > chat.last_seq:
                raise ValidationFailed(
                    f"upToSeq {up_to_seq} is past the chat's last message (seq {chat.last_seq}).",
                    details=(FieldProblem("upToSeq", f"must be at most {chat.last_seq}"),),
                )
            member = chat.member(caller)
            assert member is not None  # get_chat checked membership
            update = advance_markers(member, receipt, up_to_seq)
            if update is None:
                return chat
            try:
                self._chats.update_markers(chat, caller, update.delivered_seq, update.read_seq)
            except ConcurrentUpdate:
                continue
            return chat
        raise Conflict("The chat is too busy right now: retry the receipt.")

    # ---- helpers -----------------------------------------------------------------

    def _read_for_send(self, caller: str, chat_id: str, *, limited: bool) -> tuple[Chat, int | None]:
        """The chat (the caller must be a member) and, when limited, the caller's send TAT."""
        chat, stored_tat = self._chat_and_tat(chat_id, caller, limited=limited)
        if chat is None or not chat.is_member(caller):
            raise chat_not_found(chat_id)
        return chat, stored_tat

    def _chat_and_tat(self, chat_id: str, caller: str, *, limited: bool) -> tuple[Chat | None, int | None]:
        """One read either way: with the limit, the chat and the caller's TAT together."""
        if limited:
            return self._chats.chat_for_send(chat_id, caller)
        return self._chats.get_chat(chat_id), None

    def _original(self, caller: str, chat: Chat, client_message_id: str) -> Sent:
        original = self._chats.get_message_by_client_id(caller, client_message_id)
        if original is None:  # pragma: no cover - the record is written with the message
            raise Conflict("This clientMessageId is being stored right now: retry in a moment.")
        return self._replayed(original, chat)

    def _replayed(self, original: Message, chat: Chat) -> Sent:
        if original.chat_id != chat.chat_id:
            raise Conflict(
                "You already used this clientMessageId for a message in another chat: "
                "use a new id for each new message."
            )
        return Sent(original, chat, created=False)

    def _new_members(self, phones: Sequence[str]) -> tuple[Member, ...]:
        names = self._users.display_names(phones)
        now = self._clock()
        return tuple(Member(phone_number=p, display_name=names.get(p), joined_at=now) for p in phones)

    @staticmethod
    def _distinct_numbers(raw_members: Sequence[str], exclude: str | None = None) -> list[str]:
        seen: dict[str, None] = {}
        problems: list[FieldProblem] = []
        for index, raw in enumerate(raw_members):
            try:
                phone = normalize_phone(raw)
            except ValidationFailed as exc:
                problems.append(FieldProblem(f"members[{index}]", exc.message))
                continue
            if phone != exclude:
                seen[phone] = None
        if problems:
            raise InvalidPhoneNumber(
                "Some members are not valid phone numbers: use international format, e.g. +14155550101.",
                details=tuple(problems),
            )
        return list(seen)

    @staticmethod
    def _check_size(total: int) -> None:
        if total > MAX_GROUP_MEMBERS:
            raise ValidationFailed(
                f"A group can have at most {MAX_GROUP_MEMBERS} members; this would make {total}.",
                details=(FieldProblem("members", f"too many: at most {MAX_GROUP_MEMBERS} in all"),),
            )
