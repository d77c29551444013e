"""The SMS gateway end to end through the local stack, with the fake provider failing 10%.

500 commands (plus duplicates and invalid bodies) go on the SendSms queue through the
stack's AWS endpoint; a rule copies every event of the bus to a test queue. Every valid
command must end in exactly one SmsSent or SmsFailed, no command may reach the provider
as two messages, duplicates add no send, invalid bodies give SmsRejected.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from local.stack_server import StackServer
from tests.local.conftest import Lines, free_config

COMMANDS = 500
DUPLICATES = 50
INVALID = [
    "not json",
    "[]",
    json.dumps({"commandId": "x"}),
    json.dumps({"commandId": "y", "text": "no destination"}),
]


def _observe(stack: StackServer) -> tuple[Any, str]:
    sqs, events = stack.client("sqs"), stack.client("events")
    url = sqs.create_queue(QueueName="e2e-observed")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.outputs["EventBusName"]
    events.put_rule(
        Name="e2e-observe", EventBusName=bus, EventPattern=json.dumps({"source": ["chatflow.sms"]})
    )
    events.put_targets(Rule="e2e-observe", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def _drain(sqs: Any, url: str, into: list[dict[str, Any]]) -> None:
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        into.extend(json.loads(m["Body"]) for m in messages)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def test_every_valid_command_ends_in_exactly_one_outcome_under_provider_failures(tmp_path: Path) -> None:
    config = free_config(
        tmp_path,
        persist=False,
        provider_environ={
            "CHATFLOW_FAKE_FAILURE_RATE": "0.1",
            "CHATFLOW_FAKE_DELAY_MS": "0-5",
            "CHATFLOW_FAKE_HANG_SECONDS": "0.2",
            "CHATFLOW_FAKE_RECEIPT_DELAY_MS": "50",
        },
        parameters={"SmsRatePerSecond": "10000", "SmsRetryBaseSeconds": "1", "SmsMaxAttempts": "6"},
    )
    with StackServer(config, log=Lines()) as stack:
        sqs, observed_url = _observe(stack)
        queue = stack.outputs["SendSmsQueueUrl"]

        # Given 500 commands to distinct numbers, 50 of them sent twice, and invalid bodies
        ids = [f"e2e-{i}-{uuid.uuid4().hex[:8]}" for i in range(COMMANDS)]
        bodies = [
            json.dumps({"commandId": cid, "phoneNumber": f"+1415{5550000 + i:07d}", "text": f"hello {i}"})
            for i, cid in enumerate(ids)
        ]
        all_bodies = bodies + bodies[:DUPLICATES] + INVALID

        # When they are dropped on the queue, as a producer would
        for start in range(0, len(all_bodies), 10):
            chunk = all_bodies[start : start + 10]
            sqs.send_message_batch(
                QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
            )

        # Then every valid command ends in exactly one SmsSent or SmsFailed
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 240
        outcomes: Counter[str] = Counter()
        while time.monotonic() < deadline:
            _drain(sqs, observed_url, events)
            outcomes = Counter(
                e["detail"]["commandId"] for e in events if e["detail-type"] in ("SmsSent", "SmsFailed")
            )
            rejected = [e for e in events if e["detail-type"] == "SmsRejected"]
            if len(outcomes) == COMMANDS and len(rejected) == len(INVALID):
                break
            time.sleep(0.5)
        time.sleep(1.0)  # anything late would be a duplicate outcome
        _drain(sqs, observed_url, events)
        outcomes = Counter(
            e["detail"]["commandId"] for e in events if e["detail-type"] in ("SmsSent", "SmsFailed")
        )
        assert set(outcomes) == set(ids), f"{COMMANDS - len(outcomes)} commands without an outcome"
        assert max(outcomes.values()) == 1, [c for c, n in outcomes.items() if n > 1]

        # And the provider took each command at most once, and only sent ones
        assert stack.provider is not None
        outbox = stack.provider.outbox()
        references = Counter(m["reference"] for m in outbox)
        assert max(references.values()) == 1
        assert stack.provider.replays() == {}, "an accepted command was sent to the provider again"
        sent = {e["detail"]["commandId"] for e in events if e["detail-type"] == "SmsSent"}
        assert set(references) == sent

        # And the invalid bodies each gave one SmsRejected
        rejected_bodies = sorted(e["detail"]["body"] for e in events if e["detail-type"] == "SmsRejected")
        assert rejected_bodies == sorted(INVALID)

        # And with 10% failures most went out; the failures are permanent ones or exhausted retries
        failed = [e["detail"] for e in events if e["detail-type"] == "SmsFailed"]
        assert len(sent) > COMMANDS * 0.85
        assert all(f["permanent"] or f["attempts"] == 6 for f in failed)
