"""The WebSocket routes on in-memory fakes: $connect / $disconnect, and each frame's answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest

from chatflow.api import realtime as frames
from chatflow.api.websocket import SIGNED_OUT, WebSocketActions
from chatflow.application.connections import ConnectionService
from chatflow.application.realtime import RealtimeService
from chatflow.domain.chats import Chat, Member
from chatflow.domain.messaging import MessagingService
from chatflow.domain.realtime import CONNECTION_TTL
from chatflow.domain.sessions import Session
from tests.fakes import (
    EPOCH,
    FakeChatRepository,
    FakeClock,
    FakeConnectionRepository,
    FakeNotifier,
    FakeSessionRepository,
)
from tests.unit.conftest import ALICE, BOB, CAROL

TOKEN = "hash-of-alice"


@dataclass
class Routes:
    actions: WebSocketActions
    connections: ConnectionService
    store: FakeConnectionRepository
    notifier: FakeNotifier
    chats: FakeChatRepository
    sessions: FakeSessionRepository
    clock: FakeClock

    def frame(self, body: str, *, token: str = TOKEN, route: str = "sendMessage") -> list[dict[str, object]]:
        """Send ``body`` from Alice's connection ``a1``; the frames it got back."""
        before = len(self.notifier.frames_to("a1"))
        self.actions.on_frame(route, "a1", ALICE, token, body)
        return self.notifier.frames_to("a1")[before:]


@pytest.fixture
def routes(messaging: MessagingService, chats: FakeChatRepository, clock: FakeClock) -> Routes:
    store, notifier, sessions = FakeConnectionRepository(), FakeNotifier(), FakeSessionRepository()
    sessions.put(Session(TOKEN, ALICE, "u_alice", EPOCH, EPOCH + timedelta(days=30)))
    realtime = RealtimeService(connections=store, notifier=notifier, frames=frames, chats=chats, clock=clock)
    chats.create_chat(
        Chat(
            "g_1",
            "group",
            "team",
            ALICE,
            EPOCH,
            EPOCH,
            (Member(ALICE, None, EPOCH), Member(BOB, None, EPOCH)),
        )
    )
    return Routes(
        actions=WebSocketActions(
            realtime=lambda: realtime, messaging=lambda: messaging, sessions=lambda: sessions, clock=clock
        ),
        connections=ConnectionService(connections=store, clock=clock),
        store=store,
        notifier=notifier,
        chats=chats,
        sessions=sessions,
        clock=clock,
    )


def test_given_an_authorized_caller_when_connecting_then_the_connection_is_open_until_its_ttl(
    routes: Routes,
) -> None:
    connected_at = routes.clock()

    status = routes.connections.on_route("$connect", "a1", ALICE)

    assert status == 200
    expiry = routes.store.expiries[ALICE]["a1"]
    assert connected_at + CONNECTION_TTL < expiry < connected_at + CONNECTION_TTL + timedelta(seconds=1)


def test_given_no_caller_when_connecting_then_it_is_refused(routes: Routes) -> None:
    assert routes.connections.on_route("$connect", "a1", None) == 401
    assert routes.store.owners == {}


def test_given_a_connection_when_disconnecting_then_its_owner_is_offline(routes: Routes) -> None:
    routes.connections.on_route("$connect", "a1", ALICE)

    assert routes.connections.on_route("$disconnect", "a1", None) == 200
    assert not routes.store.presence([ALICE], now=routes.clock())[ALICE].online


def test_given_a_ping_when_received_then_the_answer_is_pong(routes: Routes) -> None:
    assert routes.frame('{"action": "ping"}', route="ping") == [{"type": "pong"}]


def test_given_a_signed_out_session_when_a_frame_comes_then_it_is_refused_and_closed(routes: Routes) -> None:
    answers = routes.frame('{"action": "ping"}', token="hash-of-nobody", route="ping")

    assert answers == [{"type": "error", "code": "unauthorized", "message": SIGNED_OUT}]
    assert routes.notifier.closed == ["a1"]


def test_given_bad_json_when_received_then_an_error_frame_says_so_and_the_connection_stays(
    routes: Routes,
) -> None:
    [answer] = routes.frame("{not json", route="$default")

    assert (answer["type"], answer["code"]) == ("error", "invalid_frame")
    assert routes.notifier.closed == []


def test_given_a_new_message_when_sent_then_it_is_stored_and_nothing_is_answered(routes: Routes) -> None:
    body = {"action": "sendMessage", "chatId": "g_1", "text": "hi", "clientMessageId": "c-1"}

    assert routes.frame(json.dumps(body)) == []
    assert routes.chats.get_chat("g_1") is not None
    assert routes.chats.messages["g_1"][1].text == "hi"


def test_given_a_repeated_client_message_id_when_sent_then_the_original_comes_back(routes: Routes) -> None:
    body = json.dumps({"action": "sendMessage", "chatId": "g_1", "text": "hi", "clientMessageId": "c-1"})
    routes.frame(body)

    [answer] = routes.frame(body)

    assert answer["type"] == "message.new"
    assert len(routes.chats.messages["g_1"]) == 1


def test_given_a_chat_the_caller_is_not_in_when_typing_then_an_error_frame_answers(routes: Routes) -> None:
    routes.chats.create_chat(Chat("g_2", "group", "x", CAROL, EPOCH, EPOCH, (Member(CAROL, None, EPOCH),)))

    [answer] = routes.frame('{"action": "typing", "chatId": "g_2"}', route="typing")

    assert (answer["type"], answer["code"]) == ("error", "not_found")
