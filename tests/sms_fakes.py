"""In-memory implementations of the SMS gateway's ports, for unit tests."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from chatflow.adapters.queues import QueueUnavailable
from chatflow.domain.sms import Claim, OutgoingSms, SmsRequest
from chatflow.domain.sms_events import BusEvent
from chatflow.errors import ProviderError, Throttled


@dataclass
class CommandRecord:
    sms: OutgoingSms
    status: str = "sending"
    attempts: int = 0
    lease_until: datetime | None = None
    provider_message_id: str | None = None
    segments: int | None = None
    encoding: str | None = None
    error_code: str | None = None
    reason: str | None = None
    permanent: bool | None = None
    last_error: str | None = None
    delivery: str | None = None
    history: list[str] = field(default_factory=list)


class InMemoryCommands:
    def __init__(self) -> None:
        self.records: dict[str, CommandRecord] = {}
        self.rejections: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def claim(self, sms: OutgoingSms, *, now: datetime, lease_until: datetime) -> Claim:
        with self._lock:
            record = self.records.get(sms.command_id)
            if record is None:
                record = self.records[sms.command_id] = CommandRecord(sms)
            elif record.status in ("sent", "failed", "expired"):
                return Claim("final", record.attempts)
            elif record.lease_until is not None and record.lease_until > now:
                return Claim("busy", record.attempts, record.lease_until)
            record.lease_until = lease_until
            record.history.append("sending")
            return Claim("claimed", record.attempts, lease_until)

    def _finish(self, command_id: str, **changes: object) -> None:
        with self._lock:
            record = self.records[command_id]
            if record.status != "sending":
                return
            for key, value in changes.items():
                setattr(record, key, value)
            record.history.append(record.status)

    def mark_sent(
        self,
        command_id: str,
        *,
        provider_message_id: str,
        segments: int,
        encoding: str,
        attempts: int,
        at: datetime,
    ) -> None:
        self._finish(
            command_id,
            status="sent",
            provider_message_id=provider_message_id,
            segments=segments,
            encoding=encoding,
            attempts=attempts,
            lease_until=None,
        )

    def mark_failed(
        self, command_id: str, *, error_code: str, reason: str, permanent: bool, attempts: int, at: datetime
    ) -> None:
        self._finish(
            command_id,
            status="failed",
            error_code=error_code,
            reason=reason,
            permanent=permanent,
            attempts=attempts,
            lease_until=None,
        )

    def mark_expired(self, command_id: str, *, valid_until: datetime, at: datetime) -> None:
        self._finish(command_id, status="expired", lease_until=None)

    def mark_dead_lettered(self, sms: OutgoingSms, *, reason: str, at: datetime) -> bool:
        with self._lock:
            record = self.records.setdefault(sms.command_id, CommandRecord(sms))
            if record.status != "sending":
                return False
            record.status, record.error_code, record.reason, record.permanent = (
                "failed",
                "dead_lettered",
                reason,
                False,
            )
            record.lease_until = None
            record.history.append("failed")
            return True

    def release(self, command_id: str, *, error_code: str, reason: str, attempts: int | None = None) -> None:
        with self._lock:
            record = self.records[command_id]
            record.lease_until = None
            record.last_error = f"{error_code}: {reason}"
            if attempts is not None:
                record.attempts = attempts

    def record_receipt(self, command_id: str, *, provider_message_id: str, status: str, at: datetime) -> bool:
        with self._lock:
            record = self.records.get(command_id)
            if record is None or record.delivery is not None or record.status == "failed":
                return False
            record.delivery = status
            return True

    def reject(self, *, reason: str, body: str, at: datetime) -> None:
        self.rejections.append((reason, body))


class InMemoryOptOuts:
    """Opted-out destinations: E.164 numbers and ICCIDs alike."""

    def __init__(self, destinations: set[str] | None = None) -> None:
        self.destinations = set(destinations or ())

    def is_opted_out(self, destination: str) -> bool:
        return destination in self.destinations

    def opted_out(self, destinations: Sequence[str]) -> set[str]:
        return self.destinations & set(destinations)

    def opt_out(self, destination: str, *, at: datetime) -> None:
        self.destinations.add(destination)

    def opt_in(self, destination: str) -> None:
        self.destinations.discard(destination)


class FixedRate:
    """Grants every request, or answers the waits given, in order."""

    def __init__(self, waits: list[float] | None = None) -> None:
        self.waits = list(waits or [])
        self.calls = 0

    per_second = 10

    def acquire(self, now: datetime) -> float:
        self.calls += 1
        return self.waits.pop(0) if self.waits else 0.0


class ScriptedProvider:
    """Answers each send with the next scripted result: an id, or an exception to raise."""

    def __init__(self, *script: str | ProviderError) -> None:
        self.script = list(script)
        self.requests: list[SmsRequest] = []

    def send(self, request: SmsRequest) -> str:
        self.requests.append(request)
        result = self.script.pop(0) if self.script else f"pm_{len(self.requests)}"
        if isinstance(result, ProviderError):
            raise result
        return result


def sms(command_id: str = "c1", **changes: object) -> OutgoingSms:
    base = OutgoingSms(command_id=command_id, to="+14155550101", to_type="phone", text="hello")
    return replace(base, **changes)  # type: ignore[arg-type]


class InMemoryQueue:
    """A consumer's own queue: messages sent (with their delay) and visibilities changed;
    ``refuse_send`` / ``refuse_visibility`` make those calls raise as SQS refusing them would."""

    def __init__(self, *, refuse_send: bool = False, refuse_visibility: bool = False) -> None:
        self.refuse_send = refuse_send
        self.refuse_visibility = refuse_visibility
        self.sent: list[tuple[str, int]] = []
        self.shown_later: list[tuple[str, int]] = []

    def send(self, body: str, *, delay_seconds: int = 0) -> None:
        if self.refuse_send:
            raise QueueUnavailable("The message could not be queued: throttled")
        self.sent.append((body, delay_seconds))

    def show_later(self, receipt_handle: str, *, delay_seconds: int) -> None:
        if self.refuse_visibility:
            raise QueueUnavailable("The message's visibility could not be changed: throttled")
        self.shown_later.append((receipt_handle, delay_seconds))


class InMemoryBus:
    """Records each PutEvents call; the call numbered ``fail_on_call`` raises as a refused one."""

    def __init__(self, *, fail_on_call: int | None = None) -> None:
        self.calls: list[list[BusEvent]] = []
        self.fail_on_call = fail_on_call

    def publish(self, events: Sequence[BusEvent]) -> None:
        self.calls.append(list(events))
        if self.fail_on_call == len(self.calls):
            raise Throttled("the bus refused")
