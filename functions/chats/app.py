"""Chats API: chats, members, messages, receipts, presence (`/v1/chats`, `/v1/messages`), `/v1/search`."""

from __future__ import annotations

from chatflow.api.chat_routes import chat_router, presence_router, search_router
from chatflow.api.http import build_resolver, http_handler
from chatflow.composition import Composition
from chatflow.domain.clock import utc_now
from chatflow.settings import (
    AwsSettings,
    ConnectionsSettings,
    CursorSettings,
    SearchSettings,
    SendLimitSettings,
    TableSettings,
)

deps = Composition().require(
    AwsSettings, TableSettings, CursorSettings, SearchSettings, ConnectionsSettings, SendLimitSettings
)

app = build_resolver(
    [
        chat_router(deps.messaging),
        search_router(deps.searching),
        presence_router(deps.messaging, deps.connections, utc_now),
    ]
)
lambda_handler = http_handler(app)
