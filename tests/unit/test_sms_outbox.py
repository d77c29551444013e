"""The SMS outbox: the events of a batch of stream records, ten per call, retried from a failed group."""

from __future__ import annotations

from chatflow.application.changes import SmsRecordChanged
from chatflow.application.sms_outbox import SmsOutbox
from chatflow.domain.sms_events import CommandSnapshot, Rejection
from tests.sms_fakes import InMemoryBus


def sent(i: int) -> SmsRecordChanged:
    """A command becoming sent: one SmsSent."""
    old = CommandSnapshot(f"c-{i}", "sending", to="+14155550101")
    new = CommandSnapshot(f"c-{i}", "sent", to="+14155550101", provider_message_id="pm", segments=1)
    return SmsRecordChanged(str(1000 + i), f"e-{i}", old, new, None)


def test_given_23_records_when_published_then_they_go_out_ten_per_call() -> None:
    bus = InMemoryBus()

    retry_from = SmsOutbox(publisher=lambda: bus).publish(sent(i) for i in range(23))

    assert retry_from is None
    assert [len(call) for call in bus.calls] == [10, 10, 3]
    assert [e.detail_type for call in bus.calls for e in call] == ["SmsSent"] * 23


def test_given_a_refused_group_when_published_then_the_batch_is_retried_from_its_first_record() -> None:
    bus = InMemoryBus(fail_on_call=2)

    retry_from = SmsOutbox(publisher=lambda: bus).publish(sent(i) for i in range(23))

    assert retry_from == "1010"
    assert len(bus.calls) == 2


def test_given_a_rejection_record_when_published_then_it_is_one_sms_rejected() -> None:
    bus = InMemoryBus()
    rejected = SmsRecordChanged("1", "e-1", None, None, Rejection("no destination", "{}"))

    SmsOutbox(publisher=lambda: bus).publish([rejected])

    assert [e.detail_type for call in bus.calls for e in call] == ["SmsRejected"]


def test_given_records_that_mean_no_event_when_published_then_nothing_is_called() -> None:
    bus = InMemoryBus()
    unchanged = SmsRecordChanged("1", "e-1", None, None, None)

    assert SmsOutbox(publisher=lambda: bus).publish([unchanged]) is None
    assert bus.calls == []
