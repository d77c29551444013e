"""Campaign control through the handlers on moto, with the real gateway calling a (fake) provider.

Pause, resume and cancel (and their refusals), sendAt, ratePerSecond, quietHours, the
estimate: each rule through the routes, the loader and SendSmsFunction, and the events
through CampaignProgressFunction, as the stack wires them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from moto import mock_aws

from chatflow.domain.campaign_control import QuietHours
from local.fake_provider import FakeProviderSettings, FakeSmsProvider
from local.stack import InProcessStack
from tests.integration.conftest import ApiClient, assert_error
from tests.integration.test_campaigns_api import NO_COUNTS, _load
from tests.integration.test_sms_gateway import Gateway

OPERATOR = "+14155550100"
USER = "+14155550101"
UK = "8944000000000000001"  # 89, then 44: a United Kingdom SIM
UK2 = "8944000000000000002"


class Control:
    """The stack with an operator, a fake provider, and the gateway's helpers."""

    def __init__(self, api: ApiClient, gateway: Gateway) -> None:
        self.api = api
        self.gateway = gateway
        self.token = api.sign_in(OPERATOR)

    def create(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "launch", "template": "Hi {{name}}"} | fields
        response = self.api.call("POST", "/v1/campaigns", body, token=self.token)
        assert response.status == 201, response.body
        return dict(response.json())

    def act(self, cid: str, action: str) -> Any:
        return self.api.call("POST", f"/v1/campaigns/{cid}/{action}", token=self.token)

    def get(self, cid: str) -> dict[str, Any]:
        response = self.api.call("GET", f"/v1/campaigns/{cid}", token=self.token)
        assert response.status == 200, response.body
        campaign = dict(response.json())
        counts = campaign["counts"]
        assert sum(v for k, v in counts.items() if k != "total") == counts["total"], counts
        return campaign

    def deliver_and_progress(self) -> list[dict[str, Any]]:
        """One batch to SendSmsFunction (when a command is due); its events to
        CampaignProgressFunction (as the bus rule would)."""
        attributes = self.gateway.sqs.get_queue_attributes(
            QueueUrl=self.gateway.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        if int(attributes["ApproximateNumberOfMessages"]):
            self.gateway.deliver()
        events = self.gateway.published()
        for event in events:
            self.api.stack.invoke("CampaignProgressFunction", event)
        return events

    def delayed(self) -> int:
        """How many commands wait in the queue as delayed messages."""
        sqs, url = self.gateway.sqs, self.gateway.queue_url
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesDelayed"])


@pytest.fixture
def control() -> Iterator[Control]:
    settings = FakeProviderSettings(
        failure_rate=0.0, min_delay_ms=0, max_delay_ms=1, hang_seconds=0.2, seed=1
    )
    provider = FakeSmsProvider(settings, log=lambda line: None)
    provider.start()
    try:
        with mock_aws():
            stack = InProcessStack.create(
                parameters={
                    "AuthMode": "phone",
                    "OperatorPhoneNumbers": OPERATOR,
                    "SmsProviderBaseUrl": provider.url,
                    "SmsRatePerSecond": "50",
                    # 10 sends in flight at most: a command bounced by its campaign's rate
                    # comes back within 1 + 10 / ratePerSecond seconds.
                    "SmsBatchConcurrency": "5",
                    "SmsMaxConcurrency": "2",
                }
            )
            yield Control(ApiClient(stack), Gateway(stack, provider))
    finally:
        provider.stop()


def _until(check: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.2)


# ---- pause, resume, cancel: the routes ----------------------------------------------------


def test_pause_resume_and_cancel_answer_the_campaign_with_its_new_status(control: Control) -> None:
    cid = control.create()["campaignId"]
    _load(control.api, cid, f"iccid,name\n{UK},Ada\n".encode())

    paused = control.act(cid, "pause")
    assert (paused.status, paused.json()["status"]) == (200, "paused")
    assert control.act(cid, "pause").json()["status"] == "paused"  # again: no change
    resumed = control.act(cid, "resume")
    assert (resumed.status, resumed.json()["status"]) == (200, "sending")
    cancelled = control.act(cid, "cancel")
    assert (cancelled.status, cancelled.json()["status"]) == (200, "cancelled")
    assert control.act(cid, "cancel").json()["status"] == "cancelled"
    assert control.get(cid)["status"] == "cancelled"


def test_a_cancelled_campaign_cannot_resume_pause_or_take_uploads(control: Control) -> None:
    cid = control.create()["campaignId"]
    control.act(cid, "cancel")

    error = assert_error(control.act(cid, "resume"), 409, "campaign_cancelled")
    assert "cancelled" in error["message"]
    assert_error(control.act(cid, "pause"), 409, "campaign_cancelled")
    upload = control.api.call("POST", f"/v1/campaigns/{cid}/uploads", token=control.token)
    assert_error(upload, 409, "campaign_cancelled")


def test_a_completed_campaign_cannot_be_paused_resumed_or_cancelled(control: Control) -> None:
    # Given a campaign whose only recipient was sent
    cid = control.create()["campaignId"]
    _load(control.api, cid, f"iccid,name\n{UK},Ada\n".encode())
    control.deliver_and_progress()
    assert control.get(cid)["status"] == "completed"

    # Then every control action is a 409 naming it completed
    for action in ("pause", "resume", "cancel"):
        error = assert_error(control.act(cid, action), 409, "campaign_completed")
        assert "completed" in error["message"]


def test_control_is_for_operators_and_known_campaigns(control: Control) -> None:
    cid = control.create()["campaignId"]
    user = control.api.sign_in(USER)
    for action in ("pause", "resume", "cancel"):
        assert_error(control.api.call("POST", f"/v1/campaigns/{cid}/{action}", token=user), 403, "forbidden")
        assert_error(control.act("c_unknown", action), 404, "not_found")
    assert_error(control.api.call("GET", f"/v1/campaigns/{cid}/estimate", token=user), 403, "forbidden")


# ---- the gateway obeys, commands already queued included -------------------------------------


def test_a_paused_campaigns_queued_command_is_held_uncounted_then_sent_after_resume(control: Control) -> None:
    # Given a campaign whose command is queued, then paused
    cid = control.create()["campaignId"]
    _load(control.api, cid, f"iccid,name\n{UK},Ada\n".encode())
    control.act(cid, "pause")

    # When the gateway gets the command
    control.deliver_and_progress()

    # Then nothing was sent, no attempt counted (no record at all), and it waits in the queue
    assert control.gateway.provider.outbox() == []
    assert control.gateway.record(f"cmp-{cid}-{UK}") == {}
    assert control.delayed() == 1
    assert control.get(cid)["counts"] == NO_COUNTS | {"total": 1, "queued": 1}

    # When the campaign resumes, the command comes back and is sent
    control.act(cid, "resume")
    _until(lambda: control.deliver_and_progress() is not None and control.get(cid)["counts"]["sent"] == 1)
    assert [m["to"] for m in control.gateway.provider.outbox()] == [UK]
    assert control.gateway.record(f"cmp-{cid}-{UK}")["attempts"] == "1"
    assert control.get(cid)["status"] == "completed"


def test_a_cancelled_campaigns_queued_commands_end_cancelled_and_are_counted(control: Control) -> None:
    # Given a campaign with two queued commands, then cancelled
    cid = control.create()["campaignId"]
    _load(control.api, cid, f"iccid,name\n{UK},Ada\n{UK2},Bob\n".encode())
    control.act(cid, "cancel")

    # When the gateway gets them
    events = control.deliver_and_progress()

    # Then nothing is sent; each ends in one SmsFailed "cancelled", permanent, with no attempt
    assert control.gateway.provider.outbox() == []
    assert (
        sorted((e["detail-type"], e["detail"]["errorCode"]) for e in events)
        == [("SmsFailed", "cancelled")] * 2
    )
    assert all(e["detail"]["permanent"] is True and e["detail"]["attempts"] == 0 for e in events)

    # And the recipients are cancelled, counted, the campaign stays cancelled without an error
    campaign = control.get(cid)
    assert campaign["counts"] == NO_COUNTS | {"total": 2, "cancelled": 2}
    assert (campaign["status"], campaign["lastError"]) == ("cancelled", None)
    recipients = control.api.call(
        "GET", f"/v1/campaigns/{cid}/recipients", token=control.token, query={"status": "cancelled"}
    ).json()["items"]
    assert sorted(r["iccid"] for r in recipients) == [UK, UK2]
    assert all(r["lastError"].startswith("cancelled: ") for r in recipients)


def test_recipients_loaded_after_a_pause_obey_it(control: Control) -> None:
    cid = control.create()["campaignId"]
    control.act(cid, "pause")

    upload = _load(control.api, cid, f"iccid,name\n{UK},Ada\n".encode())
    control.deliver_and_progress()

    assert upload["accepted"] == 1
    assert control.gateway.provider.outbox() == []
    assert control.get(cid)["status"] == "paused"


# ---- sendAt ---------------------------------------------------------------------------------


def test_a_campaign_with_a_future_send_at_is_scheduled_and_sends_nothing_before(control: Control) -> None:
    # Given a campaign scheduled an hour ahead, valid for a minute, and a loaded recipient
    send_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    campaign = control.create(sendAt=send_at.isoformat().replace("+00:00", "Z"), validFor=60)
    cid = campaign["campaignId"]
    assert campaign["status"] == "scheduled"
    assert campaign["sendAt"] == send_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    _load(control.api, cid, f"iccid,name\n{UK},Ada\n".encode())

    # When the gateway gets the command
    control.deliver_and_progress()

    # Then it is held, and its validity counts from sendAt (not from the load)
    assert control.gateway.provider.outbox() == []
    assert control.get(cid)["status"] == "scheduled"
    assert control.delayed() == 1


def test_the_loader_makes_commands_valid_from_send_at(control: Control) -> None:
    send_at = datetime.now(UTC) + timedelta(hours=2)
    cid = control.create(sendAt=send_at.isoformat(), validFor=60)["campaignId"]
    _load(control.api, cid, f"iccid,name\n{UK},Ada\n".encode())

    sqs, url = control.gateway.sqs, control.gateway.queue_url
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    valid_until = datetime.fromisoformat(json.loads(message["Body"])["validUntil"].replace("Z", "+00:00"))
    assert abs((valid_until - (send_at + timedelta(seconds=60))).total_seconds()) < 1


@pytest.mark.parametrize(
    ("send_at", "why"),
    [
        ("tomorrow", "ISO-8601"),
        ("2026-12-24T09:00:00", "time zone"),
        ("2020-01-01T00:00:00Z", "future"),
    ],
)
def test_a_bad_send_at_is_400_naming_it(control: Control, send_at: str, why: str) -> None:
    response = control.api.call(
        "POST", "/v1/campaigns", {"name": "x", "template": "Hi", "sendAt": send_at}, token=control.token
    )
    error = assert_error(response, 400, "validation_error")
    assert any(d["field"].endswith("sendAt") for d in error.get("details", [])), error
    assert why in json.dumps(error)


# ---- ratePerSecond --------------------------------------------------------------------------


def test_a_rate_at_or_over_the_gateways_is_400_naming_ratepersecond(control: Control) -> None:
    for rate in (50, 51, 0):
        response = control.api.call(
            "POST",
            "/v1/campaigns",
            {"name": "x", "template": "Hi", "ratePerSecond": rate},
            token=control.token,
        )
        error = assert_error(response, 400, "validation_error")
        assert any(d["field"].endswith("ratePerSecond") for d in error.get("details", [])), error
    assert control.create(ratePerSecond=49)["ratePerSecond"] == 49


def test_a_campaign_rate_bounds_its_sends_per_second(control: Control) -> None:
    # Given a campaign at 2 per second with 8 queued commands (the gateway allows 50)
    cid = control.create(ratePerSecond=2)["campaignId"]
    rows = "".join(f"89440000000000001{i:02d},P{i}\n" for i in range(8))
    _load(control.api, cid, f"iccid,name\n{rows}".encode())

    # When they are all sent
    _until(
        lambda: control.deliver_and_progress() is not None and len(control.gateway.provider.outbox()) == 8, 60
    )

    # Then no second of the provider's log holds more than 2 (plus, at most, one send granted
    # at the very end of the second before, which reaches the provider a moment later: the
    # limit holds on the gateway's clock), nor does the run go faster
    accepted = sorted(
        datetime.fromisoformat(m["acceptedAt"].replace("Z", "+00:00")).timestamp()
        for m in control.gateway.provider.outbox()
    )
    per_second = Counter(int(t) for t in accepted)
    assert max(per_second.values()) <= 2 + 1, per_second
    assert sum(1 for n in per_second.values() if n > 2) <= 1, per_second
    assert (len(accepted) - 1) / (accepted[-1] - accepted[0]) <= 2 * 1.1, accepted
    assert control.get(cid)["counts"]["sent"] == 8


# ---- quietHours -----------------------------------------------------------------------------


def _quiet_now(zone: str) -> dict[str, str]:
    """A window of quiet hours around the current time in ``zone``."""
    local = datetime.now(ZoneInfo(zone))
    return {
        "start": (local - timedelta(hours=1)).strftime("%H:%M"),
        "end": (local + timedelta(hours=1)).strftime("%H:%M"),
    }


def _not_quiet_now(zone: str) -> dict[str, str]:
    local = datetime.now(ZoneInfo(zone))
    return {
        "start": (local + timedelta(hours=2)).strftime("%H:%M"),
        "end": (local + timedelta(hours=3)).strftime("%H:%M"),
    }


def test_a_recipient_inside_its_countrys_quiet_hours_is_held(control: Control) -> None:
    # Given quiet hours that are now in the UK, and a UK SIM
    cid = control.create(quietHours=_quiet_now("Europe/London"))["campaignId"]
    _load(control.api, cid, f"iccid,name\n{UK},Ada\n".encode())

    control.deliver_and_progress()

    assert control.gateway.provider.outbox() == []
    assert control.delayed() == 1
    assert control.get(cid)["counts"]["queued"] == 1


def test_the_timezone_column_overrides_the_country(control: Control) -> None:
    # Given quiet hours that are now in Tokyo but not in London, and a UK SIM whose row says Tokyo
    quiet = _quiet_now("Asia/Tokyo")
    london = datetime.now(ZoneInfo("Europe/London")).time()
    if QuietHours.parse(quiet["start"], quiet["end"]).covers(london):
        pytest.skip("Tokyo's window happens to cover London's time now")
    cid = control.create(quietHours=quiet)["campaignId"]
    _load(control.api, cid, f"iccid,name,timezone\n{UK},Ada,Asia/Tokyo\n{UK2},Bob,\n".encode())

    control.deliver_and_progress()

    # Then the Tokyo one waits; the other (the UK's time: outside the window) is sent
    assert [m["to"] for m in control.gateway.provider.outbox()] == [UK2]
    assert control.delayed() == 1


def test_a_recipient_outside_quiet_hours_is_sent(control: Control) -> None:
    cid = control.create(quietHours=_not_quiet_now("Europe/London"))["campaignId"]
    _load(control.api, cid, f"iccid,name\n{UK},Ada\n".encode())

    control.deliver_and_progress()

    assert [m["to"] for m in control.gateway.provider.outbox()] == [UK]


def test_a_bad_timezone_or_one_that_cannot_be_known_is_an_invalid_row(control: Control) -> None:
    cid = control.create(quietHours={"start": "18:00", "end": "10:00"})["campaignId"]
    csv = (
        "iccid,name,timezone\n"
        f"{UK},Ada,Mars/Olympus\n"  # not an IANA name
        "8999900000000000001,Bob,\n"  # 999: no country, no column
        "8910000000000000001,Cy,\n"  # +1: from Samoa to Guam, no common hour from 10:00 to 18:00
        "8910000000000000002,Di,America/New_York\n"  # the column decides
        f"{UK2},Ed,\n"  # the UK's zone
    )
    upload = _load(control.api, cid, csv.encode())

    assert (upload["accepted"], upload["invalidRows"]) == (2, 3)
    messages = {e["row"]: e["message"] for e in upload["errors"]}
    assert "IANA" in messages[2]
    assert "timezone column" in messages[3]
    assert "time zones" in messages[4]


def test_bad_quiet_hours_are_400_naming_them(control: Control) -> None:
    for quiet in ({"start": "9pm", "end": "08:00"}, {"start": "08:00", "end": "08:00"}, {"start": "21:00"}):
        response = control.api.call(
            "POST", "/v1/campaigns", {"name": "x", "template": "Hi", "quietHours": quiet}, token=control.token
        )
        error = assert_error(response, 400, "validation_error")
        assert "quietHours" in json.dumps(error), error


# ---- estimate -------------------------------------------------------------------------------


def test_the_estimate_counts_messages_and_parts_of_the_loaded_recipients(control: Control) -> None:
    # Given three recipients: one short GSM-7 text, one of two parts, one with an emoji
    cid = control.create()["campaignId"]
    empty = control.api.call("GET", f"/v1/campaigns/{cid}/estimate", token=control.token)
    assert empty.json() == {"messages": 0, "segments": 0, "encodings": {"GSM-7": 0, "UCS-2": 0}}
    long_name = "x" * 200
    _load(control.api, cid, f"iccid,name\n{UK},Ada\n{UK2},{long_name}\n8944000000000000003,Zoë 🎉\n".encode())

    estimate = control.api.call("GET", f"/v1/campaigns/{cid}/estimate", token=control.token)

    assert estimate.status == 200, estimate.body
    assert estimate.json() == {"messages": 3, "segments": 1 + 2 + 1, "encodings": {"GSM-7": 2, "UCS-2": 1}}
