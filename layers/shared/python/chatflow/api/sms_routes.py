"""Routes of the provider's callbacks: ``POST /v1/sms/receipts`` and ``POST /v1/sms/inbound``.

Both are public (no bearer token) and signed; the function checks the signature on the
raw body before routing (functions/sms_webhooks).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.api.sms_models import InboundOut, InboundRequest, ReceiptOut, ReceiptRequest
from chatflow.domain.webhooks import WebhookService

SIGNED = (
    "Called by the SMS provider. Header X-Signature: hex HMAC-SHA256 of the raw body with the "
    "webhook secret; a missing or bad signature is 401 invalid_signature."
)


def sms_router(service: Callable[[], WebhookService]) -> Router:
    router = Router()

    @router.post(
        "/v1/sms/receipts",
        tags=["sms"],
        summary="Delivery receipt from the SMS provider",
        description=SIGNED,
    )
    def receipt(body: ReceiptRequest) -> ReceiptOut:
        at = body.timestamp if body.timestamp.tzinfo else body.timestamp.replace(tzinfo=UTC)
        recorded = service().receipt(
            provider_message_id=body.id, reference=body.reference, status=body.status, at=at.astimezone(UTC)
        )
        return ReceiptOut(recorded=recorded)

    @router.post(
        "/v1/sms/inbound",
        tags=["sms"],
        summary="Inbound SMS (STOP / START) from the provider",
        description=SIGNED,
    )
    def inbound(body: InboundRequest) -> InboundOut:
        result = service().inbound(sender=body.sender, text=body.text)
        return InboundOut(phoneNumber=result.phone_number, action=result.action)

    return router
