"""Routes of chats, messages and message search (contract §2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from chatflow.api.http import caller_of
from chatflow.api.models import (
    AddMembersRequest,
    ChatOut,
    ChatPage,
    CreateChatRequest,
    DirectMessageRequest,
    ErrorResponse,
    MessageOut,
    MessagePage,
    PresenceList,
    PresenceOut,
    ReceiptRequest,
    SendMessageRequest,
)
from chatflow.api.params import Cursor, Limit, error_doc, ok_doc
from chatflow.api.responses import json_response, no_content
from chatflow.domain.clock import to_iso
from chatflow.domain.messaging import MessagingService, Sent
from chatflow.domain.pagination import DEFAULT_LIMIT
from chatflow.domain.search import SearchService
from chatflow.errors import FieldProblem, ValidationFailed
from chatflow.ports import ConnectionRepository

_ERRORS: dict[int, Any] = {
    400: error_doc("Invalid input"),
    401: error_doc("Not signed in"),
    404: error_doc("No such chat"),
}


# The send routes: a user over UserSendBurst / UserSendRatePerSecond (CONTRACT §7).
_RATE_LIMITED: dict[int, Any] = {
    429: {
        "description": "Sending too fast: wait Retry-After seconds and send again (same clientMessageId)",
        "headers": {
            "Retry-After": {
                "description": "Whole seconds to wait (at least 1)",
                "schema": {"type": "integer"},
            }
        },
        "content": {"application/json": {"model": ErrorResponse}},
    }
}


def _sent(sent: Sent) -> Response[MessageOut]:
    return json_response(201 if sent.created else 200, MessageOut.of(sent.message, sent.chat))


def chat_router(service: Callable[[], MessagingService]) -> Router:
    router = Router()

    def me() -> str:
        return caller_of(router).phone_number

    @router.post(
        "/v1/chats",
        tags=["chats"],
        summary="Create a group chat, or open the one direct chat with a number",
        responses={201: {"description": "Created", "content": {"application/json": {"model": ChatOut}}}}
        | ok_doc(ChatOut)
        | _ERRORS,
    )
    def create_chat(body: CreateChatRequest) -> Response[ChatOut]:
        caller = me()
        if body.type == "direct":
            others = [m for m in body.members if m.strip() != caller]
            if len(others) != 1:
                raise ValidationFailed(
                    "A direct chat has exactly one other member: list one phone number.",
                    details=(FieldProblem("members", "must hold exactly one other phone number"),),
                )
            opened = service().open_direct(caller, others[0])
            return json_response(201 if opened.created else 200, ChatOut.of(opened.chat, caller))
        if body.name is None:
            raise ValidationFailed(
                "A group needs a name.", details=(FieldProblem("name", "is required for a group"),)
            )
        chat = service().create_group(caller, body.name, body.members)
        return json_response(201, ChatOut.of(chat, caller))

    @router.get(
        "/v1/chats",
        tags=["chats"],
        summary="The caller's chats, most recent activity first",
        responses=ok_doc(ChatPage) | _ERRORS,
    )
    def list_chats(limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> ChatPage:
        caller = me()
        page, next_cursor = service().list_chats(caller, limit=limit, cursor=cursor)
        return ChatPage(items=[ChatOut.of(c, caller) for c in page.items], nextCursor=next_cursor)

    @router.get("/v1/chats/<chatId>", tags=["chats"], summary="One chat", responses=ok_doc(ChatOut) | _ERRORS)
    def get_chat(chatId: str) -> ChatOut:
        caller = me()
        return ChatOut.of(service().get_chat(caller, chatId), caller)

    @router.post(
        "/v1/chats/<chatId>/members",
        tags=["chats"],
        summary="Add members to a group",
        responses=ok_doc(ChatOut) | _ERRORS,
    )
    def add_members(chatId: str, body: AddMembersRequest) -> ChatOut:
        caller = me()
        return ChatOut.of(service().add_members(caller, chatId, body.members), caller)

    @router.delete(
        "/v1/chats/<chatId>/members/<phoneNumber>",
        tags=["chats"],
        summary="Remove a member (yourself, or anyone if you created the group)",
        responses={204: {"description": "Removed"}, 403: error_doc("Not the group's creator")} | _ERRORS,
    )
    def remove_member(chatId: str, phoneNumber: str) -> Response[None]:
        service().remove_member(me(), chatId, unquote(phoneNumber))
        return no_content()

    @router.post(
        "/v1/chats/<chatId>/messages",
        tags=["messages"],
        summary="Send a message (idempotent by clientMessageId)",
        responses={
            201: {"description": "Stored", "content": {"application/json": {"model": MessageOut}}},
            200: {
                "description": "Already stored: the original",
                "content": {"application/json": {"model": MessageOut}},
            },
        }
        | _ERRORS
        | _RATE_LIMITED,
    )
    def send_message(chatId: str, body: SendMessageRequest) -> Response[MessageOut]:
        return _sent(service().send(me(), chatId, body.text, body.clientMessageId))

    @router.post(
        "/v1/messages",
        tags=["messages"],
        summary="Send a message to a number, in your direct chat with it (created on demand)",
        responses={201: {"description": "Stored", "content": {"application/json": {"model": MessageOut}}}}
        | _ERRORS
        | _RATE_LIMITED,
    )
    def send_direct(body: DirectMessageRequest) -> Response[MessageOut]:
        return _sent(service().send_direct(me(), body.to, body.text, body.clientMessageId))

    @router.get(
        "/v1/chats/<chatId>/messages",
        tags=["messages"],
        summary="History, newest first; with afterSeq, the messages after it, oldest first",
        responses=ok_doc(MessagePage) | _ERRORS,
    )
    def list_messages(
        chatId: str,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        afterSeq: Annotated[
            int | None, Query(ge=0, description="Catch up: messages with seq > afterSeq")
        ] = None,
    ) -> MessagePage:
        page, chat, next_cursor = service().list_messages(
            me(), chatId, limit=limit, cursor=cursor, after_seq=afterSeq
        )
        return MessagePage(items=[MessageOut.of(m, chat) for m in page.items], nextCursor=next_cursor)

    @router.post(
        "/v1/chats/<chatId>/receipts",
        tags=["messages"],
        summary="Move the caller's delivered or read marker forward",
        responses={204: {"description": "Recorded"}} | _ERRORS,
    )
    def post_receipt(chatId: str, body: ReceiptRequest) -> Response[None]:
        service().mark(me(), chatId, body.type, body.upToSeq)
        return no_content()

    return router


SearchText = Annotated[
    str,
    Query(
        max_length=256,
        description="Words to find, e.g. 'hel wor': every word must begin a word of the message "
        "(any case, accents ignored)",
    ),
]
SearchChat = Annotated[
    str | None, Query(max_length=128, description="Search only this chat (one of the caller's)")
]


def search_router(service: Callable[[], SearchService]) -> Router:
    """``GET /v1/search``: its own service (and index), so the chat routes do not build them."""
    router = Router()

    @router.get(
        "/v1/search",
        tags=["messages"],
        summary="Messages of the caller's chats that contain every word of q, newest first",
        responses=ok_doc(MessagePage) | _ERRORS,
    )
    def search_messages(
        q: SearchText, chatId: SearchChat = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> MessagePage:
        found = service().search(
            caller_of(router).phone_number, q, chat_id=chatId, limit=limit, cursor=cursor
        )
        return MessagePage(
            items=[MessageOut.of(m, found.chats[m.chat_id]) for m in found.messages],
            nextCursor=found.next_cursor,
        )

    return router


def presence_router(
    service: Callable[[], MessagingService],
    connections: Callable[[], ConnectionRepository],
    clock: Callable[[], datetime],
) -> Router:
    """``GET /v1/chats/{chatId}/presence``: who of a chat is online now (the frames tell
    only changes; a client opening a chat needs the current state)."""
    router = Router()

    @router.get(
        "/v1/chats/<chatId>/presence",
        tags=["chats"],
        summary="Each member of the chat: online now, or when last seen",
        responses=ok_doc(PresenceList) | _ERRORS,
    )
    def chat_presence(chatId: str) -> PresenceList:
        chat = service().get_chat(caller_of(router).phone_number, chatId)
        found = connections().presence([m.phone_number for m in chat.members], now=clock())
        return PresenceList(
            items=[
                PresenceOut(
                    phoneNumber=state.phone_number,
                    online=state.online,
                    lastSeenAt=to_iso(state.last_seen_at) if state.last_seen_at else None,
                )
                for state in (found[m.phone_number] for m in chat.members)
            ]
        )

    return router
