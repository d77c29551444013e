"""Chats API: chats, members, messages, receipts, presence (`/v1/chats`, `/v1/messages`), `/v1/search`."""

from __future__ import annotations

import time
from functools import cache

from chatflow.adapters import aws
from chatflow.adapters.chat_store import DynamoChatRepository
from chatflow.adapters.connection_store import DynamoConnectionRepository
from chatflow.adapters.identity_store import DynamoUserRepository
from chatflow.adapters.search_store import DynamoSearchIndex
from chatflow.api.chat_routes import chat_router, presence_router, search_router
from chatflow.api.http import build_resolver, http_handler
from chatflow.domain.clock import utc_now
from chatflow.domain.messaging import MessagingService
from chatflow.domain.pagination import CursorCodec
from chatflow.domain.search import SearchService
from chatflow.settings import (
    AwsSettings,
    ConnectionsSettings,
    CursorSettings,
    SearchSettings,
    TableSettings,
    load,
)

AWS = load(AwsSettings)
TABLES = load(TableSettings)
CURSORS = load(CursorSettings)
SEARCH = load(SearchSettings)
CONNECTIONS = load(ConnectionsSettings)


@cache
def cursors() -> CursorCodec:
    return CursorCodec(aws.read_secret(AWS.region, CURSORS.cursor_secret_arn))


@cache
def chats() -> DynamoChatRepository:
    return DynamoChatRepository(TABLES.chats_table, aws.dynamodb(AWS.region))


@cache
def messaging() -> MessagingService:
    return MessagingService(
        chats=chats(),
        users=DynamoUserRepository(TABLES.users_table, aws.dynamodb(AWS.region)),
        cursors=cursors(),
        clock=utc_now,
        sleep=time.sleep,
    )


@cache
def searching() -> SearchService:
    return SearchService(
        chats=chats(),
        index=DynamoSearchIndex(SEARCH.search_table, aws.dynamodb(AWS.region)),
        cursors=cursors(),
    )


@cache
def connections() -> DynamoConnectionRepository:
    return DynamoConnectionRepository(CONNECTIONS.connections_table, aws.dynamodb(AWS.region))


app = build_resolver(
    [chat_router(messaging), search_router(searching), presence_router(messaging, connections, utc_now)]
)
lambda_handler = http_handler(app)
