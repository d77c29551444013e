"""Projections of the chats table's stream: inboxes ordered by activity, and the search index.

A new message (or a membership change) changes the chat's ``META`` item: each member's
inbox entry moves, so that ``GET /v1/chats`` lists chats by last activity with one indexed
query. A new message also gets its words written to the search table for
``GET /v1/search``. Inbox writes only move forward and index writes put the same keys
again, so retries and redeliveries are harmless; a chat changed several times in one
batch moves its inboxes once, and a batch's messages are indexed together (``fold_batch``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from chatflow.application.changes import ChatChanged, MessagesStored, MessageStored
from chatflow.domain.chats import Message
from chatflow.domain.inbox import inbox_change
from chatflow.domain.search import MessageRef, index_words
from chatflow.observability import logger
from chatflow.ports import SearchIndex


def fold_chat_changes(changes: Sequence[object]) -> list[object | None]:
    """One batch's changes with each chat's ``META`` changes folded into its first.

    A chat changed n times in a batch (a burst of messages) moves its members' inboxes
    once, from its version before the first change to its version after the last, instead
    of n times: inbox entries only move forward, so what the versions in between would
    have written is overwritten anyway, and a member added then removed in between ends
    with no entry, as before. The fold sits on the chat's first change and its later ones
    become ``None`` (nothing to do): if the fold fails, the stream is retried from that
    record, so every change it folded comes again. Other changes stay as they are.
    """
    planned: list[object | None] = list(changes)
    first_of: dict[str, tuple[int, ChatChanged]] = {}  # chat id → its first change, and where
    for index, change in enumerate(changes):
        if not isinstance(change, ChatChanged):
            continue
        chat = change.new or change.old
        if chat is None:
            continue
        first_index, first = first_of.setdefault(chat.chat_id, (index, change))
        if first_index != index:
            planned[first_index] = ChatChanged(first.old, change.new)
            planned[index] = None
    return planned


def fold_new_messages(changes: Sequence[object]) -> list[object | None]:
    """One batch's changes with every new message (``MessageStored``) folded into the first
    one's record, as ``MessagesStored``: their index entries go out together, 25 to a
    ``BatchWriteItem``, instead of at least one call per message (at 30 messages a second, 30
    calls a batch became 3). If the fold fails, the stream is retried from its record, the
    batch's first new message, so every message it folded comes again, as with
    ``fold_chat_changes``."""
    planned: list[object | None] = list(changes)
    stored = [(index, change) for index, change in enumerate(changes) if isinstance(change, MessageStored)]
    if stored:
        planned[stored[0][0]] = MessagesStored(tuple(change.message for _, change in stored))
        for index, _ in stored[1:]:
            planned[index] = None
    return planned


def fold_batch(changes: Sequence[object]) -> list[object | None]:
    """``fold_chat_changes`` then ``fold_new_messages``: what each record of a batch does."""
    return fold_new_messages(fold_chat_changes(changes))


class Inboxes(Protocol):
    def project_inbox(
        self, chat_id: str, activity: datetime, members: Sequence[str], removed: Sequence[str]
    ) -> None:
        """Move each member's inbox entry forward to ``activity``; drop removed members'."""
        ...


class ChatProjections:
    def __init__(self, *, inboxes: Callable[[], Inboxes], index: Callable[[], SearchIndex]) -> None:
        self._inboxes = inboxes
        self._index = index

    def on_change(self, change: object) -> None:
        if isinstance(change, ChatChanged):
            self.project_inbox(change)
        elif isinstance(change, MessagesStored):
            self.index_messages(change.messages)

    def project_inbox(self, change: ChatChanged) -> None:
        moved = inbox_change(change.old, change.new)
        if moved is None:
            return
        self._inboxes().project_inbox(moved.chat_id, moved.activity, moved.upsert, moved.remove)
        logger.debug("inbox projected", extra={"chat_id": moved.chat_id, "members": len(moved.upsert)})

    def index_messages(self, messages: Sequence[Message]) -> None:
        entries = {MessageRef.of(message): index_words(message.text) for message in messages}
        self._index().index(entries)
        logger.debug(
            "messages indexed",
            extra={"messages": len(entries), "words": sum(len(words) for words in entries.values())},
        )
