"""The ports the domain needs: storage and directories, as Protocols.

Adapters in ``chatflow.adapters`` implement them over DynamoDB; ``tests/fakes.py``
implements them in memory for unit tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chatflow.domain.chats import Chat, Member, Message
from chatflow.domain.pagination import Page, Position
from chatflow.domain.sessions import Session
from chatflow.domain.users import ProfileChanges, User


class UserRepository(Protocol):
    def get(self, phone_number: str) -> User | None: ...

    def create_if_absent(self, user: User) -> User:
        """Store ``user`` unless one exists for its number; return the stored one."""
        ...

    def update_profile(self, user: User, changes: ProfileChanges) -> User:
        """Apply ``changes``; raise ``UsernameTaken`` if another user holds the username."""
        ...

    def display_names(self, phone_numbers: Sequence[str]) -> dict[str, str | None]:
        """Display names of the numbers that have an account (others are absent)."""
        ...


class SessionRepository(Protocol):
    def put(self, session: Session) -> None: ...

    def get(self, token_hash: str) -> Session | None: ...

    def delete(self, token_hash: str) -> None: ...


class ChatRepository(Protocol):
    def get_chat(self, chat_id: str) -> Chat | None:
        """A strongly consistent read of the chat (members, markers, last seq)."""
        ...

    def get_chats(self, chat_ids: Sequence[str]) -> dict[str, Chat]: ...

    def create_chat(self, chat: Chat) -> None:
        """Create the chat and its members' inbox entries; ``AlreadyExists`` if the id is taken."""
        ...

    def add_members(self, chat: Chat, members: Sequence[Member]) -> Chat:
        """Add members the chat does not have yet; return the chat as stored."""
        ...

    def remove_member(self, chat: Chat, phone_number: str) -> None: ...

    def append_message(self, chat: Chat, message: Message) -> Chat:
        """Store ``message`` as ``chat.last_seq + 1`` and return the updated chat.

        Raises ``ConcurrentUpdate`` when another message took that seq first (re-read
        and retry) and ``AlreadyExists`` when the sender already used the message's
        ``client_message_id``.
        """
        ...

    def get_message_by_client_id(self, sender: str, client_message_id: str) -> Message | None: ...

    def list_messages(
        self, chat_id: str, *, limit: int, position: Position | None, after_seq: int | None
    ) -> Page[Message]:
        """Newest first; with ``after_seq``, the messages after it, oldest first."""
        ...

    def list_inbox(self, phone_number: str, *, limit: int, position: Position | None) -> Page[str]:
        """Ids of the chats of a number, most recent activity first."""
        ...

    def update_markers(self, chat: Chat, phone_number: str, delivered_seq: int, read_seq: int) -> None:
        """Set a member's markers if they still are as in ``chat``; else ``ConcurrentUpdate``."""
        ...

    def rename_member(self, phone_number: str, display_name: str | None) -> None:
        """Refresh the display name shown for this number in every chat it belongs to."""
        ...
