"""In-memory fakes of the ports, with the conditional semantics of the DynamoDB adapters.

Each fake keeps its state in plain dicts behind one lock, so tests may call it from
several threads. Where the adapters in ``chatflow.adapters`` use a condition
expression, the fake checks the same condition and raises the same exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chatflow.commands import SendSmsCommand
from chatflow.domain.campaign_control import ControlState
from chatflow.domain.campaigns import (
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    Estimate,
    Progress,
    RecipientStatus,
    Upload,
)
from chatflow.domain.chats import MAX_GROUP_MEMBERS, Chat, Member, Message
from chatflow.domain.clock import to_iso
from chatflow.domain.otp import Verification, seconds_until_allowed, sends_in_window
from chatflow.domain.pagination import Page, Position
from chatflow.domain.realtime import ForwardJob, Presence, open_connections
from chatflow.domain.search import IndexHits, MessageRef
from chatflow.domain.send_limit import RateSpend
from chatflow.domain.sessions import Session
from chatflow.domain.sms_replies import ForwardRoute
from chatflow.domain.users import ProfileChanges, User
from chatflow.errors import AlreadyExists, ConcurrentUpdate, InvalidCursor, RateLimited, UsernameTaken

EPOCH = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

_PROFILE_FIELDS = frozenset({"displayName", "username", "email", "avatarUrl"})


class FakeClock:
    """A clock that stands still unless told to move.

    ``step`` makes every reading advance the time by that much afterwards, so that
    successive events get distinct, increasing timestamps (as real sends would).
    """

    def __init__(self, start: datetime = EPOCH, *, step: timedelta = timedelta(0)) -> None:
        self._now = start
        self._step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = self._now
            self._now = now + self._step
            return now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


class FakeUserRepository:
    """Users by phone number; usernames are unique claims, as in the users table."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.usernames: dict[str, str] = {}

    def get(self, phone_number: str) -> User | None:
        with self._lock:
            return self.users.get(phone_number)

    def create_if_absent(self, user: User) -> User:
        with self._lock:
            existing = self.users.get(user.phone_number)
            if existing is not None:
                return existing
            # The adapter stores only the identity fields on creation.
            stored = User(user_id=user.user_id, phone_number=user.phone_number, created_at=user.created_at)
            self.users[user.phone_number] = stored
            return stored

    def update_profile(self, user: User, changes: ProfileChanges) -> User:
        with self._lock:
            current = self.users.get(user.phone_number)
            if current is None:
                raise ConcurrentUpdate("a conditional write found the item changed")
            if changes.username_changes:
                new_name = changes.values.get("username")
                holder = self.usernames.get(new_name) if new_name is not None else None
                if holder is not None and holder != user.phone_number:
                    raise UsernameTaken(f"The username {new_name!r} is taken: choose another one.")
                if user.username is not None and self.usernames.get(user.username) == user.phone_number:
                    del self.usernames[user.username]
                if new_name is not None:
                    self.usernames[new_name] = user.phone_number
            unknown = set(changes.values) - set(_PROFILE_FIELDS)
            if unknown:  # the adapter has no attribute for them either
                raise KeyError(sorted(unknown)[0])
            values = changes.values
            updated = replace(
                current,
                display_name=values.get("displayName", current.display_name),
                username=values.get("username", current.username),
                email=values.get("email", current.email),
                avatar_url=values.get("avatarUrl", current.avatar_url),
            )
            self.users[user.phone_number] = updated
            return updated

    def display_names(self, phone_numbers: Sequence[str]) -> dict[str, str | None]:
        with self._lock:
            return {p: self.users[p].display_name for p in dict.fromkeys(phone_numbers) if p in self.users}


class FakeSessionRepository:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.sessions: dict[str, Session] = {}

    def put(self, session: Session) -> None:
        with self._lock:
            self.sessions[session.token_hash] = session

    def get(self, token_hash: str) -> Session | None:
        with self._lock:
            return self.sessions.get(token_hash)

    def delete(self, token_hash: str) -> None:
        with self._lock:
            self.sessions.pop(token_hash, None)


class FakeVerificationRepository:
    """Pending codes and each number's send times, with the adapter's conditions:
    the hourly limit, and ``ConcurrentUpdate`` when counting or deleting a code that is gone."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.pending: dict[str, Verification] = {}
        self.sent_at: dict[str, list[datetime]] = {}

    def start(self, verification: Verification, *, now: datetime, per_hour: int) -> None:
        phone = verification.phone_number
        with self._lock:
            recent = sends_in_window(self.sent_at.get(phone, []), now)
            wait = seconds_until_allowed(recent, now, per_hour)
            if wait:
                raise RateLimited(f"{per_hour} codes in the last hour", retry_after_seconds=wait)
            self.sent_at[phone] = [*recent, now]
            self.pending[phone] = replace(verification, failed_tries=0)

    def get(self, phone_number: str) -> Verification | None:
        with self._lock:
            return self.pending.get(phone_number)

    def record_failure(self, phone_number: str) -> int:
        with self._lock:
            current = self.pending.get(phone_number)
            if current is None:
                raise ConcurrentUpdate("a conditional write found the item changed")
            self.pending[phone_number] = replace(current, failed_tries=current.failed_tries + 1)
            return current.failed_tries + 1

    def delete(self, phone_number: str) -> None:
        with self._lock:
            if self.pending.pop(phone_number, None) is None:
                raise ConcurrentUpdate("a conditional write found the item changed")


class FakeSmsCommandSender:
    """Records every SendSms command (its JSON document, as the queue would get it) instead of
    queueing it, each call's as one batch; ``fail`` makes the next call raise it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batches: list[list[dict[str, Any]]] = []
        self.fail: Exception | None = None

    def send(self, command: SendSmsCommand) -> None:
        self.send_all([command])

    def send_all(self, commands: Sequence[SendSmsCommand]) -> None:
        with self._lock:
            if self.fail is not None:
                error, self.fail = self.fail, None
                raise error
            self.batches.append([command.document() for command in commands])

    @property
    def commands(self) -> list[dict[str, Any]]:
        with self._lock:
            return [command for batch in self.batches for command in batch]


def _sorted_members(members: Sequence[Member]) -> tuple[Member, ...]:
    """Members in the order the adapter reads them back: by join time, then number."""
    return tuple(sorted(members, key=lambda m: (m.joined_at, m.phone_number)))


class FakeChatRepository:
    """Chats, messages, idempotency records and inboxes in memory.

    Inbox activity: the real system moves the *other* members' inbox entries
    asynchronously, from the chats table's stream (``project_inbox``). This fake keeps
    it simple and moves every member's entry inside ``append_message``, as if the
    stream had been processed at once.

    Pages: a ``next_position`` is returned only when more items remain (DynamoDB may
    also return one on an exactly full last page; the domain handles both).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.chats: dict[str, Chat] = {}
        self.messages: dict[str, dict[int, Message]] = {}
        self.client_ids: dict[tuple[str, str], Message] = {}
        self.inbox: dict[str, dict[str, datetime]] = {}
        self.renames: list[tuple[str, str | None]] = []
        # Each sender's send TAT (``chatflow.domain.send_limit``).
        self.send_tats: dict[str, int] = {}
        # Calls of get_messages (one BatchGetItem each in the adapter).
        self.message_reads = 0

    # ---- chats -------------------------------------------------------------------

    def get_chat(self, chat_id: str) -> Chat | None:
        with self._lock:
            return self.chats.get(chat_id)

    def chat_for_send(self, chat_id: str, sender: str) -> tuple[Chat | None, int | None]:
        with self._lock:
            return self.chats.get(chat_id), self.send_tats.get(sender)

    def get_chats(self, chat_ids: Sequence[str]) -> dict[str, Chat]:
        with self._lock:
            return {cid: self.chats[cid] for cid in dict.fromkeys(chat_ids) if cid in self.chats}

    def create_chat(self, chat: Chat) -> None:
        with self._lock:
            if chat.chat_id in self.chats:
                raise AlreadyExists(f"chat {chat.chat_id} exists")
            self.chats[chat.chat_id] = chat.with_members(_sorted_members(chat.members))
            self.messages[chat.chat_id] = {}
            for member in chat.members:
                self._touch(member.phone_number, chat.chat_id, chat.last_activity_at, force=True)

    def add_members(self, chat: Chat, members: Sequence[Member]) -> Chat:
        with self._lock:
            stored = self.chats.get(chat.chat_id)
            if stored is None or len(stored.members) > MAX_GROUP_MEMBERS - len(members):
                raise ConcurrentUpdate("a conditional write found the item changed")
            new = [m for m in members if not stored.is_member(m.phone_number)]
            updated = stored.with_members(_sorted_members([*stored.members, *new]))
            self.chats[chat.chat_id] = updated
            for member in members:
                self._touch(member.phone_number, chat.chat_id, updated.last_activity_at, force=True)
            return updated

    def remove_member(self, chat: Chat, phone_number: str) -> None:
        with self._lock:
            stored = self.chats.get(chat.chat_id)
            if stored is not None:
                remaining = tuple(m for m in stored.members if m.phone_number != phone_number)
                self.chats[chat.chat_id] = stored.with_members(remaining)
            self.inbox.get(phone_number, {}).pop(chat.chat_id, None)

    # ---- messages ----------------------------------------------------------------

    def append_message(self, chat: Chat, message: Message, *, spend: RateSpend | None = None) -> Chat:
        with self._lock:
            # The adapter's transaction reports the idempotency record's failure first.
            if (message.sender, message.client_message_id) in self.client_ids:
                raise AlreadyExists("clientMessageId already used")
            stored = self.chats.get(chat.chat_id)
            if (
                stored is None
                or stored.last_seq != chat.last_seq
                or not stored.is_member(message.sender)
                or message.seq in self.messages.get(chat.chat_id, {})
                or (spend is not None and self.send_tats.get(spend.sender) != spend.previous)
            ):
                raise ConcurrentUpdate("another message took this seq")
            if spend is not None:
                self.send_tats[spend.sender] = spend.tat
            members = tuple(
                replace(m, delivered_seq=message.seq, read_seq=message.seq)
                if m.phone_number == message.sender
                else m
                for m in stored.members
            )
            updated = replace(
                stored,
                members=members,
                last_seq=message.seq,
                last_activity_at=message.sent_at,
                last_message=message,
            )
            self.chats[chat.chat_id] = updated
            self.messages.setdefault(chat.chat_id, {})[message.seq] = message
            self.client_ids[(message.sender, message.client_message_id)] = message
            for member in members:
                self._touch(member.phone_number, chat.chat_id, message.sent_at)
            return updated

    def get_message_by_client_id(self, sender: str, client_message_id: str) -> Message | None:
        with self._lock:
            return self.client_ids.get((sender, client_message_id))

    def chat_with_messages(
        self, chat_id: str, *, limit: int, position: Position | None, after_seq: int | None
    ) -> tuple[Chat | None, Callable[[], Page[Message]]]:
        return self.get_chat(chat_id), lambda: self.list_messages(
            chat_id, limit=limit, position=position, after_seq=after_seq
        )

    def list_messages(
        self, chat_id: str, *, limit: int, position: Position | None, after_seq: int | None
    ) -> Page[Message]:
        start: int | None = None
        if position is not None:
            seq = position.get("seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise InvalidCursor("The cursor is not valid for this list: omit it to start again.")
            start = seq
        with self._lock:
            stored = self.messages.get(chat_id, {})
            low = (after_seq or 0) + 1
            oldest_first = after_seq is not None
            seqs = sorted((s for s in stored if s >= low), reverse=not oldest_first)
            if start is not None:
                seqs = [s for s in seqs if (s > start if oldest_first else s < start)]
            chosen = seqs[:limit]
            items = [stored[s] for s in chosen]
        more = len(seqs) > limit
        return Page(items, {"seq": chosen[-1]} if more else None)

    def list_inbox(self, phone_number: str, *, limit: int, position: Position | None) -> Page[str]:
        boundary: str | None = None
        if position is not None:
            at, chat_id = position.get("at"), position.get("chat")
            if not isinstance(at, str) or not isinstance(chat_id, str):
                raise InvalidCursor("The cursor is not valid for this list: omit it to start again.")
            boundary = f"{at}#{chat_id}"
        with self._lock:
            # The ByActivity index sorts on "<lastActivityAt>#<chatId>" as text, descending.
            keys = sorted(
                (f"{to_iso(activity)}#{cid}" for cid, activity in self.inbox.get(phone_number, {}).items()),
                reverse=True,
            )
        if boundary is not None:
            keys = [k for k in keys if k < boundary]
        chosen = keys[:limit]
        next_position = None
        if len(keys) > limit:
            at, _, chat_id = chosen[-1].rpartition("#")
            next_position = {"at": at, "chat": chat_id}
        return Page([k.rpartition("#")[2] for k in chosen], next_position)

    def update_markers(self, chat: Chat, phone_number: str, delivered_seq: int, read_seq: int) -> None:
        with self._lock:
            expected = chat.member(phone_number)
            stored_chat = self.chats.get(chat.chat_id)
            current = stored_chat.member(phone_number) if stored_chat else None
            if (
                stored_chat is None
                or expected is None
                or current is None
                or (current.delivered_seq, current.read_seq) != (expected.delivered_seq, expected.read_seq)
            ):
                raise ConcurrentUpdate("a conditional write found the item changed")
            members = tuple(
                replace(m, delivered_seq=delivered_seq, read_seq=read_seq)
                if m.phone_number == phone_number
                else m
                for m in stored_chat.members
            )
            self.chats[chat.chat_id] = stored_chat.with_members(members)

    def rename_member(self, phone_number: str, display_name: str | None) -> None:
        with self._lock:
            self.renames.append((phone_number, display_name))
            for chat_id in list(self.inbox.get(phone_number, {})):
                stored = self.chats.get(chat_id)
                if stored is None or not stored.is_member(phone_number):
                    continue
                members = tuple(
                    replace(m, display_name=display_name) if m.phone_number == phone_number else m
                    for m in stored.members
                )
                self.chats[chat_id] = stored.with_members(members)

    def get_messages(self, keys: Sequence[tuple[str, int]]) -> list[Message]:
        with self._lock:
            self.message_reads += 1
            return [
                self.messages[cid][seq]
                for cid, seq in dict.fromkeys(keys)
                if seq in self.messages.get(cid, {})
            ]

    def inbox_chat_ids(self, phone_number: str) -> list[str]:
        with self._lock:
            return list(self.inbox.get(phone_number, {}))

    # ---- helpers -----------------------------------------------------------------

    def _touch(self, phone: str, chat_id: str, activity: datetime, *, force: bool = False) -> None:
        """Move an inbox entry forward (never back), like ``project_inbox``; ``force`` puts it."""
        entries = self.inbox.setdefault(phone, {})
        current = entries.get(chat_id)
        if force or current is None or current < activity:
            entries[chat_id] = activity


class FakeSearchIndex:
    """The search table in memory: per chat, the set of ``(word, message)`` entries.

    ``find`` has the adapter's semantics: every entry whose word starts with the prefix,
    a message once per such word, and ``complete`` False past ``max_entries``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: dict[str, set[tuple[str, MessageRef]]] = {}

    def index(self, messages: Mapping[MessageRef, Sequence[str]]) -> None:
        with self._lock:
            for ref, words in messages.items():
                self.entries.setdefault(ref.chat_id, set()).update((w, ref) for w in words)

    def find(self, chat_ids: Sequence[str], prefix: str, *, max_entries: int) -> IndexHits:
        with self._lock:
            refs = [
                ref
                for cid in dict.fromkeys(chat_ids)
                for word, ref in self.entries.get(cid, set())
                if word.startswith(prefix)
            ]
        if len(refs) > max_entries:
            return IndexHits(tuple(refs[:max_entries]), complete=False)
        return IndexHits(tuple(refs), complete=True)


# ---- real time ------------------------------------------------------------------------------


class FakeConnectionRepository:
    """Connections and presence: a connection is open until its expiry, as in the adapter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owners: dict[str, str] = {}  # connection id → phone number (the CONN# items)
        self.expiries: dict[str, dict[str, datetime]] = {}  # phone → connection id → expiry
        self.last_seen: dict[str, datetime] = {}

    def add(self, phone_number: str, connection_id: str, *, now: datetime, expires_at: datetime) -> None:
        with self._lock:
            self.owners[connection_id] = phone_number
            entries = self.expiries.setdefault(phone_number, {})
            entries[connection_id] = expires_at
            for expired in [cid for cid, end in entries.items() if end <= now]:
                del entries[expired]

    def remove(self, connection_id: str, *, now: datetime) -> str | None:
        with self._lock:
            phone = self.owners.pop(connection_id, None)
        if phone is not None:
            self.forget(phone, connection_id, now=now)
        return phone

    def forget(self, phone_number: str, connection_id: str, *, now: datetime) -> None:
        with self._lock:
            entries = self.expiries.get(phone_number, {})
            if connection_id in entries:  # the adapter's condition: attribute_exists(connections.#c)
                del entries[connection_id]
                self.last_seen[phone_number] = now

    def presence(self, phone_numbers: Sequence[str], *, now: datetime) -> dict[str, Presence]:
        with self._lock:
            return {
                phone: Presence(
                    phone, open_connections(self.expiries.get(phone, {}), now), self.last_seen.get(phone)
                )
                for phone in phone_numbers
            }


class FakeNotifier:
    """Records every posted frame; connections named ``gone`` answer as API Gateway's 410 does."""

    def __init__(self, *, gone: set[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.gone = set(gone or ())
        self.posted: list[tuple[str, dict[str, Any]]] = []
        self.closed: list[str] = []

    def post(self, frames: Sequence[tuple[str, Mapping[str, Any]]]) -> set[str]:
        with self._lock:
            self.posted.extend((cid, dict(frame)) for cid, frame in frames if cid not in self.gone)
            return {cid for cid, _ in frames if cid in self.gone}

    def disconnect(self, connection_id: str) -> None:
        with self._lock:
            self.closed.append(connection_id)

    def frames_to(self, connection_id: str) -> list[dict[str, Any]]:
        return [frame for cid, frame in self.posted if cid == connection_id]


class FakeReplyRoutes:
    """Per number, the route of its most recently sent forward (``DynamoReplyRoutes``' rule)."""

    def __init__(self) -> None:
        self.routes: dict[str, ForwardRoute] = {}
        self.expiries: dict[str, datetime] = {}

    def record(self, route: ForwardRoute, *, expires_at: datetime) -> bool:
        kept = self.routes.get(route.phone_number)
        if kept is not None and kept.sent_at >= route.sent_at:
            return False
        self.routes[route.phone_number] = route
        self.expiries[route.phone_number] = expires_at
        return True

    def latest(self, phone_number: str) -> ForwardRoute | None:
        return self.routes.get(phone_number)


class FakeForwardLimiter:
    """One wait per chat and member per window (the adapter's conditional put), owned by the
    wait's first seq; ``sent`` marks it for good, ``release`` gives an unsent one back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.until: dict[tuple[str, str], datetime] = {}
        self.seq: dict[tuple[str, str], int] = {}
        self.sent: set[tuple[str, str]] = set()
        self.released: list[tuple[str, str]] = []

    def known_taken(self, chat_id: str, phone_number: str, *, now: datetime) -> bool:
        with self._lock:
            until = self.until.get((chat_id, phone_number))
            return until is not None and until > now

    def acquire(
        self, chat_id: str, phone_number: str, *, now: datetime, window: timedelta, seq: int, wait: timedelta
    ) -> bool:
        with self._lock:
            key = (chat_id, phone_number)
            until = self.until.get(key)
            if until is not None and until > now:  # attribute_not_exists(PK) OR until <= :now
                return False
            self.until[key], self.seq[key] = now + window, seq
            self.sent.discard(key)
            return True

    def mark_sent(self, chat_id: str, phone_number: str, *, seq: int) -> bool:
        with self._lock:
            key = (chat_id, phone_number)
            if self.seq.get(key) != seq:
                return False
            self.sent.add(key)
            return True

    def release(self, chat_id: str, phone_number: str, *, seq: int) -> None:
        with self._lock:
            key = (chat_id, phone_number)
            self.released.append(key)
            if self.seq.get(key) == seq and key not in self.sent:
                self.until.pop(key, None)
                self.seq.pop(key, None)


class FakeForwardScheduler:
    """Records the waits the fan-out starts (``(job, delay_seconds)``); ``fail`` makes the next
    call raise it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.scheduled: list[tuple[ForwardJob, int]] = []
        self.fail: Exception | None = None

    def schedule(self, jobs: Sequence[ForwardJob], *, delay_seconds: int) -> None:
        with self._lock:
            if self.fail is not None:
                error, self.fail = self.fail, None
                raise error
            self.scheduled.extend((job, delay_seconds) for job in jobs)


# ---- campaigns ------------------------------------------------------------------------------


class FakeCampaignRepository:
    """Campaigns, uploads and recipients, with the adapter's fenced load: one lease per campaign,
    taken when free, run out, or presented (``holding``); saves only under the lease's token."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.campaigns: dict[str, Campaign] = {}
        self.uploads: dict[tuple[str, str], Upload] = {}
        self.recipients: dict[tuple[str, str], CampaignRecipient] = {}
        self.leases: dict[str, tuple[str, str, datetime]] = {}  # campaign → (upload, token, until)

    def create(self, campaign: Campaign) -> None:
        with self._lock:
            self.campaigns[campaign.campaign_id] = campaign

    def get(self, campaign_id: str) -> Campaign | None:
        with self._lock:
            return self.campaigns.get(campaign_id)

    def list_campaigns(self, *, limit: int, position: dict[str, Any] | None) -> Page[Campaign]:
        with self._lock:
            ordered = sorted(
                self.campaigns.values(), key=lambda c: (to_iso(c.created_at), c.campaign_id), reverse=True
            )
        keys = [f"{to_iso(c.created_at)}#{c.campaign_id}" for c in ordered]
        start = keys.index(str(position["sk"])) + 1 if position else 0
        items = ordered[start : start + limit]
        more = start + limit < len(ordered)
        return Page(items, {"sk": keys[start + limit - 1]} if more else None)

    def create_upload(self, upload: Upload) -> None:
        with self._lock:
            self.uploads[(upload.campaign_id, upload.upload_id)] = upload

    def get_upload(self, campaign_id: str, upload_id: str) -> Upload | None:
        with self._lock:
            return self.uploads.get((campaign_id, upload_id))

    def claim_upload(
        self, upload: Upload, *, token: str, holding: str | None, now: datetime, lease_until: datetime
    ) -> Upload | None:
        with self._lock:
            campaign = self.campaigns.get(upload.campaign_id)
            lease = self.leases.get(upload.campaign_id)
            free = lease is None or lease[2] < now or (holding is not None and lease[1] == holding)
            stored = self.uploads.get((upload.campaign_id, upload.upload_id))
            startable = stored is None or stored.status in ("pending", "processing")
            if campaign is None or not free or not startable:
                return None
            self.leases[upload.campaign_id] = (upload.upload_id, token, lease_until)
            self.campaigns[upload.campaign_id] = replace(campaign, status="sending")
            started = replace(stored or upload, status="processing")
            self.uploads[(upload.campaign_id, upload.upload_id)] = started
            return started

    def existing(self, campaign_id: str, iccids: Sequence[str]) -> dict[str, CampaignRecipient]:
        with self._lock:
            return {
                i: self.recipients[(campaign_id, i)] for i in iccids if (campaign_id, i) in self.recipients
            }

    def put_recipients(self, recipients: Sequence[CampaignRecipient]) -> None:
        with self._lock:
            for recipient in recipients:
                self.recipients[(recipient.campaign_id, recipient.iccid)] = recipient

    def _holds(self, upload: Upload, token: str) -> bool:
        lease = self.leases.get(upload.campaign_id)
        return lease is not None and lease[1] == token

    def _count(self, campaign_id: str, **added: int) -> None:
        campaign = self.campaigns[campaign_id]
        counts = replace(campaign.counts, **{k: getattr(campaign.counts, k) + n for k, n in added.items()})
        self.campaigns[campaign_id] = replace(campaign, counts=counts)

    def save_progress(
        self,
        upload: Upload,
        *,
        token: str,
        added: int,
        lease_until: datetime,
        skipped: int = 0,
        estimate: Estimate | None = None,
    ) -> bool:
        with self._lock:
            if not self._holds(upload, token):  # ConditionExpression: loadingToken = :token
                return False
            self.uploads[(upload.campaign_id, upload.upload_id)] = upload
            self._count(upload.campaign_id, total=added + skipped, queued=added, skipped=skipped)
            if estimate is not None:
                campaign = self.campaigns[upload.campaign_id]
                self.campaigns[upload.campaign_id] = replace(
                    campaign, estimate=campaign.estimate.plus(estimate)
                )
            self.leases[upload.campaign_id] = (upload.upload_id, token, lease_until)
            return True

    def set_control(self, campaign_id: str, state: ControlState, *, now: datetime) -> Campaign | None:
        with self._lock:
            campaign = self.campaigns.get(campaign_id)
            if campaign is None:
                return None
            completed = campaign.status == "completed" and campaign.control != "paused"
            allowed = {
                "paused": campaign.control == "none" and not completed,
                "none": campaign.control == "paused",
                "cancelled": campaign.control != "cancelled" and not completed,
            }[state]
            if not allowed:
                return None
            changed = replace(campaign, control=state, paused_at=now if state == "paused" else None)
            self.campaigns[campaign_id] = changed
            return changed

    def finish_upload(self, upload: Upload, *, token: str, added: int) -> bool:
        with self._lock:
            if not self._holds(upload, token):
                return False
            self.uploads[(upload.campaign_id, upload.upload_id)] = upload
            self._count(upload.campaign_id, total=added, queued=added)
            del self.leases[upload.campaign_id]
            campaign = self.campaigns[upload.campaign_id]
            if campaign.status == "sending":
                counts = campaign.counts
                settled: CampaignStatus = (
                    "draft" if counts.total == 0 else "completed" if counts.queued == 0 else "sending"
                )
                self.campaigns[upload.campaign_id] = replace(campaign, status=settled)
            return True

    def list_recipients(
        self, campaign_id: str, *, status: RecipientStatus | None, limit: int, position: dict[str, Any] | None
    ) -> Page[CampaignRecipient]:
        with self._lock:
            found = sorted(
                (r for (c, _), r in self.recipients.items() if c == campaign_id),
                key=lambda r: r.iccid,
            )
        after = str(position["iccid"]) if position else ""
        chosen = [r for r in found if r.iccid > after and (status is None or r.status == status)]
        items = chosen[:limit]
        return Page(items, {"iccid": items[-1].iccid} if len(chosen) > limit else None)

    def apply(self, progress: Progress) -> bool:
        with self._lock:
            recipient = self.recipients.get((progress.campaign_id, progress.iccid))
            if recipient is None or recipient.status not in progress.from_statuses:
                return False
            self.recipients[(progress.campaign_id, progress.iccid)] = replace(
                recipient, status=progress.to, last_error=progress.error, updated_at=progress.at
            )
            self._count(progress.campaign_id, **{recipient.status: -1, progress.to: 1})
            return True


class FakeRecipientFiles:
    """Uploaded objects in memory, streamed in ``chunk_size`` pieces as the S3 adapter does."""

    def __init__(self, *, chunk_size: int = 64) -> None:
        self.objects: dict[str, bytes] = {}
        self.chunk_size = chunk_size

    def chunks(self, key: str, *, start: int = 0) -> Iterator[bytes]:
        data = self.objects[key]
        for offset in range(start, len(data), self.chunk_size):
            yield data[offset : offset + self.chunk_size]

    def upload_url(self, key: str, *, expires_in: int) -> str:
        return f"https://uploads.example/{key}?expires={expires_in}"


class FakeOperators:
    def __init__(self, *operators: str) -> None:
        self.operators = set(operators)

    def is_operator(self, phone_number: str) -> bool:
        return phone_number in self.operators
