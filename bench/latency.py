"""Local stack delivery latency: from a queue message or stream record to its function starting.

The probe application (tests/local/probe) runs in the local stack exactly as ``make run``
runs ChatFlow. For each of N events, one at a time: note the time, send the SQS message
(or write the item whose stream record follows), and wait until the function's worker
reports the handler starting; the difference is the delivery latency. Target: median
under 50 ms on this machine.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from local.config import LocalConfig
from local.functions import Invocation
from local.stack_server import StackServer

PROBE = Path(__file__).resolve().parent.parent / "tests" / "local" / "probe" / "template.yaml"
TARGET_MEDIAN_MS = 50.0
EVENTS = 200


@dataclass(frozen=True)
class Latency:
    source: str
    samples_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]

    @property
    def met(self) -> bool:
        return self.median < TARGET_MEDIAN_MS


class _Starts:
    """Hands each start of the probe function, by trigger prefix, to the one waiting for it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._starts: list[Invocation] = []

    def __call__(self, invocation: Invocation) -> None:
        if invocation.function == "ProbeFunction":
            with self._condition:
                self._starts.append(invocation)
                self._condition.notify_all()

    def next(self, prefix: str, timeout: float = 10.0) -> Invocation:
        with self._condition:
            found = self._condition.wait_for(
                lambda: any(i.trigger.startswith(prefix) for i in self._starts), timeout
            )
            if not found:
                raise TimeoutError(f"no {prefix} invocation within {timeout} s")
            invocation = next(i for i in self._starts if i.trigger.startswith(prefix))
            self._starts.remove(invocation)
            return invocation


def measure(count: int = EVENTS) -> list[Latency]:
    with tempfile.TemporaryDirectory() as state:
        config = replace(
            LocalConfig(http_port=0, ws_port=0, provider_port=0, aws_port=0, state_dir=Path(state)),
            template_path=PROBE,
            persist=False,
            static_dir=None,
        )
        with StackServer(config, log=lambda line: None) as stack:
            starts = _Starts()
            assert stack.runner is not None
            stack.runner.add_listener(starts)
            sqs, dynamodb = stack.client("sqs"), stack.client("dynamodb")
            queue = stack.outputs["WorkQueueUrl"]

            def send() -> None:
                sqs.send_message(QueueUrl=queue, MessageBody=uuid.uuid4().hex)

            def write() -> None:
                dynamodb.put_item(TableName="ItemsTable", Item={"id": {"S": uuid.uuid4().hex}})

            # Warm up: the first event of each kind includes the function's cold start.
            for action, prefix in ((send, "sqs"), (write, "dynamodb")):
                action()
                starts.next(prefix, timeout=30)
            return [
                _series("SQS message", send, "sqs", starts, count),
                _series("DynamoDB stream record", write, "dynamodb", starts, count),
            ]


def _series(name: str, action: Callable[[], None], prefix: str, starts: _Starts, count: int) -> Latency:
    samples = []
    for _ in range(count):
        sent = time.time()
        action()
        started = starts.next(prefix).started_at
        samples.append((started - sent) * 1000)
        time.sleep(0.005)
    return Latency(name, samples)


if __name__ == "__main__":
    for result in measure():
        worst = max(result.samples_ms)
        print(f"{result.source}: median {result.median:.1f} ms, p99 {result.p99:.1f} ms, max {worst:.1f} ms")
