"""Reads a DynamoDB stream and shapes its records the way Lambda delivers them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config

# moto with botocore 1.44+: stream calls fail unless account-id endpoints are off.
_CONFIG = Config(account_id_endpoint_mode="disabled")


class StreamReader:
    def __init__(self, stream_arn: str, region: str = "us-east-1") -> None:
        self.stream_arn = stream_arn
        self._client = boto3.client("dynamodbstreams", region_name=region, config=_CONFIG)
        self._iterators: dict[str, str | None] = {}

    def read(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Records not read yet, oldest first, as Lambda event records."""
        description = self._client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        records: list[dict[str, Any]] = []
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._client.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            iterator = self._iterators[shard_id]
            if iterator is None:
                continue
            response = self._client.get_records(ShardIterator=iterator, Limit=limit)
            self._iterators[shard_id] = response.get("NextShardIterator")
            records.extend(self._lambda_record(r) for r in response.get("Records", []))
        return records

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": record.get("eventID"),
            "eventName": record.get("eventName"),
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": record.get("awsRegion", "us-east-1"),
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        }
