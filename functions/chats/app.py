"""Chats API: chats, members, messages and receipts (``/v1/chats``, ``/v1/messages``)."""

from __future__ import annotations

import time
from functools import cache

from chatflow.adapters import aws
from chatflow.adapters.chat_store import DynamoChatRepository
from chatflow.adapters.identity_store import DynamoUserRepository
from chatflow.api.chat_routes import chat_router
from chatflow.api.http import build_resolver, http_handler
from chatflow.domain.clock import utc_now
from chatflow.domain.messaging import MessagingService
from chatflow.domain.pagination import CursorCodec
from chatflow.settings import AwsSettings, CursorSettings, TableSettings, load

AWS = load(AwsSettings)
TABLES = load(TableSettings)
CURSORS = load(CursorSettings)


@cache
def messaging() -> MessagingService:
    client = aws.dynamodb(AWS.region)
    return MessagingService(
        chats=DynamoChatRepository(TABLES.chats_table, client),
        users=DynamoUserRepository(TABLES.users_table, client),
        cursors=CursorCodec(aws.read_secret(AWS.region, CURSORS.cursor_secret_arn)),
        clock=utc_now,
        sleep=time.sleep,
    )


app = build_resolver([chat_router(messaging)])
lambda_handler = http_handler(app)
