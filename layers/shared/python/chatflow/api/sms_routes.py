"""Routes of the provider's callbacks: ``POST /v1/sms/receipts`` and ``POST /v1/sms/inbound``.

Both are public (no bearer token) and signed: ``signed`` checks the signature on the raw
body before anything else, so a bad one is ``401`` whatever the body.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatflow.api.errors import error_response
from chatflow.api.http import Handler, proxy_result
from chatflow.api.params import error_doc, ok_doc
from chatflow.api.sms_models import InboundOut, InboundRequest, ReceiptOut, ReceiptRequest
from chatflow.domain.sms import signature_matches
from chatflow.domain.webhooks import InboundSms, WebhookService
from chatflow.observability import logger

SIGNED = (
    "Called by the SMS provider. Header X-Signature: hex HMAC-SHA256 of the raw body with the "
    "webhook secret; a missing or bad signature is 401 invalid_signature."
)

_SIGNED_ERRORS = {
    400: error_doc("Invalid input"),
    401: error_doc("Missing or bad X-Signature (invalid_signature)"),
}


def signed(handler: Handler, secret: Callable[[], str]) -> Handler:
    """``handler`` behind the provider's signature (``X-Signature``: hex HMAC-SHA256 of the raw
    body with the webhook secret); a bad or missing one is ``401 invalid_signature``."""

    def checked(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        body = event.get("body") or ""
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
        if not signature_matches(raw, secret(), headers.get("x-signature")):
            message = "X-Signature must be the hex HMAC-SHA256 of the raw body with the webhook secret."
            return proxy_result(error_response(401, "invalid_signature", message))
        return handler(event, context)

    return checked


def sms_router(service: Callable[[], WebhookService]) -> Router:
    router = Router()

    @router.post(
        "/v1/sms/receipts",
        tags=["sms"],
        summary="Delivery receipt from the SMS provider",
        description=SIGNED,
        responses=ok_doc(ReceiptOut) | _SIGNED_ERRORS,
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
        summary="Inbound SMS (STOP / START / HELP, replies to chats) from the provider",
        description=SIGNED
        + " The whole text, any case, is a keyword: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT,"
        " REVOKE opt the number (and the ICCID, when given) out; START, UNSTOP, YES opt back in; HELP, INFO"
        " get a help reply. Each STOP, START and HELP is answered by one SMS, once per inbound id."
        " Any other text from a member who was forwarded a chat by SMS in the last 24 hours becomes"
        " that member's message of the chat (the most recent such chat), via sms, once per inbound id"
        " (action message); text that reaches no chat is stored nowhere and gets one notice SMS a day"
        " (action none, ignoredBecause says why).",
        responses=ok_doc(InboundOut) | _SIGNED_ERRORS,
    )
    def inbound(body: InboundRequest) -> InboundOut:
        raw = (router.current_event.decoded_body or "").encode("utf-8")
        sms = InboundSms(
            sender=body.sender, text=body.text, iccid=body.iccid, inbound_id=body.id, raw_body=raw
        )
        result = service().inbound(sms)
        if result.action == "message":
            logger.info(
                "SMS reply posted to a chat",
                extra={"chat_id": result.chat_id, "seq": result.seq, "inbound_id": body.id},
            )
        elif result.ignored_because is not None:
            logger.info(
                "inbound SMS reached no chat",
                extra={"reason": result.ignored_because, "chat_id": result.chat_id, "inbound_id": body.id},
            )
        return InboundOut(
            phoneNumber=result.phone_number,
            iccid=result.iccid,
            action=result.action,
            replyCommandId=result.reply_command_id,
            chatId=result.chat_id,
            messageId=result.message_id,
            ignoredBecause=result.ignored_because,
        )

    return router
