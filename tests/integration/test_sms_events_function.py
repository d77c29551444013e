"""SmsEventsFunction: the events of a stream batch go out ten per call; a failure retries from its group."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from chatflow.errors import Throttled
from chatflow.ports import BusEvent
from local.stack import InProcessStack

SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "events" / "sms_events_stream.json").read_text())


class RecordingPublisher:
    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls: list[list[BusEvent]] = []
        self.fail_on_call = fail_on_call

    def publish(self, events: Sequence[BusEvent]) -> None:
        self.calls.append(list(events))
        if self.fail_on_call == len(self.calls):
            raise Throttled("the bus refused")


def _records(count: int) -> list[dict[str, Any]]:
    """``count`` stream records, each a command becoming sent (one SmsSent each)."""
    template = SAMPLE["Records"][0]
    records = []
    for i in range(count):
        record = json.loads(json.dumps(template))
        for image in ("OldImage", "NewImage"):
            record["dynamodb"][image]["commandId"] = {"S": f"c-{i}"}
        record["dynamodb"]["SequenceNumber"] = f"{1000 + i}"
        record["eventID"] = f"e-{i}"
        records.append(record)
    return records


@pytest.fixture
def stack() -> Iterator[InProcessStack]:
    with mock_aws():
        yield InProcessStack.create(parameters={"AuthMode": "phone"})


def _with_publisher(stack: InProcessStack, publisher: RecordingPublisher) -> None:
    module = stack.functions["SmsEventsFunction"].module
    setattr(module, "publisher", lambda: publisher)  # noqa: B010 - the module is loaded at run time


def test_the_events_of_a_batch_go_out_ten_per_call(stack: InProcessStack) -> None:
    publisher = RecordingPublisher()
    _with_publisher(stack, publisher)

    response = stack.invoke("SmsEventsFunction", {"Records": _records(23)})

    assert response == {"batchItemFailures": []}
    assert [len(call) for call in publisher.calls] == [10, 10, 3]
    assert [e.detail["commandId"] for call in publisher.calls for e in call] == [f"c-{i}" for i in range(23)]


def test_a_group_that_cannot_be_published_is_retried_from_its_first_record(stack: InProcessStack) -> None:
    publisher = RecordingPublisher(fail_on_call=2)
    _with_publisher(stack, publisher)

    response = stack.invoke("SmsEventsFunction", {"Records": _records(23)})

    # The first ten are done; the batch is retried from the 11th record
    assert response == {"batchItemFailures": [{"itemIdentifier": "1010"}]}
    assert len(publisher.calls) == 2


def test_records_that_mean_no_event_publish_nothing(stack: InProcessStack) -> None:
    publisher = RecordingPublisher()
    _with_publisher(stack, publisher)
    record = _records(1)[0]
    record["dynamodb"]["NewImage"]["status"] = {"S": "sending"}

    response = stack.invoke("SmsEventsFunction", {"Records": [record]})

    assert response == {"batchItemFailures": []}
    assert publisher.calls == []
