"""The WebSocket API's frames (contract §3): client frames parsed, server frames rendered.

Frames carry the same ``Message`` and ``Chat`` shapes as the HTTP API. Who gets which
frame is ``chatflow.application.realtime``'s; this module is what it sends them with
(the module itself is its ``Frames``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from chatflow.api.models import ChatOut, ClientMessageId, MessageOut, MessageText
from chatflow.domain.chats import Chat, Message
from chatflow.domain.clock import to_iso
from chatflow.domain.realtime import Presence
from chatflow.errors import ChatFlowError

Frame = dict[str, Any]

# ---- client → server -------------------------------------------------------------------


class _Frame(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


ChatId = Annotated[str, Field(min_length=1, max_length=100)]


class SendMessageFrame(_Frame):
    action: Literal["sendMessage"]
    chatId: ChatId
    text: MessageText
    clientMessageId: ClientMessageId


class ReceiptFrame(_Frame):
    action: Literal["receipt"]
    chatId: ChatId
    type: Literal["delivered", "read"]
    upToSeq: Annotated[int, Field(ge=1)]


class TypingFrame(_Frame):
    action: Literal["typing"]
    chatId: ChatId


class PingFrame(_Frame):
    action: Literal["ping"]


AnyClientFrame = SendMessageFrame | ReceiptFrame | TypingFrame | PingFrame
_CLIENT_FRAME: TypeAdapter[AnyClientFrame] = TypeAdapter(
    Annotated[AnyClientFrame, Field(discriminator="action")]
)
ACTIONS = ("sendMessage", "receipt", "typing", "ping")


class BadFrame(ChatFlowError):
    code = "invalid_frame"


def parse_frame(body: str | None) -> AnyClientFrame:
    """A client frame, or ``BadFrame`` saying what to fix."""
    try:
        document = json.loads(body or "")
    except ValueError:
        raise BadFrame('The frame is not JSON: send an object such as {"action": "ping"}.') from None
    if not isinstance(document, dict):
        raise BadFrame('The frame must be a JSON object such as {"action": "ping"}.')
    action = document.get("action")
    if action not in ACTIONS:
        raise BadFrame(f"Unknown action {action!r}: use one of {', '.join(ACTIONS)}.")
    try:
        return _CLIENT_FRAME.validate_python(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'frame'}: {e['msg']}" for e in exc.errors()
        )
        raise BadFrame(f"Invalid {action} frame: {problems}.") from None


# ---- server → client -------------------------------------------------------------------


def message_new(message: Message, chat: Chat) -> Frame:
    return {"type": "message.new", "message": MessageOut.of(message, chat).model_dump(mode="json")}


def message_status(chat_id: str, up_to_seq: int, status: str, by: str) -> Frame:
    return {"type": "message.status", "chatId": chat_id, "upToSeq": up_to_seq, "status": status, "by": by}


def presence_frame(presence: Presence) -> Frame:
    last_seen = to_iso(presence.last_seen_at) if presence.last_seen_at else None
    return {
        "type": "presence",
        "phoneNumber": presence.phone_number,
        "online": presence.online,
        "lastSeenAt": last_seen,
    }


def typing_frame(chat_id: str, phone_number: str) -> Frame:
    return {"type": "typing", "chatId": chat_id, "phoneNumber": phone_number}


def chat_updated(chat: Chat, reader: str) -> Frame:
    return {"type": "chat.updated", "chat": ChatOut.of(chat, reader).model_dump(mode="json")}


def error_frame(code: str, message: str) -> Frame:
    return {"type": "error", "code": code, "message": message}


PONG: Frame = {"type": "pong"}
