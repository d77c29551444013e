"""Real time: connections and presence, what each change of a chat tells whom, SMS forwarding.

Pure rules; the adapters store connections and post frames, the functions wire them.

- A user is online while at least one of their connections is open. API Gateway closes a
  WebSocket after 2 hours at most, so a connection is taken as open until
  ``CONNECTION_TTL`` after it was made, even if its ``$disconnect`` was lost.
- A new message goes to every open connection of every member (the sender's too).
- A member with no open connection gets what is still unread ``ForwardAfterSeconds`` later
  by SMS (a *wait*: a read cancels it; a burst goes out as one digest), at most once per
  chat per ``FORWARD_WINDOW``, unless they opted out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chatflow.domain.chats import Chat, Member, Message, ReceiptType
from chatflow.domain.sms import segments

CONNECTION_TTL = timedelta(hours=2, minutes=15)
FORWARD_WINDOW = timedelta(minutes=10)
FORWARD_SUFFIX = "… (reply in ChatFlow)"
# The newest unread messages a digest reads (one segment shows a few of them at most).
DIGEST_MESSAGES = 10
# The fewest characters of each message's text a digest that lists them keeps.
DIGEST_MIN_TEXT = 5


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
    return _cut_to_segment(f"{label}: {text}")


def _fits(text: str) -> bool:
    return segments(text).count == 1


def _cut_to_segment(full: str) -> str:
    """``full`` if it fits one segment, else its longest prefix that fits with ``FORWARD_SUFFIX``."""
    if _fits(full):
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
    """One wait's forward to one member is one command, named by the wait's first ``seq``:
    a job delivered twice queues the same command, which the gateway sends once."""
    return f"fwd-{chat_id}-{phone_number.lstrip('+')}-{seq}"


@dataclass(frozen=True)
class ForwardJob:
    """A wait: ``phone_number`` was offline when message ``from_seq`` of ``chat_id`` came;
    when the wait is over, what they have still not read from it on is forwarded."""

    chat_id: str
    phone_number: str
    from_seq: int


def unread_range(chat: Chat, job: ForwardJob) -> range:
    """The seqs a wait forwards: from its first message (or after the member's read marker,
    if further) to the chat's last. Empty when the member read them all (or left)."""
    member = chat.member(job.phone_number)
    if member is None:
        return range(0)
    return range(max(job.from_seq, member.read_seq + 1), chat.last_seq + 1)


def digest_text(chat: Chat, messages: Sequence[Message], count: int) -> str:
    """One SMS segment for the ``count`` unread messages of a wait; ``messages`` are the
    newest of them (``DIGEST_MESSAGES`` at most), oldest first.

    - one message: ``"Ana: see you at 8"`` (as a single forward always was);
    - a group: ``"3 new messages in Trip: Ana: see you at 8 / Ben: ok / Ana: 8:30?"``;
    - a direct chat (or a group where one member wrote them all): ``"3 new messages
      from Ana: see you at 8 / ok / 8:30?"``.

    Too long for one segment, and cut as §3 cuts a forward (ending with ``FORWARD_SUFFIX``,
    which makes it UCS-2: 70 characters): every text is cut to the same length, so each
    sender stays named, while that leaves ``DIGEST_MIN_TEXT`` characters of each; else the
    senders are listed and the newest message follows, cut to fit.
    """
    if not messages:
        raise ValueError("a digest needs at least one message")
    labels = [sender_label(chat, m.sender) for m in messages]
    if count == 1 and len(messages) == 1:
        return forward_text(labels[0], messages[0].text)
    senders = list(dict.fromkeys(labels))
    header = f"{count} new messages"
    if len(senders) == 1:
        header += f" from {senders[0]}"
        parts = [("", m.text) for m in messages]
    else:
        parts = [(f"{label}: ", m.text) for label, m in zip(labels, messages, strict=True)]
    if chat.type == "group" and chat.name:
        header += f" in {chat.name}"
    if count > len(messages):  # older unread messages are not shown: say so
        header += " (latest)"

    def render(cap: int | None) -> str:
        if cap is None:
            return f"{header}: " + " / ".join(label + text for label, text in parts)
        shown = []
        for i, (label, text) in enumerate(parts):
            if len(text) > cap:
                text = text[:cap].rstrip() + ("" if i == len(parts) - 1 else "…")
            shown.append(label + text)
        return f"{header}: " + " / ".join(shown) + FORWARD_SUFFIX

    full = render(None)
    if _fits(full):
        return full
    low, high = 0, max(len(text) for _, text in parts)
    while low < high:  # the longest per-message text that still fits
        middle = (low + high + 1) // 2
        if _fits(render(middle)):
            low = middle
        else:
            high = middle - 1
    if low >= DIGEST_MIN_TEXT:
        return render(low)
    named = header if len(senders) == 1 else f"{header} from {', '.join(senders)}"
    return _cut_to_segment(f"{named}. {labels[-1]}: {messages[-1].text}")
