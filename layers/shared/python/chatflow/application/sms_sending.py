"""The SendSms consumer's work on one queue message (CONTRACT §4).

Each message is one command; handling it ends in one of:

- sent / failed / expired / duplicate / invalid: the message is done (deleted).
  ``SmsSent``, ``SmsFailed`` or ``SmsExpired`` follows from the command's record (the SMS
  table's stream); an invalid body is recorded for its ``SmsRejected`` and never retried;
- retry (a provider call failed) or wait (no slot of the provider-wide rate, or another
  delivery holds the command): the command is sent to the queue again, delayed by the
  backoff or the wait, and this message is done. A fresh message has a fresh receive
  count, so only crashes count toward the queue's ``maxReceiveCount``: a busy campaign
  cannot dead-letter a command by bouncing it off the rate. If that send fails, the
  message's own visibility is set to the delay instead and ``RetryLater`` is raised (a
  batch item failure: SQS hands it back then; nothing is lost);
- an unexpected error: raised; retried after the queue's visibility timeout, and after
  ``maxReceiveCount`` receives the dead-letter queue's consumer ends it (``dead_lettered``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from chatflow.commands import InvalidCommand, command_body, parse_command
from chatflow.domain.gateway import SmsGateway
from chatflow.errors import ChatFlowError
from chatflow.observability import logger, metrics
from chatflow.ports import SmsCommandRepository

# SQS's longest message delay; the retry policy's longest delay is the same 15 minutes.
MAX_DELAY_SECONDS = 900


class OwnQueue(Protocol):
    """The consumer's own queue (``chatflow.adapters.queues.SqsQueue``); raises ``ChatFlowError``."""

    def send(self, body: str, *, delay_seconds: int = 0) -> None: ...

    def show_later(self, receipt_handle: str, *, delay_seconds: int) -> None: ...


class RetryLater(Exception):
    """The command is given back to the queue; its visibility says when it comes back."""


class SmsSending:
    def __init__(
        self,
        *,
        gateway: Callable[[], SmsGateway],
        commands: Callable[[], SmsCommandRepository],
        queue: OwnQueue,
        clock: Callable[[], datetime],
    ) -> None:
        self._gateway = gateway
        self._commands = commands
        self._queue = queue
        self._clock = clock

    def handle(self, body: str, message_id: str, receipt_handle: str, *, deadline: datetime | None) -> None:
        try:
            sms = parse_command(body, message_id)
        except InvalidCommand as exc:
            self._commands().reject(reason=str(exc), body=body, at=self._clock())
            logger.warning("command rejected", extra={"message_id": message_id, "reason": str(exc)})
            metrics.add_metric(name="SmsRejected", unit="Count", value=1)
            return
        outcome = self._gateway().handle(sms, deadline=deadline)
        logger.info(
            "command handled",
            extra={"command_id": sms.command_id, "outcome": outcome.kind, "detail": outcome.detail},
        )
        if outcome.kind not in ("retry", "wait"):
            return
        try:
            self._queue.send(command_body(sms), delay_seconds=min(outcome.delay_seconds, MAX_DELAY_SECONDS))
            return
        except ChatFlowError as exc:
            logger.warning("command not sent again", extra={"command_id": sms.command_id, "error": str(exc)})
        try:
            self._queue.show_later(receipt_handle, delay_seconds=outcome.delay_seconds)
        except ChatFlowError as exc:
            # The retry still happens, after the queue's own visibility timeout instead.
            logger.warning("visibility not changed", extra={"command_id": sms.command_id, "error": str(exc)})
        raise RetryLater(f"{sms.command_id}: retry in {outcome.delay_seconds} s ({outcome.detail})")


class DeadLetters:
    """The dead-letter queue's consumer: each command there still gets its terminal event.

    The command's record becomes ``failed`` with ``errorCode: "dead_lettered"`` (``SmsFailed``
    follows from the record, like every other outcome), unless it ended meanwhile. A body
    that is not a valid command is recorded as rejected (``SmsRejected``), as the consumer
    would have done.
    """

    def __init__(
        self, *, commands: Callable[[], SmsCommandRepository], clock: Callable[[], datetime]
    ) -> None:
        self._commands = commands
        self._clock = clock

    def dead_lettered(self, body: str, message_id: str, receives: int) -> None:
        try:
            # The original message's id: a command without its own id was known by it.
            sms = parse_command(body, message_id)
        except InvalidCommand as exc:
            self._commands().reject(reason=str(exc), body=body, at=self._clock())
            logger.warning("dead letter rejected", extra={"message_id": message_id, "reason": str(exc)})
            return
        reason = (
            f"the SendSms consumer failed on every delivery ({receives} receives); "
            "the message was dead-lettered"
        )
        ended = self._commands().mark_dead_lettered(sms, reason=reason, at=self._clock())
        logger.error(
            "command dead-lettered",
            extra={"command_id": sms.command_id, "receives": receives, "marked_failed": ended},
        )
        if ended:
            metrics.add_metric(name="SmsDeadLettered", unit="Count", value=1)
