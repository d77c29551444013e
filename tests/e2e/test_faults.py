"""Faults on the local stack (issue 12), through bench/faults.py's runs at smaller sizes.

``make bench`` runs the same code at the issue's sizes and writes docs/reliability.md; here
each run must end with every invariant held (``FaultReport.violations`` lists the broken
ones, with what was seen): every command and recipient in one terminal state with one
terminal event, counts that add up, nothing sent to an opted-out destination, no failure
the provider did not cause, duplicates bounded by the sends in flight at the crashes.
"""

from __future__ import annotations

import json
import time

from bench import faults


def test_a_campaign_survives_crashes_of_its_senders_without_a_failure_of_its_own() -> None:
    # Few sends at once: the small campaign is still sending when each crash comes
    report = faults.campaign_with_crashes(recipients=300, kills=2, opted_out=6, senders=2, sends_per_sender=2)
    print(report)  # shown with -rP, and with a failure: where the time went, what was seen

    assert report.violations == []
    assert report.killed_workers > 0
    assert max(report.in_flight_at_crashes) > 0  # a crash came mid-send
    assert report.recipients["skipped"] == 6
    assert report.counts["total"] == 300


def test_a_provider_outage_is_ridden_out_and_every_command_is_sent_after_it() -> None:
    report = faults.provider_outage(commands=30, seconds=8)

    assert report.violations == []
    assert report.commands == {"sent": 30}
    assert max(report.attempts) > 1  # they were retried through the outage


def test_duplicate_deliveries_send_nothing_twice() -> None:
    # SendSmsTimeout 5: duplicates wait for live leases 5 s at most, not the default 30 s
    report = faults.duplicate_deliveries(commands=20, recipients=40, parameters={"SendSmsTimeout": "5"})

    assert report.violations == []
    assert report.duplicate_sends == 0


def test_a_burst_above_the_rate_waits_without_using_attempts() -> None:
    report = faults.rate_burst(rate=3, commands=30)

    assert report.violations == []
    assert report.attempts == {1: 30}


def test_a_dead_lettered_command_ends_in_smsfailed_through_the_stacks_dead_letter_queue() -> None:
    # Given a command that reached SendSmsDeadLetterQueue (it crashed the consumer 5 times)
    with faults.fault_stack({}, {"CHATFLOW_FAKE_FAILURE_RATE": "0"}) as stack:
        bus = faults.Bus(stack)
        sqs = stack.client("sqs")
        dead_letters = sqs.get_queue_url(QueueName="SendSmsDeadLetterQueue")["QueueUrl"]
        body = {"commandId": "poison-1", "phoneNumber": "+14155550111", "text": "Your code"}
        sqs.send_message(QueueUrl=dead_letters, MessageBody=json.dumps(body))

        # When the stack delivers it to SmsDeadLettersFunction, as Lambda's event source would
        assert faults.settle(stack, lambda: "poison-1" in faults.command_records(stack), timeout=30)
        record = faults.command_records(stack)["poison-1"]

        # Then the command ended failed (dead_lettered), announced once, and nothing was sent
        assert (record["status"], record["errorCode"]) == ("failed", "dead_lettered")
        deadline = time.monotonic() + 10
        while not bus.drain() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [(e["detail-type"], e["detail"]["errorCode"]) for e in bus.seen] == [
            ("SmsFailed", "dead_lettered")
        ]
        assert stack.provider is not None
        assert stack.provider.outbox() == []
