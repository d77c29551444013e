"""In-memory implementations of the SMS gateway's ports, for unit tests."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from chatflow.errors import ProviderError
from chatflow.ports import Claim, OutgoingSms, SmsRequest


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
            elif record.status in ("sent", "failed"):
                return Claim("final", record.attempts)
            elif record.lease_until is not None and record.lease_until > now:
                return Claim("busy", record.attempts, record.lease_until)
            record.attempts += 1
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
        self, command_id: str, *, provider_message_id: str, segments: int, encoding: str, at: datetime
    ) -> None:
        self._finish(
            command_id,
            status="sent",
            provider_message_id=provider_message_id,
            segments=segments,
            encoding=encoding,
            lease_until=None,
        )

    def mark_failed(
        self, command_id: str, *, error_code: str, reason: str, permanent: bool, at: datetime
    ) -> None:
        self._finish(
            command_id,
            status="failed",
            error_code=error_code,
            reason=reason,
            permanent=permanent,
            lease_until=None,
        )

    def release(self, command_id: str, *, error_code: str, reason: str) -> None:
        with self._lock:
            record = self.records[command_id]
            record.lease_until = None
            record.last_error = f"{error_code}: {reason}"

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
    def __init__(self, numbers: set[str] | None = None) -> None:
        self.numbers = set(numbers or ())

    def is_opted_out(self, phone_number: str) -> bool:
        return phone_number in self.numbers

    def opted_out(self, phone_numbers: Sequence[str]) -> set[str]:
        return self.numbers & set(phone_numbers)

    def opt_out(self, phone_number: str, *, at: datetime) -> None:
        self.numbers.add(phone_number)

    def opt_in(self, phone_number: str) -> None:
        self.numbers.discard(phone_number)


class FixedRate:
    """Grants every request, or answers the waits given, in order."""

    def __init__(self, waits: list[float] | None = None) -> None:
        self.waits = list(waits or [])
        self.calls = 0

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
