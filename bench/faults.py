"""Faults, measured: the SMS gateway and campaigns on the local stack while things go wrong.

Each run starts the local stack in this process (``local.stack_server.StackServer``: moto,
the APIs, the event sources, worker processes, the fake provider) with its own template
parameters, makes something fail, waits until everything has ended, and checks what a
user must be able to rely on (issue 12):

- every command in exactly one terminal state (``sent``, ``failed``, ``expired``), with
  exactly one terminal event on the bus; every campaign recipient in exactly one final
  status, and the campaign's counts adding up;
- nothing sent to an opted-out number or ICCID;
- no failure that the provider did not cause (a crash, a rate bounce or a dead letter
  never fails a command);
- duplicate sends (the provider saw an accepted ``Idempotency-Key`` again: with a
  provider that ignores the key, a second SMS) at most the sends in flight at the
  moments of the crashes.

The runs (``RUNS``) are sized by their arguments: ``make bench`` (``python -m bench.run
faults``) runs the issue's sizes and writes docs/reliability.md; tests/e2e/test_faults.py
runs smaller ones through the same code and asserts ``FaultReport.violations == []``.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.stack import call_api
from local.config import LocalConfig
from local.stack_server import StackServer

OPERATOR = "+14155550100"
SMS_TABLE = "SmsTable"  # the local stack names tables by their logical id
FINAL_COMMAND_STATUSES = ("sent", "failed", "expired")
FINAL_RECIPIENT_STATUSES = ("sent", "delivered", "failed", "skipped", "expired", "cancelled")
TERMINAL_EVENTS = ("SmsSent", "SmsFailed", "SmsExpired")
# Error codes a provider gives (the fake's faults, the HTTP adapter's own): a failure with
# any other code was not caused by the provider.
PROVIDER_CODES = frozenset(
    {
        "unavailable",
        "rate_limited",
        "timeout",
        "invalid_destination",
        "provider_timeout",
        "provider_unreachable",
        "provider_invalid_response",
    }
)


@dataclass
class FaultReport:
    name: str
    seconds: float = 0.0
    commands: Counter[str] = field(default_factory=Counter)  # final status → commands
    events: Counter[str] = field(default_factory=Counter)  # terminal event type → commands
    recipients: Counter[str] = field(default_factory=Counter)  # campaign recipients by status
    counts: dict[str, int] = field(default_factory=dict)  # the campaign's own counts
    failures: Counter[str] = field(default_factory=Counter)  # errorCode → failed commands
    attempts: Counter[int] = field(default_factory=Counter)  # provider calls → commands
    provider_messages: int = 0
    duplicate_sends: int = 0
    in_flight_at_crashes: list[int] = field(default_factory=list)
    killed_workers: int = 0
    sent_to_opted_out: int = 0
    figures: dict[str, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    # When each phase of the run ended, in seconds from its start: where a slow run's time went.
    timeline: list[tuple[str, float]] = field(default_factory=list)
    _started: float = field(default_factory=time.monotonic, repr=False)

    def mark(self, phase: str) -> None:
        self.timeline.append((phase, round(time.monotonic() - self._started, 1)))

    def check(self, condition: bool, violation: str) -> None:
        if not condition:
            self.violations.append(violation)


# ---- the stack ---------------------------------------------------------------------------


@contextmanager
def fault_stack(parameters: dict[str, str], provider: dict[str, str]) -> Iterator[StackServer]:
    with tempfile.TemporaryDirectory() as state:
        config = LocalConfig(
            http_port=0,
            ws_port=0,
            provider_port=0,
            aws_port=0,
            auth_mode="phone",
            operators=OPERATOR,
            state_dir=Path(state),
            persist=False,
            static_dir=None,
            provider_environ={"CHATFLOW_FAKE_DELAY_MS": "0-5", "CHATFLOW_FAKE_HANG_SECONDS": "0.5"}
            | provider,
            parameters={"SmsRetryBaseSeconds": "1", "SendSmsVisibilityTimeout": "30"} | parameters,
        )
        with StackServer(config, log=lambda line: None) as stack:
            yield stack


class Bus:
    """Every SMS event of the stack's bus, copied to a queue by a rule (as a consumer would)."""

    def __init__(self, stack: StackServer) -> None:
        self._sqs = stack.client("sqs")
        events = stack.client("events")
        self._url = self._sqs.create_queue(QueueName=f"observed-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        bus = stack.outputs["EventBusName"]
        events.put_rule(
            Name="observe", EventBusName=bus, EventPattern=json.dumps({"source": ["chatflow.sms"]})
        )
        events.put_targets(Rule="observe", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
        self.seen: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        while True:
            batch = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return self.seen
            self.seen.extend(json.loads(m["Body"]) for m in batch)
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )


def command_records(stack: StackServer) -> dict[str, dict[str, Any]]:
    """The SMS table's command records (``CMD#``), by command id, as plain values."""
    dynamodb = stack.client("dynamodb")
    table = SMS_TABLE
    found: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = dynamodb.scan(**kwargs)
        for raw in page.get("Items", []):
            if raw["PK"]["S"].startswith("CMD#"):
                found[raw["PK"]["S"][4:]] = {k: next(iter(v.values())) for k, v in raw.items()}
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def in_flight(stack: StackServer) -> int:
    """Commands claimed by an attempt that has not ended (a live lease): sends in flight."""
    now_ms = time.time() * 1000
    return sum(
        1
        for record in command_records(stack).values()
        if record.get("status") == "sending" and float(record.get("leaseUntil") or 0) > now_ms
    )


def queue_empty(stack: StackServer, url: str) -> bool:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return all(int(value) == 0 for value in attributes.values())


def settle(stack: StackServer, done: Callable[[], bool], timeout: float) -> bool:
    """Wait until ``done()`` holds and the SendSms queue is empty; False past ``timeout``."""
    url = stack.outputs["SendSmsQueueUrl"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue_empty(stack, url) and done():
            return True
        time.sleep(0.5)
    return False


def kill_send_sms_workers() -> int:
    """SIGKILL every SendSmsFunction worker of this process (as Lambda loses an execution
    environment mid-invocation); how many were killed."""
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and b'"functionName": "SendSmsFunction"' in command:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def _check_commands(report: FaultReport, stack: StackServer, bus: Bus, opted_out: set[str]) -> None:
    records = command_records(stack)
    events = bus.drain()
    report.commands = Counter(str(r.get("status")) for r in records.values())
    report.attempts = Counter(int(r.get("attempts") or 0) for r in records.values())
    report.failures = Counter(
        str(r.get("errorCode")) for r in records.values() if r.get("status") == "failed"
    )
    outbox = stack.provider.outbox() if stack.provider else []
    replays = stack.provider.replays() if stack.provider else {}
    report.provider_messages = len(outbox)
    report.duplicate_sends = sum(replays.values())
    report.sent_to_opted_out = sum(1 for m in outbox if m["to"] in opted_out)
    terminal: dict[str, set[str]] = {}
    for event in events:
        if event["detail-type"] in TERMINAL_EVENTS:
            terminal.setdefault(event["detail"]["commandId"], set()).add(event["detail-type"])
    report.events = Counter(next(iter(kinds)) for kinds in terminal.values() if len(kinds) == 1)
    unfinished = [c for c, r in records.items() if r.get("status") not in FINAL_COMMAND_STATUSES]
    report.check(not unfinished, f"{len(unfinished)} commands not in a terminal state: {unfinished[:5]}")
    several = [c for c, kinds in terminal.items() if len(kinds) > 1]
    report.check(not several, f"commands with more than one terminal event: {several[:5]}")
    missing = sorted(set(records) - set(terminal))
    report.check(not missing, f"{len(missing)} commands without a terminal event: {missing[:5]}")
    report.check(
        report.sent_to_opted_out == 0, f"{report.sent_to_opted_out} SMS sent to opted-out destinations"
    )
    not_provider = {
        code: n for code, n in report.failures.items() if code not in PROVIDER_CODES | {"opted_out"}
    }
    report.check(not not_provider, f"failures the provider did not cause: {not_provider}")
    bound = sum(report.in_flight_at_crashes)
    report.check(
        report.duplicate_sends <= bound,
        f"{report.duplicate_sends} duplicate sends, more than the {bound} sends in flight at the crashes",
    )


# ---- the runs ----------------------------------------------------------------------------


def campaign_with_crashes(
    recipients: int = 1500,
    kills: int = 3,
    opted_out: int = 15,
    *,
    senders: int = 5,
    sends_per_sender: int = 10,
) -> FaultReport:
    """A campaign at a 10% provider failure rate; SendSms workers killed ``kills`` times
    mid-batch; ``opted_out`` of the SIMs sent STOP before the file was loaded. At most
    ``senders`` SendSmsFunction invocations run at once, each with ``sends_per_sender``
    provider calls at once: a small campaign needs few, so that it is still sending (and
    a send is in flight) when a crash comes."""
    report = FaultReport(f"campaign of {recipients:,} recipients, 10% provider failures, {kills} crashes")
    started = time.monotonic()
    iccids = [_iccid(i) for i in range(recipients)]
    stopped = set(iccids[:: max(1, recipients // opted_out)][:opted_out])
    parameters = {
        "SmsRatePerSecond": "200",
        "SmsMaxConcurrency": str(senders),
        "SmsBatchConcurrency": str(sends_per_sender),
        "SmsMaxAttempts": "15",
    }
    # A provider as slow as the fake's default (50-200 ms a send), so that a batch is
    # always in flight somewhere when a worker is killed.
    provider = {
        "CHATFLOW_FAKE_FAILURE_RATE": "0.1",
        "CHATFLOW_FAKE_RECEIPT_DELAY_MS": "50",
        "CHATFLOW_FAKE_DELAY_MS": "50-200",
    }
    with fault_stack(parameters, provider) as stack:
        bus = Bus(stack)
        url = stack.outputs["HttpApiUrl"]
        token = call_api("POST", f"{url}/v1/sessions", {"phoneNumber": OPERATOR})["token"]
        _opt_out(stack, stopped)
        campaign = call_api(
            "POST", f"{url}/v1/campaigns", {"name": "faults", "template": "Hi {{name}}"}, token
        )
        campaign_id = campaign["campaignId"]
        ticket = call_api("POST", f"{url}/v1/campaigns/{campaign_id}/uploads", {}, token)
        body = "iccid,name\n" + "".join(f"{iccid},P{i}\n" for i, iccid in enumerate(iccids))
        stack.client("s3").put_object(
            Bucket=stack.outputs["CampaignBucketName"], Key=ticket["key"], Body=body.encode()
        )

        def progress() -> dict[str, Any]:
            return dict(call_api("GET", f"{url}/v1/campaigns/{campaign_id}", token=token))

        # The crashes: when 20%, 45% and 70% of the recipients have an outcome
        for k in range(kills):
            threshold = recipients * (0.2 + 0.25 * k)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                counts = progress()["counts"]
                if counts.get("total") and counts["total"] - counts.get("queued", 0) >= threshold:
                    break
                time.sleep(0.05)
            report.mark(f"{threshold:.0f} recipients with an outcome")
            # Mid-batch: once sends are in flight (claimed, not ended). Counted again right
            # after the kill: the killed attempts keep their leases (until their invocation's
            # deadline) and no new worker has started yet, so that count is what was in flight.
            # Not past the last batch: with nothing left queued no send will be in flight again
            # (waiting on would only poll the table until the deadline).
            while time.monotonic() < deadline and not in_flight(stack):
                if not progress()["counts"].get("queued"):
                    break
                time.sleep(0.02)
            report.killed_workers += kill_send_sms_workers()
            report.in_flight_at_crashes.append(in_flight(stack))
            report.mark(f"crash {k + 1}")

        def finished() -> bool:
            campaign = progress()
            return bool(campaign["status"] == "completed" and campaign["counts"].get("queued", 0) == 0)

        report.check(settle(stack, finished, timeout=600), "the campaign did not finish within 10 minutes")
        report.mark("finished")
        # Receipts still turn "sent" into "delivered" after the campaign completed: compare
        # the counts with the recipients' statuses read between two equal reads of the counts.
        for _ in range(60):
            before = progress()["counts"]
            statuses = _recipient_statuses(url, token, campaign_id)
            final = progress()
            if final["counts"] == before:
                break
            time.sleep(1)
        report.counts = {k: int(v) for k, v in final["counts"].items()}
        report.recipients = Counter(statuses.values())
        _check_commands(report, stack, bus, stopped)
        total = report.counts.get("total", 0)
        parts = sum(v for k, v in report.counts.items() if k != "total")
        report.check(total == recipients, f"the campaign counts {total} recipients, not {recipients}")
        report.check(parts == total, f"the counts do not add up: {report.counts}")
        report.check(len(statuses) == recipients, f"{len(statuses)} recipients listed, not {recipients}")
        odd = {s: n for s, n in report.recipients.items() if s not in FINAL_RECIPIENT_STATUSES}
        report.check(not odd, f"recipients not in a final status: {odd}")
        by_count = {s: report.counts.get(s, 0) for s in report.recipients}
        report.check(by_count == dict(report.recipients), f"statuses {dict(report.recipients)} vs counts")
        not_skipped = [i for i in stopped if statuses.get(i) != "skipped"]
        report.check(not not_skipped, f"opted-out SIMs not skipped: {not_skipped[:5]}")
    report.seconds = time.monotonic() - started
    return report


def provider_outage(commands: int = 100, seconds: float = 60.0) -> FaultReport:
    """The provider answers 503 to everything for ``seconds``, then recovers."""
    report = FaultReport(f"provider answering 503 for {seconds:g} s, {commands} commands")
    started = time.monotonic()
    with fault_stack(
        {"SmsRatePerSecond": "200", "SmsMaxAttempts": "15"}, {"CHATFLOW_FAKE_FAILURE_RATE": "0"}
    ) as stack:
        assert stack.provider is not None
        bus = Bus(stack)
        stack.provider.outage(status=503, seconds=seconds)
        _send_commands(stack, [_command(f"outage-{i}", _phone(i)) for i in range(commands)])
        settle(
            stack,
            lambda: len(command_records(stack)) == commands and in_flight(stack) == 0,
            timeout=seconds + 600,
        )
        _check_commands(report, stack, bus, set())
        report.check(report.commands == Counter({"sent": commands}), f"not all sent: {dict(report.commands)}")
        outage_over = started + seconds
        report.figures["seconds from the provider's recovery until every command was sent"] = max(
            0.0, time.monotonic() - outage_over
        )
    report.seconds = time.monotonic() - started
    return report


def duplicate_deliveries(
    commands: int = 50, recipients: int = 200, parameters: dict[str, str] | None = None
) -> FaultReport:
    """Every SendSms message delivered twice, and a campaign file's S3 notification twice.

    A duplicate that finds its command's lease live comes back when the lease ends: at most
    SendSmsFunction's timeout after that invocation started (``SendSmsTimeout``, 30 s by
    default; ``parameters`` may shorten it)."""
    report = FaultReport(f"duplicate SQS deliveries ({commands} commands) and S3 notifications")
    started = time.monotonic()
    with fault_stack(
        {"SmsRatePerSecond": "200"} | (parameters or {}), {"CHATFLOW_FAKE_FAILURE_RATE": "0"}
    ) as stack:
        bus = Bus(stack)
        bodies = [_command(f"dup-{i}", _phone(i)) for i in range(commands)]
        _send_commands(stack, bodies + bodies)
        url = stack.outputs["HttpApiUrl"]
        token = call_api("POST", f"{url}/v1/sessions", {"phoneNumber": OPERATOR})["token"]
        campaign_id = call_api(
            "POST", f"{url}/v1/campaigns", {"name": "dup", "template": "Hi {{name}}"}, token
        )["campaignId"]
        ticket = call_api("POST", f"{url}/v1/campaigns/{campaign_id}/uploads", {}, token)
        body = "iccid,name\n" + "".join(f"{_iccid(i)},P{i}\n" for i in range(recipients))
        bucket = stack.outputs["CampaignBucketName"]
        stack.client("s3").put_object(Bucket=bucket, Key=ticket["key"], Body=body.encode())
        _renotify(stack, bucket, ticket["key"], body.encode())

        def finished() -> bool:
            campaign = call_api("GET", f"{url}/v1/campaigns/{campaign_id}", token=token)
            return bool(campaign["status"] == "completed" and campaign["counts"].get("queued", 0) == 0)

        report.check(
            settle(stack, finished, timeout=300), "the duplicate run did not finish within 5 minutes"
        )
        report.counts = dict(call_api("GET", f"{url}/v1/campaigns/{campaign_id}", token=token)["counts"])
        _check_commands(report, stack, bus, set())
        report.check(report.counts.get("total") == recipients, f"recipients counted twice: {report.counts}")
        report.check(
            report.provider_messages == commands + recipients,
            f"{report.provider_messages} SMS accepted for {commands + recipients} commands",
        )
    report.seconds = time.monotonic() - started
    return report


def rate_burst(rate: int = 3, commands: int = 60) -> FaultReport:
    """``SmsRatePerSecond=rate`` and ``commands`` commands arriving at once."""
    report = FaultReport(f"SmsRatePerSecond={rate}, {commands} commands at once")
    started = time.monotonic()
    with fault_stack({"SmsRatePerSecond": str(rate)}, {"CHATFLOW_FAKE_FAILURE_RATE": "0"}) as stack:
        bus = Bus(stack)
        _send_commands(stack, [_command(f"burst-{i}", _phone(i)) for i in range(commands)])
        settle(stack, lambda: len(command_records(stack)) == commands and in_flight(stack) == 0, timeout=600)
        _check_commands(report, stack, bus, set())
        report.check(report.commands == Counter({"sent": commands}), f"not all sent: {dict(report.commands)}")
        report.check(set(report.attempts) == {1}, f"waits counted as attempts: {dict(report.attempts)}")
        outbox = stack.provider.outbox() if stack.provider else []
        per_second = Counter(m["acceptedAt"][:19] for m in outbox)
        # The limit holds per second of the gateway's clock, when a send is granted; the
        # provider's clock sees each send a few milliseconds later, so a send granted at the
        # end of one second may land in the next one: at most twice the rate in any second
        # there, and the rate on average.
        report.figures["most sends in one second (provider's clock)"] = max(per_second.values(), default=0)
        stamps = sorted(_seconds(m["acceptedAt"]) for m in outbox)
        if len(stamps) > 1:
            average = (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9)
            report.figures["sends per second, first to last"] = average
            report.check(average <= rate * 1.05, f"{average:.2f} sends per second on average, over {rate}")
        busiest = max(per_second.values(), default=0)
        report.check(busiest <= 2 * rate, f"{busiest} sends in one second, over twice the rate {rate}")
    report.seconds = time.monotonic() - started
    return report


def campaign_throughput(recipients: int = 2000, rate: int = 20) -> FaultReport:
    """A campaign with nothing failing: its send rate from the first send to the last,
    against ``SmsRatePerSecond`` (issue 12: at least 90% of it)."""
    report = FaultReport(f"campaign of {recipients:,} recipients at SmsRatePerSecond={rate}")
    started = time.monotonic()
    with fault_stack({"SmsRatePerSecond": str(rate)}, {"CHATFLOW_FAKE_FAILURE_RATE": "0"}) as stack:
        bus = Bus(stack)
        url = stack.outputs["HttpApiUrl"]
        token = call_api("POST", f"{url}/v1/sessions", {"phoneNumber": OPERATOR})["token"]
        body_in = {"name": "rate", "template": "Hi {{name}}"}
        campaign_id = call_api("POST", f"{url}/v1/campaigns", body_in, token)["campaignId"]
        ticket = call_api("POST", f"{url}/v1/campaigns/{campaign_id}/uploads", {}, token)
        body = "iccid,name\n" + "".join(f"{_iccid(i)},P{i}\n" for i in range(recipients))
        stack.client("s3").put_object(
            Bucket=stack.outputs["CampaignBucketName"], Key=ticket["key"], Body=body.encode()
        )

        def finished() -> bool:
            campaign = call_api("GET", f"{url}/v1/campaigns/{campaign_id}", token=token)
            return bool(campaign["status"] == "completed" and campaign["counts"].get("queued", 0) == 0)

        report.check(settle(stack, finished, timeout=900), "the campaign did not finish within 15 minutes")
        _check_commands(report, stack, bus, set())
        stamps = sorted(
            _seconds(m["acceptedAt"]) for m in (stack.provider.outbox() if stack.provider else [])
        )
        achieved = (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9) if len(stamps) > 1 else 0.0
        report.figures["sends per second, first to last"] = achieved
        report.figures["share of SmsRatePerSecond"] = achieved / rate
        report.check(achieved >= 0.9 * rate, f"{achieved:.1f} sends per second, under 90% of {rate}")
        report.check(len(stamps) == recipients, f"{len(stamps)} sends for {recipients} recipients")
    report.seconds = time.monotonic() - started
    return report


RUNS: dict[str, Callable[[], FaultReport]] = {
    "campaign": campaign_with_crashes,
    "outage": provider_outage,
    "duplicates": duplicate_deliveries,
    "rate": rate_burst,
    "throughput": campaign_throughput,
}


# ---- helpers -----------------------------------------------------------------------------


def _iccid(i: int) -> str:
    """The ``i``-th SIM of a run, ending in 1: never one of the fake provider's magic
    destinations (``…0400``, ``…0503``, ``…0429``, ``…0408``, ``…0410`` always fail or are
    undelivered), so that only the failure rate decides."""
    return f"89{i:017d}1"


def _phone(i: int) -> str:
    """The ``i``-th number of a run (``i`` < 1,000), ending in 1 for the same reason."""
    return f"+1415555{(i * 10 + 1) % 10_000:04d}"


def _command(command_id: str, phone: str) -> str:
    return json.dumps({"commandId": command_id, "phoneNumber": phone, "text": f"Your code for {command_id}"})


def _send_commands(stack: StackServer, bodies: list[str]) -> None:
    sqs = stack.client("sqs")
    url = stack.outputs["SendSmsQueueUrl"]
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def _opt_out(stack: StackServer, destinations: set[str]) -> None:
    """STOP from each destination, as the provider's inbound webhook records it."""
    dynamodb = stack.client("dynamodb")
    table = SMS_TABLE
    for destination in destinations:
        dynamodb.put_item(
            TableName=table,
            Item={
                "PK": {"S": f"OPTOUT#{destination}"},
                "SK": {"S": "OPTOUT"},
                "destination": {"S": destination},
                "at": {"S": "2026-12-03T00:00:00.000Z"},
            },
        )


def _renotify(stack: StackServer, bucket: str, key: str, body: bytes) -> None:
    """The same object put again (a client retrying its PUT): S3 notifies again, the same
    file and content (S3 notifications are at least once anyway)."""
    stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def _recipient_statuses(url: str, token: str, campaign_id: str) -> dict[str, str]:
    statuses: dict[str, str] = {}
    cursor: str | None = None
    while True:
        query = f"?limit=100{f'&cursor={cursor}' if cursor else ''}"
        page = call_api("GET", f"{url}/v1/campaigns/{campaign_id}/recipients{query}", token=token)
        statuses.update({r["iccid"]: r["status"] for r in page["items"]})
        cursor = page.get("nextCursor")
        if not cursor:
            return statuses


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run_all(runs: dict[str, Callable[[], FaultReport]] | None = None) -> list[FaultReport]:
    reports = []
    for name, run in (runs or RUNS).items():
        print(f"faults: {name} …", flush=True)
        report = run()
        print(f"  {report.seconds:.0f} s, {'OK' if not report.violations else report.violations}", flush=True)
        reports.append(report)
    return reports


DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
HEADER = (
    "| run | commands by final status | failures by error code | duplicate sends / in flight at crashes "
    "| sent to opted-out | seconds | invariants |\n|---|---|---|---|---|---|---|"
)


def document(reports: list[FaultReport], total: float) -> str:
    rows = []
    for r in reports:
        outcome = ", ".join(f"{status} {n}" for status, n in sorted(r.commands.items()))
        failures = ", ".join(f"{code} {n}" for code, n in sorted(r.failures.items())) or "none"
        verdict = "held" if not r.violations else "; ".join(r.violations)
        duplicates = f"{r.duplicate_sends} / {sum(r.in_flight_at_crashes)}"
        cells = [r.name, outcome, failures, duplicates, str(r.sent_to_opted_out), f"{r.seconds:.0f}", verdict]
        rows.append("| " + " | ".join(cells) + " |")
    details = []
    for r in reports:
        lines = [f"### {r.name}", ""]
        if r.counts:
            lines.append("- Campaign counts: " + ", ".join(f"{k} {v}" for k, v in r.counts.items()) + ".")
        if r.recipients:
            lines.append(
                "- Recipients by status: "
                + ", ".join(f"{k} {v}" for k, v in sorted(r.recipients.items()))
                + "."
            )
        if r.in_flight_at_crashes:
            lines.append(
                f"- Crashes: {len(r.in_flight_at_crashes)} (SIGKILL of every SendSms worker, "
                f"{r.killed_workers} processes in all); sends in flight at each: "
                f"{', '.join(map(str, r.in_flight_at_crashes))}."
            )
        lines.append(
            "- Provider calls per command: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(r.attempts.items()))
            + "."
        )
        for name, value in r.figures.items():
            lines.append(f"- {name[0].upper()}{name[1:]}: {value:.2f}.")
        details.append("\n".join(lines))
    return f"""# Reliability: the SMS gateway and campaigns under faults

Generated by `make bench` (`python -m bench.faults`, module `bench/faults.py`) on
{datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}, on this 2-core machine; do not edit by hand. The
runs took {total:.0f} s. tests/e2e/test_faults.py runs the same code on smaller sizes in
`make test` and fails on any violation.

Each run starts the whole local stack (moto, the APIs, the event sources, worker processes,
the fake provider) with its own parameters (`SmsRetryBaseSeconds=1`,
`SendSmsVisibilityTimeout=30` so that crashed batches come back sooner than the default 180 s),
makes something fail, waits until every queue is empty and every command has ended, then
checks, from the outside (the SMS table, the bus through a rule to a queue, the campaign API,
the fake provider's log):

- every command in exactly one terminal state (`sent`, `failed`, `expired`) with exactly one
  terminal event on the bus, no command left `sending`;
- every campaign recipient in one final status, the statuses matching the campaign's counts,
  the counts adding up to the total;
- nothing sent to an opted-out number or SIM;
- no failure that the provider did not cause (allowed error codes: the provider's own,
  `opted_out`); a crash, a rate bounce or a dead letter never fails a command;
- duplicate sends (the provider saw an `Idempotency-Key` it had already accepted: with a
  provider that ignores the key, a second SMS) at most the sends in flight (commands with
  a live lease) at the moments of the crashes.

{HEADER}
{chr(10).join(rows)}

{(chr(10) * 2).join(details)}

## Reading

- **Crashes do not fail messages.** A killed worker's batch comes back after the queue's
  visibility timeout; its leases ended with its invocation, so the redelivery is claimed at
  once. Waits for the rate and retries go back to the queue as fresh delayed messages, so
  only crashes count toward the dead-letter queue's limit of 5 receives, and attempts count
  provider calls only: the failures left are the provider's own refusals
  (`invalid_destination`, a permanent error that is never retried).
- **Duplicates** come only from sends the provider had accepted when the worker died and
  that were sent again; the fake provider honours `Idempotency-Key`, so no SMS was doubled
  here, and the count above is what a provider ignoring the key would have doubled.
- **An outage** of the provider is ridden out by the retry policy (docs/sms-gateway.md,
  "Retry policy"): commands keep their place in the queue as delayed messages and go out
  once it recovers. Not at once: with exponential backoff a command's next try comes up to
  about as long after the recovery as the outage had lasted (at most 15 minutes later),
  which is the price of not hammering a provider that is down; the figure above is that
  wait after a 60 s outage.
- **What failed before** (issue 12: a 1,500-recipient campaign on `make run` with a provider
  that never fails, the SendSms workers killed three times, ended with 5 recipients
  `failed`). Its ICCIDs ran from `89…0000` up; four of them end in the fake provider's magic
  suffixes, which fail whatever the failure rate (`…0400` invalid destination, `…0408`
  timeout, `…0429` 429, `…0503` 503: docs/local-stack.md), so those four were the
  provider's doing. The transient three gave up after `SmsMaxAttempts` (then 6) counted
  *claims*, so rate bounces, redeliveries after the crashes and lease conflicts used up
  attempts without a provider call; that leak, the likeliest path of the fifth failure, is
  closed (attempts count provider calls only, waits are not attempts). These runs avoid the
  magic destinations so that only the failure rate decides. With the retry policy of now, a
  destination the provider keeps refusing transiently is retried for 46 to 92 minutes
  before `SmsFailed`, and its campaign stays `sending` until then.
- **The rate** holds per second of the gateway's clock; the provider's clock can see a send
  granted at the end of one second land in the next. A burst of 60 commands at 3 per second
  is spread out by the waits (each comes back 1 s plus a random share of in-flight sends /
  rate later), which leaves the provider under its rate on average; a long campaign keeps it
  close to the rate (the throughput run).
"""


def main() -> int:
    started = time.monotonic()
    reports = run_all()
    DOC.write_text(document(reports, time.monotonic() - started), encoding="utf-8")
    print(f"wrote {DOC} ({time.monotonic() - started:.0f} s)")
    return 0 if all(not r.violations for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
