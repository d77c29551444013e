"""AWS errors translated in one place: one context manager per service family.

    with dynamo_errors():
        client.put_item(...)

turns the ``ClientError`` the block raises into the application's exception tree
(``chatflow.errors``): a failed condition into ``ConcurrentUpdate`` (or the ``conflict`` the
adapter names), a throttling code of that service into ``Throttled``. Any other code goes
on as the ``ClientError`` it is.

An adapter that promises one error for every failure of a call names it in ``otherwise``
(a function of the ``ClientError``): it is raised for the codes the family does not map.

A code the adapter expects as an answer, not as an error ("already done", a transaction
refused by its conditions), is named in ``expect``: the block then ends quietly and the
context manager says which code ended it (``refused``) and, for a transaction, each item's
reason (``reasons``)::

    with dynamo_errors(expect=CONDITION_FAILED) as call:
        client.update_item(..., ConditionExpression=...)
    return call.refused is None
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from types import TracebackType

from botocore.exceptions import ClientError

from chatflow.errors import ConcurrentUpdate, Throttled

CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELLED = "TransactionCanceledException"
# A transaction item's reason in ``reasons``.
CONDITION_REASON = "ConditionalCheckFailed"
TRANSACTION_CONFLICT = "TransactionConflict"
# A write that refused on its condition, alone or inside a transaction.
REFUSED_WRITE = frozenset({CONDITION_FAILED, TRANSACTION_CANCELLED})

DYNAMO_THROTTLING = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)
SQS_THROTTLING = frozenset({"ThrottlingException", "RequestThrottled", "KmsThrottled"})
EVENTS_THROTTLING = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
S3_THROTTLING = frozenset({"SlowDown", "ThrottlingException", "RequestLimitExceeded"})
SECRETS_THROTTLING = frozenset({"ThrottlingException", "LimitExceededException"})
CONNECTIONS_THROTTLING = frozenset({"LimitExceededException", "TooManyRequestsException"})
GONE = "GoneException"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def cancellation_codes(exc: ClientError) -> list[str]:
    """The per-item reason codes of a cancelled transaction ("None" where the item was fine)."""
    reasons = exc.response.get("CancellationReasons") or []
    return [str(r.get("Code", "None")) for r in reasons]


Translate = Callable[[ClientError, str], Exception | None]
Otherwise = Callable[[ClientError], Exception] | None


class AwsCall:
    """The context of one or a few AWS calls: see the module's docstring."""

    __slots__ = ("_expect", "_otherwise", "_translate", "error", "refused")

    def __init__(
        self, translate: Translate, expect: Collection[str] | str, otherwise: Otherwise = None
    ) -> None:
        self._translate = translate
        self._otherwise = otherwise
        self._expect = frozenset({expect} if isinstance(expect, str) else expect)
        self.refused: str | None = None
        self.error: ClientError | None = None

    @property
    def reasons(self) -> list[str]:
        """Each item's reason code when an expected ``TransactionCanceledException`` ended the block."""
        return cancellation_codes(self.error) if self.error is not None else []

    def __enter__(self) -> AwsCall:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if not isinstance(exc, ClientError):
            return False
        code = error_code(exc)
        if code in self._expect:
            self.refused, self.error = code, exc
            return True
        translated = self._translate(exc, code)
        if translated is None and self._otherwise is not None:
            translated = self._otherwise(exc)
        if translated is None:
            return False
        raise translated from exc


def _throttled(codes: frozenset[str], message: str) -> Translate:
    def translate(_exc: ClientError, code: str) -> Exception | None:
        return Throttled(message) if code in codes else None

    return translate


_SQS = _throttled(SQS_THROTTLING, "The queue is busy: retry in a moment.")
_EVENTS = _throttled(EVENTS_THROTTLING, "The event bus is busy: retry in a moment.")
_S3 = _throttled(S3_THROTTLING, "The file store is busy: retry in a moment.")
_SECRETS = _throttled(SECRETS_THROTTLING, "The secret store is busy: retry in a moment.")
_CONNECTIONS = _throttled(CONNECTIONS_THROTTLING, "The WebSocket API is busy: retry in a moment.")


def dynamo_errors(
    *, conflict: type[Exception] = ConcurrentUpdate, expect: Collection[str] | str = ()
) -> AwsCall:
    """DynamoDB: a failed condition raises ``conflict``, throttling ``Throttled``."""

    def translate(_exc: ClientError, code: str) -> Exception | None:
        if code == CONDITION_FAILED:
            return conflict("a conditional write found the item changed")
        if code in DYNAMO_THROTTLING:
            return Throttled("The database is busy: retry in a moment.")
        return None

    return AwsCall(translate, expect)


def sqs_errors(*, expect: Collection[str] | str = (), otherwise: Otherwise = None) -> AwsCall:
    """SQS: throttling (``RequestThrottled``, a KMS key's ``KmsThrottled``...) raises ``Throttled``."""
    return AwsCall(_SQS, expect, otherwise)


def events_errors(*, expect: Collection[str] | str = ()) -> AwsCall:
    """EventBridge: throttling raises ``Throttled``."""
    return AwsCall(_EVENTS, expect)


def s3_errors(*, expect: Collection[str] | str = ()) -> AwsCall:
    """S3: ``SlowDown`` and throttling raise ``Throttled``."""
    return AwsCall(_S3, expect)


def secrets_errors(*, expect: Collection[str] | str = ()) -> AwsCall:
    """Secrets Manager: throttling raises ``Throttled``."""
    return AwsCall(_SECRETS, expect)


def connections_errors(*, expect: Collection[str] | str = ()) -> AwsCall:
    """API Gateway's ``@connections`` API: throttling raises ``Throttled``."""
    return AwsCall(_CONNECTIONS, expect)
