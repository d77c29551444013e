"""Identity API: sign-in codes, sessions and profiles (``POST /v1/verifications``,
``POST/DELETE /v1/sessions``, ``/v1/users/me``).

``AuthMode=otp`` sends codes through the SMS gateway's queue, so only that mode needs
``SEND_SMS_QUEUE_URL``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from chatflow.adapters import aws
from chatflow.adapters.chat_store import DynamoChatRepository
from chatflow.adapters.identity_store import (
    DynamoSessionRepository,
    DynamoUserRepository,
    DynamoVerificationRepository,
)
from chatflow.adapters.sms_commands import SqsSmsCommandSender
from chatflow.api.http import build_resolver, http_handler
from chatflow.api.identity_routes import identity_router
from chatflow.domain.clock import utc_now
from chatflow.domain.identity import IdentityService
from chatflow.settings import AwsSettings, IdentitySettings, SendSmsQueueSettings, TableSettings, load

AWS = load(AwsSettings)
TABLES = load(TableSettings)
IDENTITY = load(IdentitySettings)
SEND_SMS = load(SendSmsQueueSettings) if IDENTITY.auth_mode == "otp" else None


@cache
def identity() -> IdentityService:
    client = aws.dynamodb(AWS.region)
    return IdentityService(
        users=DynamoUserRepository(TABLES.users_table, client),
        sessions=DynamoSessionRepository(TABLES.users_table, client),
        clock=utc_now,
        session_ttl=timedelta(days=IDENTITY.session_ttl_days),
        operators=frozenset(IDENTITY.operator_phone_numbers),
        chats=DynamoChatRepository(TABLES.chats_table, client),
        auth_mode=IDENTITY.auth_mode,
        verifications=DynamoVerificationRepository(TABLES.users_table, client) if SEND_SMS else None,
        sms=SqsSmsCommandSender(SEND_SMS.send_sms_queue_url, region=AWS.region) if SEND_SMS else None,
    )


app = build_resolver([identity_router(identity)])
lambda_handler = http_handler(app)
