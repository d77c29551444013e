"""The ports the domain needs: storage, directories, the SMS provider and the event bus, as Protocols.

Only Protocols live here; the values they take and return are the domain's (``chatflow.domain``).
Adapters in ``chatflow.adapters`` implement them over DynamoDB, S3, SQS, HTTP and EventBridge;
``tests/fakes.py`` and ``tests/sms_fakes.py`` implement them in memory for unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

# Annotations only (``from __future__ import annotations``): importing the ports loads no domain module.
if TYPE_CHECKING:
    from chatflow.commands import SendSmsCommand
    from chatflow.domain.campaign_control import ControlState, SendControl
    from chatflow.domain.campaigns import (
        Campaign,
        CampaignRecipient,
        Estimate,
        Progress,
        RecipientStatus,
        Upload,
    )
    from chatflow.domain.chats import Chat, Member, Message
    from chatflow.domain.otp import Verification
    from chatflow.domain.pagination import Page, Position
    from chatflow.domain.realtime import ForwardJob, Presence
    from chatflow.domain.search import IndexHits, MessageRef
    from chatflow.domain.send_limit import RateSpend
    from chatflow.domain.sessions import Session
    from chatflow.domain.sms import Claim, OutgoingSms, SmsRequest
    from chatflow.domain.sms_events import BusEvent
    from chatflow.domain.sms_replies import ForwardRoute
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

    def chat_for_send(self, chat_id: str, sender: str) -> tuple[Chat | None, int | None]:
        """The chat (as ``get_chat``) and the sender's send TAT (``None`` if none is stored),
        read together in one strongly consistent call."""
        ...

    def append_message(self, chat: Chat, message: Message, *, spend: RateSpend | None = None) -> Chat:
        """Store ``message`` as ``chat.last_seq + 1`` and return the updated chat; with
        ``spend``, move the sender's send TAT in the same atomic write.

        Raises ``ConcurrentUpdate`` when another message took that seq first, or the sender's
        TAT is no longer ``spend.previous`` (re-read and retry), and ``AlreadyExists`` when
        the sender already used the message's ``client_message_id`` (nothing is written).
        """
        ...

    def get_message_by_client_id(self, sender: str, client_message_id: str) -> Message | None: ...

    def list_messages(
        self, chat_id: str, *, limit: int, position: Position | None, after_seq: int | None
    ) -> Page[Message]:
        """Newest first; with ``after_seq``, the messages after it, oldest first."""
        ...

    def chat_with_messages(
        self, chat_id: str, *, limit: int, position: Position | None, after_seq: int | None
    ) -> tuple[Chat | None, Callable[[], Page[Message]]]:
        """The chat (as ``get_chat``) and a page of its messages (as ``list_messages``), read at
        the same time: the page comes from the callable, which raises what ``list_messages``
        would. The caller checks the chat first, so a chat it may not see stays a 404."""
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

    def index(self, messages: Mapping[MessageRef, Sequence[str]]) -> None:
        """Store each message's entries (its words), all in as few writes as they fit;
        storing the same ones again changes nothing."""
        ...

    def find(self, chat_ids: Sequence[str], prefix: str, *, max_entries: int) -> IndexHits:
        """The messages of these chats with an entry starting with ``prefix``; reading stops
        (``complete`` False) once more than ``max_entries`` entries were read."""
        ...


class SmsProvider(Protocol):
    def send(self, request: SmsRequest) -> str:
        """Hand the message to the provider; its message id. Raises ``TransientProviderError``
        (worth retrying) or ``PermanentProviderError`` (not)."""
        ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[BusEvent]) -> None:
        """Put every event on the bus (batches of 10; failed entries retried); raise if some never go."""
        ...


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
    """The gateway's queue, for every producer of SendSms commands."""

    def send(self, command: SendSmsCommand) -> None:
        """Drop a SendSms command (CONTRACT §4 body) on the gateway's queue."""
        ...

    def send_all(self, commands: Sequence[SendSmsCommand]) -> None:
        """Put every command on the queue (10 per call; failed entries retried); raise
        ``Throttled`` if some could not be queued."""
        ...


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

    def forget(self, phone_number: str, connection_id: str, *, now: datetime) -> None:
        """Take a connection out of its owner's presence (its item is already gone)."""
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
    """The SMS-forward budget of a chat and member: one wait (and so at most one SMS) per
    window. A wait takes it when it starts (owned by the wait's first ``seq``); the wait's
    job marks it sent before queueing the SMS, or gives it back when there is nothing to send."""

    def known_taken(self, chat_id: str, phone_number: str, *, now: datetime) -> bool:
        """True when the budget is known, without a call, to be taken at ``now``."""
        ...

    def acquire(
        self, chat_id: str, phone_number: str, *, now: datetime, window: timedelta, seq: int, wait: timedelta
    ) -> bool:
        """True at most once per ``window`` for a chat and member: a wait from message ``seq``
        that ends ``wait`` after ``now`` may start."""
        ...

    def mark_sent(self, chat_id: str, phone_number: str, *, seq: int) -> bool:
        """The wait from ``seq`` still holds the budget: record that its SMS goes out (then it
        is never given back). False when another wait holds it now."""
        ...

    def release(self, chat_id: str, phone_number: str, *, seq: int) -> None:
        """Give back the budget of the wait from ``seq``, unless its SMS went out or another
        wait holds it."""
        ...


class ForwardScheduler(Protocol):
    def schedule(self, jobs: Sequence[ForwardJob], *, delay_seconds: int) -> None:
        """Have each job handled ``delay_seconds`` from now (at least once)."""
        ...


class ReplyRouteRepository(Protocol):
    """Per number, the chat last forwarded to it by SMS (where its SMS replies go)."""

    def record(self, route: ForwardRoute, *, expires_at: datetime) -> bool:
        """Keep ``route`` for its number until ``expires_at``, unless a route sent later is kept
        already; False then (a late or repeated event)."""
        ...

    def latest(self, phone_number: str) -> ForwardRoute | None:
        """The number's route, or None; an expired one may still be returned (the caller
        checks its age: expiry by TTL is not immediate)."""
        ...


# ---- campaigns ---------------------------------------------------------------------


class CampaignRepository(Protocol):
    def create(self, campaign: Campaign) -> None: ...

    def get(self, campaign_id: str) -> Campaign | None: ...

    def list_campaigns(self, *, limit: int, position: dict[str, Any] | None) -> Page[Campaign]: ...

    def create_upload(self, upload: Upload) -> None: ...

    def get_upload(self, campaign_id: str, upload_id: str) -> Upload | None: ...

    def claim_upload(
        self, upload: Upload, *, token: str, holding: str | None, now: datetime, lease_until: datetime
    ) -> Upload | None:
        """Start or resume loading ``upload`` (created if absent) under a lease of the campaign
        that ``token`` (fresh, random) names until ``lease_until``. Granted only when no load
        holds the campaign, its holder's lease ran out before ``now``, or ``holding`` is the
        holder's token (the continuation of that load). The stored upload, or None when it
        ended already or another load holds the campaign."""
        ...

    def existing(self, campaign_id: str, iccids: Sequence[str]) -> dict[str, CampaignRecipient]: ...

    def put_recipients(self, recipients: Sequence[CampaignRecipient]) -> None: ...

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
        """Store the upload's checkpoint and counters, add ``added`` recipients to the
        campaign's total and queued, ``skipped`` ones to its total and skipped, and
        ``estimate`` to its estimate counters, and extend the lease to ``lease_until``, in
        one write, if the lease is still ``token``'s. False, with nothing written, when
        another load took the lease over."""
        ...

    def set_control(self, campaign_id: str, state: ControlState, *, now: datetime) -> Campaign | None:
        """Pause (``paused``), resume (``none``) or cancel (``cancelled``) the campaign, in one
        conditional write: pause from not paused nor cancelled nor completed; resume from
        paused; cancel from anything but cancelled or completed (a paused completed one may).
        The campaign as written, or None when the condition refused it."""
        ...

    def finish_upload(self, upload: Upload, *, token: str, added: int) -> bool:
        """Store the upload's final state, add ``added``, free the campaign, if the lease is
        still ``token``'s (else False, nothing written); mark it completed when nothing is queued."""
        ...

    def list_recipients(
        self, campaign_id: str, *, status: RecipientStatus | None, limit: int, position: dict[str, Any] | None
    ) -> Page[CampaignRecipient]: ...

    def apply(self, progress: Progress) -> bool:
        """Move the recipient and the campaign's counts in one write; False when it is past that.

        Race-proof: when another event moves the recipient between this one's read and its
        write, the write is refused, the recipient read again and the move retried from
        there (or dropped when the recipient is now at or past ``progress.to``)."""
        ...


class CampaignControls(Protocol):
    """The gateway's view of campaigns: pause, cancel, sendAt, rate, quiet hours."""

    def control(self, campaign_id: str, *, fresh: bool = False) -> SendControl | None:
        """The campaign's control; a copy at most a second old unless ``fresh`` (one
        consistent read). None for no such campaign."""
        ...

    def reserve(self, campaign_id: str, per_second: int, now: datetime) -> float | None:
        """A send slot of the campaign's own rate: seconds to wait before sending (its place
        in the current second), or None when this second's slots are gone."""
        ...


class RecipientFiles(Protocol):
    def chunks(self, key: str, *, start: int = 0) -> Iterable[bytes]:
        """The object's bytes from ``start``, streamed."""
        ...

    def upload_url(self, key: str, *, expires_in: int) -> str: ...


class OperatorCheck(Protocol):
    def is_operator(self, phone_number: str) -> bool: ...
