"""The AsyncAPI reference (docs/asyncapi.yaml): current, AsyncAPI 3.0, and a contract that bites.

What the code builds (frames, commands, events) validates against the committed document,
and a payload whose shape drifted does not: the end-to-end recorder (tests/e2e/conftest.py)
relies on that.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from chatflow.api import realtime
from chatflow.commands import SendSmsCommand
from chatflow.domain.chats import Chat, Member, Message
from chatflow.domain.realtime import Presence
from chatflow.domain.sms_events import BusEvent, CommandSnapshot, Rejection, events_between, rejected_event
from local.api_docs import (
    ASYNCAPI_FILE,
    REGENERATE,
    AsyncApiContract,
    asyncapi_document,
    asyncapi_problems,
    asyncapi_text,
)
from tests.fakes import EPOCH
from tests.unit.conftest import ALICE, BOB


@pytest.fixture(scope="module")
def contract() -> AsyncApiContract:
    return AsyncApiContract.committed()


def chat() -> Chat:
    members = (Member(ALICE, "Alice", EPOCH), Member(BOB, None, EPOCH))
    message = Message("m_1", "d_1", 1, ALICE, "hello", "c1", EPOCH)
    return Chat("d_1", "direct", None, ALICE, EPOCH, EPOCH, members, 1, message)


def frames_the_code_builds() -> list[dict[str, Any]]:
    c = chat()
    assert c.last_message is not None
    return [
        realtime.message_new(c.last_message, c),
        realtime.message_status("d_1", 1, "read", BOB),
        realtime.presence_frame(Presence(BOB, ("conn-1",), None)),
        realtime.presence_frame(Presence(BOB, (), EPOCH + timedelta(minutes=5))),
        realtime.typing_frame("d_1", BOB),
        realtime.chat_updated(c, BOB),
        realtime.error_frame("invalid_frame", "The frame is not JSON."),
        realtime.PONG,
    ]


SENDING = CommandSnapshot(command_id="c-1", status="sending", to="+14155550101", metadata={"k": "v"})
SENT = replace(
    SENDING,
    status="sent",
    attempts=1,
    provider_message_id="pm_1",
    segments=1,
    encoding="GSM-7",
    sent_at="2026-11-24T10:00:00.180Z",
)


def events_the_domain_builds() -> list[BusEvent]:
    to_sim = replace(SENDING, to="89445001021983048261", to_type="iccid")
    failed = replace(
        to_sim,
        status="failed",
        attempts=2,
        error_code="invalid_destination",
        reason="no such number",
        permanent=True,
        failed_at="2026-11-24T10:00:03.000Z",
    )
    expired = replace(
        SENDING,
        status="expired",
        valid_until="2026-11-24T10:10:00.000Z",
        expired_at="2026-11-24T10:10:00.250Z",
    )
    delivered = replace(SENT, delivery="delivered", delivery_at="2026-11-24T10:00:01.000Z")
    undelivered = replace(SENT, delivery="undelivered", delivery_at="2026-11-24T10:00:01.000Z")
    return [
        *events_between(SENDING, SENT),
        *events_between(SENDING, failed),
        *events_between(SENDING, expired),
        *events_between(SENT, delivered),
        *events_between(SENT, undelivered),
        rejected_event(Rejection("the body is not JSON", "nope", at="2026-11-24T10:00:00.000Z"), "e-1"),
    ]


def envelope(event: BusEvent) -> dict[str, Any]:
    """The event as a rule's target receives it."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": event.detail_type,
        "source": event.source,
        "account": "123456789012",
        "time": "2026-11-24T10:00:01Z",
        "region": "us-east-1",
        "resources": [],
        "detail": json.loads(json.dumps(event.detail)),
    }


def test_the_committed_asyncapi_document_is_the_generated_one() -> None:
    # Given the document the code generates now
    generated = asyncapi_text()

    # Then the committed file is exactly it
    assert ASYNCAPI_FILE.read_text(encoding="utf-8") == generated, (
        f"docs/asyncapi.yaml is out of date: run {REGENERATE}"
    )


def test_the_generated_document_is_asyncapi_3_and_a_broken_one_is_reported() -> None:
    # Given the generated document, and one with an AsyncAPI 2 verb in an operation
    document = asyncapi_document()
    broken = copy.deepcopy(document)
    broken["operations"]["receiveSendSms"]["action"] = "publish"

    # Then the official AsyncAPI 3.0.0 schema accepts the first and names what is wrong in the second
    assert asyncapi_problems(document) == []
    assert any(problem.startswith("operations/receiveSendSms") for problem in asyncapi_problems(broken))


def test_every_reference_in_the_document_points_at_something() -> None:
    # Given the generated document (the AsyncAPI JSON Schema does not follow references)
    document = asyncapi_document()

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    def resolve(ref: str) -> Any:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    # Then every $ref is local and resolves
    found = refs(document)
    assert found
    assert all(ref.startswith("#/") for ref in found)
    for ref in found:
        resolve(ref)


def test_the_document_lists_every_frame_command_and_event(contract: AsyncApiContract) -> None:
    assert contract.names("client frame") == set(realtime.ACTIONS)
    assert contract.names("server frame") == {
        "message.new",
        "message.status",
        "presence",
        "typing",
        "chat.updated",
        "error",
        "pong",
    }
    assert contract.names("command") == {"SendSms"}
    assert contract.names("event") == {
        "SmsSent",
        "SmsFailed",
        "SmsExpired",
        "SmsDelivered",
        "SmsUndelivered",
        "SmsRejected",
    }


@pytest.mark.parametrize("frame", frames_the_code_builds(), ids=lambda f: str(f["type"]))
def test_every_server_frame_the_code_builds_matches_its_schema(
    contract: AsyncApiContract, frame: dict[str, Any]
) -> None:
    assert contract.problems("server frame", frame) == []


def test_the_constant_pong_is_the_pong_frame_model() -> None:
    assert realtime.PongFrame().model_dump(mode="json") == realtime.PONG


@pytest.mark.parametrize("event", events_the_domain_builds(), ids=lambda e: e.detail_type)
def test_every_event_the_domain_builds_matches_its_schema(
    contract: AsyncApiContract, event: BusEvent
) -> None:
    assert contract.problems("event", envelope(event)) == []


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "sendMessage", "chatId": "d_1", "text": "hi", "clientMessageId": "c1"},
        {"action": "receipt", "chatId": "d_1", "type": "read", "upToSeq": 3},
        {"action": "typing", "chatId": "d_1"},
        {"action": "ping"},
    ],
    ids=lambda f: str(f["action"]),
)
def test_the_contract_s_client_frames_match_their_schemas(
    contract: AsyncApiContract, frame: dict[str, Any]
) -> None:
    assert contract.problems("client frame", frame) == []
    realtime.parse_frame(json.dumps(frame))  # and the server takes them


def test_commands_producers_build_match_the_schema(contract: AsyncApiContract) -> None:
    by_number = SendSmsCommand(commandId="c-1", phoneNumber="+14155550101", text="Your code is 123456")
    to_sim = SendSmsCommand(
        commandId="c-2",
        iccid="89445001021983048261",
        text="hi",
        messageType="promotional",
        metadata={"a": "b"},
    )
    for command in (by_number, to_sim):
        assert contract.problems("command", json.loads(command.body())) == []


# ---- drift is caught: deliberately broken samples --------------------------------------


def test_a_server_frame_whose_shape_drifted_is_reported(contract: AsyncApiContract) -> None:
    # Given frames the code builds, each broken the way a refactoring could break it
    new, status, presence = frames_the_code_builds()[:3]
    seq_as_text = copy.deepcopy(new)
    seq_as_text["message"]["seq"] = "1"
    renamed = {**{k: v for k, v in status.items() if k != "upToSeq"}, "up_to_seq": 1}
    no_online = {k: v for k, v in presence.items() if k != "online"}

    # Then each is reported, naming the field
    assert any("message/seq" in p for p in contract.problems("server frame", seq_as_text))
    problems = contract.problems("server frame", renamed)
    assert any("'upToSeq' is a required property" in p for p in problems)
    assert any("up_to_seq" in p for p in problems)  # an unexpected field is drift too
    assert any("'online' is a required property" in p for p in contract.problems("server frame", no_online))


def test_an_unknown_frame_type_is_reported(contract: AsyncApiContract) -> None:
    assert contract.problems("server frame", {"type": "message.deleted", "chatId": "d_1"}) != []


def test_an_event_whose_detail_drifted_is_reported(contract: AsyncApiContract) -> None:
    sent = envelope(events_between(SENDING, SENT)[0])
    sent["detail"]["segments"] = None
    both = copy.deepcopy(sent)
    both["detail"]["segments"] = 1
    both["detail"]["iccid"] = "89445001021983048261"

    assert any("detail/segments" in p for p in contract.problems("event", sent))
    assert contract.problems("event", both) != []  # phoneNumber and iccid: exactly one


def test_a_command_with_no_destination_or_an_overlong_text_is_reported(contract: AsyncApiContract) -> None:
    assert contract.problems("command", {"commandId": "c", "text": "no destination"}) != []
    long_text = {"commandId": "c", "phoneNumber": "+14155550101", "text": "x" * 1601}
    assert any("text" in p for p in contract.problems("command", long_text))


# ---- the end-to-end recorder (tests/e2e/conftest.py) -----------------------------------


def test_the_recorder_reports_a_drifted_frame_and_skips_what_is_not_a_frame(
    contract: AsyncApiContract,
) -> None:
    from tests.e2e.conftest import ContractRecorder

    # Given frames as the gateway passes them: a drifted one, a good one, and non-frames
    recorder = ContractRecorder(contract)
    drifted = {"type": "message.status", "chatId": "d_1", "up_to_seq": 1, "status": "read", "by": BOB}
    recorder.frame("server frame", json.dumps(drifted))
    recorder.frame("client frame", json.dumps({"action": "ping"}))
    recorder.frame("client frame", "{not json")  # a test's deliberately broken frame
    recorder.frame("server frame", json.dumps({"message": "Forbidden"}))  # API Gateway's own reply

    # Then only the drifted frame is reported, and the good one counts as seen
    problems = recorder.frame_problems()
    assert len(problems) >= 1
    assert all(problem.startswith("server frame message.status") for problem in problems)
    assert recorder.seen["client frame"] == {"ping"}


def test_the_recorder_holds_the_command_schema_to_what_the_gateway_accepts(
    contract: AsyncApiContract,
) -> None:
    from tests.e2e.conftest import ContractRecorder

    recorder = ContractRecorder(contract)
    seed_shaped = json.dumps({"PhoneNumber": "+14155550101", "SmsText": "hi"})
    no_text = json.dumps({"commandId": "c", "phoneNumber": "+14155550101"})
    valid = json.dumps({"commandId": "c", "phoneNumber": "+14155550101", "text": "hi"})

    # A seed-shaped command is a command; a body the gateway rejected must break the schema too
    assert recorder.command_problems(seed_shaped, rejected_by_gateway=False) == []
    assert recorder.command_problems(no_text, rejected_by_gateway=True) == []
    assert recorder.command_problems(no_text, rejected_by_gateway=False) != []
    assert recorder.command_problems(valid, rejected_by_gateway=True) != []  # the schema is too loose
