"""Real time: connections and presence, what each change of a chat tells whom, SMS forwarding.

Pure rules; the adapters store connections and post frames, the functions wire them.

- A user is online while at least one of their connections is open. API Gateway closes a
  WebSocket after 2 hours at most, so a connection is taken as open until
  ``CONNECTION_TTL`` after it was made, even if its ``$disconnect`` was lost.
- A new message goes to every open connection of every member (the sender's too).
- A member with no open connection gets the message by SMS, at most once per chat per
  ``FORWARD_WINDOW``, unless they already read it or opted out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from chatflow.domain.chats import Chat, Member, Message, ReceiptType
from chatflow.domain.sms import segments

CONNECTION_TTL = timedelta(hours=2, minutes=15)
FORWARD_WINDOW = timedelta(minutes=10)
FORWARD_SUFFIX = "… (reply in ChatFlow)"


@dataclass(frozen=True)
class Presence:
    """A user's connections that are still open at some instant, and when they were last seen."""

    phone_number: str
    connections: tuple[str, ...]
    last_seen_at: datetime | None

    @property
    def online(self) -> bool:
        return bool(self.connections)


def open_connections(expiries: Mapping[str, datetime], now: datetime) -> tuple[str, ...]:
    """The connection ids whose expiry is still ahead, in a stable order."""
    return tuple(sorted(cid for cid, expires in expiries.items() if expires > now))


@dataclass(frozen=True)
class StatusChange:
    """A member's delivered or read marker moved: ``message.status`` for the other members."""

    chat_id: str
    by: str
    status: ReceiptType
    up_to_seq: int


def status_changes(old: Chat, new: Chat) -> list[StatusChange]:
    """Marker moves between two versions of a chat; ``read`` covers ``delivered`` up to it.

    Sending a message moves the sender's own markers to it: that is not news to anyone.
    """
    author = new.last_message.sender if new.last_message and new.last_seq != old.last_seq else None
    changes: list[StatusChange] = []
    for member in new.members:
        before = old.member(member.phone_number)
        if before is None or member.phone_number == author:
            continue
        if member.delivered_seq > before.delivered_seq and member.delivered_seq > member.read_seq:
            changes.append(StatusChange(new.chat_id, member.phone_number, "delivered", member.delivered_seq))
        if member.read_seq > before.read_seq:
            changes.append(StatusChange(new.chat_id, member.phone_number, "read", member.read_seq))
    return changes


def membership_audience(old: Chat | None, new: Chat | None) -> tuple[str, ...]:
    """Who gets ``chat.updated``: everyone in or out of the chat when its membership or name changed."""
    if new is None:
        return ()
    new_members = {m.phone_number for m in new.members}
    if old is not None:
        old_members = {m.phone_number for m in old.members}
        if old_members == new_members and old.name == new.name:
            return ()
        return tuple(sorted(new_members | old_members))
    return tuple(sorted(new_members))


def contacts(chats: Iterable[Chat], phone_number: str) -> tuple[str, ...]:
    """Everyone who shares at least one of ``chats`` with ``phone_number`` (not them)."""
    found = {m.phone_number for chat in chats for m in chat.members}
    found.discard(phone_number)
    return tuple(sorted(found))


def members_to_forward(chat: Chat, message: Message, presence: Mapping[str, Presence]) -> list[Member]:
    """Members other than the sender with no open connection who have not read the message yet."""
    chosen: list[Member] = []
    for member in chat.members:
        if member.phone_number == message.sender or member.read_seq >= message.seq:
            continue
        state = presence.get(member.phone_number)
        if state is None or not state.online:
            chosen.append(member)
    return chosen


def sender_label(chat: Chat, sender: str) -> str:
    member = chat.member(sender)
    return member.display_name if member is not None and member.display_name else sender


def forward_text(label: str, text: str) -> str:
    """``"<label>: <text>"`` in one SMS segment, cut with ``FORWARD_SUFFIX`` when longer."""
    full = f"{label}: {text}"
    if segments(full).count == 1:
        return full
    low, high = 0, len(full)
    while low < high:  # the longest prefix that still fits in one segment with the suffix
        middle = (low + high + 1) // 2
        if segments(full[:middle].rstrip() + FORWARD_SUFFIX).count == 1:
            low = middle
        else:
            high = middle - 1
    return full[:low].rstrip() + FORWARD_SUFFIX


def forward_command_id(chat_id: str, phone_number: str, seq: int) -> str:
    """The same message forwarded to the same member is the same command (idempotent)."""
    return f"fwd-{chat_id}-{phone_number.lstrip('+')}-{seq}"
