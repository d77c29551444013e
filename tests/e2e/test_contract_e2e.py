"""Every message of docs/asyncapi.yaml, seen for real and valid against its schema.

One short walk through the local stack makes ChatFlow send every server frame, take every
client frame and SendSms command, and publish every kind of SMS event; the recorder
(tests/e2e/conftest.py) validates each against the committed AsyncAPI document. The
walk then checks that nothing of the document went unseen, so no schema stays untested.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from local.stack_server import StackServer
from tests.e2e.conftest import ContractRecorder
from tests.e2e.test_realtime_e2e import Client
from tests.local.conftest import Lines, eventually, free_config

ALICE, BOB, CAROL = "+14155550121", "+14155550122", "+14155550123"
PAST = "2020-01-01T00:00:00.000Z"
# The fake provider's magic numbers: ...0400 is refused for good, ...0410 never arrives.
COMMANDS = [
    {"commandId": "contract-sent", "phoneNumber": "+14155550131", "text": "hello", "metadata": {"k": "v"}},
    {"commandId": "contract-sim", "iccid": "89445001021983048261", "text": "hello SIM"},
    {"commandId": "contract-refused", "phoneNumber": "+14155550400", "text": "refused"},
    {"commandId": "contract-lost", "phoneNumber": "+14155550410", "text": "lost"},
    {"commandId": "contract-late", "phoneNumber": "+14155550132", "text": "late", "validUntil": PAST},
    {"CommandId": "contract-seed", "PhoneNumber": "+14155550133", "SmsText": "seed-shaped"},
]
INVALID = "not a command"


def _observe_events(stack: StackServer) -> tuple[Any, str]:
    sqs, events = stack.client("sqs"), stack.client("events")
    url = sqs.create_queue(QueueName="contract-walk")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.outputs["EventBusName"]
    events.put_rule(
        Name="contract-walk", EventBusName=bus, EventPattern=json.dumps({"source": ["chatflow.sms"]})
    )
    events.put_targets(Rule="contract-walk", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def test_every_frame_command_and_event_of_the_reference_is_seen_and_valid(
    tmp_path: Path, contract_recorder: ContractRecorder
) -> None:
    config = free_config(
        tmp_path,
        persist=False,
        provider_environ={
            "CHATFLOW_FAKE_FAILURE_RATE": "0",
            "CHATFLOW_FAKE_DELAY_MS": "0-5",
            "CHATFLOW_FAKE_RECEIPT_DELAY_MS": "20",
        },
        parameters={"ForwardAfterSeconds": "1"},  # Carol's forward comes within the walk
    )
    with StackServer(config, log=Lines()) as stack:
        sqs, observed = _observe_events(stack)

        # Given Alice and Bob connected, in a group with Carol, who has no app
        alice, bob = Client(stack, ALICE), Client(stack, BOB)
        status, group = alice.post("/v1/chats", {"type": "group", "name": "walk", "members": [BOB, CAROL]})
        assert status == 201, group
        chat_id = group["chatId"]
        bob.wait_for(lambda f: f["type"] == "chat.updated")

        # When they use every client frame, and Bob's connection comes and goes
        alice.send({"action": "sendMessage", "chatId": chat_id, "text": "hi", "clientMessageId": "w1"})
        bob.wait_for(lambda f: f["type"] == "message.new")
        bob.send({"action": "typing", "chatId": chat_id})
        alice.wait_for(lambda f: f["type"] == "typing")
        bob.send({"action": "receipt", "chatId": chat_id, "type": "read", "upToSeq": 1})
        alice.wait_for(lambda f: f["type"] == "message.status")
        bob.send({"action": "ping"})
        bob.wait_for(lambda f: f["type"] == "pong")
        bob.send({"action": "typing", "chatId": "not-a-chat-of-bob"})
        bob.wait_for(lambda f: f["type"] == "error")
        bob.drop()
        alice.wait_for(lambda f: f["type"] == "presence" and not f["online"])
        bob.connect()
        alice.wait_for(lambda f: f["type"] == "presence" and f["online"])

        # And producers put commands on the queue: some go out, one is refused, one is
        # never delivered, one is too late, one is seed-shaped, one is not a command
        bodies = [json.dumps(c) for c in COMMANDS] + [INVALID]
        sqs.send_message_batch(
            QueueUrl=stack.outputs["SendSmsQueueUrl"],
            Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)],
        )

        # Then every kind of event is published (Carol's SMS forward among the sends)
        wanted = {"SmsSent", "SmsFailed", "SmsExpired", "SmsDelivered", "SmsUndelivered", "SmsRejected"}
        kinds: set[str] = set()

        def all_kinds() -> bool:
            while batch := sqs.receive_message(QueueUrl=observed, MaxNumberOfMessages=10).get("Messages"):
                kinds.update(json.loads(m["Body"])["detail-type"] for m in batch)
            return wanted <= kinds

        eventually(all_kinds, timeout=15, interval=0.2)
        time.sleep(0.2)  # Carol's forward's receipt, if still on its way

    # Then (the stack stopped: its commands and events were validated) every message of
    # the document was seen, and the frames of this walk match their schemas too
    assert contract_recorder.frame_problems() == []
    document = contract_recorder.contract
    for kind in ("client frame", "server frame", "command", "event"):
        assert contract_recorder.seen[kind] == document.names(kind), kind
