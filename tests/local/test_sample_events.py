"""Every sample under events/ goes through ``make invoke`` (``local.invoke``) against a running
local stack, and does what it says: each test seeds what its sample needs, invokes it, and
asserts what a user would see (an answer, a row, an SMS at the fake provider, a frame on a
socket, an event on the bus).

A sample names fixed ids (Alice's number, the direct chat of Alice and Bob, a campaign, a
connection): where the stack makes its own ids (campaigns, uploads, connections, session
tokens, the webhook secret), the test puts the real one into a copy of the sample, as a user
would edit the file. ``test_every_trigger_of_every_function_has_a_sample`` checks, from
template.yaml, that each trigger has a sample and that stream samples pass their filter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

import pytest
from websockets.sync.client import ClientConnection, connect

from chatflow.application.campaign_loading import job_of_object
from chatflow.domain.chats import direct_chat_id
from chatflow.domain.sessions import hash_token
from chatflow.domain.webhooks import STOP_REPLY
from local import invoke
from local.stack_server import StackServer
from local.template import ROOT
from tests.local.conftest import Lines, eventually, free_config, http

EVENTS = ROOT / "events"
ALICE, BOB, CAROL, DAVE = "+14155550101", "+14155550102", "+14155550103", "+14155550104"
DIRECT = direct_chat_id(ALICE, BOB)  # the chat the samples name
SAMPLE_CAMPAIGN = "c_0123456789abcdef0123456789abcdef"
SAMPLE_CONNECTION = "L0SM9cOFvHcCIhw="
SAMPLE_TOKEN = "3q2-example-token"
SAMPLE_TOKEN_HASH = "0" * 64
COVERED: set[str] = set()


def covers(*samples: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Marks the samples a test runs: every file under events/ must be run by one."""
    COVERED.update(samples)
    return lambda test: test


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    """``make run`` on free ports: phone mode, Alice an operator, a provider that never fails
    and sends no receipts of its own (the receipt sample is the only one)."""
    config = free_config(
        tmp_path_factory.mktemp("samples"),
        persist=False,
        operators=ALICE,
        provider_environ={
            "CHATFLOW_FAKE_FAILURE_RATE": "0",
            "CHATFLOW_FAKE_DELAY_MS": "0-5",
            "CHATFLOW_FAKE_RECEIPT_DELAY_MS": "3600000",
        },
    )
    with StackServer(config, log=Lines()) as server:
        yield server


@dataclass(frozen=True)
class Invoked:
    code: int
    result: Any
    log: str

    @property
    def body(self) -> Any:
        return json.loads(self.result["body"])


class Samples:
    """``make invoke FN=<function> EVENT=events/<sample>`` against the running stack."""

    def __init__(
        self,
        stack: StackServer,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        self.stack, self._tmp, self._capsys = stack, tmp_path, capsys
        monkeypatch.setenv("CHATFLOW_STATE_DIR", str(stack.config.state_dir))
        monkeypatch.delenv("CHATFLOW_PARAMETER_OVERRIDES", raising=False)
        self._monkeypatch = monkeypatch

    def invoke(self, function: str, sample: str, edits: dict[str, str] | None = None) -> Invoked:
        text = (EVENTS / sample).read_text(encoding="utf-8")
        for old, new in (edits or {}).items():
            assert old in text, f"{sample} has no {old!r}"
            text = text.replace(old, new)
        path = self._tmp / sample
        path.write_text(text, encoding="utf-8")
        self._capsys.readouterr()
        code = invoke.main([function, str(path)])
        out = self._capsys.readouterr()
        return Invoked(code, json.loads(out.out), out.err)

    def override(self, overrides: str) -> None:
        self._monkeypatch.setenv("CHATFLOW_PARAMETER_OVERRIDES", overrides)

    # ---- seeding and looking, from outside, as a user would ---------------------------------

    @property
    def api(self) -> str:
        return str(self.stack.outputs["HttpApiUrl"])

    def sign_in(self, phone: str) -> str:
        status, session = http("POST", f"{self.api}/v1/sessions", {"phoneNumber": phone})
        assert status == 201, session
        return str(session["token"])

    def call(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        return http(method, f"{self.api}{path}", body, {"authorization": f"Bearer {token}"})

    def outbox(self, to: str) -> list[dict[str, Any]]:
        provider = self.stack.outputs["SmsProviderUrl"]
        return list(http("GET", f"{provider}/messages?to={quote(to)}")[1]["items"])

    def item(self, table_output: str, pk: str, sk: str) -> dict[str, Any] | None:
        table = self.stack.outputs[table_output]
        key = {"PK": {"S": pk}, "SK": {"S": sk}}
        found = self.stack.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)
        item: dict[str, Any] | None = found.get("Item")
        return item

    def socket(self, token: str) -> ClientConnection:
        return connect(f"{self.stack.outputs['WebSocketUrl']}?token={quote(token)}", legacy=True)

    def connection_ids(self, phone: str) -> set[str]:
        presence = self.item("ConnectionsTableName", f"USER#{phone}", "PRESENCE") or {}
        return set((presence.get("connections") or {}).get("M", {}))

    def connected(self, phone: str) -> tuple[ClientConnection, str, str]:
        """An open socket of ``phone``, its connection id and its session's token hash."""
        token = self.sign_in(phone)
        before = self.connection_ids(phone)
        socket = self.socket(token)
        new = eventually(lambda: self.connection_ids(phone) - before)
        return socket, next(iter(new)), hash_token(token)

    def campaign(self, token: str, name: str) -> str:
        body = {"name": name, "template": "Hi {{name}}, your code is {{code}}"}
        status, campaign = self.call("POST", "/v1/campaigns", token, body)
        assert status == 201, campaign
        return str(campaign["campaignId"])

    def sign(self, text: str) -> str:
        """The sample's body signed with the stack's webhook secret, as the provider signs."""
        secret_arn = self.stack.outputs["SmsProviderSecretArn"]
        secret = self.stack.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
        body = json.loads(text)["body"].encode()
        return hmac.new(json.loads(secret)["webhookSecret"].encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def samples(
    stack: StackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Samples:
    return Samples(stack, tmp_path, monkeypatch, capsys)


def frame(
    socket: ClientConnection, accept: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> dict[str, Any]:
    """The first frame ``accept`` takes; earlier frames are skipped."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            received = json.loads(socket.recv(timeout=remaining))
        except TimeoutError:
            break
        if accept(received):
            return dict(received)
    pytest.fail("the expected frame did not arrive")


CSV = b"iccid,name,code\r\n89000000000000000001,Ann,A1\r\n89000000000000000002,Ben,B2\r\n"


class NoNotifications:
    """The campaign bucket without its S3 notification, so that an object put by the test is
    noticed only by the sample that says it was created."""

    def __init__(self, stack: StackServer) -> None:
        self.s3 = stack.client("s3")
        self.bucket = stack.outputs["CampaignBucketName"]

    def __enter__(self) -> NoNotifications:
        self.saved = self.s3.get_bucket_notification_configuration(Bucket=self.bucket)
        self.saved.pop("ResponseMetadata", None)
        self.s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration={})
        return self

    def put(self, key: str) -> str:
        return str(self.s3.put_object(Bucket=self.bucket, Key=key, Body=CSV)["ETag"]).strip('"')

    def __exit__(self, *exc: object) -> None:
        self.s3.put_bucket_notification_configuration(
            Bucket=self.bucket, NotificationConfiguration=self.saved
        )


# ---- HTTP API ---------------------------------------------------------------------------------


@covers("api_meta_health.json", "api_meta_openapi.json")
def test_the_meta_samples_answer_the_health_and_the_openapi_document(samples: Samples) -> None:
    health = samples.invoke("ApiMetaFunction", "api_meta_health.json")
    assert (health.code, health.result["statusCode"], health.body) == (0, 200, {"status": "ok"})
    assert "ApiMetaFunction  make invoke" in health.log
    assert "answered 200" in health.log

    document = samples.invoke("ApiMetaFunction", "api_meta_openapi.json")
    assert document.result["statusCode"] == 200
    assert document.body["openapi"].startswith("3.")
    assert {"/v1/chats", "/v1/campaigns", "/v1/sms/receipts"} <= set(document.body["paths"])


@covers("authorizer_http_request.json")
def test_the_http_authorizer_sample_puts_the_caller_of_a_valid_token_in_the_context(samples: Samples) -> None:
    # Given the sample as it is: its token is no session's
    anonymous = samples.invoke("AuthorizerFunction", "authorizer_http_request.json")
    # Then the request goes on without a caller (the function answers 401 itself)
    assert anonymous.result == {"isAuthorized": True}

    # Given Alice's real token in it, Then she is the caller
    token = samples.sign_in(ALICE)
    alice = samples.invoke("AuthorizerFunction", "authorizer_http_request.json", {SAMPLE_TOKEN: token})
    assert alice.result["isAuthorized"] is True
    assert alice.result["context"]["phoneNumber"] == ALICE
    assert alice.result["context"]["tokenHash"] == hash_token(token)


@covers("identity_start_verification.json")
def test_the_verification_sample_runs_in_the_stacks_auth_mode_and_sends_a_code_in_otp_mode(
    samples: Samples,
) -> None:
    # Given the running stack in phone mode (the template's default is otp), When the sample asks
    # for a code, Then the function answers as the stack's does: no code is needed
    as_the_stack = samples.invoke("IdentityFunction", "identity_start_verification.json")
    assert as_the_stack.result["statusCode"] == 409
    assert as_the_stack.body["error"]["code"] == "code_not_required"

    # Given otp mode for this call
    samples.override("AuthMode=otp")
    before = len(samples.outbox(ALICE))

    # When the sample asks for a code for Alice
    asked = samples.invoke("IdentityFunction", "identity_start_verification.json")

    # Then it is accepted, and the SendSms command it queued reaches her phone with a code
    assert asked.code == 0, asked.log
    assert asked.result["statusCode"] == 202, asked.result
    texts = eventually(lambda: samples.outbox(ALICE)[before:])
    assert any(char.isdigit() for char in texts[-1]["text"]), texts


@covers("identity_create_session.json", "identity_get_me.json")
def test_the_session_sample_signs_alice_in_and_the_profile_sample_reads_her(samples: Samples) -> None:
    created = samples.invoke("IdentityFunction", "identity_create_session.json")
    assert created.result["statusCode"] == 201, created.result
    token = created.body["token"]
    # The token works on the API
    status, me = samples.call("GET", "/v1/users/me", token)
    assert (status, me["phoneNumber"]) == (200, ALICE)

    profile = samples.invoke("IdentityFunction", "identity_get_me.json")
    assert profile.result["statusCode"] == 200
    assert profile.body["phoneNumber"] == ALICE


@covers("chats_create_direct.json", "chats_list_chats.json")
def test_the_chat_samples_create_alice_and_bobs_chat_and_list_it(samples: Samples) -> None:
    created = samples.invoke("ChatsFunction", "chats_create_direct.json")
    assert created.result["statusCode"] in (200, 201), created.result  # 200: it existed already
    assert created.body["chatId"] == DIRECT
    # Bob sees it
    status, bobs = samples.call("GET", "/v1/chats", samples.sign_in(BOB))
    assert status == 200
    assert DIRECT in [c["chatId"] for c in bobs["items"]]

    listed = samples.invoke("ChatsFunction", "chats_list_chats.json")
    assert listed.result["statusCode"] == 200
    assert DIRECT in [c["chatId"] for c in listed.body["items"]]


@covers("chats_send_message.json", "chats_send_direct_message.json")
def test_the_message_samples_store_messages_the_other_member_reads(samples: Samples) -> None:
    alice = samples.sign_in(ALICE)
    assert samples.call("POST", "/v1/chats", alice, {"type": "direct", "members": [BOB]})[0] in (200, 201)

    sent = samples.invoke("ChatsFunction", "chats_send_message.json")
    assert sent.result["statusCode"] == 201, sent.result
    status, page = samples.call("GET", f"/v1/chats/{DIRECT}/messages", samples.sign_in(BOB))
    assert status == 200
    assert sent.body["messageId"] in [m["messageId"] for m in page["items"]]

    direct = samples.invoke("ChatsFunction", "chats_send_direct_message.json")
    assert direct.result["statusCode"] == 201, direct.result
    assert direct.body["chatId"] == direct_chat_id(ALICE, DAVE)
    status, daves = samples.call("GET", f"/v1/chats/{direct.body['chatId']}/messages", samples.sign_in(DAVE))
    assert [m["text"] for m in daves["items"]] == ["Hi Dave, it's Alice"]


@covers("chats_search_messages.json")
def test_the_search_sample_finds_a_message_of_alice(samples: Samples) -> None:
    # Given a message of Alice's that the stack has indexed
    alice = samples.sign_in(ALICE)
    samples.call("POST", "/v1/chats", alice, {"type": "direct", "members": [BOB]})
    status, sent = samples.call(
        "POST",
        f"/v1/chats/{DIRECT}/messages",
        alice,
        {"text": "Hello chat, lunch at noon?", "clientMessageId": "s-1"},
    )
    assert status in (200, 201), sent

    def indexed() -> bool:
        found = samples.call("GET", "/v1/search?q=hello%20chat", alice)[1]["items"]
        return sent["messageId"] in [m["messageId"] for m in found]

    eventually(indexed)

    # When the sample searches "hello chat", Then it is found
    found = samples.invoke("ChatsFunction", "chats_search_messages.json")
    assert found.result["statusCode"] == 200
    assert sent["messageId"] in [m["messageId"] for m in found.body["items"]]


@covers("campaigns_create.json", "campaigns_list.json")
def test_the_campaign_samples_create_a_campaign_and_list_it(samples: Samples) -> None:
    created = samples.invoke("CampaignsFunction", "campaigns_create.json")
    assert created.result["statusCode"] == 201, created.result
    campaign_id = created.body["campaignId"]
    status, campaign = samples.call("GET", f"/v1/campaigns/{campaign_id}", samples.sign_in(ALICE))
    assert (status, campaign["name"]) == (200, "November launch")

    listed = samples.invoke("CampaignsFunction", "campaigns_list.json")
    assert listed.result["statusCode"] == 200
    assert campaign_id in [c["campaignId"] for c in listed.body["items"]]


@covers("campaigns_preview.json")
def test_the_preview_sample_renders_its_template_for_one_recipient(samples: Samples) -> None:
    previewed = samples.invoke("CampaignsFunction", "campaigns_preview.json")
    assert previewed.result["statusCode"] == 200, previewed.result
    assert previewed.body == {
        "text": "Hi Ana, your code is 4821",
        "encoding": "GSM-7",
        "segments": 1,
        "characters": 25,
    }


@covers("campaigns_pause.json", "campaigns_estimate.json")
def test_the_control_samples_pause_a_campaign_and_estimate_it(samples: Samples) -> None:
    # Given a campaign of the sample operator's (the samples name a campaign id of their own)
    created = samples.invoke("CampaignsFunction", "campaigns_create.json")
    campaign_id = created.body["campaignId"]
    edits = {"c_0123456789abcdef0123456789abcdef": campaign_id}

    # When the samples pause it and ask for its estimate
    paused = samples.invoke("CampaignsFunction", "campaigns_pause.json", edits)
    estimate = samples.invoke("CampaignsFunction", "campaigns_estimate.json", edits)

    # Then it is paused (as GET says too), and nothing is loaded yet
    assert paused.result["statusCode"] == 200, paused.result
    assert paused.body["status"] == "paused"
    assert (
        samples.call("GET", f"/v1/campaigns/{campaign_id}", samples.sign_in(ALICE))[1]["status"] == "paused"
    )
    assert estimate.result["statusCode"] == 200, estimate.result
    assert estimate.body == {"messages": 0, "segments": 0, "encodings": {"GSM-7": 0, "UCS-2": 0}}


# ---- SMS gateway --------------------------------------------------------------------------------


@covers("send_sms_commands.json")
def test_the_send_sms_sample_sends_through_the_stacks_provider_and_rejects_the_malformed_record(
    samples: Samples,
) -> None:
    # Given the sample's command under an id of this test's (the receipt test sends order-42 too)
    before = len(samples.outbox(ALICE))
    edits = {"order-42-confirmation": "order-42-sample"}

    # When the batch is handled
    sent = samples.invoke("SendSmsFunction", "send_sms_commands.json", edits)

    # Then the command went to the running stack's fake provider (not the template's default
    # URL), the malformed record is rejected, and nothing is left to retry
    assert sent.code == 0, sent.log
    assert sent.result == {"batchItemFailures": []}
    assert "every record handled" in sent.log
    assert "Your order 42 is confirmed." in [m["text"] for m in samples.outbox(ALICE)[before:]]
    state = samples.item("SmsTableName", "CMD#order-42-sample", "STATE")
    assert state is not None
    assert state["status"]["S"] == "sent"
    assert "command rejected" in sent.log


@covers("sms_dead_letters_poison.json")
def test_the_dead_letter_sample_ends_its_command_as_failed(samples: Samples) -> None:
    ended = samples.invoke("SmsDeadLettersFunction", "sms_dead_letters_poison.json")
    assert ended.result == {"batchItemFailures": []}
    state = samples.item("SmsTableName", "CMD#order-43-confirmation", "STATE")
    assert state is not None
    assert state["status"]["S"] == "failed"
    assert "dead_lettered" in json.dumps(state)


@covers("sms_events_stream.json")
def test_the_sms_events_sample_puts_its_event_on_the_bus(samples: Samples) -> None:
    # Given a queue that receives the bus's SmsSent events of the sample's command
    sqs, events = samples.stack.client("sqs"), samples.stack.client("events")
    queue = sqs.create_queue(QueueName="samples-sms-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = samples.stack.outputs["EventBusName"]
    pattern = {"source": ["chatflow.sms"], "detail": {"commandId": ["order-42-confirmation"]}}
    events.put_rule(Name="samples-sms-events", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="samples-sms-events", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    sample = json.loads((EVENTS / "sms_events_stream.json").read_text())
    sent_at = sample["Records"][0]["dynamodb"]["NewImage"]["sentAt"]["S"]

    # When the sample (the command's record moving from sending to sent) is handled
    published = samples.invoke("SmsEventsFunction", "sms_events_stream.json")
    assert published.result == {"batchItemFailures": []}

    # Then SmsSent is on the bus, with the record's send time
    def sms_sent() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        found = [json.loads(m["Body"]) for m in messages]
        return [e for e in found if e["detail-type"] == "SmsSent" and e["detail"].get("sentAt") == sent_at]

    event = eventually(sms_sent)[0]
    assert event["detail"]["providerMessageId"]


@covers("sms_webhooks_receipt.json")
def test_the_receipt_sample_marks_its_command_delivered(samples: Samples) -> None:
    # Given the sample's command sent through the stack's gateway
    command = {
        "commandId": "order-42-confirmation",
        "phoneNumber": ALICE,
        "text": "Your order 42 is confirmed.",
    }
    sqs = samples.stack.client("sqs")
    sqs.send_message(QueueUrl=samples.stack.outputs["SendSmsQueueUrl"], MessageBody=json.dumps(command))

    def sent() -> dict[str, Any] | None:
        state = samples.item("SmsTableName", "CMD#order-42-confirmation", "STATE")
        return state if state and state["status"]["S"] in ("sent", "delivered") else None

    eventually(sent)
    text = (EVENTS / "sms_webhooks_receipt.json").read_text()
    placeholder = json.loads(text)["headers"]["x-signature"]

    # When the provider's receipt arrives, signed with the stack's webhook secret
    received = samples.invoke(
        "SmsWebhooksFunction", "sms_webhooks_receipt.json", {placeholder: samples.sign(text)}
    )

    # Then the command has its delivery recorded
    assert received.result["statusCode"] == 200, received.result
    assert received.body == {"recorded": True}
    state = samples.item("SmsTableName", "CMD#order-42-confirmation", "STATE")
    assert state is not None
    assert state["delivery"]["S"] == "delivered"


@covers("sms_webhooks_inbound.json")
def test_the_inbound_sample_opts_carol_out_and_confirms_by_sms(samples: Samples) -> None:
    text = (EVENTS / "sms_webhooks_inbound.json").read_text()
    placeholder = json.loads(text)["headers"]["x-signature"]
    before = len(samples.outbox(CAROL))

    stopped = samples.invoke(
        "SmsWebhooksFunction", "sms_webhooks_inbound.json", {placeholder: samples.sign(text)}
    )

    assert stopped.result["statusCode"] == 200, stopped.result
    assert samples.item("SmsTableName", f"OPTOUT#{CAROL}", "OPTOUT") is not None
    reply = eventually(lambda: samples.outbox(CAROL)[before:])
    assert [m["text"] for m in reply] == [STOP_REPLY]


def test_a_webhook_sample_with_its_placeholder_signature_is_refused(samples: Samples) -> None:
    refused = samples.invoke("SmsWebhooksFunction", "sms_webhooks_receipt.json")
    assert refused.result["statusCode"] == 401
    assert refused.body["error"]["code"] == "invalid_signature"


# ---- campaigns ----------------------------------------------------------------------------------


def _upload(samples: Samples, token: str, campaign_id: str, upload_id: str) -> dict[str, Any] | None:
    status, upload = samples.call("GET", f"/v1/campaigns/{campaign_id}/uploads/{upload_id}", token)
    return upload if status == 200 and upload["status"] in ("accepted", "rejected") else None


@covers("campaign_loader_s3_upload.json")
def test_the_s3_sample_loads_the_uploaded_csv(samples: Samples) -> None:
    # Given a campaign and its CSV in the bucket, not yet noticed
    alice = samples.sign_in(ALICE)
    campaign_id = samples.campaign(alice, "from S3")
    sample = json.loads((EVENTS / "campaign_loader_s3_upload.json").read_text())
    record = sample["Records"][0]["s3"]
    key = unquote_plus(record["object"]["key"]).replace(SAMPLE_CAMPAIGN, campaign_id)
    with NoNotifications(samples.stack) as bucket:
        bucket.put(key)

    # When the sample says it was created
    noticed = samples.invoke(
        "CampaignLoaderFunction",
        "campaign_loader_s3_upload.json",
        {SAMPLE_CAMPAIGN: campaign_id, record["bucket"]["name"]: samples.stack.outputs["CampaignBucketName"]},
    )
    assert noticed.result == {"batchItemFailures": []}

    # Then its load job runs (on the stack's load queue) and both recipients are accepted
    job = job_of_object(key, record["object"]["eTag"])
    assert job is not None
    upload = eventually(lambda: _upload(samples, alice, campaign_id, job.upload_id), timeout=30)
    assert (upload["status"], upload["accepted"]) == ("accepted", 2), upload


@covers("campaign_loader_load_job.json")
def test_the_load_job_sample_loads_its_upload_in_the_invocation(samples: Samples) -> None:
    # Given a campaign, an upload ticket and its CSV in the bucket, not yet noticed
    alice = samples.sign_in(ALICE)
    campaign_id = samples.campaign(alice, "from the queue")
    status, ticket = samples.call("POST", f"/v1/campaigns/{campaign_id}/uploads", alice, {})
    assert status == 201, ticket
    sample_upload = json.loads(
        json.loads((EVENTS / "campaign_loader_load_job.json").read_text())["Records"][0]["body"]
    )
    with NoNotifications(samples.stack) as bucket:
        bucket.put(f"campaigns/{campaign_id}/{ticket['uploadId']}.csv")

    # When the sample's job is handled
    loaded = samples.invoke(
        "CampaignLoaderFunction",
        "campaign_loader_load_job.json",
        {SAMPLE_CAMPAIGN: campaign_id, sample_upload["uploadId"]: ticket["uploadId"]},
    )

    # Then the upload is loaded by that invocation
    assert loaded.result == {"batchItemFailures": []}, loaded.log
    upload = _upload(samples, alice, campaign_id, ticket["uploadId"])
    assert upload is not None
    assert (upload["status"], upload["accepted"]) == ("accepted", 2), upload


@covers("campaign_progress_sms_sent.json", "campaign_progress_sms_expired.json")
def test_the_progress_samples_move_their_recipients(samples: Samples) -> None:
    provider = samples.stack.outputs["SmsProviderUrl"]
    # Given a campaign whose two recipients are queued (the provider is down: none is sent)
    assert http("POST", f"{provider}/outage", {"seconds": 300})[0] == 202
    try:
        alice = samples.sign_in(ALICE)
        campaign_id = samples.campaign(alice, "progress")
        status, ticket = samples.call("POST", f"/v1/campaigns/{campaign_id}/uploads", alice, {})
        assert status == 201, ticket
        request = urllib.request.Request(ticket["uploadUrl"], data=CSV, method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        eventually(lambda: _upload(samples, alice, campaign_id, ticket["uploadId"]), timeout=30)

        def recipient(iccid: str) -> str:
            status, page = samples.call("GET", f"/v1/campaigns/{campaign_id}/recipients", alice)
            assert status == 200, page
            return next(str(r["status"]) for r in page["items"] if r["iccid"] == iccid)

        assert recipient("89000000000000000001") == recipient("89000000000000000002") == "queued"

        # When the gateway's SmsSent and SmsExpired samples arrive for them
        sent = samples.invoke(
            "CampaignProgressFunction", "campaign_progress_sms_sent.json", {SAMPLE_CAMPAIGN: campaign_id}
        )
        expired = samples.invoke(
            "CampaignProgressFunction", "campaign_progress_sms_expired.json", {SAMPLE_CAMPAIGN: campaign_id}
        )

        # Then each moves its recipient
        assert (sent.result, expired.result) == ({"applied": True}, {"applied": True})
        assert recipient("89000000000000000001") == "sent"
        assert recipient("89000000000000000002") == "expired"
    finally:
        http("POST", f"{provider}/outage", {"seconds": 0})


# ---- replies by SMS --------------------------------------------------------------------------------


@covers("forward_routes_sms_sent.json")
def test_the_forward_sent_sample_routes_bobs_sms_reply_into_the_direct_chat(samples: Samples) -> None:
    # Given the direct chat of Alice and Bob, and the sample's SmsSent of a forward to Bob,
    # dated now (a route is good for 24 hours after its send)
    alice = samples.sign_in(ALICE)
    assert samples.call("POST", "/v1/chats", alice, {"type": "direct", "members": [BOB]})[0] in (200, 201)
    sample = json.loads((EVENTS / "forward_routes_sms_sent.json").read_text())
    sent_at = sample["detail"]["sentAt"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    # When ForwardRoutesFunction gets it
    routed = samples.invoke("ForwardRoutesFunction", "forward_routes_sms_sent.json", {sent_at: now})

    # Then Bob's next SMS to ChatFlow is his message of that chat, via sms
    assert routed.result == {"recorded": True}
    provider = samples.stack.outputs["SmsProviderUrl"]
    status, delivered = http("POST", f"{provider}/inbound", {"from": BOB, "text": "sample reply"})
    assert status == 202, delivered
    assert (delivered["chatflow"]["action"], delivered["chatflow"]["chatId"]) == ("message", DIRECT)
    status, page = samples.call("GET", f"/v1/chats/{DIRECT}/messages", alice)
    assert status == 200, page
    newest = page["items"][0]
    assert (newest["sender"], newest["text"], newest["via"]) == (BOB, "sample reply", "sms")


# ---- projections and real time --------------------------------------------------------------------


@covers("chat_activity_stream.json")
def test_the_chat_activity_sample_puts_the_chat_in_both_inboxes(samples: Samples) -> None:
    sample = json.loads((EVENTS / "chat_activity_stream.json").read_text())
    image = sample["Records"][0]["dynamodb"]["NewImage"]
    chat_id, active_at = image["chatId"]["S"], image["lastActivityAt"]["S"]

    projected = samples.invoke("ChatActivityFunction", "chat_activity_stream.json")

    assert projected.result == {"batchItemFailures": []}
    for member in image["members"]["M"]:
        entry = samples.item("ChatsTableName", f"INBOX#{member}", f"CHAT#{chat_id}")
        assert entry is not None, member
        assert entry["GSI1SK"]["S"] == f"{active_at}#{chat_id}", (member, entry)


@covers("chat_activity_message_insert.json")
def test_the_message_insert_sample_indexes_its_words(samples: Samples) -> None:
    sample = json.loads((EVENTS / "chat_activity_message_insert.json").read_text())
    message = sample["Records"][0]["dynamodb"]["NewImage"]

    indexed = samples.invoke("ChatActivityFunction", "chat_activity_message_insert.json")

    assert indexed.result == {"batchItemFailures": []}
    rows = samples.stack.client("dynamodb").query(
        TableName=samples.stack.outputs["SearchTableName"],
        KeyConditionExpression="PK = :pk AND begins_with(SK, :word)",
        ExpressionAttributeValues={
            ":pk": {"S": f"CHAT#{message['chatId']['S']}"},
            ":word": {"S": f"lunch#{message['sentAt']['S']}"},
        },
    )["Items"]
    assert len(rows) == 1


@covers("fanout_chat_message.json")
def test_the_fanout_sample_posts_the_new_message_to_bob(samples: Samples) -> None:
    sample = json.loads((EVENTS / "fanout_chat_message.json").read_text())
    message = sample["Records"][0]["dynamodb"]["NewImage"]["lastMessage"]["M"]
    bob, _, _ = samples.connected(BOB)
    with bob:
        fanned = samples.invoke("FanoutFunction", "fanout_chat_message.json")
        assert fanned.result == {"batchItemFailures": []}
        new = frame(
            bob,
            lambda f: f["type"] == "message.new" and f["message"]["messageId"] == message["messageId"]["S"],
        )
    assert new["message"]["text"] == message["text"]["S"]


@covers("fanout_presence_online.json")
def test_the_presence_sample_tells_bob_that_alice_is_online(samples: Samples) -> None:
    bob_token = samples.sign_in(BOB)
    assert samples.call("POST", "/v1/chats", bob_token, {"type": "direct", "members": [ALICE]})[0] in (
        200,
        201,
    )
    bob, _, _ = samples.connected(BOB)
    with bob:
        fanned = samples.invoke("FanoutFunction", "fanout_presence_online.json")
        assert fanned.result == {"batchItemFailures": []}
        presence = frame(bob, lambda f: f["type"] == "presence" and f["phoneNumber"] == ALICE and f["online"])
    assert presence["online"] is True


@covers("forwards_wait_over.json")
def test_the_forward_sample_ends_a_wait_with_one_sms_of_what_is_unread(samples: Samples) -> None:
    # Given Alice's message to a member who never connected: the fan-out starts his wait
    offline = "+14155550177"
    alice = samples.sign_in(ALICE)
    status, chat = samples.call("POST", "/v1/chats", alice, {"type": "direct", "members": [offline]})
    assert status in (200, 201), chat
    status, message = samples.call(
        "POST",
        f"/v1/chats/{chat['chatId']}/messages",
        alice,
        {"text": "sample wait", "clientMessageId": "fw-1"},
    )
    assert status in (200, 201), message
    budget = eventually(
        lambda: samples.item("ConnectionsTableName", f"FWD#{chat['chatId']}#{offline}", "FWD")
    )
    assert budget["seq"]["N"] == str(message["seq"])

    # When the sample's job (for that chat, member and wait) comes back, the wait over
    edits = {DIRECT: chat["chatId"], BOB: offline}
    ended = samples.invoke("ForwardsFunction", "forwards_wait_over.json", edits)

    # Then one SMS of the unread message goes to him through the stack's gateway
    assert ended.result == {"batchItemFailures": []}, ended.log
    assert "SMS-forward wait over" in ended.log
    [sms] = eventually(lambda: samples.outbox(offline))
    assert sms["text"].endswith(": sample wait")


@covers("realtime_connections_connect.json", "realtime_connections_disconnect.json")
def test_the_connection_samples_record_and_forget_a_connection(samples: Samples) -> None:
    connection = "SampleConn01="
    edits = {SAMPLE_CONNECTION: connection}
    connected = samples.invoke("RealtimeConnectionsFunction", "realtime_connections_connect.json", edits)
    assert connected.result == {"statusCode": 200}
    assert samples.item("ConnectionsTableName", f"CONN#{connection}", "CONN") is not None
    assert connection in samples.connection_ids(ALICE)

    gone = samples.invoke("RealtimeConnectionsFunction", "realtime_connections_disconnect.json", edits)
    assert gone.result == {"statusCode": 200}
    assert samples.item("ConnectionsTableName", f"CONN#{connection}", "CONN") is None
    assert connection not in samples.connection_ids(ALICE)


@covers("authorizer_websocket_connect.json")
def test_the_websocket_authorizer_sample_allows_a_valid_token_only(samples: Samples) -> None:
    denied = samples.invoke("AuthorizerFunction", "authorizer_websocket_connect.json")
    assert denied.result["policyDocument"]["Statement"][0]["Effect"] == "Deny"

    allowed = samples.invoke(
        "AuthorizerFunction", "authorizer_websocket_connect.json", {SAMPLE_TOKEN: samples.sign_in(ALICE)}
    )
    assert allowed.result["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert allowed.result["context"]["phoneNumber"] == ALICE


@covers("realtime_actions_ping.json", "realtime_actions_default.json")
def test_the_ping_and_default_samples_answer_on_alices_socket(samples: Samples) -> None:
    alice, connection, token_hash = samples.connected(ALICE)
    edits = {SAMPLE_CONNECTION: connection, SAMPLE_TOKEN_HASH: token_hash}
    with alice:
        assert samples.invoke("RealtimeActionsFunction", "realtime_actions_ping.json", edits).result == {
            "statusCode": 200
        }
        assert frame(alice, lambda f: f["type"] == "pong") == {"type": "pong"}

        unknown = samples.invoke("RealtimeActionsFunction", "realtime_actions_default.json", edits)
        assert unknown.result == {"statusCode": 200}
        error = frame(alice, lambda f: f["type"] == "error")
    assert error["code"] != "unauthorized", error


@covers("realtime_actions_send_message.json", "realtime_actions_typing.json", "realtime_actions_receipt.json")
def test_the_chat_action_samples_send_type_and_read_in_a_chat(samples: Samples) -> None:
    # Given a group of Bob's with Alice and Carol, Bob's message in it, Alice and Bob connected
    bob_token = samples.sign_in(BOB)
    status, group = samples.call(
        "POST", "/v1/chats", bob_token, {"type": "group", "name": "samples", "members": [ALICE, CAROL]}
    )
    assert status == 201, group
    chat_id = group["chatId"]
    status, _ = samples.call(
        "POST", f"/v1/chats/{chat_id}/messages", bob_token, {"text": "Ready?", "clientMessageId": "b-1"}
    )
    assert status == 201
    alice, connection, token_hash = samples.connected(ALICE)
    bob, _, _ = samples.connected(BOB)
    edits = {SAMPLE_CONNECTION: connection, SAMPLE_TOKEN_HASH: token_hash, DIRECT: chat_id}
    with alice, bob:
        # When Alice reads Bob's message, Then Bob sees it read
        samples.invoke("RealtimeActionsFunction", "realtime_actions_receipt.json", edits)
        status_frame = frame(bob, lambda f: f["type"] == "message.status" and f["status"] == "read")
        assert (status_frame["status"], status_frame["by"], status_frame["upToSeq"]) == ("read", ALICE, 1)

        # When she sends a message over her socket, Then Bob gets it
        sent = samples.invoke("RealtimeActionsFunction", "realtime_actions_send_message.json", edits)
        assert sent.result == {"statusCode": 200}, sent.log
        frame(bob, lambda f: f["type"] == "message.new" and f["message"]["text"] == "On my way")

        # When she types, Then Bob sees it
        samples.invoke("RealtimeActionsFunction", "realtime_actions_typing.json", edits)
        typing = frame(bob, lambda f: f["type"] == "typing")
        assert typing == {"type": "typing", "chatId": chat_id, "phoneNumber": ALICE}


# ---- the samples as a whole --------------------------------------------------------------------


def test_every_sample_is_run_by_a_test() -> None:
    files = {p.name for p in EVENTS.glob("*.json")} - {"env.json"}
    assert files == COVERED
