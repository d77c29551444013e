"""The application from ``template.yaml``, running inside this process against moto's mock.

Used by the integration tests and the benchmarks: resources are created by the same
provisioning code as ``make run``, functions run in-process (``local.runtime``) and the
DynamoDB streams are delivered when the test asks (``drain_streams``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from chatflow.adapters.aws import reset_clients
from local import moto_patches
from local.apigw import HttpApi
from local.provision import Provisioned, provision
from local.runtime import LocalFunction
from local.sources import StreamSource, _sqs_record
from local.specs import REGION, Invoker
from local.template import Template

# moto with botocore 1.44+: stream calls fail unless account-id endpoints are off.
_CONFIG = Config(account_id_endpoint_mode="disabled")


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, config=_CONFIG)  # type: ignore[call-overload]


@dataclass
class InProcessStack:
    template: Template
    functions: dict[str, LocalFunction]
    provisioned: Provisioned
    http: HttpApi = field(init=False)
    streams: list[StreamSource] = field(default_factory=list)

    def __post_init__(self) -> None:
        api_id = next(iter(self.template.http_apis()), "httpapi").lower()
        self.http = HttpApi(self.template.http_routes(), self.invoke, api_id=api_id)

    @classmethod
    def create(cls, parameters: dict[str, str] | None = None) -> InProcessStack:
        """Create every resource of the template in the current AWS (moto) endpoint."""
        reset_clients()
        # The same moto as the local stack's: among other things, a cancelled transaction
        # there streams nothing (moto's own streams the writes it then rolls back).
        moto_patches.install()
        template = Template.load(parameters=parameters)
        endpoints = {
            api: f"https://{api.lower()}.execute-api.{REGION}.amazonaws.com"
            for api in template.of_type("AWS::ApiGatewayV2::Api")
        }
        provisioned = provision(template, _client, endpoints)
        base_env = {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
        functions = {lid: LocalFunction(spec, base_env) for lid, spec in template.functions().items()}
        stack = cls(template=template, functions=functions, provisioned=provisioned)
        stack.streams = [
            StreamSource(mapping, _client, stack._strict_invoke, {}, batching_window=False)
            for mapping in template.event_source_mappings()
            if mapping.kind == "dynamodb"
        ]
        return stack

    def stream_reader(self, function: str, invoke: Invoker) -> StreamSource:
        """A new reader of ``function``'s DynamoDB stream from its starting position, with
        checkpoints of its own, handing each batch to ``invoke`` at once: for tests that
        replay or capture what the trigger delivers."""
        [mapping] = [source.mapping for source in self.streams if source.mapping.function == function]
        return StreamSource(mapping, _client, invoke, {}, batching_window=False)

    def invoke(self, function: str, event: dict[str, Any], trigger: str = "test") -> Any:
        return self.functions[function].invoke(event)

    def _strict_invoke(self, function: str, event: dict[str, Any], trigger: str) -> Any:
        """Stream delivery for tests: a failed record is a test failure, not a retry."""
        response = self.invoke(function, event, trigger)
        failures = (response or {}).get("batchItemFailures") if isinstance(response, dict) else None
        if failures:
            raise RuntimeError(f"{function} failed records: {failures}")
        return response

    def drain_queue(self, function: str) -> int:
        """Hand every message now visible on ``function``'s SQS triggers to it, batch by batch
        as its trigger would (messages still delayed stay); failed ones are left for their
        visibility timeout. The number of messages handed over."""
        sqs = _client("sqs")
        handed = 0
        for mapping in self.template.event_source_mappings():
            if mapping.function != function or mapping.kind != "sqs":
                continue
            url = self.provisioned.queue_urls[mapping.source_arn]
            failed_before: set[str] = set()
            while True:
                messages = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=min(10, mapping.batch_size), AttributeNames=["All"]
                ).get("Messages", [])
                if not messages or {m["MessageId"] for m in messages} <= failed_before:
                    break  # (a message that failed in this drain comes back in a later one)
                handed += len(messages)
                records = [_sqs_record(m, mapping.source_arn) for m in messages]
                try:
                    response = self.invoke(function, {"Records": records})
                except Exception:  # the whole batch failed (Powertools raises): it comes back
                    response = {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
                failed = {str(f["itemIdentifier"]) for f in (response or {}).get("batchItemFailures") or []}
                failed_before |= failed
                for message in messages:
                    if message["MessageId"] not in failed:
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return handed

    def drain_streams(self) -> int:
        """Deliver every pending stream record to its consumers; the number of records."""
        delivered = 0
        for source in self.streams:
            while True:
                count = source.poll_once()
                if not count:
                    break
                delivered += count
        return delivered
