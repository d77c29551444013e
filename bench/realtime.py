"""Real time: how long a message takes to reach the other side, and what the fan-out costs.

Latency: the local stack, as ``make run`` starts it (its own process: the clients here
do not share its interpreter), with the fake provider, and 20 users, each signed in with
an open WebSocket, in one of two scenarios (``SCENARIOS``): direct chats and groups, or
groups that each also have a member who is never connected (every message then takes the
SMS-forward path of the fan-out). For each message: ``POST /v1/chats/{id}/messages``,
note when it returns, and wait for the ``message.new`` frame at every other connected
member; each difference is a sample (negative when the frame beats the HTTP response),
and a frame that has not come after 10 s is counted missing. The users send at a steady
``RATE_PER_SECOND`` (30) messages per second in all, from several threads, so that
deliveries overlap as in a real conversation.
Targets on this machine: every frame arrives, p50 ≤ 30 ms, p99 ≤ 100 ms.

Fan-out cost: a group of 200 members, 50 of them connected, in the in-process stack
(moto): the AWS calls the fan-out makes for one message (reads, posts, SMS-forward waits).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.endpoint import Endpoint
from moto import mock_aws
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bench.stack import call_api, cpu_per_message, cpu_seconds, local_stack, settle
from chatflow.adapters.chat_store import chat_key
from local.specs import REGION
from local.stack import InProcessStack

USERS = 20
MESSAGES = 900
SENDERS = 16
RATE_PER_SECOND = 30.0
FRAME_TIMEOUT_SECONDS = 10.0
TARGET_P50_MS = 30.0
TARGET_P99_MS = 100.0
GROUP_SIZE = 200
GROUP_CONNECTED = 50


@dataclass(frozen=True)
class Scenario:
    """Who chats: ``USERS`` connected users in direct chats and groups; a group may also
    have members who are never connected (each message then takes the SMS-forward path)."""

    name: str
    direct_chats: int
    groups: int
    group_size: int
    offline_per_group: int = 0

    @property
    def connected(self) -> int:
        return 2 * self.direct_chats + self.groups * self.group_size


SCENARIOS = (
    Scenario("direct chats and groups", direct_chats=6, groups=2, group_size=4),
    Scenario(
        "groups with an offline member (SMS forwards)",
        direct_chats=0,
        groups=4,
        group_size=5,
        offline_per_group=1,
    ),
)


@dataclass(frozen=True)
class LatencyReport:
    scenario: Scenario
    samples_ms: list[float]
    missing: int
    # CPU milliseconds per message by process ("stack" and each function), over the series.
    cpu_ms: dict[str, float]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)

    @property
    def met(self) -> bool:
        return not self.missing and self.p50 <= TARGET_P50_MS and self.p99 <= TARGET_P99_MS


@dataclass(frozen=True)
class FanoutCost:
    members: int
    connected: int
    calls: Counter[str]

    @property
    def reads(self) -> int:
        return sum(n for op, n in self.calls.items() if op in ("GetItem", "BatchGetItem", "Query"))


class _Listener:
    """Reads one socket on a thread; hands ``message.new`` frames to whoever waits for them."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.arrivals: dict[str, float] = {}
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                frame = json.loads(self.socket.recv(timeout=60))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            if frame.get("type") == "message.new":
                arrived = time.perf_counter()
                with self._condition:
                    self.arrivals[frame["message"]["messageId"]] = arrived
                    self._condition.notify_all()

    def wait(self, message_id: str, timeout: float = FRAME_TIMEOUT_SECONDS) -> float | None:
        """When the message's frame arrived; None if it did not within ``timeout``."""
        with self._condition:
            if not self._condition.wait_for(lambda: message_id in self.arrivals, timeout):
                return None
            return self.arrivals.pop(message_id)


def measure_latency(scenario: Scenario, messages: int = MESSAGES) -> LatencyReport:
    """Messages sent at ``RATE_PER_SECOND`` in all; the latency of every frame to every
    connected member but the sender, and how many frames never came."""
    with tempfile.TemporaryDirectory() as state, local_stack(Path(state)) as (outputs, _, pid):
        url, ws_url = outputs["HttpApiUrl"], outputs["WebSocketUrl"]
        phones = [f"+1415555{2000 + i:04d}" for i in range(scenario.connected)]
        tokens = {p: call_api("POST", f"{url}/v1/sessions", {"phoneNumber": p})["token"] for p in phones}
        listeners = {p: _Listener(connect(f"{ws_url}?token={tokens[p]}", legacy=True)) for p in phones}
        chats: list[tuple[str, list[str]]] = []
        for i in range(0, 2 * scenario.direct_chats, 2):
            a, b = phones[i], phones[i + 1]
            chat = call_api("POST", f"{url}/v1/chats", {"type": "direct", "members": [b]}, tokens[a])
            chats.append((chat["chatId"], [a, b]))
        for g in range(scenario.groups):
            start = 2 * scenario.direct_chats + g * scenario.group_size
            members = phones[start : start + scenario.group_size]
            offline = [f"+1415556{1000 + g * 10 + k:04d}" for k in range(scenario.offline_per_group)]
            body = {"type": "group", "name": f"group {g}", "members": members[1:] + offline}
            chats.append((call_api("POST", f"{url}/v1/chats", body, tokens[members[0]])["chatId"], members))
        for n in range(len(chats) * 2):  # warm every function and worker before measuring
            _send(url, tokens, listeners, chats[n % len(chats)], n)
        # What the warm-up set off (the offline members' first SMS forwards: five functions'
        # first invocations) runs before the series, not in its first seconds.
        settle(pid)

        def one(n: int, at: float) -> tuple[list[float], int]:
            time.sleep(max(0.0, at - time.perf_counter()))
            return _send(url, tokens, listeners, chats[n % len(chats)], n)

        before = cpu_seconds(pid)
        begin = time.perf_counter() + 0.5
        with ThreadPoolExecutor(SENDERS) as pool:
            futures = [pool.submit(one, n, begin + n / RATE_PER_SECOND) for n in range(messages)]
            results = [f.result() for f in futures]
        time.sleep(1.0)  # the stream work of the last messages
        cpu = cpu_per_message(before, cpu_seconds(pid), messages)
        for listener in listeners.values():
            listener.socket.close()
        samples = [sample for latencies, _ in results for sample in latencies]
        return LatencyReport(scenario, samples, sum(missing for _, missing in results), cpu)


def _send(
    url: str, tokens: dict[str, str], listeners: dict[str, _Listener], chat: tuple[str, list[str]], n: int
) -> tuple[list[float], int]:
    """Send message ``n``; each other member's frame latency (ms), and the frames that never came."""
    chat_id, members = chat
    sender = members[n % len(members)]
    body = {"text": f"message {n}", "clientMessageId": uuid.uuid4().hex}
    message = call_api("POST", f"{url}/v1/chats/{chat_id}/messages", body, tokens[sender])
    returned = time.perf_counter()
    arrivals = [listeners[m].wait(message["messageId"]) for m in members if m != sender]
    latencies = [(arrived - returned) * 1000 for arrived in arrivals if arrived is not None]
    return latencies, arrivals.count(None)


@contextmanager
def _counting(calls: Counter[str]) -> Iterator[None]:
    make_request = Endpoint.make_request

    def counted(self: Endpoint, operation_model: Any, request_dict: Any) -> Any:
        calls[operation_model.name] += 1
        return make_request(self, operation_model, request_dict)

    Endpoint.make_request = counted  # type: ignore[method-assign]
    try:
        yield
    finally:
        Endpoint.make_request = make_request  # type: ignore[method-assign]


def measure_fanout_cost() -> FanoutCost:
    """Calls of the fan-out alone for one message to a group of 200, 50 of them connected."""
    with mock_aws():
        stack = InProcessStack.create(parameters={"AuthMode": "phone"})
        http = stack.http

        def call(method: str, path: str, body: Any, token: str | None = None) -> Any:
            headers = {"content-type": "application/json"} | (
                {"authorization": f"Bearer {token}"} if token else {}
            )
            return http.request(method, path, headers=headers, body=json.dumps(body)).json()

        others = [f"+1415556{i:04d}" for i in range(GROUP_SIZE - 1)]
        owner = call("POST", "/v1/sessions", {"phoneNumber": "+14155550199"})["token"]
        chat_id = call("POST", "/v1/chats", {"type": "group", "name": "big", "members": others[:150]}, owner)[
            "chatId"
        ]
        call("POST", f"/v1/chats/{chat_id}/members", {"members": others[150:]}, owner)
        for i, phone in enumerate(others[:GROUP_CONNECTED]):
            context = {"routeKey": "$connect", "connectionId": f"c{i}=", "authorizer": {"phoneNumber": phone}}
            stack.invoke("RealtimeConnectionsFunction", {"requestContext": context})
        stack.drain_streams()
        before = _meta(chat_id)
        call("POST", f"/v1/chats/{chat_id}/messages", {"text": "hello all", "clientMessageId": "m1"}, owner)
        # The stream is not drained: the fan-out runs once, here, on the record DynamoDB sends
        record = {
            "eventName": "MODIFY",
            "eventSource": "aws:dynamodb",
            "dynamodb": {"Keys": chat_key(chat_id), "OldImage": before, "NewImage": _meta(chat_id)},
        }
        calls: Counter[str] = Counter()
        with _counting(calls):
            stack.invoke("FanoutFunction", {"Records": [record]})
        return FanoutCost(GROUP_SIZE, GROUP_CONNECTED, calls)


def _meta(chat_id: str) -> dict[str, Any]:
    client = boto3.client("dynamodb", region_name=REGION)
    return dict(client.get_item(TableName="ChatsTable", Key=chat_key(chat_id))["Item"])


if __name__ == "__main__":
    cost = measure_fanout_cost()
    print(
        f"fan-out of one message to {cost.members} members ({cost.connected} connected): {dict(cost.calls)}"
    )
    for scenario in SCENARIOS:
        report = measure_latency(scenario)
        print(
            f"{scenario.name}: {len(report.samples_ms)} frames, p50 {report.p50:.1f} ms, "
            f"p99 {report.p99:.1f} ms, max {max(report.samples_ms):.1f} ms, missing {report.missing}, "
            f"CPU per message {sum(report.cpu_ms.values()):.1f} ms"
        )
