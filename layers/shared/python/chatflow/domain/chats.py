"""Chats, their members, messages, and the rules that derive statuses and unread counts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from chatflow.errors import FieldProblem, ValidationFailed

ChatType = Literal["direct", "group"]
MessageStatus = Literal["sent", "delivered", "read"]
ReceiptType = Literal["delivered", "read"]
# How a message was written: in the app (HTTP, WebSocket), or as an SMS reply to a forward.
MessageVia = Literal["app", "sms"]

MAX_GROUP_MEMBERS = 256
MAX_GROUP_NAME = 100
MAX_TEXT = 4096
MAX_CLIENT_MESSAGE_ID = 128


@dataclass(frozen=True)
class Member:
    """A chat member: a phone number, with or without an account yet."""

    phone_number: str
    display_name: str | None
    joined_at: datetime
    delivered_seq: int = 0
    read_seq: int = 0


@dataclass(frozen=True)
class Message:
    message_id: str
    chat_id: str
    seq: int
    sender: str
    text: str
    client_message_id: str
    sent_at: datetime
    via: MessageVia = "app"


@dataclass(frozen=True)
class Chat:
    chat_id: str
    type: ChatType
    name: str | None
    created_by: str
    created_at: datetime
    last_activity_at: datetime
    members: tuple[Member, ...]
    last_seq: int = 0
    last_message: Message | None = None
    _index: dict[str, Member] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {m.phone_number: m for m in self.members})

    def member(self, phone_number: str) -> Member | None:
        return self._index.get(phone_number)

    def is_member(self, phone_number: str) -> bool:
        return phone_number in self._index

    def unread_count(self, reader: str) -> int:
        member = self.member(reader)
        return max(0, self.last_seq - member.read_seq) if member else 0

    def status_of(self, message: Message) -> MessageStatus:
        """The message's status as its sender sees it.

        ``delivered`` once every other current member's delivered marker reached the
        message's ``seq``; ``read`` likewise with read markers.
        """
        others = [m for m in self.members if m.phone_number != message.sender]
        if not others:
            return "sent"
        if all(m.read_seq >= message.seq for m in others):
            return "read"
        if all(m.delivered_seq >= message.seq for m in others):
            return "delivered"
        return "sent"

    def with_members(self, members: tuple[Member, ...]) -> Chat:
        return replace(self, members=members)


def direct_chat_id(a: str, b: str) -> str:
    """The one id of the direct chat between two numbers, whoever creates it.

    Deriving the id from the pair turns "exactly one direct chat per pair" into a
    conditional create of a single item, race-free without a lock item.
    """
    first, second = sorted((a, b))
    digest = hashlib.sha256(f"{first}|{second}".encode()).hexdigest()
    return f"d_{digest[:32]}"


def clean_text(text: str) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise ValidationFailed(
            "Message text is empty: send 1 to 4096 characters.",
            details=(FieldProblem("text", "must not be empty or only whitespace"),),
        )
    if len(cleaned) > MAX_TEXT:
        raise ValidationFailed(
            f"Message text is {len(cleaned)} characters: the limit is {MAX_TEXT}.",
            details=(FieldProblem("text", f"must be at most {MAX_TEXT} characters"),),
        )
    return cleaned


def clean_group_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_GROUP_NAME:
        raise ValidationFailed(
            f"A group needs a name of 1 to {MAX_GROUP_NAME} characters.",
            details=(FieldProblem("name", f"must be 1-{MAX_GROUP_NAME} characters"),),
        )
    return cleaned


@dataclass(frozen=True)
class MarkerUpdate:
    """New delivered/read markers for one member, or ``None`` when nothing moves."""

    delivered_seq: int
    read_seq: int


def advance_markers(member: Member, receipt: ReceiptType, up_to_seq: int) -> MarkerUpdate | None:
    """Markers only move forward; ``read`` implies ``delivered``."""
    delivered = max(member.delivered_seq, up_to_seq)
    read = max(member.read_seq, up_to_seq) if receipt == "read" else member.read_seq
    if delivered == member.delivered_seq and read == member.read_seq:
        return None
    return MarkerUpdate(delivered_seq=delivered, read_seq=read)
