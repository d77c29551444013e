"""Event sources with Lambda's semantics: SQS queues, DynamoDB streams and asynchronous invocations.

- **SQS**: batches of up to ``BatchSize``; with ``ReportBatchItemFailures`` only the
  reported messages stay, the others are deleted; a failed invocation deletes nothing.
  What stays becomes visible again after the queue's visibility timeout, and moto moves
  it to the dead-letter queue once ``maxReceiveCount`` is reached.
- **DynamoDB streams**: records in order per shard; a failed batch is retried (from the
  first reported failure, or split in halves with ``BisectBatchOnFunctionError``) until
  ``MaximumRetryAttempts``, then described on the ``OnFailure`` destination and skipped.
- **Asynchronous invocations** (S3 notifications, EventBridge rules): delivered through
  a queue of the local stack; three tries one second apart, then the function's
  dead-letter queue if it has one.

Each source has ``poll_once()`` (deliver what is pending; the in-process test stack calls it)
and ``run(stop)``, which polls whenever emulated AWS reports a change.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from local import patterns
from local.provision import ASYNC_ATTEMPTS, AsyncDelivery
from local.specs import ACCOUNT_ID, REGION, FunctionError, Invoker
from local.template import EventSourceMapping

ClientFactory = Callable[[str], Any]
Log = Callable[[str], None]
IDLE_POLL_SECONDS = 0.25
_MAX_BACKOFF_SECONDS = 5.0


def _iso(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(epoch if epoch is not None else time.time(), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class StopDelivery(Exception):
    """The stack is stopping: the batch in hand is left for the next start."""


class Source(ABC):
    name = "source"
    # What wakes this source (see local.aws_server.ChangeSignal).
    topics: tuple[str, ...] = ()

    # Polls without a wake-up this often: what becomes due with no write (a delayed or
    # invisible SQS message) is picked up within this time.
    idle_poll_seconds = IDLE_POLL_SECONDS

    @abstractmethod
    def poll_once(self) -> int:
        """Deliver what is pending; how many messages or records were handled."""

    def close(self) -> None:
        return None

    def run(
        self,
        stop: threading.Event,
        wait: Callable[[tuple[str, ...], int, float], int],
        generation: Callable[[tuple[str, ...]], int],
    ) -> None:
        failures = 0
        while not stop.is_set():
            seen = generation(self.topics)
            try:
                worked = self.poll_once()
                failures = 0
            except Exception as exc:  # a broken source must not stop the stack
                if stop.is_set():
                    return
                failures += 1
                self._log_error(exc)
                stop.wait(min(_MAX_BACKOFF_SECONDS, 0.1 * 2**failures))
                continue
            if not worked:
                wait(self.topics, seen, self.idle_poll_seconds)

    def _log_error(self, exc: Exception) -> None:
        print(f"{self.name}: polling failed: {type(exc).__name__}: {exc}", flush=True)


def _sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = dict(message.get("Attributes") or {})
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def _aws_key(record: dict[str, Any]) -> dict[str, Any]:
    """The object key encoded as S3 sends it ("+" for a space, "/" kept); moto also encodes "/"."""
    s3 = record.get("s3") or {}
    key = (s3.get("object") or {}).get("key")
    if not isinstance(key, str):
        return record
    encoded = quote_plus(unquote_plus(key), safe="/")
    return {**record, "s3": {**s3, "object": {**s3["object"], "key": encoded}}}


def _filter_view(record: dict[str, Any]) -> dict[str, Any]:
    """What Lambda filters see: an SQS body is matched as JSON when it is JSON."""
    if record.get("eventSource") != "aws:sqs":
        return record
    try:
        body = json.loads(record["body"])
    except ValueError:
        return record
    return {**record, "body": body}


def _passes(filters: tuple[dict[str, Any], ...], record: dict[str, Any]) -> bool:
    return not filters or any(patterns.matches(f, _filter_view(record)) for f in filters)


class SqsSource(Source):
    def __init__(
        self,
        mapping: EventSourceMapping,
        queue_url: str,
        client: ClientFactory,
        invoke: Invoker,
        *,
        concurrency: int = 5,
    ) -> None:
        self.mapping = mapping
        self.queue_url = queue_url
        self.name = f"sqs {queue_url.rsplit('/', 1)[-1]}"
        self.topics = (f"sqs:{queue_url.rsplit('/', 1)[-1]}",)
        self._sqs = client("sqs")
        self._invoke = invoke
        self._slots = threading.BoundedSemaphore(mapping.maximum_concurrency or concurrency)
        self._pool = ThreadPoolExecutor(
            mapping.maximum_concurrency or concurrency, thread_name_prefix=self.name
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def poll_once(self) -> int:
        """Receive one batch and hand it to the function (on a pool thread); messages received."""
        if not self._slots.acquire(timeout=IDLE_POLL_SECONDS):
            return 0
        try:
            messages = self._receive()
        except BaseException:
            self._slots.release()
            raise
        if not messages:
            self._slots.release()
            return 0
        self._pool.submit(self._deliver_and_release, messages)
        return len(messages)

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.mapping.batching_window_seconds
        while len(messages) < self.mapping.batch_size:
            response = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.mapping.batch_size - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            received = response.get("Messages") or []
            messages.extend(received)
            if not received and time.monotonic() >= deadline:
                break
            if not received:
                time.sleep(0.02)
        return messages

    def _deliver_and_release(self, messages: list[dict[str, Any]]) -> None:
        try:
            self._deliver(messages)
        except Exception as exc:
            self._log_error(exc)
        finally:
            self._slots.release()

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        records = [_sqs_record(m, self.mapping.source_arn) for m in messages]
        wanted = [r for r in records if _passes(self.mapping.filters, r)]
        done = {r["messageId"] for r in records if r not in wanted}
        if wanted:
            try:
                response = self._invoke(self.mapping.function, {"Records": wanted}, self.name)
            except FunctionError:
                # Nothing is deleted: the batch comes back after the visibility timeout.
                self._delete([r for r in records if r["messageId"] in done])
                return
            failed = set()
            if self.mapping.report_batch_item_failures and isinstance(response, dict):
                failed = {str(f.get("itemIdentifier")) for f in response.get("batchItemFailures") or []}
            done |= {r["messageId"] for r in wanted if r["messageId"] not in failed}
        self._delete([r for r in records if r["messageId"] in done])

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
            self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)


_SHARDS_TTL_SECONDS = 5.0
# How often a poll that waits out a batching window looks for more records.
_GATHER_POLL_SECONDS = 0.05


class StreamSource(Source):
    """One DynamoDB stream feeding one function, in order, with retries."""

    # A record only appears with a write, and every write wakes the poller: the idle poll
    # is a safety net, and a frequent one would take the emulator from the hot path.
    idle_poll_seconds = 2.0

    def __init__(
        self,
        mapping: EventSourceMapping,
        client: ClientFactory,
        invoke: Invoker,
        checkpoints: dict[str, str],
        *,
        retry_backoff_seconds: float = 0.1,
        batching_window: bool = True,
    ) -> None:
        self.mapping = mapping
        self.name = f"dynamodb {mapping.source_arn.split('/')[1]}"
        self.topics = (f"dynamodb:{mapping.source_arn.split('/')[1]}",)
        self._streams = client("dynamodbstreams")
        self._sqs = client("sqs")
        self._invoke = invoke
        # shard id -> the last sequence number handled; saved with the stack's state.
        self.checkpoints = checkpoints
        self._iterators: dict[str, str] = {}
        self._backoff = retry_backoff_seconds
        # Set when the stack stops, so a batch that keeps failing does not hold it up.
        self.stopping = threading.Event()
        self._shards: list[str] = []
        self._shards_read_at = -_SHARDS_TTL_SECONDS
        # Whether a poll waits out the mapping's batching window (the running stack) or
        # hands over what is there at once (a test draining the streams).
        self.batching_window = batching_window

    def close(self) -> None:
        self.stopping.set()

    def poll_once(self) -> int:
        handled = 0
        for shard_id in self._shard_ids():
            handled += self._poll_shard(shard_id)
        return handled

    def _shard_ids(self) -> list[str]:
        """The stream's shards, described again at most every few seconds once there are some
        (moto makes a stream's shard on its first record): every write wakes the poller, and
        describing the stream each time doubled the calls on the hot path."""
        if not self._shards or time.monotonic() - self._shards_read_at >= _SHARDS_TTL_SECONDS:
            arn = self.mapping.source_arn
            description = self._streams.describe_stream(StreamArn=arn)["StreamDescription"]
            self._shards = [shard["ShardId"] for shard in description.get("Shards") or []]
            self._shards_read_at = time.monotonic()
        return self._shards

    def _iterator(self, shard_id: str) -> str:
        if shard_id in self._iterators:
            return self._iterators[shard_id]
        arguments: dict[str, Any] = {"StreamArn": self.mapping.source_arn, "ShardId": shard_id}
        if shard_id in self.checkpoints:
            arguments |= {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "SequenceNumber": self.checkpoints[shard_id],
            }
        else:
            arguments["ShardIteratorType"] = self.mapping.starting_position
        return str(self._streams.get_shard_iterator(**arguments)["ShardIterator"])

    def _poll_shard(self, shard_id: str) -> int:
        response = self._streams.get_records(
            ShardIterator=self._iterator(shard_id), Limit=self.mapping.batch_size
        )
        if response.get("NextShardIterator"):
            self._iterators[shard_id] = response["NextShardIterator"]
        records = [self._record(r) for r in response.get("Records") or []]
        if not records:
            return 0
        records += self._gathered(shard_id, len(records))
        batch = [r for r in records if _passes(self.mapping.filters, r)]
        try:
            if batch:
                self._deliver(shard_id, batch)
        except BaseException:
            # Read these records again on the next poll: nothing was checkpointed.
            self._iterators.pop(shard_id, None)
            raise
        # Past this batch: its failures were retried, then described on OnFailure.
        self.checkpoints[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
        return len(records)

    def _gathered(self, shard_id: str, have: int) -> list[dict[str, Any]]:
        """The records written within the mapping's batching window after the first ones
        (Lambda waits up to ``MaximumBatchingWindowInSeconds`` for a batch to fill), up to
        the batch size; none when the window is 0 or the batch is already full."""
        window = self.mapping.batching_window_seconds if self.batching_window else 0.0
        gathered: list[dict[str, Any]] = []
        deadline = time.monotonic() + window
        while have + len(gathered) < self.mapping.batch_size and not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            iterator = self._iterators.get(shard_id)
            if remaining <= 0 or iterator is None:  # no iterator: the shard is closed
                break
            self.stopping.wait(min(remaining, _GATHER_POLL_SECONDS))
            response = self._streams.get_records(
                ShardIterator=iterator, Limit=self.mapping.batch_size - have - len(gathered)
            )
            if response.get("NextShardIterator"):
                self._iterators[shard_id] = response["NextShardIterator"]
            gathered += [self._record(r) for r in response.get("Records") or []]
        return gathered

    def _record(self, record: dict[str, Any]) -> dict[str, Any]:
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": record.get("eventID"),
            "eventName": record.get("eventName"),
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": record.get("awsRegion", REGION),
            "dynamodb": dynamodb,
            "eventSourceARN": self.mapping.source_arn,
        }

    def _deliver(self, shard_id: str, batch: list[dict[str, Any]]) -> None:
        """Deliver ``batch`` in order; retry what failed; give up per the mapping's settings."""
        attempts = 0
        pending = batch
        while pending:
            attempts += 1
            try:
                response = self._invoke(self.mapping.function, {"Records": pending}, self.name)
            except FunctionError:
                if self.mapping.bisect_on_error and len(pending) > 1:
                    half = len(pending) // 2
                    self._deliver(shard_id, pending[:half])
                    self._deliver(shard_id, pending[half:])
                    return
                first_failed: int | None = 0
            else:
                first_failed = self._first_failure(pending, response)
                if first_failed is None:
                    return
            pending = pending[first_failed:]
            if self.stopping.is_set():
                raise StopDelivery(self.name)
            retries = self.mapping.maximum_retry_attempts
            if retries >= 0 and attempts > retries:
                self._give_up(shard_id, pending, attempts)
                return
            self.stopping.wait(min(_MAX_BACKOFF_SECONDS, self._backoff * 2 ** (attempts - 1)))

    def _first_failure(self, batch: list[dict[str, Any]], response: Any) -> int | None:
        if not self.mapping.report_batch_item_failures or not isinstance(response, dict):
            return None
        failures = response.get("batchItemFailures") or []
        if not failures:
            return None
        sequence = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
        positions = [sequence.get(str(f.get("itemIdentifier")), 0) for f in failures]
        return min(positions)

    def _give_up(self, shard_id: str, batch: list[dict[str, Any]], attempts: int) -> None:
        print(
            f"{self.name}: {len(batch)} record(s) failed {attempts} times; "
            f"sent to {self.mapping.on_failure_arn or 'nowhere (no OnFailure destination)'}",
            flush=True,
        )
        destination = self.mapping.on_failure_arn
        if destination is None or ":sqs:" not in destination:
            return
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        document = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.mapping.function}",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": _iso(),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime")),
                "batchSize": len(batch),
                "streamArn": self.mapping.source_arn,
            },
        }
        queue_url = self._sqs.get_queue_url(QueueName=destination.rsplit(":", 1)[-1])["QueueUrl"]
        self._sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(document))


class AsyncSource(Source):
    """Lambda's asynchronous invocation, for S3 notifications and EventBridge rules."""

    def __init__(
        self,
        delivery: AsyncDelivery,
        client: ClientFactory,
        invoke: Invoker,
        dead_letter_arn: str | None = None,
        *,
        concurrency: int = 4,
    ) -> None:
        self.delivery = delivery
        self.name = delivery.source
        # New work arrives by S3 or EventBridge; retries by the delivery queue's own timeout.
        self.topics = (delivery.source.split(" ")[0], f"sqs:{delivery.queue_url.rsplit('/', 1)[-1]}")
        self._sqs = client("sqs")
        self._invoke = invoke
        self._dead_letter_arn = dead_letter_arn
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=self.name)
        self._slots = threading.BoundedSemaphore(concurrency)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def poll_once(self) -> int:
        response = self._sqs.receive_message(
            QueueUrl=self.delivery.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        messages = response.get("Messages") or []
        for message in messages:
            self._slots.acquire()
            self._pool.submit(self._handle_and_release, message)
        return len(messages)

    def _handle_and_release(self, message: dict[str, Any]) -> None:
        try:
            self._handle(message)
        except Exception as exc:
            self._log_error(exc)
        finally:
            self._slots.release()

    def _handle(self, message: dict[str, Any]) -> None:
        events = self._events(json.loads(message["Body"]))
        try:
            for event in events:
                self._invoke(self.delivery.function, event, self.name)
        except FunctionError:
            tries = int((message.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
            if tries < ASYNC_ATTEMPTS:
                return  # visible again after the delivery queue's visibility timeout
            self._dead_letter(message["Body"], tries)
        self._sqs.delete_message(QueueUrl=self.delivery.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _events(self, body: Any) -> list[dict[str, Any]]:
        if self.name.startswith("s3 "):
            # One invocation per record, as S3 does; moto's test event has no records.
            return [{"Records": [_aws_key(record)]} for record in (body.get("Records") or [])]
        # moto's events lack the account, which AWS always sets.
        return [{"account": ACCOUNT_ID, **body}]

    def _dead_letter(self, body: str, tries: int) -> None:
        where = self._dead_letter_arn or "nowhere (the function has no DeadLetterQueue)"
        print(
            f"{self.name}: {self.delivery.function} failed {tries} times; event sent to {where}", flush=True
        )
        if self._dead_letter_arn and ":sqs:" in self._dead_letter_arn:
            queue_url = self._sqs.get_queue_url(QueueName=self._dead_letter_arn.rsplit(":", 1)[-1])[
                "QueueUrl"
            ]
            self._sqs.send_message(QueueUrl=queue_url, MessageBody=body)
