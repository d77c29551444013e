"""Inbound SMS keywords on fakes: opt-outs by number and ICCID, and one reply per inbound message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatflow.domain.sms import Encoding, segments
from chatflow.domain.webhooks import HELP_REPLY, START_REPLY, STOP_REPLY, InboundSms, WebhookService
from chatflow.errors import InvalidPhoneNumber
from tests.fakes import FakeSmsCommandSender
from tests.sms_fakes import InMemoryCommands, InMemoryOptOuts

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
PHONE = "+14155550101"
ICCID = "8944500102198304826"


class Harness:
    def __init__(self, opted_out: set[str] | None = None) -> None:
        self.opt_outs = InMemoryOptOuts(opted_out)
        self.queue = FakeSmsCommandSender()
        self.service = WebhookService(
            commands=InMemoryCommands(), opt_outs=self.opt_outs, replies=self.queue, clock=lambda: NOW
        )


def inbound(
    text: str, *, iccid: str | None = None, inbound_id: str | None = "in-1", raw: bytes = b""
) -> InboundSms:
    return InboundSms(sender="+1 (415) 555-0101", text=text, iccid=iccid, inbound_id=inbound_id, raw_body=raw)


def test_stop_with_an_iccid_opts_out_the_number_and_the_sim_and_confirms_to_the_number() -> None:
    harness = Harness()

    result = harness.service.inbound(inbound("Stop", iccid=ICCID))

    assert (result.phone_number, result.iccid, result.action) == (PHONE, ICCID, "opted_out")
    assert harness.opt_outs.destinations == {PHONE, ICCID}
    [reply] = harness.queue.commands
    assert reply == {
        "commandId": result.reply_command_id,
        "phoneNumber": PHONE,
        "text": STOP_REPLY,
        "messageType": "transactional",
        "metadata": {"purpose": "opt-out-confirmation", "inboundId": "in-1"},
    }


def test_stop_without_an_iccid_opts_out_the_number_only() -> None:
    harness = Harness()

    harness.service.inbound(inbound("UNSUBSCRIBE"))

    assert harness.opt_outs.destinations == {PHONE}


def test_start_removes_the_number_and_the_sim_and_confirms() -> None:
    harness = Harness({PHONE, ICCID, "+14155550199"})

    result = harness.service.inbound(inbound("start", iccid=ICCID))

    assert result.action == "opted_in"
    assert harness.opt_outs.destinations == {"+14155550199"}
    assert [c["text"] for c in harness.queue.commands] == [START_REPLY]
    assert harness.queue.commands[0]["metadata"]["purpose"] == "opt-in-confirmation"


def test_start_from_a_number_that_never_opted_out_is_still_confirmed() -> None:
    harness = Harness()

    result = harness.service.inbound(inbound("UNSTOP"))

    assert result.action == "opted_in"
    assert [c["text"] for c in harness.queue.commands] == [START_REPLY]


def test_yes_opts_back_in_a_sim_that_opted_out() -> None:
    # Given only the SIM is opted out (STOP came in with its ICCID, the number was cleared since)
    harness = Harness({ICCID})

    result = harness.service.inbound(inbound("Yes!", iccid=ICCID))

    assert result.action == "opted_in"
    assert harness.opt_outs.destinations == set()
    assert [c["text"] for c in harness.queue.commands] == [START_REPLY]


def test_yes_from_a_subscribed_number_is_ordinary_text_with_no_reply() -> None:
    # "yes" answers a chat message far more often than it asks to resubscribe
    harness = Harness()

    result = harness.service.inbound(inbound("yes"))

    assert (result.action, result.reply_command_id) == ("none", None)
    assert harness.queue.commands == []


@pytest.mark.parametrize("text", ["HELP", "info"])
def test_help_gets_the_help_reply_and_changes_no_opt_out(text: str) -> None:
    harness = Harness({PHONE})

    result = harness.service.inbound(inbound(text))

    assert result.action == "help"
    assert harness.opt_outs.destinations == {PHONE}
    assert [(c["text"], c["metadata"]["purpose"]) for c in harness.queue.commands] == [
        (HELP_REPLY, "help-reply")
    ]


def test_ordinary_text_changes_nothing_and_sends_nothing() -> None:
    harness = Harness()

    result = harness.service.inbound(inbound("stop please, I am driving", iccid=ICCID))

    assert (result.action, result.reply_command_id) == ("none", None)
    assert harness.opt_outs.destinations == set()
    assert harness.queue.commands == []


def test_the_same_inbound_id_gives_the_same_reply_command_id_and_another_id_another() -> None:
    harness = Harness()

    first = harness.service.inbound(inbound("STOP", inbound_id="abc", raw=b"first"))
    retried = harness.service.inbound(inbound("STOP", inbound_id="abc", raw=b"re-serialised"))
    other = harness.service.inbound(inbound("STOP", inbound_id="abd", raw=b"first"))

    assert first.reply_command_id == retried.reply_command_id != other.reply_command_id


def test_without_an_id_the_raw_body_identifies_a_retried_webhook() -> None:
    harness = Harness()
    body = b'{"from":"+14155550101","text":"STOP","timestamp":"2026-12-03T10:00:00Z"}'

    first = harness.service.inbound(inbound("STOP", inbound_id=None, raw=body))
    retried = harness.service.inbound(inbound("STOP", inbound_id=None, raw=body))
    later = harness.service.inbound(
        inbound("STOP", inbound_id=None, raw=body.replace(b"10:00:00", b"10:05:00"))
    )

    assert first.reply_command_id == retried.reply_command_id != later.reply_command_id
    assert "inboundId" not in harness.queue.commands[0]["metadata"]


def test_a_reply_command_id_fits_the_contract() -> None:
    result = Harness().service.inbound(inbound("STOP", inbound_id="x" * 256))

    assert result.reply_command_id is not None
    assert 1 <= len(result.reply_command_id) <= 128


@pytest.mark.parametrize("text", [STOP_REPLY, START_REPLY, HELP_REPLY])
def test_each_reply_is_one_gsm7_segment_that_says_how_to_undo(text: str) -> None:
    counted = segments(text)

    assert (counted.encoding, counted.count) == (Encoding.GSM7, 1)
    assert "Reply STOP" in text or "Reply START" in text


def test_a_sender_that_is_no_phone_number_is_refused_before_anything_is_stored() -> None:
    harness = Harness()

    with pytest.raises(InvalidPhoneNumber):
        harness.service.inbound(InboundSms(sender="CHATFLOW", text="STOP"))

    assert harness.opt_outs.destinations == set()
    assert harness.queue.commands == []
