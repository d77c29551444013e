"""The provider's callbacks: delivery receipts and inbound SMS (STOP / START / HELP, replies to
chats), both signed (``chatflow.api.sms_routes``). Replies to inbound keywords (confirmations,
help) are SendSms commands on the gateway's queue; other text from a member forwarded a chat in
the last 24 hours is stored as their message of it (``chatflow.domain.sms_replies``).
"""

from __future__ import annotations

from chatflow.api.http import build_resolver, http_handler
from chatflow.api.sms_routes import signed, sms_router
from chatflow.composition import Composition
from chatflow.settings import (
    AwsSettings,
    ConnectionsSettings,
    CursorSettings,
    SendSmsQueueSettings,
    SmsWebhookSettings,
    TableSettings,
)

deps = Composition().require(
    AwsSettings, SmsWebhookSettings, SendSmsQueueSettings, ConnectionsSettings, TableSettings, CursorSettings
)

app = build_resolver([sms_router(deps.webhooks)])
lambda_handler = signed(http_handler(app), deps.webhook_secret)
