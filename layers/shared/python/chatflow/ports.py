"""The ports the domain needs: storage, directories, the SMS provider and the event bus, as Protocols.

Adapters in ``chatflow.adapters`` implement them over DynamoDB, HTTP and EventBridge;
``tests/fakes.py`` implements them in memory for unit tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from chatflow.domain.chats import Chat, Member, Message
from chatflow.domain.pagination import Page, Position
from chatflow.domain.realtime import Presence
from chatflow.domain.search import IndexHits, MessageRef
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

    def get_messages(self, keys: Sequence[tuple[str, int]]) -> list[Message]:
        """The messages at these ``(chat_id, seq)``, in any order; absent ones are left out."""
        ...

    def inbox_chat_ids(self, phone_number: str) -> list[str]:
        """Ids of every chat in the number's inbox (its chats), in no particular order."""
        ...


class SearchIndex(Protocol):
    """Per chat, one entry per distinct word of each message (chatflow.domain.search)."""

    def index(self, ref: MessageRef, words: Sequence[str]) -> None:
        """Store the message's entries; storing the same ones again changes nothing."""
        ...

    def find(self, chat_ids: Sequence[str], prefix: str, *, max_entries: int) -> IndexHits:
        """The messages of these chats with an entry starting with ``prefix``; reading stops
        (``complete`` False) once more than ``max_entries`` entries were read."""
        ...


@dataclass(frozen=True)
class SmsRequest:
    """One message for the provider. ``reference`` is the command id: the idempotency key."""

    to: str
    to_type: Literal["phone", "iccid"]
    text: str
    reference: str
    sender_id: str | None = None


class SmsProvider(Protocol):
    def send(self, request: SmsRequest) -> str:
        """Hand the message to the provider; its message id. Raises ``TransientProviderError``
        (worth retrying) or ``PermanentProviderError`` (not)."""
        ...


@dataclass(frozen=True)
class BusEvent:
    """An event for the bus: ``detail_type`` (``SmsSent``...) and its JSON ``detail``."""

    detail_type: str
    detail: Mapping[str, Any]
    source: str = "chatflow.sms"
    # Identifies the event for retries of a partially failed batch.
    event_id: str = field(default="")


class EventPublisher(Protocol):
    def publish(self, events: Sequence[BusEvent]) -> None:
        """Put every event on the bus (batches of 10; failed entries retried); raise if some never go."""
        ...


@dataclass(frozen=True)
class Verification:
    """A sign-in code waiting to be used: only its hash is kept."""

    phone_number: str
    code_hash: str
    expires_at: datetime
    failed_tries: int = 0


class VerificationRepository(Protocol):
    def start(self, verification: Verification, *, now: datetime, per_hour: int) -> None:
        """Store ``verification`` (replacing an earlier code of the number); raise
        ``RateLimited`` when the number already got ``per_hour`` codes in the last hour."""
        ...

    def get(self, phone_number: str) -> Verification | None: ...

    def record_failure(self, phone_number: str) -> int:
        """Count one wrong try; the number of wrong tries so far."""
        ...

    def delete(self, phone_number: str) -> None: ...


class SmsCommandSender(Protocol):
    def send(self, command: Mapping[str, Any]) -> None:
        """Drop a SendSms command (CONTRACT §4 body) on the gateway's queue."""
        ...

    def send_all(self, commands: Sequence[Mapping[str, Any]]) -> None:
        """Put every command on the queue (in batches); raise if some could not be queued."""
        ...


@dataclass(frozen=True)
class OutgoingSms:
    """A valid SendSms command, as the gateway handles it."""

    command_id: str
    to: str
    to_type: Literal["phone", "iccid"]
    text: str
    message_type: Literal["transactional", "promotional"] = "transactional"
    sender_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Not accepted by the provider by then: never sent, it ends as expired (CONTRACT §4a).
    valid_until: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a command for one attempt.

    ``claimed``: this invocation may call the provider (``attempts`` counts this one);
    ``final``: the command already ended (sent or failed), a duplicate;
    ``busy``: another invocation holds it until ``lease_until``.
    """

    state: Literal["claimed", "final", "busy"]
    attempts: int
    lease_until: datetime | None = None


class SmsCommandRepository(Protocol):
    def claim(self, sms: OutgoingSms, *, now: datetime, lease_until: datetime) -> Claim:
        """Start an attempt: create the command's record (status ``sending``) or move it there
        again, unless it ended or another invocation's lease is still running. The claim's
        ``attempts`` are the provider calls made so far (a claim is not one)."""
        ...

    def mark_sent(
        self,
        command_id: str,
        *,
        provider_message_id: str,
        segments: int,
        encoding: str,
        attempts: int,
        at: datetime,
    ) -> None: ...

    def mark_failed(
        self, command_id: str, *, error_code: str, reason: str, permanent: bool, attempts: int, at: datetime
    ) -> None: ...

    def mark_expired(self, command_id: str, *, valid_until: datetime, at: datetime) -> None:
        """End a command not sent by its ``validUntil`` (``SmsExpired``)."""
        ...

    def mark_dead_lettered(self, sms: OutgoingSms, *, reason: str, at: datetime) -> bool:
        """End as failed (``dead_lettered``) a command whose message reached the dead-letter
        queue, creating its record if no attempt ever did; False when it had already ended."""
        ...

    def release(self, command_id: str, *, error_code: str, reason: str, attempts: int | None = None) -> None:
        """The attempt will be retried: note why, free the lease, and count the provider
        call it made (``attempts``; None when it made none)."""
        ...

    def record_receipt(self, command_id: str, *, provider_message_id: str, status: str, at: datetime) -> bool:
        """Store a delivery receipt unless the command is unknown or already has one; True if stored."""
        ...

    def reject(self, *, reason: str, body: str, at: datetime) -> None:
        """Record a command that is not valid (its ``SmsRejected`` event follows)."""
        ...


class OptOutRepository(Protocol):
    """Opt-outs by destination: an E.164 number or a SIM's ICCID (CONTRACT §4a)."""

    def is_opted_out(self, destination: str) -> bool: ...

    def opted_out(self, destinations: Sequence[str]) -> set[str]:
        """Those of ``destinations`` that opted out (batched reads)."""
        ...

    def opt_out(self, destination: str, *, at: datetime) -> None: ...

    def opt_in(self, destination: str) -> None: ...


class RateLimiter(Protocol):
    @property
    def per_second(self) -> int:
        """The sends granted per second, all invocations together."""
        ...

    def acquire(self, now: datetime) -> float:
        """Take one send from the provider-wide budget; 0 if granted, else seconds to wait."""
        ...


# ---- real time ---------------------------------------------------------------------


class ConnectionRepository(Protocol):
    def add(self, phone_number: str, connection_id: str, *, now: datetime, expires_at: datetime) -> None:
        """Record an open WebSocket connection of ``phone_number``."""
        ...

    def remove(self, connection_id: str, *, now: datetime) -> str | None:
        """Forget a connection (closed or gone); its owner's number, or None if unknown."""
        ...

    def presence(self, phone_numbers: Sequence[str], *, now: datetime) -> dict[str, Presence]:
        """Each number's open connections and last-seen time (batched reads, never a scan)."""
        ...


class Notifier(Protocol):
    def post(self, frames: Sequence[tuple[str, Mapping[str, Any]]]) -> set[str]:
        """Send each ``(connection id, frame)``; the ids of connections that are gone."""
        ...

    def disconnect(self, connection_id: str) -> None:
        """Close a connection from the server side (its ``$disconnect`` follows)."""
        ...


class ForwardLimiter(Protocol):
    def known_taken(self, chat_id: str, phone_number: str, *, now: datetime) -> bool:
        """True when the budget is known, without a call, to be taken at ``now``."""
        ...

    def acquire(self, chat_id: str, phone_number: str, *, now: datetime, window: timedelta) -> bool:
        """True at most once per ``window`` for a chat and member (the SMS forward's budget)."""
        ...

    def release(self, chat_id: str, phone_number: str) -> None:
        """Give back a budget taken for a forward that could not be sent."""
        ...
