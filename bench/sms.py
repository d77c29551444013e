"""SMS gateway: a batch of 10 commands is as slow as its slowest send, not the sum of them.

SendSmsFunction runs in-process on moto and calls the local fake provider over HTTP
(50-200 ms per message, no failures). Each provider call is timed where the adapter
makes it. Targets: batch time at most 1.5 x the slowest single send; 1 provider call per
command when nothing fails.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

from chatflow.adapters import sms_provider
from chatflow.domain.sms import SmsRequest
from local.fake_provider import FakeProviderSettings, FakeSmsProvider
from local.sources import _sqs_record
from local.stack import InProcessStack

TARGET_RATIO = 1.5
BATCH = 10
ROUNDS = 10
PHONE = "+14155551000"


@dataclass(frozen=True)
class BatchRun:
    wall_ms: float
    slowest_send_ms: float
    provider_calls: int

    @property
    def ratio(self) -> float:
        return self.wall_ms / self.slowest_send_ms


@dataclass(frozen=True)
class SmsReport:
    runs: list[BatchRun]

    @property
    def worst_ratio(self) -> float:
        return max(r.ratio for r in self.runs)

    @property
    def median_ratio(self) -> float:
        return statistics.median(r.ratio for r in self.runs)

    @property
    def calls_per_command(self) -> float:
        return sum(r.provider_calls for r in self.runs) / (BATCH * len(self.runs))


class _TimedSends:
    """Times every provider call the adapter makes (all threads)."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._lock = threading.Lock()
        self._original = sms_provider.HttpSmsProvider.send

    def __enter__(self) -> _TimedSends:
        original = self._original
        timer = self

        def send(provider: sms_provider.HttpSmsProvider, request: SmsRequest) -> str:
            started = time.perf_counter()
            try:
                return original(provider, request)
            finally:
                with timer._lock:
                    timer.durations.append((time.perf_counter() - started) * 1000)

        sms_provider.HttpSmsProvider.send = send  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        sms_provider.HttpSmsProvider.send = self._original  # type: ignore[method-assign]


def _one_request_at_a_time() -> Any:
    """moto is not thread-safe: serialize its requests, as DynamoDB applies each atomically."""
    lock = threading.Lock()
    original = BotocoreStubber.process_request

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return original(self, request)

    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]
    return original


def measure() -> SmsReport:
    provider = FakeSmsProvider(FakeProviderSettings(failure_rate=0.0, seed=11), log=lambda line: None)
    provider.start()
    original = _one_request_at_a_time()
    try:
        with mock_aws():
            parameters = {"AuthMode": "phone", "SmsProviderBaseUrl": provider.url, "SmsRatePerSecond": "1000"}
            stack = InProcessStack.create(parameters=parameters)
            assert stack.functions["SendSmsFunction"].module is not None  # cold start not measured
            runs = [_one_batch(stack) for _ in range(ROUNDS + 1)]
    finally:
        BotocoreStubber.process_request = original  # type: ignore[method-assign]
        provider.stop()
    return SmsReport(runs[1:])  # the first batch also opens the provider connections


def _one_batch(stack: InProcessStack) -> BatchRun:
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = stack.template.physical_ids["SendSmsQueue"]
    queue_arn = stack.template.attributes[("SendSmsQueue", "Arn")]
    entries: list[Any] = [
        {
            "Id": str(i),
            "MessageBody": json.dumps({"commandId": uuid.uuid4().hex, "phoneNumber": PHONE, "text": "b"}),
        }
        for i in range(BATCH)
    ]
    sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=BATCH, AttributeNames=["All"])
    records = [_sqs_record(dict(m), queue_arn) for m in messages["Messages"]]
    with _TimedSends() as sends:
        started = time.perf_counter()
        response = stack.functions["SendSmsFunction"].invoke({"Records": records})
        wall = (time.perf_counter() - started) * 1000
    assert response == {"batchItemFailures": []}, response
    handles: list[Any] = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(records)]
    sqs.delete_message_batch(QueueUrl=queue_url, Entries=handles)
    return BatchRun(wall, max(sends.durations), len(sends.durations))


if __name__ == "__main__":
    report = measure()
    for run in report.runs:
        print(f"batch {run.wall_ms:.0f} ms, slowest send {run.slowest_send_ms:.0f} ms, ratio {run.ratio:.2f}")
    print(
        f"median ratio {report.median_ratio:.2f}, worst {report.worst_ratio:.2f} (target <= {TARGET_RATIO})"
    )
    print(f"provider calls per command: {report.calls_per_command}")
