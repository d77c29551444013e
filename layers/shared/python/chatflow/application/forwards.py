"""The end of an SMS-forward wait (CONTRACT §7, "Forwards wait"): one digest SMS, or nothing.

The fan-out (``chatflow.application.realtime``) starts a wait when a message reaches a
member with no open connection and their budget for the chat is free; the wait's job
comes back ``ForwardAfterSeconds`` later, on ``ForwardsFunction``, and runs ``finish``:

1. the chat as it is now (one read): what the member has still not read from the wait's
   first message on; nothing (they read it, or left the chat) gives the budget back;
2. their presence (one read): connected again, the app shows it: the budget is given back;
3. opt-out (one read): an opted-out number gets nothing (the budget is kept: no new wait
   for the rest of the window);
4. the newest unread messages (one batch read, ``DIGEST_MESSAGES`` at most);
5. the budget marked sent (one write; refused when another wait holds it now), then one
   SendSms command whose id names the wait (``forward_command_id``): a job delivered twice
   queues the same command, which the gateway sends once.

A failure raises: the job comes back (SQS, partial batch failures) and, after 5 tries,
lands in the forward dead-letter queue (alarmed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from chatflow.domain.clock import to_iso
from chatflow.domain.realtime import (
    DIGEST_MESSAGES,
    FORWARD_WINDOW,
    ForwardJob,
    digest_text,
    forward_command_id,
    unread_range,
)
from chatflow.observability import logger, metrics
from chatflow.ports import (
    ChatRepository,
    ConnectionRepository,
    ForwardLimiter,
    OptOutRepository,
    SmsCommandSender,
)

if TYPE_CHECKING:
    from chatflow.commands import SendSmsCommand
    from chatflow.domain.chats import Chat, Message

# sent: one SMS queued; nothing_unread: read meanwhile (or the member left); online: the app
# shows it; opted_out: STOP; taken: another wait holds the budget now (it covers the rest).
Outcome = Literal["sent", "nothing_unread", "online", "opted_out", "taken"]
# The business metric of each outcome (the wait's saving is ForwardCancelled).
_METRIC = {
    "sent": "ForwardSent",
    "nothing_unread": "ForwardCancelled",
    "online": "ForwardCancelled",
    "opted_out": "ForwardOptedOut",
    "taken": "ForwardTaken",
}


class DelayedForwards:
    def __init__(
        self,
        *,
        chats: ChatRepository,
        connections: ConnectionRepository,
        opt_outs: OptOutRepository,
        limiter: ForwardLimiter,
        sender: SmsCommandSender,
        clock: Callable[[], datetime],
    ) -> None:
        self._chats = chats
        self._connections = connections
        self._opt_outs = opt_outs
        self._limiter = limiter
        self._sender = sender
        self._clock = clock

    def finish(self, job: ForwardJob) -> Outcome:
        """Forward what ``job``'s member still has not read, as one SMS; say what happened."""
        outcome = self._finish(job)
        metrics.add_metric(name=_METRIC[outcome], unit="Count", value=1)
        logger.info(
            "SMS-forward wait over",
            extra={"chat_id": job.chat_id, "from_seq": job.from_seq, "outcome": outcome},
        )
        return outcome

    def _finish(self, job: ForwardJob) -> Outcome:
        chat = self._chats.get_chat(job.chat_id)
        unread = unread_range(chat, job) if chat is not None else range(0)
        if chat is None or not unread:
            self._limiter.release(job.chat_id, job.phone_number, seq=job.from_seq)
            return "nothing_unread"
        now = self._clock()
        if self._connections.presence([job.phone_number], now=now)[job.phone_number].online:
            self._limiter.release(job.chat_id, job.phone_number, seq=job.from_seq)
            return "online"
        if self._opt_outs.opted_out([job.phone_number]):
            return "opted_out"
        shown = unread[-DIGEST_MESSAGES:]
        messages = sorted(
            self._chats.get_messages([(job.chat_id, seq) for seq in shown]), key=lambda m: m.seq
        )
        if not messages:  # the chat's messages are stored before its META moves: never here
            raise LookupError(f"messages {shown.start}-{shown.stop - 1} of {job.chat_id} are missing")
        if not self._limiter.mark_sent(job.chat_id, job.phone_number, seq=job.from_seq):
            return "taken"
        self._sender.send_all([self._command(chat, job, messages, len(unread), now)])
        return "sent"

    @staticmethod
    def _command(
        chat: Chat, job: ForwardJob, messages: list[Message], count: int, now: datetime
    ) -> SendSmsCommand:
        from chatflow.commands import SendSmsCommand  # on first forward: not at cold start

        last = messages[-1]
        return SendSmsCommand(
            commandId=forward_command_id(job.chat_id, job.phone_number, job.from_seq),
            phoneNumber=job.phone_number,
            text=digest_text(chat, messages, count),
            messageType="transactional",
            metadata={
                "chatId": job.chat_id,
                "messageId": last.message_id,
                "fromSeq": str(job.from_seq),
                "upToSeq": str(last.seq),
                "messages": str(count),  # the unread messages the SMS stands for
            },
            # A forward is news for 10 minutes (the member's window); later, the app says it.
            validUntil=to_iso(now + FORWARD_WINDOW),
        )
