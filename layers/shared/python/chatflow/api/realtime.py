"""The WebSocket API (contract §3): client frames, server frames, and who gets what.

``RealtimeService`` is used by three functions: the connection routes (``$connect``,
``$disconnect``), the action routes (``sendMessage``, ``receipt``, ``typing``, ``ping``,
``$default``) and the fan-out (the chats table's and the connections table's streams).
Frames carry the same ``Message`` and ``Chat`` shapes as the HTTP API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from chatflow.api.models import ChatOut, ClientMessageId, MessageOut, MessageText
from chatflow.domain.chats import Chat, Member, Message
from chatflow.domain.clock import to_iso
from chatflow.domain.realtime import (
    CONNECTION_TTL,
    FORWARD_WINDOW,
    Presence,
    contacts,
    forward_command_id,
    forward_text,
    members_to_forward,
    membership_audience,
    sender_label,
    status_changes,
)
from chatflow.errors import ChatFlowError, NotFound
from chatflow.observability import logger
from chatflow.ports import (
    ChatRepository,
    ConnectionRepository,
    ForwardLimiter,
    Notifier,
    OptOutRepository,
    SmsCommandSender,
)

Frame = dict[str, Any]

# ---- client → server -------------------------------------------------------------------


class _Frame(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


ChatId = Annotated[str, Field(min_length=1, max_length=100)]


class SendMessageFrame(_Frame):
    action: Literal["sendMessage"]
    chatId: ChatId
    text: MessageText
    clientMessageId: ClientMessageId


class ReceiptFrame(_Frame):
    action: Literal["receipt"]
    chatId: ChatId
    type: Literal["delivered", "read"]
    upToSeq: Annotated[int, Field(ge=1)]


class TypingFrame(_Frame):
    action: Literal["typing"]
    chatId: ChatId


class PingFrame(_Frame):
    action: Literal["ping"]


AnyClientFrame = SendMessageFrame | ReceiptFrame | TypingFrame | PingFrame
_CLIENT_FRAME: TypeAdapter[AnyClientFrame] = TypeAdapter(
    Annotated[AnyClientFrame, Field(discriminator="action")]
)
ACTIONS = ("sendMessage", "receipt", "typing", "ping")


class BadFrame(ChatFlowError):
    code = "invalid_frame"


def parse_frame(body: str | None) -> AnyClientFrame:
    """A client frame, or ``BadFrame`` saying what to fix."""
    try:
        document = json.loads(body or "")
    except ValueError:
        raise BadFrame('The frame is not JSON: send an object such as {"action": "ping"}.') from None
    if not isinstance(document, dict):
        raise BadFrame('The frame must be a JSON object such as {"action": "ping"}.')
    action = document.get("action")
    if action not in ACTIONS:
        raise BadFrame(f"Unknown action {action!r}: use one of {', '.join(ACTIONS)}.")
    try:
        return _CLIENT_FRAME.validate_python(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'frame'}: {e['msg']}" for e in exc.errors()
        )
        raise BadFrame(f"Invalid {action} frame: {problems}.") from None


# ---- server → client -------------------------------------------------------------------


def message_new(message: Message, chat: Chat) -> Frame:
    return {"type": "message.new", "message": MessageOut.of(message, chat).model_dump(mode="json")}


def message_status(chat_id: str, up_to_seq: int, status: str, by: str) -> Frame:
    return {"type": "message.status", "chatId": chat_id, "upToSeq": up_to_seq, "status": status, "by": by}


def presence_frame(presence: Presence) -> Frame:
    last_seen = to_iso(presence.last_seen_at) if presence.last_seen_at else None
    return {
        "type": "presence",
        "phoneNumber": presence.phone_number,
        "online": presence.online,
        "lastSeenAt": last_seen,
    }


def typing_frame(chat_id: str, phone_number: str) -> Frame:
    return {"type": "typing", "chatId": chat_id, "phoneNumber": phone_number}


def chat_updated(chat: Chat, reader: str) -> Frame:
    return {"type": "chat.updated", "chat": ChatOut.of(chat, reader).model_dump(mode="json")}


def error_frame(code: str, message: str) -> Frame:
    return {"type": "error", "code": code, "message": message}


PONG: Frame = {"type": "pong"}


# ---- the service -----------------------------------------------------------------------


@dataclass(frozen=True)
class Forwarding:
    """What SMS forwarding needs; absent, offline members get nothing by SMS."""

    sender: SmsCommandSender
    opt_outs: OptOutRepository
    limiter: ForwardLimiter


class RealtimeService:
    def __init__(
        self,
        *,
        connections: ConnectionRepository,
        notifier: Notifier,
        chats: ChatRepository,
        clock: Callable[[], datetime],
        forwarding: Forwarding | None = None,
        inbox_page: int = 100,
    ) -> None:
        self._connections = connections
        self._notifier = notifier
        self._chats = chats
        self._clock = clock
        self._forwarding = forwarding
        self._inbox_page = inbox_page

    # ---- connections -------------------------------------------------------------------

    def connect(self, phone_number: str, connection_id: str) -> None:
        now = self._clock()
        self._connections.add(phone_number, connection_id, now=now, expires_at=now + CONNECTION_TTL)

    def disconnect(self, connection_id: str) -> None:
        self._connections.remove(connection_id, now=self._clock())

    # ---- actions -----------------------------------------------------------------------

    def reply(self, connection_id: str, frame: Frame) -> None:
        self._send([(connection_id, frame)])

    def refuse(self, connection_id: str, frame: Frame) -> None:
        """Send a last frame and close the connection (a signed-out or expired session)."""
        self._send([(connection_id, frame)])
        self._notifier.disconnect(connection_id)

    def typing(self, caller: str, chat_id: str) -> None:
        chat = self._member_chat(caller, chat_id)
        others = [m.phone_number for m in chat.members if m.phone_number != caller]
        self._to_users(others, lambda _: typing_frame(chat_id, caller))

    # ---- fan-out -----------------------------------------------------------------------

    def chat_changed(self, old: Chat | None, new: Chat | None) -> None:
        """What a change of a chat's ``META`` item tells whom, with one read of connections.

        - a new message (``lastSeq`` moved; the item holds it as ``lastMessage`` and the
          members with their markers, so nothing else is read): ``message.new`` to every
          open connection of every member, the sender's included; an SMS to members with
          none;
        - moved delivered/read markers: ``message.status`` to the other members;
        - a new chat, or changed members or name: ``chat.updated`` to everyone in or out.
        """
        if new is None:
            return
        message = new.last_message if new.last_seq > (old.last_seq if old else 0) else None
        changes = status_changes(old, new) if old is not None else []
        audience = membership_audience(old, new)
        members = [m.phone_number for m in new.members] if message or changes else []
        presence = self._connections.presence(sorted(set(members) | set(audience)), now=self._clock())
        frames: list[tuple[str, Frame]] = []
        if message is not None:
            frame = message_new(message, new)
            frames.extend((cid, frame) for phone in members for cid in presence[phone].connections)
        for change in changes:
            frame = message_status(change.chat_id, change.up_to_seq, change.status, change.by)
            for phone in set(members) - {change.by}:
                frames.extend((cid, frame) for cid in presence[phone].connections)
        for phone in audience:
            frame = chat_updated(new, phone)
            frames.extend((cid, frame) for cid in presence[phone].connections)
        self._send(frames)
        if message is not None and self._forwarding is not None:
            self._forward(new, message, presence, self._forwarding)

    def presence_changed(self, old: Presence | None, new: Presence) -> None:
        """``presence`` to everyone who shares a chat with the user, when they come or go."""
        if old is not None and old.online == new.online:
            return
        chats = self._chats_of(new.phone_number)
        self._to_users(contacts(chats, new.phone_number), lambda _: presence_frame(new))

    # ---- helpers -----------------------------------------------------------------------

    def _member_chat(self, caller: str, chat_id: str) -> Chat:
        chat = self._chats.get_chat(chat_id)
        if chat is None or not chat.is_member(caller):
            raise NotFound(f"Chat {chat_id} was not found among your chats.")
        return chat

    def _chats_of(self, phone_number: str) -> list[Chat]:
        chat_ids: list[str] = []
        position = None
        while True:
            page = self._chats.list_inbox(phone_number, limit=self._inbox_page, position=position)
            chat_ids.extend(page.items)
            position = page.next_position
            if position is None:
                break
        return list(self._chats.get_chats(chat_ids).values()) if chat_ids else []

    def _to_users(self, phones: Iterable[str], frame_for: Callable[[str], Frame]) -> None:
        presence = self._connections.presence(sorted(set(phones)), now=self._clock())
        frames = [(cid, frame_for(phone)) for phone, state in presence.items() for cid in state.connections]
        self._send(frames)

    def _send(self, frames: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        for connection_id in sorted(self._notifier.post(frames)):
            owner = self._connections.remove(connection_id, now=self._clock())
            logger.info("stale connection removed", extra={"connection_id": connection_id, "owner": owner})

    def _forward(
        self, chat: Chat, message: Message, presence: Mapping[str, Presence], via: Forwarding
    ) -> None:
        now = self._clock()

        def candidates(of: Chat) -> list[Member]:
            # Members whose budget is known to be taken cost no call (a busy chat with an
            # offline member: one write per window, not one per message).
            return [
                m
                for m in members_to_forward(of, message, presence)
                if not via.limiter.known_taken(chat.chat_id, m.phone_number, now=now)
            ]

        if not candidates(chat):
            return
        # The record's image is the chat when the message was stored; a member may have
        # read it since (on another device, over HTTP): decide on the chat as it is now.
        members = candidates(self._chats.get_chat(chat.chat_id) or chat)
        if not members:
            return
        text = forward_text(sender_label(chat, message.sender), message.text)
        opted_out = via.opt_outs.opted_out([m.phone_number for m in members])
        granted = [
            m.phone_number
            for m in members
            if m.phone_number not in opted_out
            and via.limiter.acquire(chat.chat_id, m.phone_number, now=now, window=FORWARD_WINDOW)
        ]
        if not granted:
            return
        try:
            via.sender.send_all([self._forward_command(chat, message, phone, text, now) for phone in granted])
        except Exception:
            # Give the budgets back: the stream record is retried and must send them then.
            for phone in granted:
                via.limiter.release(chat.chat_id, phone)
            raise
        logger.info(
            "message forwarded by SMS",
            extra={"chat_id": chat.chat_id, "seq": message.seq, "members": len(granted)},
        )

    @staticmethod
    def _forward_command(
        chat: Chat, message: Message, phone_number: str, text: str, now: datetime
    ) -> dict[str, Any]:
        return {
            "commandId": forward_command_id(chat.chat_id, phone_number, message.seq),
            "phoneNumber": phone_number,
            "text": text,
            "messageType": "transactional",
            "metadata": {"chatId": chat.chat_id, "messageId": message.message_id},
            # A forward is news for 10 minutes (the member's window); later, the app says it.
            "validUntil": to_iso(now + FORWARD_WINDOW),
        }
