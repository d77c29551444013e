"""The local stack's own cost: what one request costs next to one emulated AWS call.

The local stack runs as ``make run`` starts it (``python -m local.serve``, its own process)
on free ports, in phone mode. Measured in the same run, one request at a time from this
process:

- one emulated ``GetItem`` of a small item (boto3 → the moto server), the unit;
- ``POST /v1/chats/{id}/messages`` to a direct chat (authorizer + route function, each in
  its worker process, and the DynamoDB calls they make);
- ``GET /v1/chats/{id}/messages?limit=20`` on a chat with 20+ messages;
- how long ``make run`` takes from process start until ``GET /v1/health`` answers 200.

Targets (issue 11): a message POST costs ≤ 8 GetItems, a 20-message read ≤ 5, and the
stack is healthy ≤ 5 s after start. Ratios in one run, and the unit is measured in blocks
that alternate with the requests' blocks (``alternate``): this machine's speed drifts by
tens of percent from one second to the next, and a unit measured once, before the
requests, made a ratio of two moments.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import urllib3
from botocore.config import Config

from chatflow.adapters.chat_store import chat_key

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 200
# The POSTs go in rounds, each on a quiet stack: 25 GetItems, then a quarter of the POSTs one
# after the other (each while the stream work of the ones before runs, as a sender's would).
POST_ROUNDS = 4
POST_ROUND_UNITS = 25
# The reads leave no work behind: blocks of 10 GetItems and 10 reads, alternating.
READ_BLOCK = 10
TARGET_POST_RATIO = 8.0
TARGET_READ_RATIO = 5.0
TARGET_HEALTHY_SECONDS = 5.0


@dataclass(frozen=True)
class Series:
    name: str
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class StackReport:
    healthy_seconds: float
    # The unit, measured in blocks alternating with the POSTs' blocks, then with the reads'.
    post_unit: Series
    post: Series
    read_unit: Series
    read: Series
    # CPU milliseconds per message POST, by process: "stack" (moto, the APIs, the pollers,
    # the function runner) and each function's workers (their stream work included).
    post_cpu_ms: dict[str, float]

    @property
    def post_ratio(self) -> float:
        return self.post.p50 / self.post_unit.p50

    @property
    def read_ratio(self) -> float:
        return self.read.p50 / self.read_unit.p50


# Kept-alive connections, as browsers, the web client and boto3 (the unit's client) keep
# theirs: a new TCP connection per request (urllib's way) made each request pay a connect and
# the edge's connection set-up that the unit does not.
_HTTP = urllib3.PoolManager(maxsize=32, timeout=urllib3.Timeout(total=15), retries=False)


def call_api(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
    """One JSON request to the local stack's HTTP API, as a client makes it; the JSON answer
    (an error status raises ``RuntimeError`` with the answer)."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    response = _HTTP.request(method, url, body=data, headers=headers)
    if response.status >= 400:
        raise RuntimeError(f"{method} {url}: {response.status} {response.data[:500]!r}")
    return json.loads(response.data)


_FUNCTION_NAME = re.compile(r'"functionName": "(\w+)"')


def cpu_seconds(stack_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the stack's process ("stack") and by its function
    workers, summed per function (Linux /proc; workers that have exited are not counted)."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        pid, parent = int(entry.name), int(fields[1])
        if pid == stack_pid:
            name = "stack"
        elif parent == stack_pid and (found := _FUNCTION_NAME.search(command)):
            name = found.group(1)
        else:
            continue
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


def settle(stack_pid: int, *, window: float = 0.5, quiet_share: float = 0.1, timeout: float = 30.0) -> float:
    """Wait until the stack's processes together use less than ``quiet_share`` of one core
    over ``window`` seconds (what earlier requests set off has run: a first SMS forward
    goes through five functions, each worker's first invocation included); seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(cpu_seconds(stack_pid).values())
        time.sleep(window)
        if sum(cpu_seconds(stack_pid).values()) - before < quiet_share * window:
            break
    return time.monotonic() - started


def cpu_per_message(before: dict[str, float], after: dict[str, float], messages: int) -> dict[str, float]:
    """CPU milliseconds per message by process between two ``cpu_seconds`` readings, most first."""
    used = {name: seconds - before.get(name, 0.0) for name, seconds in after.items()}
    return {name: ms * 1000 / messages for name, ms in sorted(used.items(), key=lambda kv: -kv[1]) if ms > 0}


@contextmanager
def local_stack(
    state: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[dict[str, str], float, int]]:
    """``python -m local.serve --fresh`` on free ports, in phone mode: its outputs, the
    seconds from process start until ``GET /v1/health`` answered 200, and its pid."""
    environ = (
        os.environ
        | {
            "CHATFLOW_HTTP_PORT": "0",
            "CHATFLOW_WS_PORT": "0",
            "CHATFLOW_PROVIDER_PORT": "0",
            "CHATFLOW_AWS_PORT": "0",
            "CHATFLOW_AUTH_MODE": "phone",
            # The benchmarks post hundreds of messages from a few users, up to ~80 a second: they
            # measure the stack, not the per-user send limit (whose calls bench/calls.py counts).
            # SMS forwards without their wait: the forward path's work (ForwardsFunction, the
            # gateway) runs within the measured seconds, as it did before forwards waited;
            # with the default 60 s it would land after them (or in the middle of a series).
            "CHATFLOW_PARAMETER_OVERRIDES": (
                "UserSendRatePerSecond=10000 UserSendBurst=100000 ForwardAfterSeconds=0"
            ),
            "CHATFLOW_STATE_DIR": str(state),
            "CHATFLOW_FAKE_FAILURE_RATE": "0",
            "CHATFLOW_FAKE_DELAY_MS": "0-2",
            "PYTHONPATH": f"{ROOT / 'layers' / 'shared' / 'python'}{os.pathsep}{ROOT}",
        }
        | (extra_env or {})
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "local.serve", "--fresh"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        outputs_file = state / "outputs.json"
        deadline = time.monotonic() + 120
        healthy: float | None = None
        while healthy is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the local stack did not start (try: make run)")
            if outputs_file.exists():
                url = json.loads(outputs_file.read_text())["HttpApiUrl"]
                try:
                    with urllib.request.urlopen(f"{url}/v1/health", timeout=2) as response:  # noqa: S310
                        if response.status == 200:
                            healthy = time.perf_counter() - started
                except OSError:
                    pass
            if healthy is None:
                time.sleep(0.02)
        outputs = {str(k): str(v) for k, v in json.loads(outputs_file.read_text()).items()}
        yield outputs, healthy, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def _samples(action: Callable[[], object], count: int, warm: int = 2) -> list[float]:
    """Milliseconds of ``count`` calls of ``action``, after ``warm`` calls not counted (the
    first after other work or a pause finds colder caches)."""
    for _ in range(warm):
        action()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def alternate(
    unit: Callable[[], object], request: Callable[[], object], blocks: int, size: int
) -> tuple[list[float], list[float]]:
    """Milliseconds of ``unit`` and of ``request`` calls, in ``blocks`` blocks of ``size`` of
    each in turn (each block after two calls not counted), so that both are measured
    through the same moments of the machine; after 10 of each to warm up (workers,
    connections)."""
    for _ in range(10):
        unit()
        request()
    units: list[float] = []
    requests: list[float] = []
    for _ in range(blocks):
        units += _samples(unit, size)
        requests += _samples(request, size)
    return units, requests


def measure(repeats: int = REPEATS) -> StackReport:
    with tempfile.TemporaryDirectory() as state, local_stack(Path(state)) as (outputs, healthy, pid):
        url = outputs["HttpApiUrl"]
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=outputs["AwsEndpointUrl"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - emulated AWS
            config=Config(account_id_endpoint_mode="disabled"),
        )
        alice, bob = "+14155550101", "+14155550102"
        token = call_api("POST", f"{url}/v1/sessions", {"phoneNumber": alice})["token"]
        call_api("POST", f"{url}/v1/sessions", {"phoneNumber": bob})
        chat = call_api("POST", f"{url}/v1/chats", {"type": "direct", "members": [bob]}, token)["chatId"]
        key = chat_key(chat)

        def get_item() -> None:
            dynamodb.get_item(TableName="ChatsTable", Key=key)

        def post() -> None:
            body = {"text": "hello", "clientMessageId": uuid.uuid4().hex}
            call_api("POST", f"{url}/v1/chats/{chat}/messages", body, token)

        def read() -> None:
            call_api("GET", f"{url}/v1/chats/{chat}/messages?limit=20", token=token)

        for _ in range(10):  # the functions that a first message starts (the SMS forward's)
            post()
        post_units, posts = [], []
        used: dict[str, float] = {}  # CPU seconds by process over the rounds' POSTs
        settle(pid)
        for _ in range(POST_ROUNDS):  # each round starts on a quiet stack
            post_units += _samples(get_item, POST_ROUND_UNITS)
            before = cpu_seconds(pid)
            posts += _samples(post, repeats // POST_ROUNDS)
            settle(pid)  # the stream work of the round's messages
            for name, seconds in cpu_seconds(pid).items():
                used[name] = used.get(name, 0.0) + seconds - before.get(name, 0.0)
        cpu = cpu_per_message({}, used, len(posts))
        read_units, reads = alternate(get_item, read, repeats // READ_BLOCK, READ_BLOCK)
        return StackReport(
            healthy,
            Series("GetItem (alongside the POSTs)", post_units),
            Series("POST message", posts),
            Series("GetItem (alongside the reads)", read_units),
            Series("GET 20 messages", reads),
            cpu,
        )


if __name__ == "__main__":
    report = measure()
    for series in (report.post_unit, report.post, report.read_unit, report.read):
        print(f"{series.name}: p50 {series.p50:.1f} ms, p99 {series.p99:.1f} ms")
    print(f"POST / GetItem = {report.post_ratio:.1f} (target ≤ {TARGET_POST_RATIO:.0f})")
    print(f"read 20 / GetItem = {report.read_ratio:.1f} (target ≤ {TARGET_READ_RATIO:.0f})")
    print(f"healthy after {report.healthy_seconds:.2f} s (target ≤ {TARGET_HEALTHY_SECONDS:.0f} s)")
    print("CPU per message POST: " + ", ".join(f"{k} {v:.1f} ms" for k, v in report.post_cpu_ms.items()))
