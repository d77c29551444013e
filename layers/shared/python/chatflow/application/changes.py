"""What a stored change means, as the application services take it (decoded from the tables'
streams by ``chatflow.adapters.streams``: the item layouts stay the adapters' knowledge)."""

from __future__ import annotations

from dataclasses import dataclass

from chatflow.domain.chats import Chat, Message
from chatflow.domain.realtime import Presence
from chatflow.domain.sms_events import CommandSnapshot, Rejection


@dataclass(frozen=True)
class ChatChanged:
    """A chat's ``META`` item changed (created, new message, markers, members, name)."""

    old: Chat | None
    new: Chat | None


@dataclass(frozen=True)
class MessageStored:
    """A new message item was written."""

    message: Message


@dataclass(frozen=True)
class MessagesStored:
    """A stream batch's new messages (one or more) handled as one change, indexed together
    (``chatflow.application.projections.fold_batch``)."""

    messages: tuple[Message, ...]


@dataclass(frozen=True)
class PresenceChanged:
    """A user's presence item changed (a connection came or went)."""

    old: Presence | None
    new: Presence


@dataclass(frozen=True)
class ConnectionExpired:
    """DynamoDB's TTL deleted a connection whose ``$disconnect`` never came."""

    phone_number: str
    connection_id: str


@dataclass(frozen=True)
class SmsRecordChanged:
    """A change in the SMS table: a command's record, or a rejection's."""

    sequence_number: str
    event_id: str
    old: CommandSnapshot | None
    new: CommandSnapshot | None
    rejected: Rejection | None


ChatTableChange = ChatChanged | MessageStored
ConnectionTableChange = PresenceChanged | ConnectionExpired
