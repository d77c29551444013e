"""Request and response models of the HTTP API (they also generate the OpenAPI document).

Field names are the contract's (camelCase); mapping from domain entities is explicit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from chatflow.domain.chats import Chat, Message
from chatflow.domain.clock import to_iso
from chatflow.domain.users import User


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# No length bounds here: an empty or overlong number is an invalid phone number
# (400 invalid_phone_number, contract §0), which normalize_phone reports.
PhoneText = Annotated[
    str, Field(examples=["+14155550101"], description="Any common format; answered in E.164")
]


# ---- requests -------------------------------------------------------------------------


class StartVerificationRequest(_Request):
    phoneNumber: PhoneText


class CreateSessionRequest(_Request):
    phoneNumber: PhoneText
    code: Annotated[
        str | None,
        Field(
            max_length=16,
            examples=["123456"],
            description="The 6-digit SMS code (otp mode; spaces and dashes are ignored); "
            "optional and ignored in phone mode",
        ),
    ] = None


class UpdateProfileRequest(_Request):
    displayName: Annotated[str | None, Field(max_length=200)] = None
    username: Annotated[str | None, Field(max_length=200)] = None
    email: Annotated[str | None, Field(max_length=400)] = None
    avatarUrl: Annotated[str | None, Field(max_length=4096)] = None


class CreateChatRequest(_Request):
    type: Literal["direct", "group"]
    members: Annotated[list[PhoneText], Field(min_length=1, max_length=255)]
    name: Annotated[str | None, Field(max_length=400)] = None


class AddMembersRequest(_Request):
    members: Annotated[list[PhoneText], Field(min_length=1, max_length=255)]


ClientMessageId = Annotated[
    str, Field(min_length=1, max_length=128, description="Idempotency key chosen by the client")
]
MessageText = Annotated[
    str, Field(min_length=1, max_length=16384, description="1-4096 characters after trimming")
]


class SendMessageRequest(_Request):
    text: MessageText
    clientMessageId: ClientMessageId


class DirectMessageRequest(_Request):
    to: PhoneText
    text: MessageText
    clientMessageId: ClientMessageId


class ReceiptRequest(_Request):
    type: Literal["delivered", "read"]
    upToSeq: Annotated[int, Field(ge=1)]


# ---- responses ------------------------------------------------------------------------


class ErrorDetail(_Response):
    field: str
    message: str


class ErrorBody(_Response):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorResponse(_Response):
    error: ErrorBody


class HealthOut(_Response):
    status: Literal["ok"] = "ok"


class UserOut(_Response):
    userId: str
    phoneNumber: str
    displayName: str | None
    username: str | None
    email: str | None
    avatarUrl: str | None
    roles: list[str]
    createdAt: str

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            userId=user.user_id,
            phoneNumber=user.phone_number,
            displayName=user.display_name,
            username=user.username,
            email=user.email,
            avatarUrl=user.avatar_url,
            roles=sorted(user.roles),
            createdAt=to_iso(user.created_at),
        )


class VerificationOut(_Response):
    phoneNumber: Annotated[str, Field(description="The number the code was sent to, in E.164")]
    expiresInSeconds: Annotated[int, Field(examples=[300], description="How long the code works")]


class SessionOut(_Response):
    token: str
    expiresAt: str
    user: UserOut


class MessageOut(_Response):
    messageId: str
    chatId: str
    seq: int
    sender: str
    text: str
    clientMessageId: str
    sentAt: str
    status: Literal["sent", "delivered", "read"]
    via: Annotated[
        Literal["app", "sms"],
        Field(
            description=(
                "How the sender wrote it: in the app, or as an SMS reply to a forward of this chat "
                "(CONTRACT §7, docs/realtime.md)"
            )
        ),
    ]

    @classmethod
    def of(cls, message: Message, chat: Chat) -> MessageOut:
        return cls(
            messageId=message.message_id,
            chatId=message.chat_id,
            seq=message.seq,
            sender=message.sender,
            text=message.text,
            clientMessageId=message.client_message_id,
            sentAt=to_iso(message.sent_at),
            status=chat.status_of(message),
            via=message.via,
        )


class MemberOut(_Response):
    phoneNumber: str
    displayName: str | None


class ChatOut(_Response):
    chatId: str
    type: Literal["direct", "group"]
    name: str | None
    members: list[MemberOut]
    createdBy: str
    createdAt: str
    lastActivityAt: str
    lastMessage: MessageOut | None
    unreadCount: int

    @classmethod
    def of(cls, chat: Chat, reader: str) -> ChatOut:
        return cls(
            chatId=chat.chat_id,
            type=chat.type,
            name=chat.name,
            members=[MemberOut(phoneNumber=m.phone_number, displayName=m.display_name) for m in chat.members],
            createdBy=chat.created_by,
            createdAt=to_iso(chat.created_at),
            lastActivityAt=to_iso(chat.last_activity_at),
            lastMessage=MessageOut.of(chat.last_message, chat) if chat.last_message else None,
            unreadCount=chat.unread_count(reader),
        )


class ChatPage(_Response):
    items: list[ChatOut]
    nextCursor: str | None


class MessagePage(_Response):
    items: list[MessageOut]
    nextCursor: str | None


class PresenceOut(_Response):
    phoneNumber: str
    online: bool
    lastSeenAt: str | None


class PresenceList(_Response):
    items: list[PresenceOut]
