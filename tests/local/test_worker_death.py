"""A worker killed mid-invocation, as on Lambda: replaced, and its SQS batch delivered again.

The stack is configured the way ``make run`` reads it, from the environment: the probe's
queue gets a short visibility timeout through ``CHATFLOW_PARAMETER_OVERRIDES``.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from local.config import LocalConfig
from local.stack_server import StackServer
from tests.local.conftest import Lines, eventually, free_config, records

TEMPLATE = Path(__file__).parent / "probe" / "worker_death.yaml"
VISIBILITY_TIMEOUT = 3  # seconds; the template's default is 30


@pytest.fixture(scope="module")
def log() -> Lines:
    return Lines()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, log: Lines) -> Iterator[StackServer]:
    environ = {"CHATFLOW_PARAMETER_OVERRIDES": f"WorkVisibilityTimeout={VISIBILITY_TIMEOUT}"}
    from_env = LocalConfig.from_env(environ, template_path=TEMPLATE)
    config = replace(
        free_config(tmp_path_factory.mktemp("worker-death"), TEMPLATE, persist=False),
        parameters=from_env.parameters,
    )
    with StackServer(config, log=log) as server:
        yield server


def _attribute(stack: StackServer, queue: str, name: str) -> str:
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[name])["Attributes"][name])


def _seen(stack: StackServer, tag: str, receive_count: str) -> list[dict[str, Any]]:
    """What the probe recorded of the messages tagged ``tag`` on their ``receive_count``-th delivery."""
    return [r for r in records(stack, "sqs") if tag in r["body"] and r["receiveCount"] == receive_count]


def _all_seen(stack: StackServer, tag: str, receive_count: str, expected: int) -> list[dict[str, Any]] | None:
    seen = _seen(stack, tag, receive_count)
    return seen if len(seen) >= expected else None


def test_a_parameter_override_from_the_environment_reaches_the_started_stack(stack: StackServer) -> None:
    # Given a stack started with CHATFLOW_PARAMETER_OVERRIDES="WorkVisibilityTimeout=3" (see the fixture)
    # When the queue that the parameter configures is read back from emulated AWS
    timeout = _attribute(stack, "WorkQueue", "VisibilityTimeout")

    # Then it has the override, not the template's default of 30
    assert timeout == str(VISIBILITY_TIMEOUT)


def test_a_worker_killed_mid_batch_is_replaced_and_the_batch_comes_back_after_the_visibility_timeout(
    stack: StackServer, log: Lines
) -> None:
    # Given a batch of three messages whose first delivery hangs in the handler
    sqs = stack.client("sqs")
    tag = uuid.uuid4().hex
    bodies = [f"hang-{tag}", f"a-{tag}", f"b-{tag}"]
    sent_at = time.time()
    sqs.send_message_batch(
        QueueUrl=stack.outputs["WorkQueueUrl"],
        Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)],
    )
    first = eventually(lambda: _all_seen(stack, tag, "1", len(bodies)), timeout=30)
    assert sorted(r["body"] for r in first) == sorted(bodies)
    (killed_pid,) = {r["pid"] for r in first}

    # When its worker process is killed mid-invocation
    os.kill(killed_pid, signal.SIGKILL)

    # Then the invocation ends in Lambda's exit error
    eventually(lambda: log.matching("Runtime exited with error: signal: killed"), timeout=15)
    # And every message of the batch comes back once the visibility timeout has passed,
    # to a new worker
    second = eventually(lambda: _all_seen(stack, tag, "2", len(bodies)), timeout=30)
    assert sorted(r["body"] for r in second) == sorted(bodies)
    assert killed_pid not in {r["pid"] for r in second}
    assert min(r["at"] for r in second) >= sent_at + VISIBILITY_TIMEOUT
    # And none is lost: handled, so deleted; nothing dead-lettered, nothing delivered a third time
    eventually(lambda: _attribute(stack, "WorkQueue", "ApproximateNumberOfMessagesNotVisible") == "0")
    assert _attribute(stack, "WorkQueue", "ApproximateNumberOfMessages") == "0"
    assert _attribute(stack, "WorkDeadLetterQueue", "ApproximateNumberOfMessages") == "0"
    assert _seen(stack, tag, "3") == []
