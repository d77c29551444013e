"""The local stack delivers queue messages, stream records, uploads, events and WebSocket frames.

Everything goes through the local stack's real entry points (its AWS endpoint, its HTTP
and WebSocket ports) to the probe application in tests/local/probe.
"""

from __future__ import annotations

import json
import uuid

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local.stack_server import StackServer
from tests.local.conftest import Lines, eventually, http, records

TOKEN = "letmein"


def test_an_http_call_goes_through_the_authorizer_to_the_function(probe: StackServer) -> None:
    # Given the probe API, whose authorizer lets the token "letmein" through
    url = probe.outputs["HttpApiUrl"]

    # When a client calls a protected route with and without the token
    status, caller = http("GET", f"{url}/whoami", headers={"authorization": f"Bearer {TOKEN}"})
    refused, _ = http("GET", f"{url}/whoami", headers={"authorization": "Bearer wrong"})
    missing, body = http("GET", f"{url}/whoami")

    # Then the function sees the authorizer's context, and the others are refused by the gateway
    assert (status, caller) == (200, {"user": "probe-user"})
    assert refused == 403
    assert (missing, body) == (401, {"message": "Unauthorized"})


def test_a_failing_function_is_a_500_logged_with_its_name_and_the_stack_keeps_serving(
    probe: StackServer, probe_log: Lines
) -> None:
    # Given a route whose function raises
    url = probe.outputs["HttpApiUrl"]

    # When it is called
    status, body = http("GET", f"{url}/boom")

    # Then API Gateway's 500 comes back, the log names the function and the error, and the stack still works
    assert (status, body) == (500, {"message": "Internal Server Error"})
    assert any("ProbeFunction" in line and "boom on purpose" in line for line in probe_log.lines)
    assert http("GET", f"{url}/whoami", headers={"authorization": f"Bearer {TOKEN}"})[0] == 200


def test_an_unknown_route_is_api_gateways_404(probe: StackServer) -> None:
    status, body = http("GET", f"{probe.outputs['HttpApiUrl']}/nowhere")
    assert (status, body) == (404, {"message": "Not Found"})


def test_a_websocket_client_connects_sends_and_receives(probe: StackServer) -> None:
    # Given a client connected with a good token
    with connect(f"{probe.outputs['WebSocketUrl']}?token={TOKEN}") as client:
        # When it sends a frame to a two-way route and one to $default
        client.send(json.dumps({"action": "echo", "n": 1}))
        echoed = json.loads(client.recv(timeout=10))
        client.send(json.dumps({"action": "anything", "n": 2}))
        pushed = json.loads(client.recv(timeout=10))

    # Then the route's answer comes back with the authorizer's context,
    # and $default's function reached the client through the @connections API
    assert echoed["echo"] == {"action": "echo", "n": 1}
    assert echoed["authorizer"]["user"] == "probe-user"
    assert pushed == {"pushed": {"action": "anything", "n": 2}}
    connected = records(probe, "connect")
    assert connected, "the $connect route was not invoked"
    eventually(lambda: records(probe, "disconnect"))


def test_a_websocket_client_with_a_bad_token_is_refused_at_the_handshake(probe: StackServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{probe.outputs['WebSocketUrl']}?token=wrong")
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as missing:
        connect(probe.outputs["WebSocketUrl"])
    assert missing.value.response.status_code == 401


def test_a_partial_batch_failure_is_retried_then_lands_in_the_dead_letter_queue(probe: StackServer) -> None:
    # Given a queue with maxReceiveCount 2 and a function that fails messages containing "fail"
    sqs = probe.client("sqs")
    tag = uuid.uuid4().hex
    good, bad = f"ok-{tag}", f"fail-{tag}"

    # When both are sent in one batch
    sqs.send_message_batch(
        QueueUrl=probe.outputs["WorkQueueUrl"],
        Entries=[{"Id": "1", "MessageBody": good}, {"Id": "2", "MessageBody": bad}],
    )

    # Then the good one is handled once, the bad one twice, and the bad one ends in the DLQ
    dlq = sqs.get_queue_url(QueueName="WorkDeadLetterQueue")["QueueUrl"]
    dead = eventually(
        lambda: sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages"), timeout=15
    )
    assert [m["Body"] for m in dead] == [bad]
    seen = [r for r in records(probe, "sqs") if tag in r["body"]]
    assert sorted((r["body"], r["receiveCount"]) for r in seen) == [(bad, "1"), (bad, "2"), (good, "1")]


def test_a_stream_record_reaches_its_function_and_a_failing_one_goes_to_on_failure(
    probe: StackServer,
) -> None:
    # Given a table whose stream feeds the probe (1 retry, OnFailure queue)
    dynamodb = probe.client("dynamodb")
    tag = uuid.uuid4().hex

    # When an item is written, and another that the function keeps failing
    dynamodb.put_item(TableName="ItemsTable", Item={"id": {"S": f"item-{tag}"}})
    dynamodb.put_item(TableName="ItemsTable", Item={"id": {"S": f"fail-{tag}"}})

    # Then the first is delivered once, the second twice (1 retry), then described on the OnFailure queue
    def delivered() -> list[dict[str, object]] | None:
        seen = [r for r in records(probe, "stream") if tag in str(r["id"])]
        return seen if len(seen) >= 3 else None

    seen = eventually(delivered)
    assert [r["id"] for r in seen if r["id"] == f"item-{tag}"] == [f"item-{tag}"]
    sqs = probe.client("sqs")
    failures = sqs.get_queue_url(QueueName="StreamFailures")["QueueUrl"]
    messages = eventually(lambda: sqs.receive_message(QueueUrl=failures).get("Messages"))
    info = json.loads(messages[0]["Body"])
    assert info["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert info["DDBStreamBatchInfo"]["batchSize"] == 1


def test_an_s3_upload_reaches_its_function_with_the_key_as_aws_sends_it(probe: StackServer) -> None:
    # Given a bucket whose .csv uploads notify the probe
    s3 = probe.client("s3")
    key = f"campaigns/{uuid.uuid4().hex}/my list.csv"

    # When a .csv and a .txt are uploaded
    s3.put_object(Bucket=probe.outputs["BucketName"], Key=key, Body=b"iccid\n")
    s3.put_object(Bucket=probe.outputs["BucketName"], Key=key.replace(".csv", ".txt"), Body=b"x")

    # Then only the .csv reaches the function, its key URL-encoded as S3 does ("+" for a space)
    seen = eventually(lambda: [r for r in records(probe, "s3") if r["key"].startswith(key.split("/my")[0])])
    assert [r["key"] for r in seen] == [key.replace(" ", "+")]


def test_a_rule_delivers_a_matching_event_with_the_account(probe: StackServer) -> None:
    # Given a rule on the probe bus for source probe.test / detail-type Ping
    events = probe.client("events")
    tag = uuid.uuid4().hex

    # When a matching and a non-matching event are published
    response = events.put_events(
        Entries=[
            {
                "Source": "probe.test",
                "DetailType": "Ping",
                "Detail": json.dumps({"tag": tag}),
                "EventBusName": "probe-bus",
            },
            {
                "Source": "probe.test",
                "DetailType": "Pong",
                "Detail": json.dumps({"tag": tag}),
                "EventBusName": "probe-bus",
            },
        ]
    )
    assert response["FailedEntryCount"] == 0

    # Then only the match arrives, in the shape AWS delivers (account included)
    seen = eventually(lambda: [r for r in records(probe, "events") if r["detail"].get("tag") == tag])
    assert len(seen) == 1
    assert seen[0]["detail-type"] == "Ping"
    assert seen[0]["account"] == "123456789012"
