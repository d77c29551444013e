"""The end-to-end tests check the AsyncAPI reference (docs/asyncapi.yaml) with real traffic.

While an end-to-end module runs, every local stack it starts is recorded:

- every WebSocket frame a client sends (a JSON object with an ``action``) and every frame
  the stack sends to a client (a JSON object with a ``type``; API Gateway's own replies,
  such as ``{"message": "Forbidden"}``, are not ChatFlow's frames);
- every SendSms command the gateway's consumer takes from the SendSms queue;
- every event on the SMS bus (a rule of the recorder's copies them to a queue of its own).

Each is validated against the committed document (``local.api_docs.AsyncApiContract``):
frames when the test that saw them ends, commands and events when their stack stops. A
body the gateway rejected (an ``SmsRejected`` event names it) must break the command's
schema too: a schema looser than the consumer is drift as well.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from chatflow.commands import SYNONYMS
from local.api_docs import REGENERATE, AsyncApiContract, Kind
from local.stack_server import StackServer
from local.wsgateway import Connection, WebSocketApi

_RULE = "contract-recorder"


@dataclass
class _Observed:
    """What the recorder knows of one running stack."""

    events_queue: str
    send_sms_function: str | None
    send_sms_queue_arn: str | None
    commands: list[str] = field(default_factory=list)


class ContractRecorder:
    def __init__(self, contract: AsyncApiContract) -> None:
        self.contract = contract
        self._lock = threading.Lock()
        self._frames: list[tuple[Kind, Any]] = []
        self._stacks: dict[int, _Observed] = {}
        self.seen: dict[Kind, set[str]] = {
            "client frame": set(),
            "server frame": set(),
            "command": set(),
            "event": set(),
        }

    # ---- recording ---------------------------------------------------------------------

    def frame(self, kind: Kind, data: str | bytes) -> None:
        if not isinstance(data, str):
            return
        try:
            frame = json.loads(data)
        except ValueError:
            return  # not a frame (a test's deliberately broken one): the server answers it
        key = "action" if kind == "client frame" else "type"
        if isinstance(frame, dict) and key in frame:
            with self._lock:
                self._frames.append((kind, frame))

    def started(self, stack: StackServer) -> None:
        sqs, events = stack.client("sqs"), stack.client("events")
        url = sqs.create_queue(QueueName=_RULE)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bus = stack.outputs["EventBusName"]
        events.put_rule(Name=_RULE, EventBusName=bus, EventPattern=json.dumps({"source": ["chatflow.sms"]}))
        events.put_targets(Rule=_RULE, EventBusName=bus, Targets=[{"Id": "recorder", "Arn": arn}])
        function, queue_arn = None, None
        assert stack.template is not None
        assert stack.provisioned is not None
        for mapping in stack.template.event_source_mappings():
            if stack.provisioned.queue_urls.get(mapping.source_arn) == stack.outputs["SendSmsQueueUrl"]:
                function, queue_arn = mapping.function, mapping.source_arn
        with self._lock:
            self._stacks[id(stack)] = _Observed(url, function, queue_arn)

    def invoked(self, stack: StackServer, function: str, event: dict[str, Any]) -> None:
        observed = self._stacks.get(id(stack))
        if observed is None or function != observed.send_sms_function:
            return
        with self._lock:
            observed.commands.extend(
                str(record["body"])
                for record in event.get("Records", [])
                if record.get("eventSourceARN") == observed.send_sms_queue_arn
            )

    # ---- checking ----------------------------------------------------------------------

    def frame_problems(self) -> list[str]:
        with self._lock:
            frames, self._frames = self._frames, []
        return [problem for kind, frame in frames for problem in self._check(kind, frame)]

    def stopping(self, stack: StackServer) -> list[str]:
        """Drain the stack's events (it is still up); the problems of its commands and events."""
        with self._lock:
            observed = self._stacks.pop(id(stack), None)
        if observed is None:
            return []
        sqs = stack.client("sqs")
        events: list[dict[str, Any]] = []
        # Receive only (no deletes): the queue dies with the stack.
        while batch := sqs.receive_message(
            QueueUrl=observed.events_queue, MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages"):
            events.extend(json.loads(message["Body"]) for message in batch)
        problems = [problem for event in events for problem in self._check("event", event)]
        rejected = {
            event["detail"].get("body") for event in events if event.get("detail-type") == "SmsRejected"
        }
        for body in observed.commands:
            problems.extend(self.command_problems(body, rejected_by_gateway=body in rejected))
        return problems

    def command_problems(self, body: str, *, rejected_by_gateway: bool) -> list[str]:
        """Why a queue message body breaks the command schema; for one the gateway rejected, whether
        the schema fails to reject it too."""
        try:
            command = json.loads(body)
        except ValueError:
            command = body
        if isinstance(command, dict):
            command = {SYNONYMS.get(name, name): value for name, value in command.items()}
        problems = self.contract.problems("command", command)
        if rejected_by_gateway:
            return [] if problems else [f"the gateway rejected a command the schema accepts: {body[:200]}"]
        self.seen["command"].add("SendSms")
        return problems

    def _check(self, kind: Kind, payload: Any) -> list[str]:
        problems = self.contract.problems(kind, payload)
        if not problems:
            self.seen[kind].add(str(self.contract.name_of(kind, payload)))
        return [f"{p} in {json.dumps(payload)[:300]}" for p in problems]


def _report(problems: list[str]) -> None:
    if problems:
        pytest.fail(
            f"{len(problems)} payloads break docs/asyncapi.yaml (fix the code, or the models and "
            f"run {REGENERATE}):\n" + "\n".join(problems[:20]),
            pytrace=False,
        )


_RECORDER: list[ContractRecorder] = []


@pytest.fixture(scope="session")
def contract_recorder() -> ContractRecorder:
    if not _RECORDER:
        _RECORDER.append(ContractRecorder(AsyncApiContract.committed()))
    return _RECORDER[0]


@pytest.fixture(scope="module", autouse=True)
def _record_the_contract(contract_recorder: ContractRecorder) -> Iterator[None]:
    """Recording patches for this module only (set up before, and undone after, its stacks)."""
    recorder = contract_recorder
    send, message = Connection.send, WebSocketApi.message
    start, stop, invoke = StackServer.start, StackServer.stop, StackServer._invoke

    def recorded_send(self: Connection, data: str | bytes) -> None:
        recorder.frame("server frame", data)
        send(self, data)

    def recorded_message(self: WebSocketApi, conn: Connection, data: str | bytes) -> None:
        recorder.frame("client frame", data)
        message(self, conn, data)

    def recorded_start(self: StackServer) -> StackServer:
        started = start(self)
        recorder.started(self)
        return started

    def recorded_invoke(self: StackServer, function: str, event: dict[str, Any], trigger: str) -> Any:
        recorder.invoked(self, function, event)
        return invoke(self, function, event, trigger)

    def recorded_stop(self: StackServer) -> None:
        try:
            problems = recorder.stopping(self)
        finally:
            stop(self)
        _report(problems)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Connection, "send", recorded_send)
        patch.setattr(WebSocketApi, "message", recorded_message)
        patch.setattr(StackServer, "start", recorded_start)
        patch.setattr(StackServer, "_invoke", recorded_invoke)
        patch.setattr(StackServer, "stop", recorded_stop)
        yield
    _report(recorder.frame_problems())


@pytest.fixture(autouse=True)
def _frames_match_the_contract(contract_recorder: ContractRecorder) -> Iterator[None]:
    yield
    _report(contract_recorder.frame_problems())
