"""Who gets which WebSocket frame, and which offline member gets an SMS (contract §3).

``RealtimeService`` serves two functions: the action routes (``sendMessage``,
``receipt``, ``typing``, ``ping``, ``$default``: replies, typing, refusals) and the
fan-out (the chats table's and the connections table's streams). Connections are
recorded by ``chatflow.application.connections``.
The rules are ``chatflow.domain.realtime``'s; the frames themselves are rendered by
``chatflow.api.realtime`` (given as ``frames``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from chatflow.application.changes import ChatChanged, ConnectionExpired, PresenceChanged
from chatflow.domain.chats import Chat, Message
from chatflow.domain.realtime import (
    FORWARD_WINDOW,
    ForwardJob,
    Presence,
    contacts,
    members_to_forward,
    membership_audience,
    status_changes,
)
from chatflow.errors import NotFound
from chatflow.observability import logger
from chatflow.ports import (
    ChatRepository,
    ConnectionRepository,
    ForwardLimiter,
    ForwardScheduler,
    Notifier,
)

Frame = dict[str, Any]


class Frames(Protocol):
    """The server frames the service sends (``chatflow.api.realtime`` renders them)."""

    def message_new(self, message: Message, chat: Chat) -> Frame: ...

    def message_status(self, chat_id: str, up_to_seq: int, status: str, by: str) -> Frame: ...

    def presence_frame(self, presence: Presence) -> Frame: ...

    def typing_frame(self, chat_id: str, phone_number: str) -> Frame: ...

    def chat_updated(self, chat: Chat, reader: str) -> Frame: ...


@dataclass(frozen=True)
class Forwarding:
    """What starting SMS-forward waits needs; absent, offline members get nothing by SMS.

    ``after`` is ``ForwardAfterSeconds``: how long a wait lasts before its job
    (``chatflow.application.forwards``) forwards what is still unread."""

    waits: ForwardScheduler
    limiter: ForwardLimiter
    after: timedelta


class RealtimeService:
    def __init__(
        self,
        *,
        connections: ConnectionRepository,
        notifier: Notifier,
        frames: Frames,
        chats: ChatRepository,
        clock: Callable[[], datetime],
        forwarding: Forwarding | None = None,
        inbox_page: int = 100,
    ) -> None:
        self._connections = connections
        self._notifier = notifier
        self._frames = frames
        self._chats = chats
        self._clock = clock
        self._forwarding = forwarding
        self._inbox_page = inbox_page

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
        self._to_users(others, lambda _: self._frames.typing_frame(chat_id, caller))

    # ---- fan-out -----------------------------------------------------------------------

    def on_change(self, change: object) -> None:
        """A change from the chats table's or the connections table's stream; others are ignored."""
        if isinstance(change, ChatChanged):
            self.chat_changed(change.old, change.new)
        elif isinstance(change, PresenceChanged):
            self.presence_changed(change.old, change.new)
        elif isinstance(change, ConnectionExpired):
            # Its $disconnect never came: take it out of its owner's presence, whose change
            # then tells their contacts (the stream's filter passes only the TTL's deletions).
            self._connections.forget(change.phone_number, change.connection_id, now=self._clock())

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
            frame = self._frames.message_new(message, new)
            frames.extend((cid, frame) for phone in members for cid in presence[phone].connections)
        for change in changes:
            frame = self._frames.message_status(change.chat_id, change.up_to_seq, change.status, change.by)
            for phone in set(members) - {change.by}:
                frames.extend((cid, frame) for cid in presence[phone].connections)
        for phone in audience:
            frame = self._frames.chat_updated(new, phone)
            frames.extend((cid, frame) for cid in presence[phone].connections)
        self._send(frames)
        if message is not None and self._forwarding is not None:
            self._forward(new, message, presence, self._forwarding)

    def presence_changed(self, old: Presence | None, new: Presence) -> None:
        """``presence`` to everyone who shares a chat with the user, when they come or go."""
        if old is not None and old.online == new.online:
            return
        chats = self._chats_of(new.phone_number)
        self._to_users(contacts(chats, new.phone_number), lambda _: self._frames.presence_frame(new))

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
        """Start a wait for each offline member who has none (their budget is free): the
        wait's job, ``via.after`` from now, forwards what they still have not read then.

        Members whose budget is known to be taken cost no call (a burst with an offline
        member: one write and one queued job per wait, not per message). Reads, presence and
        opt-outs are looked at when the wait is over, once for the whole burst.
        """
        now = self._clock()
        members = [
            m.phone_number
            for m in members_to_forward(chat, message, presence)
            if not via.limiter.known_taken(chat.chat_id, m.phone_number, now=now)
        ]
        started = [
            phone
            for phone in members
            if via.limiter.acquire(
                chat.chat_id, phone, now=now, window=FORWARD_WINDOW, seq=message.seq, wait=via.after
            )
        ]
        if not started:
            return
        try:
            via.waits.schedule(
                [ForwardJob(chat.chat_id, phone, message.seq) for phone in started],
                delay_seconds=int(via.after.total_seconds()),
            )
        except Exception:
            # Give the budgets back: the stream record is retried and must start the waits then.
            for phone in started:
                via.limiter.release(chat.chat_id, phone, seq=message.seq)
            raise
        logger.info(
            "SMS-forward wait started",
            extra={"chat_id": chat.chat_id, "seq": message.seq, "members": len(started)},
        )
