"""The local stack started in this process on free ports, and clients that drive it from outside."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from local.config import LocalConfig
from local.stack_server import StackServer

PROBE_TEMPLATE = Path(__file__).parent / "probe" / "template.yaml"
T = TypeVar("T")


def free_config(state_dir: Path, template: Path | None = None, **changes: Any) -> LocalConfig:
    """Every port free (0), state under ``state_dir``, a fast and faultless fake provider."""
    config = LocalConfig(
        http_port=0,
        ws_port=0,
        provider_port=0,
        aws_port=0,
        auth_mode="phone",
        state_dir=state_dir,
        static_dir=None,
        provider_environ={"CHATFLOW_FAKE_FAILURE_RATE": "0", "CHATFLOW_FAKE_DELAY_MS": "0-5"},
    )
    if template is not None:
        config = replace(config, template_path=template)
    return replace(config, **changes)


class Lines:
    """Collects what the stack logs, so tests can assert on it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def matching(self, text: str) -> list[str]:
        return [line for line in list(self.lines) if text in line]


def eventually(probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
    """The first truthy value ``probe`` returns within ``timeout`` seconds; fails the test otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"nothing after {timeout} s (last value: {value!r})")
        time.sleep(interval)


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One HTTP request from outside; (status, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


def records(stack: StackServer, kind: str) -> list[dict[str, Any]]:
    """What the probe function recorded for ``kind`` (sqs, stream, s3, events, connect...), oldest first."""
    response = stack.client("dynamodb").query(
        TableName="RecordsTable",
        KeyConditionExpression="PK = :k",
        ExpressionAttributeValues={":k": {"S": kind}},
    )
    return [json.loads(item["data"]["S"]) for item in response["Items"]]


@pytest.fixture(scope="module")
def probe_log() -> Lines:
    return Lines()


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, probe_log: Lines) -> Iterator[StackServer]:
    """The probe application (tests/local/probe) served by the local stack."""
    config = free_config(tmp_path_factory.mktemp("probe-state"), PROBE_TEMPLATE, persist=False)
    server = StackServer(config, log=probe_log)
    server.start()
    try:
        yield server
    finally:
        server.stop()
