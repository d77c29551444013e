"""A fake SMS provider: the failure model shared with the local stack's provider server, and an
in-memory ``SmsProvider`` built on it for tests.

Magic destinations (the end of ``to``) override the random failure rate:

- ``...0400``: 400 ``invalid_destination`` (permanent)
- ``...0503``: 503 ``unavailable`` (transient)
- ``...0429``: 429 ``rate_limited``, retry after 1 s (transient)
- ``...0408``: no answer (a timeout, transient)
- ``...0410``: accepted, but its receipt says ``undelivered``
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from chatflow.domain.sms import SmsRequest
from chatflow.errors import PermanentProviderError, TransientProviderError

ReceiptStatus = Literal["delivered", "undelivered"]


class Fault(Enum):
    """A failure the fake injects; the value is the provider's error code."""

    UNAVAILABLE_503 = "unavailable"
    RATE_LIMITED_429 = "rate_limited"
    TIMEOUT = "timeout"
    INVALID_DESTINATION_400 = "invalid_destination"

    @property
    def status(self) -> int | None:
        """The HTTP status the provider answers; None: it never answers."""
        return _STATUSES[self]

    @property
    def transient(self) -> bool:
        return self is not Fault.INVALID_DESTINATION_400

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_STATUSES: Mapping[Fault, int | None] = {
    Fault.UNAVAILABLE_503: 503,
    Fault.RATE_LIMITED_429: 429,
    Fault.TIMEOUT: None,
    Fault.INVALID_DESTINATION_400: 400,
}
_MESSAGES: Mapping[Fault, str] = {
    Fault.UNAVAILABLE_503: "the provider is temporarily unavailable",
    Fault.RATE_LIMITED_429: "too many requests, retry later",
    Fault.TIMEOUT: "the provider did not answer",
    Fault.INVALID_DESTINATION_400: "the destination cannot receive SMS",
}
_TRANSIENT_FAULTS = (Fault.UNAVAILABLE_503, Fault.RATE_LIMITED_429, Fault.TIMEOUT)
MAGIC_FAULTS: Mapping[str, Fault] = {
    "0400": Fault.INVALID_DESTINATION_400,
    "0503": Fault.UNAVAILABLE_503,
    "0429": Fault.RATE_LIMITED_429,
    "0408": Fault.TIMEOUT,
}
UNDELIVERED_SUFFIX = "0410"
# What a 429 asks the sender to wait, in seconds.
RATE_LIMITED_RETRY_AFTER = 1


def _compact(to: str) -> str:
    return "".join(to.split())


class FailureModel:
    """Which sends fail: magic destinations always; others with probability ``failure_rate``,
    about 2/3 of those transient (503, 429, timeout) and 1/3 permanent (400). Thread-safe."""

    def __init__(self, failure_rate: float = 0.1, *, seed: int | None = None) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be between 0 and 1, got {failure_rate}")
        self.failure_rate = failure_rate
        # Fault injection, not security: a seedable generator is the point.
        self._rng = random.Random(seed)  # noqa: S311
        self._lock = threading.Lock()

    def decide(self, to: str) -> Fault | None:
        """The fault for one send to ``to``, or None when it succeeds."""
        compact = _compact(to)
        if compact.endswith(UNDELIVERED_SUFFIX):
            return None
        for suffix, fault in MAGIC_FAULTS.items():
            if compact.endswith(suffix):
                return fault
        with self._lock:
            if self._rng.random() >= self.failure_rate:
                return None
            if self._rng.random() < 1 / 3:
                return Fault.INVALID_DESTINATION_400
            return self._rng.choice(_TRANSIENT_FAULTS)

    @staticmethod
    def receipt_status(to: str) -> ReceiptStatus:
        """What the delivery receipt of an accepted message to ``to`` says."""
        return "undelivered" if _compact(to).endswith(UNDELIVERED_SUFFIX) else "delivered"


@dataclass(frozen=True)
class SentSms:
    """A message the fake accepted, with the id it answered."""

    id: str
    request: SmsRequest


class FakeSmsProvider:
    """An in-memory ``SmsProvider``: waits a random delay, then fails as ``FailureModel`` says or
    accepts. Idempotent per ``reference``, like the real provider's ``Idempotency-Key``. Thread-safe."""

    def __init__(
        self,
        failure_rate: float = 0.1,
        *,
        seed: int | None = None,
        min_delay_ms: float = 50,
        max_delay_ms: float = 200,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ValueError(
                "delays must satisfy 0 <= min_delay_ms <= max_delay_ms, "
                f"got {min_delay_ms} and {max_delay_ms}"
            )
        self._rng = random.Random(seed)  # noqa: S311 - see FailureModel
        # Its own stream, derived from the seed, so delays and faults are not correlated.
        self.failures = FailureModel(failure_rate, seed=self._rng.getrandbits(64))
        self._min_delay_ms = min_delay_ms
        self._max_delay_ms = max_delay_ms
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: list[SentSms] = []
        self._by_reference: dict[str, str] = {}
        self._attempts: dict[str, int] = {}

    @property
    def sent(self) -> list[SentSms]:
        """Accepted messages, oldest first (a repeated reference appears once)."""
        with self._lock:
            return list(self._sent)

    @property
    def attempts(self) -> dict[str, int]:
        """How many times ``send`` was called per reference, failures and repeats included."""
        with self._lock:
            return dict(self._attempts)

    def send(self, request: SmsRequest) -> str:
        with self._lock:
            self._attempts[request.reference] = self._attempts.get(request.reference, 0) + 1
            delay_ms = self._rng.uniform(self._min_delay_ms, self._max_delay_ms)
        if delay_ms > 0:
            self._sleep(delay_ms / 1000)
        with self._lock:
            earlier = self._by_reference.get(request.reference)
        if earlier is not None:
            return earlier
        fault = self.failures.decide(request.to)
        if fault is Fault.TIMEOUT:
            raise TransientProviderError("the provider did not answer in time", code="provider_timeout")
        if fault is Fault.RATE_LIMITED_429:
            raise TransientProviderError(
                fault.message, code=fault.value, retry_after=RATE_LIMITED_RETRY_AFTER
            )
        if fault is not None:
            error = TransientProviderError if fault.transient else PermanentProviderError
            raise error(fault.message, code=fault.value)
        with self._lock:
            # A concurrent send with the same reference may have been accepted meanwhile.
            earlier = self._by_reference.get(request.reference)
            if earlier is not None:
                return earlier
            message_id = f"pm_{self._rng.getrandbits(128):032x}"
            self._by_reference[request.reference] = message_id
            self._sent.append(SentSms(message_id, request))
        return message_id
