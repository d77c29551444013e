"""The campaign routes through the handlers on moto: roles, validation, uploads, recipients, progress."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import boto3
import pytest
from moto import mock_aws

import chatflow.adapters.aws
from chatflow.adapters.campaign_store import DynamoCampaignRepository, S3RecipientFiles
from chatflow.adapters.sms_commands import SqsSmsCommandSender
from chatflow.adapters.sms_store import DynamoOptOutRepository
from chatflow.domain.campaigns import CampaignLoader, Upload
from chatflow.errors import Throttled
from local.patterns import matches
from local.runtime import InvocationContext
from local.specs import REGION
from local.stack import InProcessStack
from local.template import Template
from tests.integration.conftest import ApiClient, assert_error

OPERATOR = "+14155550100"
USER = "+14155550101"
NO_COUNTS = dict.fromkeys(
    ("total", "queued", "sent", "failed", "delivered", "skipped", "expired", "cancelled"), 0
)


@pytest.fixture
def api() -> Iterator[ApiClient]:
    with mock_aws():
        yield ApiClient(
            InProcessStack.create(parameters={"AuthMode": "phone", "OperatorPhoneNumbers": OPERATOR})
        )


def _campaign(api: ApiClient, token: str, template: str = "Hi {{name}}") -> dict[str, Any]:
    response = api.call("POST", "/v1/campaigns", {"name": "launch", "template": template}, token=token)
    assert response.status == 201, response.body
    return dict(response.json())


def _load(api: ApiClient, campaign_id: str, csv: bytes, name: str = "list") -> dict[str, Any]:
    """Drop a CSV in the bucket and run the loader as its S3 trigger and load queue would."""
    stack = api.stack
    bucket = stack.template.physical_ids["CampaignBucket"]
    key = f"campaigns/{campaign_id}/{name}.csv"
    s3 = boto3.client("s3", region_name="us-east-1")
    etag = s3.put_object(Bucket=bucket, Key=key, Body=csv)["ETag"].strip('"')
    s3_event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": etag}},
            }
        ]
    }
    stack.invoke("CampaignLoaderFunction", s3_event)
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = stack.template.physical_ids["CampaignLoadQueue"]
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1).get("Messages"):
        message = messages[0]
        record = {"eventSource": "aws:sqs", "messageId": message["MessageId"], "body": message["Body"]}
        assert stack.invoke("CampaignLoaderFunction", {"Records": [record]}) == {"batchItemFailures": []}
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    job = json.loads(message["Body"])
    response = api.call(
        "GET", f"/v1/campaigns/{campaign_id}/uploads/{job['uploadId']}", token=api.sign_in(OPERATOR)
    )
    assert response.status == 200, response.body
    return dict(response.json())


def _commands() -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.get_queue_url(QueueName="SendSmsQueue")["QueueUrl"]
    found = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for m in messages:
            found.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def test_campaigns_are_for_operators_only(api: ApiClient) -> None:
    user = api.sign_in(USER)
    assert_error(
        api.call("POST", "/v1/campaigns", {"name": "x", "template": "hi"}, token=user), 403, "forbidden"
    )
    assert_error(api.call("GET", "/v1/campaigns", token=user), 403, "forbidden")
    assert_error(api.call("GET", "/v1/campaigns"), 401, "unauthorized")


def test_a_campaign_lists_its_template_variables_and_starts_as_a_draft(api: ApiClient) -> None:
    campaign = _campaign(api, api.sign_in(OPERATOR), "Hi {{ name }}, code {{code}} for {{name}}")
    assert campaign["variables"] == ["name", "code"]
    assert campaign["status"] == "draft"
    assert campaign["counts"] == NO_COUNTS
    assert campaign["lastError"] is None
    assert campaign["validFor"] == 86400


def test_a_malformed_template_is_400_invalid_template_saying_where(api: ApiClient) -> None:
    response = api.call(
        "POST", "/v1/campaigns", {"name": "x", "template": "Hi {{name"}, token=api.sign_in(OPERATOR)
    )
    error = assert_error(response, 400, "invalid_template")
    assert "line 1, column 4" in error["message"]


def _preview(api: ApiClient, token: str, template: str, **variables: str) -> Any:
    return api.call(
        "POST", "/v1/campaigns/preview", {"template": template, "variables": variables}, token=token
    )


def test_a_preview_is_the_text_a_recipient_gets_and_how_it_travels(api: ApiClient) -> None:
    # Given an operator, and templates in plain GSM-7, with an emoji, and long enough for two parts
    operator = api.sign_in(OPERATOR)

    # When each is previewed with a recipient's values (a value with braces is taken literally)
    plain = _preview(api, operator, "Hi {{ name }}, your code is {{code}}", name="Ana {{x}}", code="42")
    emoji = _preview(api, operator, "Hi {{name}} 🎉", name="Ana")
    long = _preview(api, operator, "{{a}} " + "x" * 160, a="Hello")

    # Then each answers the rendered text, its encoding, its SMS parts and its length
    assert plain.status == 200, plain.body
    assert plain.json() == {
        "text": "Hi Ana {{x}}, your code is 42",
        "encoding": "GSM-7",
        "segments": 1,
        "characters": 29,
    }
    assert emoji.json() == {"text": "Hi Ana 🎉", "encoding": "UCS-2", "segments": 1, "characters": 8}
    assert (long.json()["encoding"], long.json()["segments"], long.json()["characters"]) == ("GSM-7", 2, 166)


def test_a_preview_names_what_is_wrong_with_its_template_or_values(api: ApiClient) -> None:
    # Given an operator and a user
    operator = api.sign_in(OPERATOR)
    user = api.sign_in(USER)

    # When a malformed template, a template with a variable left without a value, one that
    # renders over 1,600 characters, and a preview by a non-operator are asked for
    malformed = _preview(api, operator, "Hi {{name")
    missing = _preview(api, operator, "Hi {{name}}, {{code}}", name="Ana")
    too_long = _preview(api, operator, "{{a}}{{a}}", a="x" * 900)
    not_operator = _preview(api, user, "Hi")

    # Then each is a 4xx that says what to fix
    assert "line 1, column 4" in assert_error(malformed, 400, "invalid_template")["message"]
    error = assert_error(missing, 400, "validation_error")
    assert "code" in error["message"]
    assert [d["field"] for d in error["details"]] == ["variables.code"]
    assert "1800 characters" in assert_error(too_long, 400, "validation_error")["message"]
    assert_error(not_operator, 403, "forbidden")


def test_campaigns_are_listed_newest_first_with_pages(api: ApiClient) -> None:
    token = api.sign_in(OPERATOR)
    ids = [_campaign(api, token)["campaignId"] for _ in range(3)]
    pages = api.all_pages("/v1/campaigns", token, limit=2)
    assert [c["campaignId"] for page in pages for c in page] == list(reversed(ids))


def test_an_upload_ticket_is_a_presigned_put_to_the_campaigns_folder(api: ApiClient) -> None:
    token = api.sign_in(OPERATOR)
    campaign = _campaign(api, token)
    response = api.call("POST", f"/v1/campaigns/{campaign['campaignId']}/uploads", token=token)
    assert response.status == 201, response.body
    ticket = response.json()
    assert ticket["key"] == f"campaigns/{campaign['campaignId']}/{ticket['uploadId']}.csv"
    assert "X-Amz-Signature=" in ticket["uploadUrl"]
    assert ticket["expiresInSeconds"] == 900
    upload = api.call(
        "GET", f"/v1/campaigns/{campaign['campaignId']}/uploads/{ticket['uploadId']}", token=token
    )
    assert upload.json()["status"] == "pending"


def test_a_csv_queues_one_promotional_command_per_new_recipient(api: ApiClient) -> None:
    token = api.sign_in(OPERATOR)
    campaign = _campaign(api, token, "Hi {{name}}")
    csv = (
        b"iccid,name\n89000000000000000001,Ada\n89000000000000000002,{{x}}\n"
        b"123,Bad\n89000000000000000001,Again\n"
    )

    upload = _load(api, campaign["campaignId"], csv)

    assert (upload["status"], upload["accepted"], upload["duplicates"], upload["invalidRows"]) == (
        "accepted",
        2,
        1,
        1,
    )
    assert upload["errors"][0]["row"] == 4
    commands = sorted(_commands(), key=lambda c: c["iccid"])
    assert [c["text"] for c in commands] == ["Hi Ada", "Hi {{x}}"]
    assert all(c["messageType"] == "promotional" for c in commands)
    assert all(c["metadata"] == {"campaignId": campaign["campaignId"]} for c in commands)
    assert commands[0]["commandId"] == f"cmp-{campaign['campaignId']}-89000000000000000001"
    got = api.call("GET", f"/v1/campaigns/{campaign['campaignId']}", token=token).json()
    assert got["counts"] == NO_COUNTS | {"total": 2, "queued": 2}
    assert got["status"] == "sending"


def test_a_missing_variable_column_rejects_the_whole_file_before_anything_is_queued(api: ApiClient) -> None:
    campaign = _campaign(api, api.sign_in(OPERATOR), "Hi {{name}}, {{code}}")

    upload = _load(api, campaign["campaignId"], b"iccid,name\n89000000000000000001,Ada\n")

    assert upload["status"] == "rejected"
    assert "code" in upload["error"]
    assert _commands() == []


def test_the_same_file_again_queues_nothing(api: ApiClient) -> None:
    campaign = _campaign(api, api.sign_in(OPERATOR))
    csv = b"iccid,name\n89000000000000000001,Ada\n"
    _load(api, campaign["campaignId"], csv, "first")
    _commands()

    again = _load(api, campaign["campaignId"], csv, "second")

    assert (again["accepted"], again["duplicates"]) == (0, 1)
    assert _commands() == []


def test_gateway_events_move_recipients_and_counts_forward_once(api: ApiClient) -> None:
    # Given a campaign with two queued recipients
    token = api.sign_in(OPERATOR)
    campaign = _campaign(api, token)
    cid = campaign["campaignId"]
    _load(api, cid, b"iccid,name\n89000000000000000001,Ada\n89000000000000000002,Bob\n")
    one, two = "89000000000000000001", "89000000000000000002"

    def event(detail_type: str, recipient: str, **detail: Any) -> dict[str, Any]:
        base = {"commandId": f"cmp-{cid}-{recipient}", "metadata": {"campaignId": cid}}
        return {"detail-type": detail_type, "source": "chatflow.sms", "detail": base | detail}

    # When one is sent then delivered (the delivery twice), the other fails, and a late SmsSent arrives
    progress = "CampaignProgressFunction"
    api.stack.invoke(progress, event("SmsSent", one, iccid=one, providerMessageId="pm_1", attempts=1))
    api.stack.invoke(progress, event("SmsDelivered", one, providerMessageId="pm_1", status="delivered"))
    api.stack.invoke(progress, event("SmsDelivered", one, providerMessageId="pm_1", status="delivered"))
    api.stack.invoke(
        progress, event("SmsFailed", two, iccid=two, errorCode="invalid_destination", reason="no", attempts=1)
    )
    api.stack.invoke(progress, event("SmsSent", two, iccid=two, providerMessageId="pm_2", attempts=2))

    # Then the counts add up, the campaign completed, and the failure is explained
    got = api.call("GET", f"/v1/campaigns/{cid}", token=token).json()
    assert got["counts"] == NO_COUNTS | {"total": 2, "failed": 1, "delivered": 1}
    assert got["status"] == "completed"
    assert got["lastError"] == "invalid_destination: no"
    failed = api.call(
        "GET", f"/v1/campaigns/{cid}/recipients", token=token, query={"status": "failed"}
    ).json()
    assert [(r["iccid"], r["lastError"]) for r in failed["items"]] == [(two, "invalid_destination: no")]


def test_an_unknown_recipient_status_filter_is_400(api: ApiClient) -> None:
    token = api.sign_in(OPERATOR)
    campaign = _campaign(api, token)
    response = api.call(
        "GET", f"/v1/campaigns/{campaign['campaignId']}/recipients", token=token, query={"status": "lost"}
    )
    assert_error(response, 400, "validation_error")


def test_a_file_too_big_for_one_invocation_is_continued_from_its_checkpoint() -> None:
    # Given a loader that hands over after 100 rows, and a file of 350 recipients
    with mock_aws():
        api = ApiClient(
            InProcessStack.create(
                parameters={
                    "AuthMode": "phone",
                    "OperatorPhoneNumbers": OPERATOR,
                    "LoaderMaxRowsPerInvocation": "100",
                }
            )
        )
        campaign = _campaign(api, api.sign_in(OPERATOR))
        rows = "".join(f"89{i:018d},N{i}\n" for i in range(350))

        # When it is loaded (each load message runs one invocation)
        upload = _load(api, campaign["campaignId"], ("iccid,name\n" + rows).encode())

        # Then every row is queued exactly once across the invocations
        assert (upload["status"], upload["accepted"], upload["duplicates"]) == ("accepted", 350, 0)
        commands = _commands()
        assert len(commands) == 350
        assert len({c["commandId"] for c in commands}) == 350


def _event(cid: str, detail_type: str, recipient: str, **detail: Any) -> dict[str, Any]:
    """A gateway event about the campaign command of ``recipient`` (an ICCID), as the bus delivers it."""
    base = {"commandId": f"cmp-{cid}-{recipient}", "metadata": {"campaignId": cid}}
    return {"detail-type": detail_type, "source": "chatflow.sms", "detail": base | detail}


def _recipients(api: ApiClient, cid: str, token: str, status: str | None = None) -> list[dict[str, Any]]:
    query = {"status": status} if status else {}
    response = api.call("GET", f"/v1/campaigns/{cid}/recipients", token=token, query=query)
    assert response.status == 200, response.body
    return list(response.json()["items"])


def _adds_up(counts: dict[str, int]) -> bool:
    return sum(n for name, n in counts.items() if name != "total") == counts["total"]


def test_a_campaign_keeps_the_validity_it_was_created_with(api: ApiClient) -> None:
    token = api.sign_in(OPERATOR)
    response = api.call(
        "POST",
        "/v1/campaigns",
        {"name": "flash sale", "template": "Today only", "validFor": 3600},
        token=token,
    )
    assert response.status == 201, response.body
    assert response.json()["validFor"] == 3600
    got = api.call("GET", f"/v1/campaigns/{response.json()['campaignId']}", token=token).json()
    assert got["validFor"] == 3600


@pytest.mark.parametrize("valid_for", [0, 59, 1_209_601, "1 day", 3600.5])
def test_a_validity_outside_a_minute_to_14_days_is_400_naming_validFor(
    api: ApiClient, valid_for: Any
) -> None:
    response = api.call(
        "POST",
        "/v1/campaigns",
        {"name": "x", "template": "hi", "validFor": valid_for},
        token=api.sign_in(OPERATOR),
    )
    error = assert_error(response, 400, "validation_error")
    assert "validFor" in json.dumps(error)


def test_each_command_is_valid_for_the_campaigns_validFor_from_when_it_is_queued(api: ApiClient) -> None:
    # Given a campaign whose SMS are worth sending for an hour
    token = api.sign_in(OPERATOR)
    response = api.call(
        "POST", "/v1/campaigns", {"name": "flash", "template": "Hi {{name}}", "validFor": 3600}, token=token
    )
    cid = response.json()["campaignId"]

    # When its recipients are loaded
    before = datetime.now(UTC)
    _load(api, cid, b"iccid,name\n89000000000000000001,Ada\n89000000000000000002,Bob\n")
    after = datetime.now(UTC)

    # Then each command carries validUntil: the moment it was queued plus an hour, in UTC
    commands = _commands()
    assert len(commands) == 2
    for command in commands:
        assert command["validUntil"].endswith("Z")
        valid_until = datetime.fromisoformat(command["validUntil"])
        lower = before + timedelta(seconds=3600) - timedelta(milliseconds=1)
        assert lower <= valid_until <= after + timedelta(seconds=3600)


def test_an_opted_out_iccid_is_skipped_never_queued_and_counted(api: ApiClient) -> None:
    # Given a campaign, and a SIM whose owner sent STOP earlier
    token = api.sign_in(OPERATOR)
    cid = _campaign(api, token)["campaignId"]
    refused, kept = "89000000000000000001", "89000000000000000002"
    sms_table = api.stack.template.physical_ids["SmsTable"]
    opt_outs = DynamoOptOutRepository(sms_table, boto3.client("dynamodb", region_name="us-east-1"))
    opt_outs.opt_out(refused, at=datetime.now(UTC))

    # When a file naming both is loaded
    upload = _load(api, cid, f"iccid,name\n{refused},Ada\n{kept},Bob\n".encode())

    # Then only the other is queued; the opted-out one is a skipped recipient that says why
    assert (upload["accepted"], upload["skipped"], upload["duplicates"]) == (1, 1, 0)
    assert [c["iccid"] for c in _commands()] == [kept]
    got = api.call("GET", f"/v1/campaigns/{cid}", token=token).json()
    assert got["counts"] == NO_COUNTS | {"total": 2, "queued": 1, "skipped": 1}
    skipped = _recipients(api, cid, token, "skipped")
    assert [r["iccid"] for r in skipped] == [refused]
    assert skipped[0]["lastError"].startswith("opted_out")

    # And loading the file again queues neither
    again = _load(api, cid, f"iccid,name\n{refused},Ada\n{kept},Bob\n".encode(), "again")
    assert (again["accepted"], again["skipped"], again["duplicates"]) == (0, 0, 2)
    assert _commands() == []


def test_a_campaign_whose_every_recipient_opted_out_completes_with_nothing_sent(api: ApiClient) -> None:
    token = api.sign_in(OPERATOR)
    cid = _campaign(api, token)["campaignId"]
    sms_table = api.stack.template.physical_ids["SmsTable"]
    opt_outs = DynamoOptOutRepository(sms_table, boto3.client("dynamodb", region_name="us-east-1"))
    opt_outs.opt_out("89000000000000000001", at=datetime.now(UTC))

    _load(api, cid, b"iccid,name\n89000000000000000001,Ada\n")

    got = api.call("GET", f"/v1/campaigns/{cid}", token=token).json()
    assert (got["status"], got["counts"]) == ("completed", NO_COUNTS | {"total": 1, "skipped": 1})
    assert _commands() == []


def test_an_expired_command_moves_its_recipient_to_expired_and_counts_it(api: ApiClient) -> None:
    # Given a campaign with two queued recipients
    token = api.sign_in(OPERATOR)
    cid = _campaign(api, token)["campaignId"]
    one, two = "89000000000000000001", "89000000000000000002"
    _load(api, cid, f"iccid,name\n{one},Ada\n{two},Bob\n".encode())
    progress = "CampaignProgressFunction"

    # When one is sent and the other's command expires in the queue (then a late SmsSent of it)
    api.stack.invoke(progress, _event(cid, "SmsSent", one, iccid=one, providerMessageId="pm_1", attempts=1))
    expired = {"iccid": two, "validUntil": "2026-12-04T10:00:00.000Z", "attempts": 0}
    api.stack.invoke(
        progress, _event(cid, "SmsExpired", two, expiredAt="2026-12-04T10:00:01.000Z", **expired)
    )
    api.stack.invoke(progress, _event(cid, "SmsSent", two, iccid=two, providerMessageId="pm_2", attempts=1))

    # Then it is expired, counted as such, and says until when it was worth sending
    got = api.call("GET", f"/v1/campaigns/{cid}", token=token).json()
    assert got["counts"] == NO_COUNTS | {"total": 2, "sent": 1, "expired": 1}
    assert got["status"] == "completed"
    [recipient] = _recipients(api, cid, token, "expired")
    assert recipient["iccid"] == two
    assert "2026-12-04T10:00:00.000Z" in recipient["lastError"]


def test_the_progress_rule_takes_expiries_of_campaign_commands() -> None:
    template = Template.load()
    rules = [
        r for r in template.event_rules() if any(t.function == "CampaignProgressFunction" for t in r.targets)
    ]
    event = {
        "source": "chatflow.sms",
        "detail-type": "SmsExpired",
        "detail": {"commandId": "cmp-c_1-8900", "metadata": {"campaignId": "c_1"}},
    }
    assert rules
    assert any(rule.pattern and matches(rule.pattern, event) for rule in rules)


def test_a_dead_lettered_command_fails_its_recipient_so_none_stays_queued(api: ApiClient) -> None:
    # Given a campaign whose only recipient's command was dead-lettered by the gateway
    token = api.sign_in(OPERATOR)
    cid = _campaign(api, token)["campaignId"]
    iccid = "89000000000000000001"
    _load(api, cid, f"iccid,name\n{iccid},Ada\n".encode())

    # When the gateway reports it (SmsFailed dead_lettered, not permanent)
    failure = {"errorCode": "dead_lettered", "reason": "never handled", "permanent": False, "attempts": 2}
    api.stack.invoke("CampaignProgressFunction", _event(cid, "SmsFailed", iccid, iccid=iccid, **failure))

    # Then the recipient is failed, nothing is left queued and the campaign is completed
    got = api.call("GET", f"/v1/campaigns/{cid}", token=token).json()
    assert (got["status"], got["counts"]) == ("completed", NO_COUNTS | {"total": 1, "failed": 1})
    assert _recipients(api, cid, token, "queued") == []
    [recipient] = _recipients(api, cid, token, "failed")
    assert recipient["lastError"] == "dead_lettered: never handled"


@pytest.mark.parametrize("status", ["skipped", "expired", "cancelled"])
def test_the_new_statuses_are_accepted_as_recipient_filters(api: ApiClient, status: str) -> None:
    token = api.sign_in(OPERATOR)
    cid = _campaign(api, token)["campaignId"]
    _load(api, cid, b"iccid,name\n89000000000000000001,Ada\n")
    assert _recipients(api, cid, token, status) == []
    assert _adds_up(api.call("GET", f"/v1/campaigns/{cid}", token=token).json()["counts"])


def test_a_load_that_crashed_after_writing_a_skipped_recipient_keeps_it_skipped(api: ApiClient) -> None:
    # Given a file with an opted-out ICCID, and a load that wrote the chunk's recipients
    # but crashed queueing their commands (before its checkpoint)
    token = api.sign_in(OPERATOR)
    cid = _campaign(api, token)["campaignId"]
    refused, kept = "89000000000000000001", "89000000000000000002"
    sms_table = api.stack.template.physical_ids["SmsTable"]
    opt_outs = DynamoOptOutRepository(sms_table, boto3.client("dynamodb", region_name="us-east-1"))
    opt_outs.opt_out(refused, at=datetime.now(UTC))
    key = f"campaigns/{cid}/list.csv"
    bucket = api.stack.template.physical_ids["CampaignBucket"]
    boto3.client("s3", region_name="us-east-1").put_object(
        Bucket=bucket, Key=key, Body=f"iccid,name\n{refused},Ada\n{kept},Bob\n".encode()
    )
    loader = api.stack.functions["CampaignLoaderFunction"].module.deps.campaign_loading().loader
    with (
        patch.object(SqsSmsCommandSender, "send_all", side_effect=Throttled("queue down")),
        pytest.raises(Throttled),
    ):
        loader.load(cid, "u_crash", key, budget=lambda: True)

    # When the owner opts back in, then the load is retried from the start of that chunk
    # (SQS redelivers the job after its visibility timeout, long after the crashed load's
    # lease ran out)
    opt_outs.opt_in(refused)
    retry, _ = _own_loader(api, clock=lambda: datetime.now(UTC) + timedelta(seconds=121))
    loaded = retry.load(cid, "u_crash", key, budget=lambda: True)

    # Then the recipient written skipped stays skipped (no command), counted once, and the
    # counts add up
    assert loaded.upload is not None
    assert (loaded.upload.accepted, loaded.upload.skipped) == (1, 1)
    assert [c["iccid"] for c in _commands()] == [kept]
    got = api.call("GET", f"/v1/campaigns/{cid}", token=token).json()
    assert got["counts"] == NO_COUNTS | {"total": 2, "queued": 1, "skipped": 1}


# ---- duplicate load jobs: one exclusive, fenced lease per load ----------------------------


@contextmanager
def paused_at(
    client: Any, operation: str, *, skip: int = 0
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The ``skip + 1``-th ``operation`` call through ``client`` stops (before it is sent) until released.

    The loader reads which recipients exist, then writes the new ones (BatchWriteItem) and
    saves its counts (TransactWriteItems, after the claim's): pausing there leaves the gap
    in which a duplicate job would load the same rows.
    """
    reached, release = threading.Event(), threading.Event()
    calls = 0
    lock = threading.Lock()

    def pause(**_: Any) -> None:
        nonlocal calls
        with lock:
            calls += 1
            mine = calls == skip + 1
        if mine:
            reached.set()
            assert release.wait(10), "never released"

    event = f"before-call.dynamodb.{operation}"
    client.meta.events.register(event, pause)
    try:
        yield reached, release
    finally:
        release.set()
        client.meta.events.unregister(event, pause)


def _notified_twice(api: ApiClient, cid: str, csv: bytes) -> list[dict[str, Any]]:
    """Put a CSV and deliver its S3 notification twice: the two load jobs' SQS records."""
    stack = api.stack
    bucket = stack.template.physical_ids["CampaignBucket"]
    key = f"campaigns/{cid}/list.csv"
    s3 = boto3.client("s3", region_name="us-east-1")
    etag = s3.put_object(Bucket=bucket, Key=key, Body=csv)["ETag"].strip('"')
    record = {
        "eventSource": "aws:s3",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": etag}},
    }
    stack.invoke("CampaignLoaderFunction", {"Records": [record]})
    stack.invoke("CampaignLoaderFunction", {"Records": [record]})
    return _take_jobs(api)


def _take_jobs(api: ApiClient) -> list[dict[str, Any]]:
    """The load jobs waiting on the campaign load queue (taken off it), as SQS records."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = api.stack.template.physical_ids["CampaignLoadQueue"]
    records = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        for m in messages:
            records.append({"eventSource": "aws:sqs", "messageId": m["MessageId"], "body": m["Body"]})
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return records


def _run_jobs(api: ApiClient, records: list[dict[str, Any]]) -> None:
    """Run each job, then those they put on the queue, until none is left (busy ones at once)."""
    module = api.stack.functions["CampaignLoaderFunction"].module
    with patch.object(module.deps.campaign_loading(), "busy_retry_seconds", 0):
        while records:
            for record in records:
                result = api.stack.invoke("CampaignLoaderFunction", {"Records": [record]})
                assert result == {"batchItemFailures": []}
            records = _take_jobs(api)


def _invoke_alongside(api: ApiClient, record: dict[str, Any]) -> Any:
    """Run the loader's handler on ``record`` as a concurrent invocation would.

    ``stack.invoke`` runs one invocation at a time (it sets the function's environment);
    the module read its settings when imported, so its handler can also run beside one.
    """
    function = api.stack.functions["CampaignLoaderFunction"]
    context = InvocationContext(function.spec.logical_id, function.spec.memory, function.spec.timeout)
    return function.handler({"Records": [record]}, context)


def _all_recipients(api: ApiClient, cid: str, token: str) -> list[dict[str, Any]]:
    return [r for page in api.all_pages(f"/v1/campaigns/{cid}/recipients", token, limit=100) for r in page]


def test_the_same_upload_notified_twice_at_once_is_loaded_once() -> None:
    # Given a loader that hands over after 100 rows, a file of 250 recipients, and its S3
    # notification delivered twice: two load jobs for the same upload
    with mock_aws():
        api = ApiClient(
            InProcessStack.create(
                parameters={
                    "AuthMode": "phone",
                    "OperatorPhoneNumbers": OPERATOR,
                    "LoaderMaxRowsPerInvocation": "100",
                }
            )
        )
        token = api.sign_in(OPERATOR)
        cid = _campaign(api, token)["campaignId"]
        rows = "".join(f"89{i:018d},N{i}\n" for i in range(250))
        first, second = _notified_twice(api, cid, ("iccid,name\n" + rows).encode())

        # When the first has claimed the upload and found none of its rows stored, and the
        # second runs in that gap; then the first goes on, and every job they leave runs
        client = chatflow.adapters.aws.dynamodb(REGION)
        with paused_at(client, "BatchWriteItem") as (reached, release), ThreadPoolExecutor(1) as pool:
            running = pool.submit(_invoke_alongside, api, first)
            assert reached.wait(10)
            assert api.stack.invoke("CampaignLoaderFunction", {"Records": [second]}) == {
                "batchItemFailures": []
            }
            release.set()
            assert running.result(timeout=10) == {"batchItemFailures": []}
        _run_jobs(api, _take_jobs(api))

        # Then the rows are counted once, each recipient exists once, each command is queued once
        got = api.call("GET", f"/v1/campaigns/{cid}", token=token).json()
        assert got["counts"] == NO_COUNTS | {"total": 250, "queued": 250}
        recipients = _all_recipients(api, cid, token)
        assert len(recipients) == 250
        assert len({r["iccid"] for r in recipients}) == 250
        commands = [c["commandId"] for c in _commands()]
        assert len(commands) == len(set(commands)) == 250
        upload = api.call(
            "GET", f"/v1/campaigns/{cid}/uploads/{json.loads(first['body'])['uploadId']}", token=token
        ).json()
        assert (upload["status"], upload["accepted"], upload["duplicates"]) == ("accepted", 250, 0)


def _own_loader(api: ApiClient, *, clock: Callable[[], datetime]) -> tuple[CampaignLoader, Any]:
    """A loader on its own DynamoDB client (to pause it alone) and ``clock``: (loader, client)."""
    ids = api.stack.template.physical_ids
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    loader = CampaignLoader(
        campaigns=DynamoCampaignRepository(ids["CampaignsTable"], dynamodb),
        files=S3RecipientFiles(ids["CampaignBucket"], boto3.client("s3", region_name=REGION)),
        commands=SqsSmsCommandSender(sqs.get_queue_url(QueueName="SendSmsQueue")["QueueUrl"], client=sqs),
        opt_outs=DynamoOptOutRepository(ids["SmsTable"], dynamodb),
        clock=clock,
    )
    return loader, dynamodb


def test_a_loader_whose_lease_was_taken_over_adds_no_counts(api: ApiClient) -> None:
    # Given a load that wrote its recipients and queued their commands, then stalled
    # before saving its counts, past its lease (120 s)
    token = api.sign_in(OPERATOR)
    cid = _campaign(api, token)["campaignId"]
    key = f"campaigns/{cid}/list.csv"
    rows = "".join(f"89{i:018d},N{i}\n" for i in range(30))
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=api.stack.template.physical_ids["CampaignBucket"],
        Key=key,
        Body=("iccid,name\n" + rows).encode(),
    )
    stalled, client = _own_loader(api, clock=lambda: datetime.now(UTC))
    later, _ = _own_loader(api, clock=lambda: datetime.now(UTC) + timedelta(seconds=121))
    with paused_at(client, "TransactWriteItems", skip=1) as (reached, release), ThreadPoolExecutor(1) as pool:
        running = pool.submit(stalled.load, cid, "u_stall", key, budget=lambda: True)
        assert reached.wait(10)

        # When another job for the upload finds the lease run out, takes it over and loads
        # the file; then the stalled load saves
        taken = later.load(cid, "u_stall", key, budget=lambda: True)
        release.set()
        stalled_result = running.result(timeout=10)

    # Then the new holder loaded the upload; the stalled loader's save was refused: it
    # stopped, adding nothing to the counts, and reports the upload as the new holder left it
    assert taken.done
    assert taken.upload is not None
    assert (taken.upload.status, taken.upload.accepted) == ("accepted", 30)
    assert stalled_result.upload == taken.upload
    got = api.call("GET", f"/v1/campaigns/{cid}", token=token).json()
    assert got["counts"] == NO_COUNTS | {"total": 30, "queued": 30}
    upload = api.call("GET", f"/v1/campaigns/{cid}/uploads/u_stall", token=token).json()
    assert (upload["status"], upload["accepted"]) == ("accepted", 30)


def test_the_campaign_lease_goes_to_a_free_campaign_an_expired_lease_or_the_holders_token(
    api: ApiClient,
) -> None:
    # Given a campaign whose upload one job claimed (token t1, a lease of a minute)
    cid = _campaign(api, api.sign_in(OPERATOR))["campaignId"]
    repository = DynamoCampaignRepository(
        api.stack.template.physical_ids["CampaignsTable"], boto3.client("dynamodb", region_name=REGION)
    )
    now = datetime.now(UTC)
    upload = Upload(cid, "u_1", f"campaigns/{cid}/u_1.csv", "processing")

    def claim(token: str, holding: str | None, at: datetime = now) -> bool:
        return (
            repository.claim_upload(
                upload, token=token, holding=holding, now=at, lease_until=at + timedelta(seconds=60)
            )
            is not None
        )

    assert claim("t1", None)

    # Then a job without the token waits; the continuation presenting t1 takes it (t2), and
    # t1 is then stale; once the lease ran out, any job takes it
    assert not claim("dup", None)
    assert claim("t2", "t1")
    assert not claim("stale", "t1")
    assert claim("t3", None, now + timedelta(seconds=61))

    # And only the holder's token saves counts or ends the load
    loading = replace(upload, accepted=1)
    assert not repository.save_progress(loading, token="t2", added=1, lease_until=now)
    assert not repository.finish_upload(replace(loading, status="accepted"), token="t2", added=0)
    assert repository.save_progress(loading, token="t3", added=1, lease_until=now)
    assert repository.finish_upload(replace(loading, status="accepted"), token="t3", added=0)
    got = repository.get(cid)
    assert got is not None
    assert (got.counts.total, got.counts.queued) == (1, 1)
    second = replace(upload, upload_id="u_2", key=f"campaigns/{cid}/u_2.csv")
    assert repository.claim_upload(second, token="t4", holding=None, now=now, lease_until=now)  # free again
