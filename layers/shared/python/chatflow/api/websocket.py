"""The WebSocket action routes (``sendMessage``, ``receipt``, ``typing``, ``ping``,
``$default``), as the HTTP routers are for HTTP (``$connect`` and ``$disconnect``:
``chatflow.application.connections``).

Every frame gets an answer only when there is something to say: ``pong`` for ``ping``,
an ``error`` frame (the connection stays open) for bad JSON, an unknown action, invalid
fields or a refused request. Messages and receipts follow the HTTP API's rules (the same
domain service); their frames reach everyone through the fan-out. A ``sendMessage`` that
repeats a ``clientMessageId`` stores nothing and gets the original message back (the
HTTP route's ``200``), as a ``message.new`` frame to that connection only. A
``sendMessage`` over the sender's send limit gets a ``rate_limited`` error frame with
``retryAfter`` (seconds), the HTTP routes' ``429``; the connection stays open.

The session is checked on every frame, not only at ``$connect``: after
``DELETE /v1/sessions/current`` (or expiry) the next frame gets an ``unauthorized``
error frame and the connection is closed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from chatflow.api.realtime import (
    PONG,
    PingFrame,
    ReceiptFrame,
    SendMessageFrame,
    TypingFrame,
    error_frame,
    message_new,
    parse_frame,
)
from chatflow.application.realtime import RealtimeService
from chatflow.domain.messaging import MessagingService
from chatflow.errors import ChatFlowError, RateLimited
from chatflow.observability import logger
from chatflow.ports import SessionRepository

SIGNED_OUT = "Your session ended (signed out or expired): sign in again and reconnect with the new token."


class WebSocketActions:
    """Services are asked for when a frame needs them (a ``ping`` reads no cursor secret)."""

    def __init__(
        self,
        *,
        realtime: Callable[[], RealtimeService],
        messaging: Callable[[], MessagingService],
        sessions: Callable[[], SessionRepository],
        clock: Callable[[], datetime],
    ) -> None:
        self._realtime = realtime
        self._messaging = messaging
        self._sessions = sessions
        self._clock = clock

    def on_frame(
        self, route: str, connection_id: str, caller: str, token_hash: str, body: str | None
    ) -> None:
        """One frame from a connected client; the answer, if any, goes back over the connection."""
        if not self._signed_in(token_hash):
            logger.info("frame from a signed-out session", extra={"route": route})
            self._realtime().refuse(connection_id, error_frame("unauthorized", SIGNED_OUT))
            return
        try:
            self._handle(caller, connection_id, body)
        except ChatFlowError as exc:
            logger.info("frame refused", extra={"code": exc.code, "route": route})
            retry_after = exc.retry_after_seconds if isinstance(exc, RateLimited) else None
            self._realtime().reply(connection_id, error_frame(exc.code, exc.message, retry_after=retry_after))

    def _signed_in(self, token_hash: str) -> bool:
        session = self._sessions().get(token_hash) if token_hash else None
        return session is not None and not session.is_expired(self._clock())

    def _handle(self, caller: str, connection_id: str, body: str | None) -> None:
        frame = parse_frame(body)
        if isinstance(frame, PingFrame):
            self._realtime().reply(connection_id, PONG)
        elif isinstance(frame, SendMessageFrame):
            sent = self._messaging().send(caller, frame.chatId, frame.text, frame.clientMessageId)
            if not sent.created:
                self._realtime().reply(connection_id, message_new(sent.message, sent.chat))
        elif isinstance(frame, ReceiptFrame):
            self._messaging().mark(caller, frame.chatId, frame.type, frame.upToSeq)
        elif isinstance(frame, TypingFrame):
            self._realtime().typing(caller, frame.chatId)
