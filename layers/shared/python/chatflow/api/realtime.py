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
# Each server frame is rendered through its model, so the AsyncAPI document's schemas
# (docs/asyncapi.yaml, generated from these classes) are the shapes clients get. Models
# are built on first use (defer_build): a function pays only for the frames it sends.


class _ServerFrame(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", defer_build=True, json_schema_serialization_defaults_required=True
    )


class MessageNewFrame(_ServerFrame):
    """A new message in one of the user's chats, to every connection of every member (the sender's too)."""

    type: Literal["message.new"] = "message.new"
    message: MessageOut


class MessageStatusFrame(_ServerFrame):
    """A member's delivered or read marker moved, to the other members."""

    type: Literal["message.status"] = "message.status"
    chatId: str
    upToSeq: Annotated[int, Field(ge=1)]
    status: Literal["delivered", "read"]
    by: Annotated[str, Field(description="The member whose marker moved (E.164)")]


class PresenceFrame(_ServerFrame):
    """A user who shares a chat with the receiver came online or went offline (last connection closed)."""

    type: Literal["presence"] = "presence"
    phoneNumber: str
    online: bool
    lastSeenAt: Annotated[str | None, Field(description="When last seen (ISO 8601 UTC); null if never")]


class TypingNotice(_ServerFrame):
    """A member is typing in a chat, to the other members."""

    type: Literal["typing"] = "typing"
    chatId: str
    phoneNumber: str


class ChatUpdatedFrame(_ServerFrame):
    """The user was added to a chat, or its members or name changed (also to a member removed)."""

    type: Literal["chat.updated"] = "chat.updated"
    chat: ChatOut


def _retry_after_only_when_given(schema: dict[str, Any]) -> None:
    """``retryAfter`` is left out of the frame unless given (``error_frame``): not required,
    and an integer when present."""
    schema["required"] = [name for name in schema.get("required", []) if name != "retryAfter"]
    field = schema["properties"]["retryAfter"]
    schema["properties"]["retryAfter"] = {
        "type": "integer",
        "minimum": 1,
        "title": field.get("title", "Retryafter"),
        "description": field.get("description", ""),
    }


class ErrorFrame(_ServerFrame):
    """A frame was refused (bad JSON, unknown action, invalid field, rule broken); the connection
    stays open, except after an unauthorized error (signed out or expired), which closes it."""

    model_config = ConfigDict(json_schema_extra=_retry_after_only_when_given)

    type: Literal["error"] = "error"
    code: Annotated[
        str,
        Field(examples=["invalid_frame", "not_found", "validation_error", "unauthorized", "rate_limited"]),
    ]
    message: str
    retryAfter: Annotated[
        int | None,
        Field(
            ge=1,
            description="With `rate_limited` only: whole seconds to wait before sending again "
            "(the HTTP routes' `Retry-After`).",
        ),
    ] = None


class PongFrame(_ServerFrame):
    """The answer to a ping."""

    type: Literal["pong"] = "pong"


SERVER_FRAMES: tuple[type[_ServerFrame], ...] = (
    MessageNewFrame,
    MessageStatusFrame,
    PresenceFrame,
    TypingNotice,
    ChatUpdatedFrame,
    ErrorFrame,
    PongFrame,
)


def message_new(message: Message, chat: Chat) -> Frame:
    return MessageNewFrame(message=MessageOut.of(message, chat)).model_dump(mode="json")


def message_status(chat_id: str, up_to_seq: int, status: str, by: str) -> Frame:
    return MessageStatusFrame(chatId=chat_id, upToSeq=up_to_seq, status=status, by=by).model_dump(mode="json")


def presence_frame(presence: Presence) -> Frame:
    last_seen = to_iso(presence.last_seen_at) if presence.last_seen_at else None
    frame = PresenceFrame(phoneNumber=presence.phone_number, online=presence.online, lastSeenAt=last_seen)
    return frame.model_dump(mode="json")


def typing_frame(chat_id: str, phone_number: str) -> Frame:
    return TypingNotice(chatId=chat_id, phoneNumber=phone_number).model_dump(mode="json")


def chat_updated(chat: Chat, reader: str) -> Frame:
    return ChatUpdatedFrame(chat=ChatOut.of(chat, reader)).model_dump(mode="json")


def error_frame(code: str, message: str, *, retry_after: int | None = None) -> Frame:
    return ErrorFrame(code=code, message=message, retryAfter=retry_after).model_dump(
        mode="json", exclude_none=True
    )


# The most frequent frame, constant: PongFrame().model_dump() (a unit test holds them equal).
PONG: Frame = {"type": "pong"}
