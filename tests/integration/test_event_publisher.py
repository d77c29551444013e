"""EventBridgePublisher puts events on the bus in batches and re-sends only the entries that failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from chatflow.adapters.events import EventBridgePublisher, EventsNotPublished
from chatflow.domain.sms_events import BusEvent
from chatflow.errors import Throttled

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient

REGION = "us-east-1"
BUS = "chatflow-test-bus"


def no_jitter(delay: float) -> float:
    """The backoff's full delay, so that the schedule can be asserted (jitter is random)."""
    return delay


def event(n: int, **extra: Any) -> BusEvent:
    return BusEvent("SmsSent", {"commandId": f"cmd_{n}", "attempts": 1, **extra})


def entry(n: int) -> dict[str, str]:
    """The PutEvents entry ``event(n)`` becomes."""
    return {
        "Source": "chatflow.sms",
        "DetailType": "SmsSent",
        "Detail": json.dumps({"commandId": f"cmd_{n}", "attempts": 1}, separators=(",", ":")),
        "EventBusName": BUS,
    }


@pytest.fixture
def events_client() -> EventBridgeClient:
    # Only ever stubbed: no request leaves the process.
    return boto3.client("events", region_name=REGION)


@pytest.fixture
def stubber(events_client: EventBridgeClient) -> Iterator[Stubber]:
    with Stubber(events_client) as stub:
        yield stub
        stub.assert_no_pending_responses()


class RecordingClient:
    """A PutEvents that accepts everything and keeps each call's entries."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": f"e{n}"} for n in range(len(Entries))]}


def recording_publisher(recording: RecordingClient) -> EventBridgePublisher:
    return EventBridgePublisher(BUS, cast("EventBridgeClient", recording), sleep=lambda _: None)


def test_23_events_reach_a_rule_s_queue_in_three_calls() -> None:
    with mock_aws():
        # Given a bus whose rule sends chatflow.sms events to a queue
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        events.create_event_bus(Name=BUS)
        queue_url = sqs.create_queue(QueueName="sms-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name="all-sms", EventBusName=BUS, EventPattern=json.dumps({"source": ["chatflow.sms"]})
        )
        events.put_targets(Rule="all-sms", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])
        calls: list[int] = []
        events.meta.events.register(
            "provide-client-params.events.PutEvents", lambda params, **_: calls.append(len(params["Entries"]))
        )
        # When 23 events are published
        EventBridgePublisher(BUS, events).publish([event(n) for n in range(23)])
        # Then they took three calls of at most 10, and every one arrived as sent
        assert calls == [10, 10, 3]
        arrived: list[dict[str, Any]] = []
        while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            arrived += [json.loads(message["Body"]) for message in batch]
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in batch],
            )
        assert sorted(e["detail"]["commandId"] for e in arrived) == sorted(f"cmd_{n}" for n in range(23))
        assert {(e["source"], e["detail-type"]) for e in arrived} == {("chatflow.sms", "SmsSent")}


def test_only_the_failed_entries_are_sent_again(events_client: EventBridgeClient, stubber: Stubber) -> None:
    # Given a bus that fails entries 3 and 7 of a batch of 10, then takes them
    results: list[dict[str, str]] = [{"EventId": f"e{n}"} for n in range(10)]
    results[3] = results[7] = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
    stubber.add_response(
        "put_events", {"FailedEntryCount": 2, "Entries": results}, {"Entries": [entry(n) for n in range(10)]}
    )
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 0, "Entries": [{"EventId": "e3b"}, {"EventId": "e7b"}]},
        {"Entries": [entry(3), entry(7)]},
    )
    sleeps: list[float] = []
    publisher = EventBridgePublisher(BUS, events_client, sleep=sleeps.append, jitter=no_jitter)
    # When 10 events are published
    publisher.publish([event(n) for n in range(10)])
    # Then the second call carried only the two failed entries, after a short pause
    assert sleeps == [0.1]


def test_a_throttled_call_is_retried(events_client: EventBridgeClient, stubber: Stubber) -> None:
    # Given a bus that throttles the first call
    stubber.add_client_error("put_events", service_error_code="ThrottlingException", http_status_code=400)
    stubber.add_response(
        "put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e0"}]}, {"Entries": [entry(0)]}
    )
    sleeps: list[float] = []
    # When an event is published
    EventBridgePublisher(BUS, events_client, sleep=sleeps.append, jitter=no_jitter).publish([event(0)])
    # Then it went on the second call
    assert sleeps == [0.1]


def test_entries_that_always_fail_raise_after_max_attempts(
    events_client: EventBridgeClient, stubber: Stubber
) -> None:
    # Given a bus that takes one of two events and then always fails the other
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 1, "Entries": [{"EventId": "e0"}, {"ErrorCode": "ThrottlingException"}]},
        {"Entries": [entry(0), entry(1)]},
    )
    for _ in range(2):
        stubber.add_response(
            "put_events",
            {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}]},
            {"Entries": [entry(1)]},
        )
    sleeps: list[float] = []
    publisher = EventBridgePublisher(
        BUS, events_client, max_attempts=3, sleep=sleeps.append, jitter=no_jitter
    )
    # When both are published
    with pytest.raises(EventsNotPublished) as caught:
        publisher.publish([event(0), event(1)])
    # Then after three attempts with growing pauses it says one event never went, and why
    assert sleeps == [0.1, 0.2]
    assert caught.value.unpublished == 1
    assert "1 of 2 events" in caught.value.message
    assert "ThrottlingException" in caught.value.message
    assert isinstance(caught.value, Throttled)


def test_an_error_other_than_throttling_is_not_retried(
    events_client: EventBridgeClient, stubber: Stubber
) -> None:
    # Given a bus the function may not write to
    stubber.add_client_error("put_events", service_error_code="AccessDeniedException", http_status_code=400)
    sleeps: list[float] = []
    # When an event is published
    with pytest.raises(ClientError) as caught:
        EventBridgePublisher(BUS, events_client, sleep=sleeps.append, jitter=no_jitter).publish([event(0)])
    # Then the error surfaces at once
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert sleeps == []


def test_the_detail_is_compact_json_on_the_named_bus() -> None:
    # Given a publisher
    recording = RecordingClient()
    # When an event with nested and non-ASCII detail is published
    recording_publisher(recording).publish(
        [BusEvent("SmsFailed", {"commandId": "c1", "metadata": {"name": "Zoë"}}, source="chatflow.test")]
    )
    # Then its entry is the compact JSON with source, type and bus
    assert recording.calls == [
        [
            {
                "Source": "chatflow.test",
                "DetailType": "SmsFailed",
                "Detail": '{"commandId":"c1","metadata":{"name":"Zoë"}}',
                "EventBusName": BUS,
            }
        ]
    ]


def test_batches_stay_under_256_kib() -> None:
    # Given five events of about 100 KiB each
    recording = RecordingClient()
    big = [event(n, padding="x" * 100_000) for n in range(5)]
    # When they are published
    recording_publisher(recording).publish(big)
    # Then no call carried more than two of them
    assert [len(call) for call in recording.calls] == [2, 2, 1]


def test_an_event_over_256_kib_is_refused_before_anything_is_sent() -> None:
    # Given an event too large for EventBridge after a normal one
    recording = RecordingClient()
    # When both are published
    with pytest.raises(ValueError, match="over EventBridge's"):
        recording_publisher(recording).publish([event(0), event(1, padding="x" * 300_000)])
    # Then nothing was sent
    assert recording.calls == []


def test_a_detail_that_is_not_json_is_refused_before_anything_is_sent() -> None:
    # Given an event whose detail holds a set, which JSON cannot encode
    recording = RecordingClient()
    # When it is published after a valid one
    with pytest.raises(TypeError, match="SmsSent"):
        recording_publisher(recording).publish([event(0), event(1, tags={"a"})])
    # Then nothing was sent
    assert recording.calls == []


def test_no_events_make_no_call() -> None:
    # Given a publisher
    recording = RecordingClient()
    # When nothing is published
    recording_publisher(recording).publish([])
    # Then the bus is not called
    assert recording.calls == []
