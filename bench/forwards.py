"""Forwards that wait: how many SMS the wait saves on a realistic burst (CONTRACT §7).

The application runs in-process on moto (``local.stack.InProcessStack``): messages are posted
through the HTTP API, the fan-out handles each chat's stream record, and ``ForwardsFunction``
handles each wait's job when SQS delivers it (SQS honours the delay). What is counted is the
SendSms commands queued for the offline members, and the chat messages they carry.

The scenario (``SCENARIO``): ``BURSTS`` group conversations, each its own chat (a member's
budget is one SMS per chat per 10 minutes: a chat per burst stands for a conversation per
window). In each, ``ONLINE`` members with the app open write ``MESSAGES`` messages, one
every ``GAP_SECONDS``; two members have no open connection: one is away (never reads), the
other is "back soon": in every other burst they read the chat on another device (over HTTP,
as a web tab with no socket would) ``READ_AFTER_SECONDS`` after the burst starts, within
the wait; in the others, only after the wait. The clock is scaled: a wait of
``WAIT_SECONDS`` here stands for the default 60 s, so the run takes seconds (about 40).

It runs twice on fresh stacks: with the wait (``ForwardAfterSeconds`` = ``WAIT_SECONDS``)
and without (``ForwardAfterSeconds`` = 0, each wait's job delivered at once: the forward
of the first unread message that ChatFlow sent before the wait existed).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto import mock_aws

from chatflow.adapters.connection_store import DynamoConnectionRepository
from local.specs import REGION
from local.stack import InProcessStack

BURSTS = 8
ONLINE = 3
MESSAGES = 6
GAP_SECONDS = 0.15
WAIT_SECONDS = 2
READ_AFTER_SECONDS = 1.2
LATE_READ_SECONDS = 3.0
AWAY = "+14155557001"
BACK_SOON = "+14155557002"
SCENARIO = (
    f"{BURSTS} group conversations of {ONLINE} members with the app open and 2 without a "
    f"connection; {MESSAGES} messages per conversation, one every {GAP_SECONDS:g} s; one offline "
    f"member never reads, the other reads {READ_AFTER_SECONDS:g} s after the conversation starts "
    f"in every other one (after its last message, within the wait), {LATE_READ_SECONDS:g} s after it "
    f"in the others; a wait of {WAIT_SECONDS} s "
    f"(the clock scaled 1:{60 // WAIT_SECONDS} against the default 60 s)"
)


@dataclass(frozen=True)
class Run:
    name: str
    after_seconds: int
    sms: int  # SendSms commands queued for the offline members
    messages_carried: int  # chat messages those SMS carry (a digest carries several)
    by_member: dict[str, int]
    texts: list[str]

    @property
    def messages_per_sms(self) -> float:
        return self.messages_carried / self.sms if self.sms else 0.0


@dataclass(frozen=True)
class ForwardsReport:
    with_wait: Run
    without_wait: Run
    messages: int  # chat messages written in all

    @property
    def saved(self) -> int:
        return self.without_wait.sms - self.with_wait.sms

    @property
    def saved_share(self) -> float:
        return self.saved / self.without_wait.sms if self.without_wait.sms else 0.0


class _World:
    def __init__(self, stack: InProcessStack) -> None:
        self.stack = stack
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.send_url = self.sqs.get_queue_url(QueueName="SendSmsQueue")["QueueUrl"]
        self.commands: list[dict[str, Any]] = []

    def call(self, method: str, path: str, body: Any, token: str | None = None) -> Any:
        headers = {"content-type": "application/json"} | (
            {"authorization": f"Bearer {token}"} if token else {}
        )
        response = self.stack.http.request(method, path, headers=headers, body=json.dumps(body))
        assert response.status in (200, 201, 204), (path, response.status, response.body)
        return response.json() if response.body else None

    def sign_in(self, phone: str) -> str:
        return str(self.call("POST", "/v1/sessions", {"phoneNumber": phone})["token"])

    def pump(self) -> None:
        """What Lambda's triggers would have run by now: stream records, due waits; then the
        SendSms commands queued meanwhile are taken off the queue and kept."""
        self.stack.drain_streams()
        self.stack.drain_queue("ForwardsFunction")
        while batch := self.sqs.receive_message(QueueUrl=self.send_url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in batch:
                self.commands.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.send_url, ReceiptHandle=message["ReceiptHandle"])


def _run(name: str, after_seconds: int) -> tuple[Run, int]:
    with mock_aws():
        world = _World(
            InProcessStack.create(parameters={"AuthMode": "phone", "ForwardAfterSeconds": str(after_seconds)})
        )
        online = [f"+1415555{7100 + i}" for i in range(ONLINE)]
        tokens = {phone: world.sign_in(phone) for phone in [*online, BACK_SOON]}
        for phone, display_name in zip(online, ("Ana", "Ben", "Cy"), strict=False):
            world.call("PATCH", "/v1/users/me", {"displayName": display_name}, tokens[phone])
        connections = DynamoConnectionRepository(
            "ConnectionsTable", boto3.client("dynamodb", region_name=REGION)
        )
        now = datetime.now(UTC)
        for i, phone in enumerate(online):  # their apps are open all along
            connections.add(phone, f"bench{i}=", now=now, expires_at=now + timedelta(hours=2))
        chats = [
            world.call(
                "POST",
                "/v1/chats",
                {"type": "group", "name": f"Trip {b + 1}", "members": [*online[1:], AWAY, BACK_SOON]},
                tokens[online[0]],
            )["chatId"]
            for b in range(BURSTS)
        ]
        world.pump()
        world.commands.clear()  # (none: nobody wrote yet)
        written = 0
        for burst, chat_id in enumerate(chats):
            start = time.monotonic()
            read_at = start + (READ_AFTER_SECONDS if burst % 2 == 0 else LATE_READ_SECONDS)
            read = False
            for i in range(MESSAGES):
                while time.monotonic() < start + i * GAP_SECONDS:
                    time.sleep(0.01)
                sender = online[i % ONLINE]
                body = {"text": f"message {i + 1} of burst {burst + 1}", "clientMessageId": uuid.uuid4().hex}
                world.call("POST", f"/v1/chats/{chat_id}/messages", body, tokens[sender])
                written += 1
                world.pump()
            while not read:  # the "back soon" member reads, now or later
                world.pump()
                if time.monotonic() >= read_at:
                    read = _read(world, chat_id, tokens[BACK_SOON])
                time.sleep(0.02)
        deadline = time.monotonic() + after_seconds + 30
        while time.monotonic() < deadline:  # every wait ends (its job is due ``after_seconds`` on)
            world.pump()
            pending = world.sqs.get_queue_attributes(
                QueueUrl=world.sqs.get_queue_url(QueueName="ForwardQueue")["QueueUrl"],
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
            )["Attributes"]
            if not int(pending["ApproximateNumberOfMessages"]) and not int(
                pending["ApproximateNumberOfMessagesDelayed"]
            ):
                break
            time.sleep(0.05)
        forwards = [c for c in world.commands if c["phoneNumber"] in (AWAY, BACK_SOON)]
        carried = sum(int(c["metadata"].get("messages", "1")) for c in forwards)
        by_member = {
            phone: sum(1 for c in forwards if c["phoneNumber"] == phone) for phone in (AWAY, BACK_SOON)
        }
        run = Run(name, after_seconds, len(forwards), carried, by_member, [c["text"] for c in forwards[:2]])
        return run, written


def _read(world: _World, chat_id: str, token: str) -> bool:
    last = world.call("GET", f"/v1/chats/{chat_id}", None, token)["lastMessage"]
    world.call("POST", f"/v1/chats/{chat_id}/receipts", {"type": "read", "upToSeq": last["seq"]}, token)
    world.pump()
    return True


def measure() -> ForwardsReport:
    with_wait, written = _run("with the wait", WAIT_SECONDS)
    without_wait, _ = _run("without the wait", 0)
    return ForwardsReport(with_wait, without_wait, written)


if __name__ == "__main__":
    report = measure()
    for run in (report.without_wait, report.with_wait):
        print(run)
    print(f"saved {report.saved} of {report.without_wait.sms} SMS ({report.saved_share:.0%})")
