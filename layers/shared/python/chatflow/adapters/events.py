"""``EventPublisher`` over EventBridge ``PutEvents``: batched, with failed entries retried."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from chatflow.adapters.aws_errors import EVENTS_THROTTLING, events_errors
from chatflow.adapters.batch_retry import BatchRetry, full_jitter
from chatflow.domain.sms_events import BusEvent
from chatflow.errors import Throttled

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

# PutEvents quotas: 10 entries and 256 KiB per call.
MAX_ENTRIES_PER_CALL = 10
MAX_BYTES_PER_CALL = 256 * 1024
# Short: a publisher runs inside a stream handler whose whole batch waits on it.
_FIRST_BACKOFF_SECONDS = 0.1
_MAX_BACKOFF_SECONDS = 2.0
# botocore also retries throttling and 5xx per call; BatchRetry is for the entries a
# successful call reports as failed, which botocore never retries.
_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=10)


class EventsNotPublished(Throttled):
    """Some events never reached the bus after every attempt; publishing them again is safe."""

    def __init__(self, message: str, *, unpublished: int, error_codes: Counter[str]) -> None:
        super().__init__(message)
        self.unpublished = unpublished
        self.error_codes = error_codes


class EventBridgePublisher:
    """Puts ``BusEvent``s on ``bus_name``; the client is made on first use unless one is given."""

    def __init__(
        self,
        bus_name: str,
        client: EventBridgeClient | None = None,
        *,
        max_attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float], float] = full_jitter,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self._bus_name = bus_name
        self._client = client
        self._client_lock = threading.Lock()
        self._max_attempts = max_attempts
        self._retry = BatchRetry(
            rounds=max_attempts,
            first_delay=_FIRST_BACKOFF_SECONDS,
            max_delay=_MAX_BACKOFF_SECONDS,
            sleep=sleep,
            jitter=jitter,
        )

    def publish(self, events: Sequence[BusEvent]) -> None:
        # Every detail is encoded before anything is sent: a bad one sends none.
        pending = [self._entry(event) for event in events]
        errors: Counter[str] = Counter()  # of the last round

        def put(entries: list[PutEventsRequestEntryTypeDef]) -> list[PutEventsRequestEntryTypeDef]:
            errors.clear()
            failed: list[PutEventsRequestEntryTypeDef] = []
            for batch in _batches(entries):
                for entry, code in self._put(batch):
                    failed.append(entry)
                    errors[code] += 1
            return failed

        def give_up(left: list[PutEventsRequestEntryTypeDef]) -> EventsNotPublished:
            codes = ", ".join(f"{code} x{count}" for code, count in errors.most_common())
            return EventsNotPublished(
                f"{len(left)} of {len(events)} events never reached event bus {self._bus_name} "
                f"after {self._max_attempts} attempts ({codes})",
                unpublished=len(left),
                error_codes=Counter(errors),
            )

        if pending:
            self._retry.run(pending, put, what="events", give_up=give_up)

    def _entry(self, event: BusEvent) -> PutEventsRequestEntryTypeDef:
        try:
            detail = json.dumps(event.detail, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the detail of a {event.detail_type} event is not JSON: {exc}") from exc
        entry: PutEventsRequestEntryTypeDef = {
            "Source": event.source,
            "DetailType": event.detail_type,
            "Detail": detail,
            "EventBusName": self._bus_name,
        }
        size = _size(entry)
        if size > MAX_BYTES_PER_CALL:
            raise ValueError(
                f"a {event.detail_type} event is {size} bytes, over EventBridge's {MAX_BYTES_PER_CALL}"
            )
        return entry

    def _put(
        self, batch: list[PutEventsRequestEntryTypeDef]
    ) -> list[tuple[PutEventsRequestEntryTypeDef, str]]:
        """The entries of ``batch`` that did not go, each with its error code."""
        # A throttled call is a batch of failed entries: retried with the others.
        with events_errors(expect=EVENTS_THROTTLING) as call:
            response = self._events().put_events(Entries=batch)
        if call.refused is not None:
            return [(entry, call.refused) for entry in batch]
        if response["FailedEntryCount"] == 0:
            return []
        # Results are in the order of the entries; a failed one has an ErrorCode and no EventId.
        return [
            (entry, result.get("ErrorCode") or "UnknownError")
            for entry, result in zip(batch, response["Entries"], strict=True)
            if result.get("ErrorCode") or not result.get("EventId")
        ]

    def _events(self) -> EventBridgeClient:
        with self._client_lock:
            if self._client is None:
                self._client = boto3.client("events", config=_CONFIG)
            return self._client


def _size(entry: PutEventsRequestEntryTypeDef) -> int:
    """An entry's size as EventBridge counts it, plus the bus name, to stay on the safe side."""
    fields = (entry.get("Source"), entry.get("DetailType"), entry.get("Detail"), entry.get("EventBusName"))
    return sum(len(value.encode("utf-8")) for value in fields if value)


def _batches(entries: list[PutEventsRequestEntryTypeDef]) -> Iterator[list[PutEventsRequestEntryTypeDef]]:
    """Consecutive runs of at most 10 entries and 256 KiB."""
    batch: list[PutEventsRequestEntryTypeDef] = []
    batch_bytes = 0
    for entry in entries:
        size = _size(entry)
        if batch and (len(batch) == MAX_ENTRIES_PER_CALL or batch_bytes + size > MAX_BYTES_PER_CALL):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(entry)
        batch_bytes += size
    if batch:
        yield batch
