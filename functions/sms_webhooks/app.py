"""The provider's callbacks: delivery receipts and inbound SMS (STOP / START / HELP), both signed.

Replies to inbound keywords (confirmations, help) are SendSms commands on the gateway's queue.

The signature (``X-Signature``: hex HMAC-SHA256 of the raw body with the webhook secret)
is checked on the raw body before anything else: a bad one is ``401`` whatever the body.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.adapters import aws
from chatflow.adapters.sms_commands import SqsSmsCommandSender
from chatflow.adapters.sms_store import DynamoOptOutRepository, DynamoSmsCommandRepository
from chatflow.api.errors import error_response
from chatflow.api.http import build_resolver, http_handler, proxy_result
from chatflow.api.sms_routes import sms_router
from chatflow.domain.clock import utc_now
from chatflow.domain.sms import signature_matches
from chatflow.domain.webhooks import WebhookService
from chatflow.settings import AwsSettings, SendSmsQueueSettings, SmsWebhookSettings, load

AWS = load(AwsSettings)
SETTINGS = load(SmsWebhookSettings)
QUEUE = load(SendSmsQueueSettings)


@cache
def webhooks() -> WebhookService:
    client = aws.dynamodb(AWS.region)
    return WebhookService(
        commands=DynamoSmsCommandRepository(SETTINGS.sms_table, client),
        opt_outs=DynamoOptOutRepository(SETTINGS.sms_table, client),
        replies=SqsSmsCommandSender(QUEUE.send_sms_queue_url, region=AWS.region),
        clock=utc_now,
    )


@cache
def webhook_secret() -> str:
    return aws.read_json_secret(AWS.region, SETTINGS.provider_secret_arn)["webhookSecret"]


app = build_resolver([sms_router(webhooks)])
_handle = http_handler(app)


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if not signature_matches(_raw_body(event), webhook_secret(), headers.get("x-signature")):
        message = "X-Signature must be the hex HMAC-SHA256 of the raw body with the webhook secret."
        return proxy_result(error_response(401, "invalid_signature", message))
    return _handle(event, context)
