"""The application from ``template.yaml``, running in this process against moto.

Used by the tests and the benchmarks; the same pieces serve ``make run``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import boto3

from chatflow.adapters.aws import reset_clients
from local.apigw import HttpApi
from local.runtime import LocalFunction
from local.streams import StreamReader
from local.template import Template

REGION = "us-east-1"


@dataclass
class InProcessStack:
    template: Template
    functions: dict[str, LocalFunction]
    http: HttpApi
    streams: dict[str, StreamReader] = field(default_factory=dict)

    @classmethod
    def create(cls, parameters: dict[str, str] | None = None) -> InProcessStack:
        """Create every resource of the template in the current AWS (moto) endpoint."""
        reset_clients()
        template = Template.load(parameters=parameters)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        streams: dict[str, StreamReader] = {}
        for logical_id, definition in template.table_definitions().items():
            table = dynamodb.create_table(TableName=logical_id, **definition)["TableDescription"]
            template.physical_ids[logical_id] = logical_id
            template.attributes[(logical_id, "Arn")] = table["TableArn"]
            ttl = template.time_to_live(logical_id)
            if ttl:
                dynamodb.update_time_to_live(
                    TableName=logical_id, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
                )
            if table.get("LatestStreamArn"):
                template.attributes[(logical_id, "StreamArn")] = table["LatestStreamArn"]
                streams[logical_id] = StreamReader(table["LatestStreamArn"], REGION)
        secrets_client = boto3.client("secretsmanager", region_name=REGION)
        for logical_id in template.of_type("AWS::SecretsManager::Secret"):
            arn = secrets_client.create_secret(Name=logical_id, SecretString=secrets.token_urlsafe(36))["ARN"]
            template.physical_ids[logical_id] = arn
        base_env = {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
        functions = {lid: LocalFunction(spec, base_env) for lid, spec in template.functions().items()}
        return cls(template=template, functions=functions, http=HttpApi(template, functions), streams=streams)

    def stream_consumers(self, table: str) -> list[LocalFunction]:
        """Functions with a DynamoDB event source on ``table``'s stream."""
        consumers = []
        for logical_id, resource in self.template.of_type("AWS::Serverless::Function").items():
            for event in (resource["Properties"].get("Events") or {}).values():
                if event.get("Type") == "DynamoDB":
                    stream = event["Properties"]["Stream"]
                    if stream.get("Fn::GetAtt", [None])[0] == table:
                        consumers.append(self.functions[logical_id])
        return consumers

    def drain_streams(self) -> int:
        """Deliver every pending stream record to its consumers; the number of records."""
        delivered = 0
        for table, reader in self.streams.items():
            records = reader.read()
            if not records:
                continue
            for consumer in self.stream_consumers(table):
                response: dict[str, Any] = consumer.invoke({"Records": records}) or {}
                failures = response.get("batchItemFailures") or []
                if failures:
                    raise RuntimeError(f"{consumer.spec.logical_id} failed records: {failures}")
            delivered += len(records)
        return delivered
