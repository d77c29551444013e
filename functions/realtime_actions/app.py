"""WebSocket actions: ``sendMessage``, ``receipt``, ``typing``, ``ping`` and ``$default``.

Every frame gets an answer only when there is something to say: ``pong`` for ``ping``,
an ``error`` frame (the connection stays open) for bad JSON, an unknown action, invalid
fields or a refused request. Messages and receipts follow the HTTP API's rules (the same
domain service); their frames reach everyone through the fan-out. A ``sendMessage`` that
repeats a ``clientMessageId`` stores nothing and gets the original message back (the
HTTP route's ``200``), as a ``message.new`` frame to that connection only.

The session is checked on every frame, not only at ``$connect``: after
``DELETE /v1/sessions/current`` (or expiry) the next frame gets an ``unauthorized``
error frame and the connection is closed.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters import aws
from chatflow.adapters.chat_store import DynamoChatRepository
from chatflow.adapters.connection_store import DynamoConnectionRepository
from chatflow.adapters.identity_store import DynamoSessionRepository, DynamoUserRepository
from chatflow.adapters.notifier import ApiGatewayNotifier, management_client
from chatflow.api.realtime import (
    PONG,
    PingFrame,
    RealtimeService,
    ReceiptFrame,
    SendMessageFrame,
    TypingFrame,
    error_frame,
    message_new,
    parse_frame,
)
from chatflow.domain.clock import utc_now
from chatflow.domain.messaging import MessagingService
from chatflow.domain.pagination import CursorCodec
from chatflow.errors import ChatFlowError
from chatflow.observability import logger
from chatflow.settings import AwsSettings, CursorSettings, RealtimeSettings, TableSettings, load

AWS = load(AwsSettings)
TABLES = load(TableSettings)
CURSORS = load(CursorSettings)
REALTIME = load(RealtimeSettings)


SIGNED_OUT = "Your session ended (signed out or expired): sign in again and reconnect with the new token."


@cache
def chats() -> DynamoChatRepository:
    return DynamoChatRepository(TABLES.chats_table, aws.dynamodb(AWS.region))


@cache
def messaging() -> MessagingService:
    return MessagingService(
        chats=chats(),
        users=DynamoUserRepository(TABLES.users_table, aws.dynamodb(AWS.region)),
        cursors=CursorCodec(aws.read_secret(AWS.region, CURSORS.cursor_secret_arn)),
        clock=utc_now,
        sleep=time.sleep,
    )


@cache
def realtime() -> RealtimeService:
    client = aws.dynamodb(AWS.region)
    return RealtimeService(
        connections=DynamoConnectionRepository(REALTIME.connections_table, client),
        notifier=ApiGatewayNotifier(management_client(AWS.region, REALTIME.websocket_endpoint)),
        chats=chats(),
        clock=utc_now,
    )


@cache
def sessions() -> DynamoSessionRepository:
    return DynamoSessionRepository(TABLES.users_table, aws.dynamodb(AWS.region))


def signed_in(token_hash: str) -> bool:
    session = sessions().get(token_hash) if token_hash else None
    return session is not None and not session.is_expired(utc_now())


def handle(caller: str, connection_id: str, body: str | None) -> None:
    frame = parse_frame(body)
    if isinstance(frame, PingFrame):
        realtime().reply(connection_id, PONG)
    elif isinstance(frame, SendMessageFrame):
        sent = messaging().send(caller, frame.chatId, frame.text, frame.clientMessageId)
        if not sent.created:
            realtime().reply(connection_id, message_new(sent.message, sent.chat))
    elif isinstance(frame, ReceiptFrame):
        messaging().mark(caller, frame.chatId, frame.type, frame.upToSeq)
    elif isinstance(frame, TypingFrame):
        realtime().typing(caller, frame.chatId)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event.get("requestContext") or {}
    connection_id = str(request.get("connectionId", ""))
    authorizer = request.get("authorizer") or {}
    caller = str(authorizer.get("phoneNumber", ""))
    if not signed_in(str(authorizer.get("tokenHash", ""))):
        logger.info("frame from a signed-out session", extra={"route": request.get("routeKey")})
        realtime().refuse(connection_id, error_frame("unauthorized", SIGNED_OUT))
        return {"statusCode": 200}
    try:
        handle(caller, connection_id, event.get("body"))
    except ChatFlowError as exc:
        logger.info("frame refused", extra={"code": exc.code, "route": request.get("routeKey")})
        realtime().reply(connection_id, error_frame(exc.code, exc.message))
    return {"statusCode": 200}
