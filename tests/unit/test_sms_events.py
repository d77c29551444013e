"""The outbox rule: which SMS events a change of a command's record means, in what order.

Every command ends in exactly one of SmsSent, SmsFailed, SmsExpired (``sequence`` 1); a
delivery receipt follows only a send (``sequence`` 2); every event says when its state was
reached (``occurredAt``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatflow.domain.sms_events import BusEvent, CommandSnapshot, Rejection, events_between, rejected_event

SENDING = CommandSnapshot(
    command_id="c-1",
    status="sending",
    to="+14155550101",
    to_type="phone",
    attempts=0,
    valid_until="2026-11-24T10:10:00.000Z",
    metadata={"orderId": "42"},
)
SENT = replace(
    SENDING,
    status="sent",
    attempts=1,
    provider_message_id="pm_1",
    segments=1,
    encoding="GSM-7",
    sent_at="2026-11-24T10:00:00.180Z",
)
FAILED = replace(
    SENDING,
    status="failed",
    attempts=2,
    error_code="invalid_destination",
    reason="no such number",
    permanent=True,
    failed_at="2026-11-24T10:00:03.000Z",
)
EXPIRED = replace(SENDING, status="expired", attempts=1, expired_at="2026-11-24T10:10:00.250Z")


def receipt(
    snapshot: CommandSnapshot, status: str = "delivered", at: str = "2026-11-24T10:00:01.000Z"
) -> CommandSnapshot:
    """``snapshot`` once a receipt was recorded on it."""
    return replace(snapshot, delivery=status, delivery_at=at, provider_message_id="pm_1")


def shape(events: list[BusEvent]) -> list[tuple[str, int, str | None]]:
    return [(e.detail_type, e.detail["sequence"], e.detail["occurredAt"]) for e in events]


def test_a_send_gives_smssent_at_its_sent_time_as_the_first_event() -> None:
    # When a command being sent becomes sent
    events = events_between(SENDING, SENT)
    # Then one SmsSent says when and that it is the command's first event
    assert [e.event_id for e in events] == ["c-1:sent"]
    assert events[0].detail == {
        "commandId": "c-1",
        "phoneNumber": "+14155550101",
        "providerMessageId": "pm_1",
        "segments": 1,
        "encoding": "GSM-7",
        "attempts": 1,
        "sentAt": "2026-11-24T10:00:00.180Z",
        "metadata": {"orderId": "42"},
        "occurredAt": "2026-11-24T10:00:00.180Z",
        "sequence": 1,
    }


def test_a_failure_gives_smsfailed_at_its_failed_time_as_the_first_event() -> None:
    events = events_between(SENDING, FAILED)
    assert [e.event_id for e in events] == ["c-1:failed"]
    assert events[0].detail == {
        "commandId": "c-1",
        "phoneNumber": "+14155550101",
        "errorCode": "invalid_destination",
        "reason": "no such number",
        "permanent": True,
        "attempts": 2,
        "failedAt": "2026-11-24T10:00:03.000Z",
        "metadata": {"orderId": "42"},
        "occurredAt": "2026-11-24T10:00:03.000Z",
        "sequence": 1,
    }


def test_a_command_that_expired_gives_smsexpired_with_its_validity() -> None:
    # When a command being sent (a provider call failed once) reaches its validUntil
    events = events_between(SENDING, EXPIRED)
    # Then one SmsExpired, with the contract's detail
    assert [(e.detail_type, e.event_id) for e in events] == [("SmsExpired", "c-1:expired")]
    assert events[0].detail == {
        "commandId": "c-1",
        "phoneNumber": "+14155550101",
        "validUntil": "2026-11-24T10:10:00.000Z",
        "expiredAt": "2026-11-24T10:10:00.250Z",
        "attempts": 1,
        "metadata": {"orderId": "42"},
        "occurredAt": "2026-11-24T10:10:00.250Z",
        "sequence": 1,
    }


def test_an_expired_command_to_a_sim_names_its_iccid() -> None:
    sim = replace(EXPIRED, to="89445001021983048260", to_type="iccid")
    (event,) = events_between(replace(SENDING, to=sim.to, to_type="iccid"), sim)
    assert event.detail["iccid"] == "89445001021983048260"
    assert "phoneNumber" not in event.detail


def test_a_record_written_already_ended_gives_its_end() -> None:
    # A command that was never claimed can be recorded straight as ended (late, dead-lettered)
    assert shape(events_between(None, EXPIRED)) == [("SmsExpired", 1, "2026-11-24T10:10:00.250Z")]
    assert shape(events_between(None, FAILED)) == [("SmsFailed", 1, "2026-11-24T10:00:03.000Z")]


@pytest.mark.parametrize(
    ("status", "detail_type"), [("delivered", "SmsDelivered"), ("undelivered", "SmsUndelivered")]
)
def test_a_receipt_on_a_sent_command_is_its_second_event(status: str, detail_type: str) -> None:
    # When a receipt is recorded on a sent command
    events = events_between(SENT, receipt(SENT, status))
    # Then its event comes second, at the receipt's time
    assert [e.event_id for e in events] == [f"c-1:{status}"]
    assert events[0].detail_type == detail_type
    assert events[0].detail == {
        "commandId": "c-1",
        "providerMessageId": "pm_1",
        "status": status,
        "at": "2026-11-24T10:00:01.000Z",
        "metadata": {"orderId": "42"},
        "occurredAt": "2026-11-24T10:00:01.000Z",
        "sequence": 2,
    }


def test_a_receipt_that_came_before_the_send_waits_for_it_and_then_follows_it() -> None:
    # Given a fast provider: the receipt (provider clock 10:00:00.100) is recorded while the
    # command is still sending, and only then is the send recorded (our clock 10:00:00.180)
    early = receipt(SENDING, at="2026-11-24T10:00:00.100Z")
    # When the stream shows the receipt, then the send
    on_receipt = events_between(SENDING, early)
    on_send = events_between(early, replace(SENT, delivery=early.delivery, delivery_at=early.delivery_at))
    # Then nothing is told before the send; then SmsSent and SmsDelivered, ordered by sequence
    # even though the receipt's time reads earlier than the send's
    assert on_receipt == []
    assert shape(on_send) == [
        ("SmsSent", 1, "2026-11-24T10:00:00.180Z"),
        ("SmsDelivered", 2, "2026-11-24T10:00:00.100Z"),
    ]


def test_a_record_first_seen_sent_with_its_receipt_gives_both_in_order() -> None:
    assert [(t, s) for t, s, _ in shape(events_between(None, receipt(SENT)))] == [
        ("SmsSent", 1),
        ("SmsDelivered", 2),
    ]


@pytest.mark.parametrize("ended", [FAILED, EXPIRED], ids=["failed", "expired"])
def test_a_receipt_recorded_before_a_command_failed_or_expired_is_not_told(ended: CommandSnapshot) -> None:
    # Given a receipt recorded while the command was sending
    early = receipt(SENDING)
    # When the command then fails or expires
    events = events_between(early, receipt(ended))
    # Then only its end is told: one terminal event, no receipt for a command that did not send
    assert [(e.detail_type, e.detail["sequence"]) for e in events] == [
        ("SmsFailed" if ended is FAILED else "SmsExpired", 1)
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(FAILED, receipt(FAILED), id="receipt on a failed command"),
        pytest.param(EXPIRED, receipt(EXPIRED), id="receipt on an expired command"),
        pytest.param(EXPIRED, SENT, id="expired, then a sent image"),
        pytest.param(FAILED, SENT, id="failed, then a sent image"),
        pytest.param(SENT, FAILED, id="sent, then a failed image"),
        pytest.param(SENT, EXPIRED, id="sent, then an expired image"),
        pytest.param(
            EXPIRED, receipt(replace(EXPIRED, status="sent")), id="expired, then sent with a receipt"
        ),
        pytest.param(EXPIRED, replace(EXPIRED, attempts=2), id="expired record touched again"),
        pytest.param(SENT, SENT, id="sent record touched again"),
        pytest.param(receipt(SENT), receipt(SENT), id="a duplicate receipt"),
        pytest.param(receipt(SENT), receipt(SENT, "undelivered"), id="a contradicting late receipt"),
    ],
)
def test_a_command_that_ended_tells_nothing_more_than_its_receipt(
    old: CommandSnapshot, new: CommandSnapshot
) -> None:
    assert events_between(old, new) == []


def test_a_rejection_is_the_first_and_only_event_at_its_time() -> None:
    event = rejected_event(Rejection("body is not JSON", "nope", at="2026-11-24T10:00:00.000Z"), "e-1")
    assert (event.detail_type, event.event_id) == ("SmsRejected", "e-1")
    assert event.detail == {
        "reason": "body is not JSON",
        "body": "nope",
        "occurredAt": "2026-11-24T10:00:00.000Z",
        "sequence": 1,
    }


# Any history the store can write: claims (and re-claims) while sending, a receipt at any
# moment before or after the end, and one end; each step is one stream record.
_END = st.sampled_from([SENT, FAILED, EXPIRED])


@st.composite
def histories(draw: Any) -> list[CommandSnapshot]:
    end: CommandSnapshot = draw(_END)
    claims = draw(st.integers(min_value=1, max_value=3))
    receipt_at = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=claims + 1)))
    steps = [replace(SENDING, attempts=n) for n in range(claims)] + [end, end]
    if end.status == "failed" and receipt_at is not None and receipt_at >= claims:
        receipt_at = None  # the store refuses a receipt on a failed command
    if receipt_at is not None:
        # The receipt stays on the record from the step it was recorded in
        steps = [receipt(s) if i >= receipt_at else s for i, s in enumerate(steps)]
    return steps


@given(histories())
def test_any_history_tells_one_end_and_a_receipt_only_after_a_send(history: list[CommandSnapshot]) -> None:
    previous: CommandSnapshot | None = None
    told: list[BusEvent] = []
    for image in history:
        told += events_between(previous, image)
        previous = image
    end = history[-1]
    ends = [e for e in told if e.detail["sequence"] == 1]
    receipts = [e for e in told if e.detail["sequence"] == 2]
    assert [e.detail_type for e in ends] == [
        {"sent": "SmsSent", "failed": "SmsFailed", "expired": "SmsExpired"}[end.status]
    ]
    assert len(receipts) == (1 if end.status == "sent" and end.delivery is not None else 0)
    assert told == sorted(told, key=lambda e: e.detail["sequence"])
