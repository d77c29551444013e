"""Campaign loader: rows per second and AWS calls on 100,000 rows, against a naive loader; memory.

Both loaders read the same CSV from S3 (moto), write recipients to the campaigns table
(moto) and send their SendSms commands to an SQS queue of their own (moto). The naive
loader does what a first version would: one PutItem and one SendMessage per row.
Targets: ≥ 10x fewer calls and ≥ 5x faster.

Same conditions for both: one process, one moto, and ``local.moto_patches`` installed
before either runs (the patches the local stack's emulated AWS uses; moto's results and
errors are unchanged). Without them plain moto copies the whole table on every
TransactWriteItems (ours saves its checkpoint with one per 100 rows) and counts every
message of a queue on every send: both loaders' time would grow with the square of the
rows, and 100,000 rows did not finish in 8 minutes.

Memory: the loader alone (fakes for the table and the queue, the file as a stream of
chunks) on 10,000 and on 200,000 rows: the peaks must be within 20 MB of each other,
i.e. memory does not grow with the file.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from moto import mock_aws

from chatflow.adapters.campaign_store import DynamoCampaignRepository, S3RecipientFiles
from chatflow.adapters.sms_commands import SqsSmsCommandSender
from chatflow.adapters.sms_store import DynamoOptOutRepository
from chatflow.commands import SendSmsCommand
from chatflow.domain.campaign_control import ControlState
from chatflow.domain.campaigns import (
    Campaign,
    CampaignLoader,
    CampaignRecipient,
    Counts,
    Estimate,
    Progress,
    Upload,
)
from chatflow.domain.pagination import Page
from local import moto_patches
from local.stack import InProcessStack

ROWS = 100_000
MEMORY_ROWS = (10_000, 200_000)
TARGET_CALLS = 10.0
TARGET_SPEED = 5.0
TARGET_MEMORY_MB = 20.0
TEMPLATE = "Hi {{name}}, your code is {{code}}"


@dataclass(frozen=True)
class LoaderRun:
    name: str
    rows: int
    seconds: float
    calls: Counter[str]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass(frozen=True)
class LoaderReport:
    ours: LoaderRun
    naive: LoaderRun
    memory_mb: dict[int, float]

    @property
    def call_ratio(self) -> float:
        return self.naive.total_calls / self.ours.total_calls

    @property
    def speed_ratio(self) -> float:
        return self.ours.rows_per_second / self.naive.rows_per_second

    @property
    def memory_spread_mb(self) -> float:
        return max(self.memory_mb.values()) - min(self.memory_mb.values())


def csv_lines(rows: int) -> Iterator[bytes]:
    yield b"iccid,name,code\n"
    for i in range(rows):
        yield f"89{i:018d},Person {i},C{i:06d}\n".encode()


def csv_chunks(rows: int, size: int = 256 * 1024) -> Iterator[bytes]:
    buffer = bytearray()
    for line in csv_lines(rows):
        buffer += line
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def _count_calls(calls: Counter[str]) -> Any:
    def on_call(model: Any, **kwargs: Any) -> None:
        calls[f"{model.service_model.service_name}.{model.name}"] += 1

    return on_call


def _clients(calls: Counter[str]) -> tuple[Any, Any, Any]:
    """DynamoDB, S3 and SQS clients whose every call is counted in ``calls``."""
    dynamodb, s3, sqs = (boto3.client(name, region_name="us-east-1") for name in ("dynamodb", "s3", "sqs"))
    for client in (dynamodb, s3, sqs):
        client.meta.events.register("before-call", _count_calls(calls))
    return dynamodb, s3, sqs


def _campaign(campaign_id: str) -> Campaign:
    return Campaign(
        campaign_id,
        "bench",
        TEMPLATE,
        ("name", "code"),
        None,
        "draft",
        Counts(),
        None,
        datetime.now(UTC),
        "bench",
    )


def _ours(stack: InProcessStack, rows: int) -> LoaderRun:
    calls: Counter[str] = Counter()
    dynamodb, s3, sqs = _clients(calls)
    queue_url = sqs.create_queue(QueueName="bench-ours")["QueueUrl"]
    table = stack.template.physical_ids["CampaignsTable"]
    bucket = stack.template.physical_ids["CampaignBucket"]
    repository = DynamoCampaignRepository(table, dynamodb)
    repository.create(_campaign("ours"))
    key = "campaigns/ours/bench.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=b"".join(csv_lines(rows)))
    calls.clear()
    loader = CampaignLoader(
        campaigns=repository,
        files=S3RecipientFiles(bucket, s3),
        commands=SqsSmsCommandSender(queue_url, client=sqs),
        opt_outs=DynamoOptOutRepository(stack.template.physical_ids["SmsTable"], dynamodb),
        clock=lambda: datetime.now(UTC),
    )
    started = time.perf_counter()
    loaded = loader.load("ours", "u_bench", key, budget=lambda: True)
    seconds = time.perf_counter() - started
    assert loaded.done, loaded
    assert loaded.upload is not None
    assert loaded.upload.accepted == rows, loaded.upload
    return LoaderRun("batched loader (ours)", rows, seconds, calls)


def _naive(stack: InProcessStack, rows: int) -> LoaderRun:
    """One PutItem and one SendMessage per row, reading the same object from S3."""
    import csv
    import io

    calls: Counter[str] = Counter()
    dynamodb, s3, sqs = _clients(calls)
    queue_url = sqs.create_queue(QueueName="bench-naive")["QueueUrl"]
    table = stack.template.physical_ids["CampaignsTable"]
    bucket = stack.template.physical_ids["CampaignBucket"]
    key = "campaigns/naive/bench.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=b"".join(csv_lines(rows)))
    calls.clear()
    started = time.perf_counter()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    reader = csv.DictReader(io.TextIOWrapper(body, encoding="utf-8"))
    for row in reader:
        dynamodb.put_item(
            TableName=table,
            Item={"PK": {"S": "CAMPAIGN#naive"}, "SK": {"S": f"R#{row['iccid']}"}, "status": {"S": "queued"}},
        )
        text = TEMPLATE.replace("{{name}}", row["name"]).replace("{{code}}", row["code"])
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"iccid": row["iccid"], "text": text}))
    return LoaderRun("naive loader (1 put + 1 send per row)", rows, time.perf_counter() - started, calls)


class _NullRepository:
    """Remembers nothing but the counts: the loader's own memory is what is measured."""

    def __init__(self) -> None:
        self.upload: Upload | None = None

    def get(self, campaign_id: str) -> Campaign:
        return _campaign(campaign_id)

    def claim_upload(
        self, upload: Upload, *, token: str, holding: str | None, now: datetime, lease_until: datetime
    ) -> Upload:
        return upload

    def get_upload(self, campaign_id: str, upload_id: str) -> Upload | None:
        return self.upload

    def existing(self, campaign_id: str, iccids: Sequence[str]) -> dict[str, CampaignRecipient]:
        return {}

    def put_recipients(self, recipients: Sequence[CampaignRecipient]) -> None:
        return None

    def save_progress(
        self,
        upload: Upload,
        *,
        token: str,
        added: int,
        lease_until: datetime,
        skipped: int = 0,
        estimate: Estimate | None = None,
    ) -> bool:
        self.upload = upload
        return True

    def set_control(self, campaign_id: str, state: ControlState, *, now: datetime) -> Campaign | None:
        return None

    def finish_upload(self, upload: Upload, *, token: str, added: int) -> bool:
        self.upload = upload
        return True

    def create(self, campaign: Campaign) -> None: ...

    def list_campaigns(self, *, limit: int, position: dict[str, Any] | None) -> Page[Campaign]:
        return Page([])

    def create_upload(self, upload: Upload) -> None: ...

    def list_recipients(self, campaign_id: str, **kwargs: Any) -> Page[CampaignRecipient]:
        return Page([])

    def apply(self, progress: Progress) -> bool:
        return False


class _StreamedFile:
    def __init__(self, rows: int) -> None:
        self.rows = rows

    def chunks(self, key: str, *, start: int = 0) -> Iterable[bytes]:
        assert start == 0
        return csv_chunks(self.rows)

    def upload_url(self, key: str, *, expires_in: int) -> str:
        return ""


class _NullQueue:
    def send(self, command: SendSmsCommand) -> None:
        return None

    def send_all(self, commands: Sequence[SendSmsCommand]) -> None:
        return None


class _NoOptOuts:
    def is_opted_out(self, destination: str) -> bool:
        return False

    def opted_out(self, destinations: Sequence[str]) -> set[str]:
        return set()

    def opt_out(self, destination: str, *, at: datetime) -> None: ...

    def opt_in(self, destination: str) -> None: ...


def _peak_mb(rows: int) -> float:
    repository = _NullRepository()
    loader = CampaignLoader(
        campaigns=repository,
        files=_StreamedFile(rows),
        commands=_NullQueue(),
        opt_outs=_NoOptOuts(),
        clock=lambda: datetime.now(UTC),
    )
    tracemalloc.start()
    try:
        loaded = loader.load("memory", "u_memory", "campaigns/memory/x.csv", budget=lambda: True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.upload is not None
    assert loaded.upload.accepted == rows
    return peak / 1024 / 1024


def measure(rows: int = ROWS) -> LoaderReport:
    moto_patches.install()  # for both loaders: see the module's docstring
    with mock_aws():
        stack = InProcessStack.create(parameters={"AuthMode": "phone"})
        ours = _ours(stack, rows)
        naive = _naive(stack, rows)
    memory = {n: _peak_mb(n) for n in MEMORY_ROWS}
    return LoaderReport(ours, naive, memory)


if __name__ == "__main__":
    report = measure()
    for run in (report.ours, report.naive):
        print(f"{run.name}: {run.rows_per_second:.0f} rows/s, {run.total_calls} calls {dict(run.calls)}")
    print(f"calls: {report.call_ratio:.1f}x fewer; speed: {report.speed_ratio:.1f}x faster")
    print(f"peak memory: {report.memory_mb}")
