"""Sign-in by SMS code through the HTTP API on moto (contract §1, ``AuthMode=otp``).

The codes are read where the SMS gateway would take them: the SendSms queue.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chatflow.adapters import aws
from chatflow.adapters.identity_store import DynamoVerificationRepository
from chatflow.domain.clock import utc_now
from chatflow.domain.otp import CODES_PER_HOUR, MAX_TRIES, Verification, hash_code
from chatflow.errors import RateLimited, Throttled
from local.runtime import LocalFunction
from local.specs import REGION
from local.stack import InProcessStack
from local.template import ROOT, Template
from tests.integration.conftest import ApiClient, assert_error
from tests.integration.test_concurrency import run_together

ALICE = "+14155550101"
BOB = "+14155550102"
CODE_IN_TEXT = re.compile(r"\b(\d{6})\b")

# The template declares the SendSms queue the identity function sends codes to; until it
# does, the otp-mode tests cannot run.
needs_send_sms_queue = pytest.mark.skipif(
    "SendSmsQueue" not in Template.load().of_type("AWS::SQS::Queue"),
    reason="template.yaml does not declare SendSmsQueue yet",
)


class SmsQueue:
    """The SendSms queue, read the way the gateway would."""

    def __init__(self) -> None:
        self._sqs = boto3.client("sqs", region_name=REGION)
        self._url = self._sqs.get_queue_url(QueueName="SendSmsQueue")["QueueUrl"]

    def take(self) -> list[dict[str, Any]]:
        """Every command waiting on the queue (removed from it), oldest first."""
        commands: list[dict[str, Any]] = []
        while True:
            response = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10)
            messages = response.get("Messages", [])
            if not messages:
                return commands
            for message in messages:
                commands.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])

    def code_for(self, phone: str) -> str:
        """The code in the last SMS sent to ``phone``."""
        texts = [c["text"] for c in self.take() if c.get("phoneNumber") == phone]
        assert texts, f"no SMS for {phone}"
        match = CODE_IN_TEXT.search(texts[-1])
        assert match is not None, texts[-1]
        return match.group(1)


@pytest.fixture
def otp_api() -> Iterator[ApiClient]:
    """The stack with the template's default auth mode, otp."""
    with mock_aws():
        yield ApiClient(InProcessStack.create())


@pytest.fixture
def queue(otp_api: ApiClient) -> SmsQueue:
    return SmsQueue()


def ask_code(api: ApiClient, phone: str) -> Any:
    return api.call("POST", "/v1/verifications", {"phoneNumber": phone})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# ---- otp mode (the default) ----------------------------------------------------------------


@needs_send_sms_queue
def test_asking_for_a_code_answers_202_and_queues_the_sms(otp_api: ApiClient, queue: SmsQueue) -> None:
    # Given a number written in a local format, and no token
    # When a code is asked for
    response = ask_code(otp_api, "(415) 555-0101")

    # Then the answer is 202 with the E.164 number and the code's lifetime
    assert response.status == 202, response.body
    assert response.json() == {"phoneNumber": ALICE, "expiresInSeconds": 300}
    # And one transactional SendSms command carries a 6-digit code to that number
    [command] = queue.take()
    assert set(command) == {"commandId", "phoneNumber", "text", "messageType", "metadata", "validUntil"}
    assert re.fullmatch(r"otp-[0-9a-f]{32}", command["commandId"])
    assert command["phoneNumber"] == ALICE
    assert CODE_IN_TEXT.search(command["text"])
    assert command["messageType"] == "transactional"
    assert command["metadata"] == {"purpose": "sign-in"}
    # The gateway drops the code once it has expired (SmsExpired) rather than send it late
    valid_until = datetime.fromisoformat(command["validUntil"].replace("Z", "+00:00"))
    assert timedelta(seconds=290) < valid_until - datetime.now(UTC) <= timedelta(seconds=300)


@needs_send_sms_queue
def test_the_code_from_the_sms_signs_in_and_creates_the_user(otp_api: ApiClient, queue: SmsQueue) -> None:
    # Given a code sent to a new number
    assert ask_code(otp_api, ALICE).status == 202
    code = queue.code_for(ALICE)

    # When it is used to sign in
    response = otp_api.call("POST", "/v1/sessions", {"phoneNumber": ALICE, "code": code})

    # Then a session starts for a new user, and its token works
    assert response.status == 201, response.body
    assert response.json()["user"]["phoneNumber"] == ALICE
    me = otp_api.call("GET", "/v1/users/me", token=response.json()["token"])
    assert me.status == 200, me.body


@needs_send_sms_queue
def test_a_used_code_is_401_invalid_code(otp_api: ApiClient, queue: SmsQueue) -> None:
    # Given a code already used to sign in
    ask_code(otp_api, ALICE)
    code = queue.code_for(ALICE)
    first = otp_api.call("POST", "/v1/sessions", {"phoneNumber": ALICE, "code": code})
    assert first.status == 201, first.body

    # When it is used again
    again = otp_api.call("POST", "/v1/sessions", {"phoneNumber": ALICE, "code": code})

    # Then it is refused
    assert_error(again, 401, "invalid_code")


@needs_send_sms_queue
def test_a_wrong_code_is_401_invalid_code(otp_api: ApiClient, queue: SmsQueue) -> None:
    # Given a code sent
    ask_code(otp_api, ALICE)
    code = queue.code_for(ALICE)

    # When another code is tried
    response = otp_api.call("POST", "/v1/sessions", {"phoneNumber": ALICE, "code": wrong(code)})

    # Then it is 401 invalid_code, saying how many tries are left
    error = assert_error(response, 401, "invalid_code")
    assert "4 tries left" in error["message"]


@needs_send_sms_queue
def test_the_fifth_wrong_code_burns_the_code(otp_api: ApiClient, queue: SmsQueue) -> None:
    # Given 4 wrong tries
    ask_code(otp_api, ALICE)
    code = queue.code_for(ALICE)
    for _ in range(MAX_TRIES - 1):
        tried = otp_api.call("POST", "/v1/sessions", {"phoneNumber": ALICE, "code": wrong(code)})
        assert_error(tried, 401, "invalid_code")

    # When a fifth wrong code is tried
    fifth = otp_api.call("POST", "/v1/sessions", {"phoneNumber": ALICE, "code": wrong(code)})

    # Then it says to ask for a new code, and the right code no longer works
    assert "new one" in assert_error(fifth, 401, "invalid_code")["message"]
    right = otp_api.call("POST", "/v1/sessions", {"phoneNumber": ALICE, "code": code})
    assert_error(right, 401, "invalid_code")


@needs_send_sms_queue
def test_signing_in_without_a_code_is_400_naming_the_code_field(otp_api: ApiClient, queue: SmsQueue) -> None:
    # Given a code sent
    ask_code(otp_api, ALICE)

    # When signing in with the phone number alone
    response = otp_api.call("POST", "/v1/sessions", {"phoneNumber": ALICE})

    # Then it is a validation error on the code field
    error = assert_error(response, 400, "validation_error")
    assert [d["field"] for d in error["details"]] == ["code"]


@needs_send_sms_queue
def test_the_sixth_code_within_an_hour_is_429_with_retry_after(otp_api: ApiClient, queue: SmsQueue) -> None:
    # Given 5 codes sent to a number
    for _ in range(CODES_PER_HOUR):
        assert ask_code(otp_api, ALICE).status == 202
    queue.take()

    # When a sixth is asked for
    response = ask_code(otp_api, ALICE)

    # Then it is 429 with Retry-After in seconds (under an hour), and no SMS goes out
    assert_error(response, 429, "rate_limited")
    retry_after = {k.lower(): v for k, v in response.headers.items()}["retry-after"]
    assert 3000 < int(retry_after) <= 3600
    assert queue.take() == []


@needs_send_sms_queue
def test_an_invalid_number_is_400_and_gets_no_sms(otp_api: ApiClient, queue: SmsQueue) -> None:
    # Given text that is no phone number
    # When a code is asked for it
    response = ask_code(otp_api, "12")

    # Then it is 400 invalid_phone_number and nothing is queued
    assert_error(response, 400, "invalid_phone_number")
    assert queue.take() == []


# ---- phone mode ---------------------------------------------------------------------------


def test_phone_mode_answers_409_code_not_required_and_sends_nothing(api: ApiClient) -> None:
    # Given the stack in phone mode (the api fixture)
    # When a code is asked for
    response = ask_code(api, ALICE)

    # Then it is 409 code_not_required, pointing at POST /v1/sessions, and no SMS is queued
    error = assert_error(response, 409, "code_not_required")
    assert "POST /v1/sessions" in error["message"]
    assert SmsQueue().take() == []


def test_phone_mode_signs_in_whatever_the_code(api: ApiClient) -> None:
    # Given the stack in phone mode
    # When a number signs in with some code
    response = api.call("POST", "/v1/sessions", {"phoneNumber": ALICE, "code": "000000"})

    # Then the number alone signs it in
    assert response.status == 201, response.body


def test_phone_mode_needs_no_send_sms_queue_url(
    stack: InProcessStack, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the identity function's environment without the queue's URL
    spec = stack.functions["IdentityFunction"].spec
    environment = {k: v for k, v in spec.environment.items() if k != "SEND_SMS_QUEUE_URL"}
    base = {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
    ask_for_a_code = json.loads((ROOT / "events" / "identity_start_verification.json").read_text())

    def cold_start(mode: str) -> LocalFunction:
        trimmed = replace(
            spec, logical_id=f"IdentityWithoutQueue{mode}", environment=environment | {"AUTH_MODE": mode}
        )
        function = LocalFunction(trimmed, base)
        function.module  # noqa: B018 - loads the module
        return function

    # When it starts in phone mode, Then it loads and needs no queue to answer
    assert cold_start("phone").invoke(ask_for_a_code)["statusCode"] == 409

    # When it starts in otp mode, Then it loads too, but sending a code fails, naming the variable
    otp = cold_start("otp")
    caplog.clear()
    assert otp.invoke(ask_for_a_code)["statusCode"] == 500
    assert "SEND_SMS_QUEUE_URL is not set" in caplog.text


# ---- the store, under concurrency -----------------------------------------------------------


def users_table(stack: InProcessStack) -> str:
    return stack.functions["IdentityFunction"].spec.environment["USERS_TABLE"]


@pytest.fixture
def store(stack: InProcessStack) -> DynamoVerificationRepository:
    """The verification store over the stack's users table (each moto request is atomic: moto_patches)."""
    return DynamoVerificationRepository(users_table(stack), aws.dynamodb(REGION))


def pending(phone: str, code: str = "123456") -> Verification:
    return Verification(phone, hash_code(phone, code), utc_now() + timedelta(minutes=5))


class ReadTogether:
    """A DynamoDB client on which the first read of a number's send log by each thread
    waits for every other thread's: all requests see the same log, the worst race."""

    def __init__(self, client: Any, parties: int) -> None:
        self._client = client
        self._barrier = threading.Barrier(parties)
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_item(self, **kwargs: Any) -> Any:
        result = self._client.get_item(**kwargs)
        if kwargs["Key"]["PK"]["S"].startswith("OTPSENT#") and not getattr(self._local, "waited", False):
            self._local.waited = True
            self._barrier.wait(timeout=10)
        return result


def test_concurrent_code_requests_never_exceed_the_hourly_limit(stack: InProcessStack) -> None:
    # Given 10 requests for a code for one number that all read its send log at once
    racing_client: Any = ReadTogether(aws.dynamodb(REGION), 10)
    racing = DynamoVerificationRepository(users_table(stack), racing_client)
    now = utc_now()

    def start(store: DynamoVerificationRepository) -> bool:
        try:
            store.start(pending(ALICE), now=now, per_hour=CODES_PER_HOUR)
        except (RateLimited, Throttled):
            return False
        return True

    # When they run together, and then more requests come one at a time
    raced = run_together([partial(start, racing) for _ in range(10)])
    calm = DynamoVerificationRepository(users_table(stack), aws.dynamodb(REGION))
    later = [start(calm) for _ in range(CODES_PER_HOUR + 1)]

    # Then no more than 5 codes were granted in all, and no granted slot was lost
    assert 1 <= raced.count(True) <= CODES_PER_HOUR
    assert raced.count(True) + later.count(True) == CODES_PER_HOUR


def test_concurrent_wrong_tries_each_get_their_own_count(store: DynamoVerificationRepository) -> None:
    # Given a pending code
    store.start(pending(BOB), now=utc_now(), per_hour=CODES_PER_HOUR)

    # When 10 wrong tries are counted at the same moment
    counts = run_together([partial(store.record_failure, BOB) for _ in range(10)])

    # Then each got a distinct count: no two tries share one
    assert sorted(counts) == list(range(1, 11))


def test_the_pending_code_expires_by_ttl_and_stores_no_code(
    stack: InProcessStack, store: DynamoVerificationRepository
) -> None:
    # Given a code stored for a number
    verification = pending(ALICE, "654321")
    store.start(verification, now=utc_now(), per_hour=CODES_PER_HOUR)

    # When its item is read from the table
    stored = store.get(ALICE)
    key = {"PK": {"S": f"OTP#{ALICE}"}, "SK": {"S": "OTP"}}
    item = aws.dynamodb(REGION).get_item(TableName=users_table(stack), Key=key)["Item"]

    # Then it holds the hash only (expiry kept to the millisecond), and a TTL at its expiry
    assert stored is not None
    assert stored == replace(verification, expires_at=stored.expires_at)
    assert abs(stored.expires_at - verification.expires_at) < timedelta(milliseconds=1)
    assert "654321" not in json.dumps(item)
    assert int(item["ttl"]["N"]) >= int(verification.expires_at.timestamp())
