"""Probe function: records every event it receives, whatever the trigger, and answers as asked.

Records go to RECORDS_TABLE as {PK: kind, SK: unique, data: JSON}; the tests read them. An
SQS record also says which worker process handled it and when.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import boto3

_dynamodb = boto3.client("dynamodb")
COLD_STARTED_AT = time.time()


def _record(kind: str, data: Any) -> None:
    _dynamodb.put_item(
        TableName=os.environ["RECORDS_TABLE"],
        Item={
            "PK": {"S": kind},
            "SK": {"S": f"{time.time():.6f}-{uuid.uuid4().hex}"},
            "data": {"S": json.dumps(data)},
        },
    )


def handler(event: dict[str, Any], context: Any) -> Any:
    if "requestContext" in event and "eventType" in event["requestContext"]:
        return _websocket(event)
    if "routeKey" in event:
        return _http(event)
    if "detail-type" in event:
        _record("events", event)
        return None
    records = event.get("Records") or []
    source = records[0].get("eventSource") if records else None
    if source == "aws:sqs":
        return _sqs(records)
    if source == "aws:dynamodb":
        return _stream(records)
    if source == "aws:s3":
        for record in records:
            _record("s3", {"bucket": record["s3"]["bucket"]["name"], "key": record["s3"]["object"]["key"]})
        return None
    raise ValueError(f"unexpected event: {event}")


def _http(event: dict[str, Any]) -> dict[str, Any]:
    if event["rawPath"] == "/boom":
        raise RuntimeError("boom on purpose")
    caller = event["requestContext"].get("authorizer", {}).get("lambda", {})
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(caller)}


def _sqs(records: list[dict[str, Any]]) -> dict[str, Any]:
    failures = []
    hang = False
    for record in records:
        receive_count = record["attributes"]["ApproximateReceiveCount"]
        _record(
            "sqs",
            {"body": record["body"], "receiveCount": receive_count, "pid": os.getpid(), "at": time.time()},
        )
        if "fail" in record["body"]:
            failures.append({"itemIdentifier": record["messageId"]})
        # A batch with a "hang" message hangs on its first delivery: a test kills the worker.
        hang = hang or (record["body"].startswith("hang") and receive_count == "1")
    if hang:
        time.sleep(3600)  # the function's timeout ends it if nobody does
    return {"batchItemFailures": failures}


def _stream(records: list[dict[str, Any]]) -> dict[str, Any]:
    failures = []
    for record in records:
        image = record["dynamodb"].get("NewImage") or {}
        item_id = image.get("id", {}).get("S", "")
        _record("stream", {"id": item_id, "eventName": record["eventName"]})
        if item_id.startswith("fail"):
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}


def _websocket(event: dict[str, Any]) -> dict[str, Any]:
    context = event["requestContext"]
    kind = context["eventType"]
    if kind in ("CONNECT", "DISCONNECT"):
        _record(
            kind.lower(), {"connectionId": context["connectionId"], "authorizer": context.get("authorizer")}
        )
        return {"statusCode": 200}
    body = json.loads(event.get("body") or "{}")
    if context["routeKey"] == "echo":
        return {
            "statusCode": 200,
            "body": json.dumps({"echo": body, "authorizer": context.get("authorizer")}),
        }
    # $default: push a frame back through the management API, as real functions do.
    endpoint = os.environ["WS_ENDPOINT"].replace("wss://", "https://").replace("ws://", "http://")
    client = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)
    client.post_to_connection(
        ConnectionId=context["connectionId"], Data=json.dumps({"pushed": body}).encode()
    )
    return {"statusCode": 200}
