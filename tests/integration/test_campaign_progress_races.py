"""Campaign progress when the gateway's events race: SmsSent and SmsDelivered of one recipient.

Both can come from one stream record and reach CampaignProgressFunction at once, or in
either order. A move reads the recipient, then writes its new status and the campaign's
counts in one transaction conditional on the status it read. Here one move stops between
its read and its write (or two stop there together) while the other runs, every time; the
recipient must end ``delivered`` and the counts must add up. The progress function's own
repository runs in this process on moto, from two threads (moto's requests are atomic:
local/moto_patches.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from moto import mock_aws

import chatflow.adapters.aws
from chatflow.adapters.campaign_store import DynamoCampaignRepository
from chatflow.domain.campaigns import progress_of
from local.specs import REGION
from local.stack import InProcessStack
from tests.integration.conftest import ApiClient
from tests.integration.test_campaigns_api import NO_COUNTS, OPERATOR, _campaign, _load

ICCIDS = [f"8900000000000000000{i}" for i in range(1, 5)]


@pytest.fixture
def api() -> Iterator[ApiClient]:
    with mock_aws():
        yield ApiClient(
            InProcessStack.create(parameters={"AuthMode": "phone", "OperatorPhoneNumbers": OPERATOR})
        )


@pytest.fixture
def campaign(api: ApiClient) -> str:
    """A campaign whose recipients (ICCIDS) are all queued."""
    cid = str(_campaign(api, api.sign_in(OPERATOR))["campaignId"])
    _load(api, cid, ("iccid,name\n" + "".join(f"{i},N\n" for i in ICCIDS)).encode())
    return cid


def _progress(api: ApiClient) -> DynamoCampaignRepository:
    repository: DynamoCampaignRepository = api.stack.functions[
        "CampaignProgressFunction"
    ].module.deps.campaign_repository()
    return repository


def _sent(cid: str, iccid: str) -> tuple[str, dict[str, Any]]:
    detail = {"commandId": f"cmp-{cid}-{iccid}", "iccid": iccid, "metadata": {"campaignId": cid}}
    return "SmsSent", detail | {"providerMessageId": f"pm-{iccid}", "attempts": 1}


def _delivered(cid: str, iccid: str) -> tuple[str, dict[str, Any]]:
    detail = {"commandId": f"cmp-{cid}-{iccid}", "metadata": {"campaignId": cid}}
    return "SmsDelivered", detail | {"providerMessageId": f"pm-{iccid}", "status": "delivered"}


def _apply(api: ApiClient, event: tuple[str, dict[str, Any]]) -> bool:
    progress = progress_of(event[0], event[1], datetime.now(UTC))
    assert progress is not None
    return _progress(api).apply(progress)


def _state(api: ApiClient, cid: str) -> tuple[dict[str, int], dict[str, str]]:
    token = api.sign_in(OPERATOR)
    counts = api.call("GET", f"/v1/campaigns/{cid}", token=token).json()["counts"]
    recipients = api.call("GET", f"/v1/campaigns/{cid}/recipients", token=token).json()["items"]
    return counts, {r["iccid"]: r["status"] for r in recipients}


@contextmanager
def held_between_read_and_write(
    client: Any, writers: int
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The first ``writers`` TransactWriteItems sent through ``client`` stop before they are sent.

    ``reached`` is set once all of them have read the recipient and wait to write;
    ``release`` lets them go, together. Later transactions (a retry) are not held.
    """
    reached, release = threading.Event(), threading.Event()
    lock = threading.Lock()
    held = 0

    def hold(**_: Any) -> None:
        nonlocal held
        with lock:
            if held >= writers:
                return
            held += 1
            if held == writers:
                reached.set()
        assert release.wait(10), "never released"

    event = "before-call.dynamodb.TransactWriteItems"
    client.meta.events.register(event, hold)
    try:
        yield reached, release
    finally:
        release.set()
        client.meta.events.unregister(event, hold)


@pytest.mark.parametrize("order", ["sent first", "delivered first"])
def test_sent_and_delivered_in_either_order_end_delivered(api: ApiClient, campaign: str, order: str) -> None:
    # Given queued recipients
    events = [_sent(campaign, ICCIDS[0]), _delivered(campaign, ICCIDS[0])]

    # When SmsSent and SmsDelivered arrive one after the other, in either order
    for event in events if order == "sent first" else reversed(events):
        _apply(api, event)

    # Then the recipient is delivered and the counts add up
    counts, statuses = _state(api, campaign)
    assert statuses[ICCIDS[0]] == "delivered"
    assert counts == NO_COUNTS | {"total": 4, "queued": 3, "delivered": 1}


def test_delivered_overtaken_by_sent_between_its_read_and_its_write_still_ends_delivered(
    api: ApiClient, campaign: str
) -> None:
    iccid = ICCIDS[0]
    client = chatflow.adapters.aws.dynamodb(REGION)
    with held_between_read_and_write(client, 1) as (reached, release), ThreadPoolExecutor(1) as pool:
        # Given SmsDelivered that read the recipient queued and is about to move it
        delivered = pool.submit(_apply, api, _delivered(campaign, iccid))
        assert reached.wait(10)

        # When SmsSent moves it to sent meanwhile (only the first write is held), then
        # SmsDelivered goes on
        assert _apply(api, _sent(campaign, iccid))
        release.set()
        assert delivered.result(timeout=10)

    # Then its write, refused, was tried again from sent: the recipient is delivered
    counts, statuses = _state(api, campaign)
    assert statuses[iccid] == "delivered"
    assert counts == NO_COUNTS | {"total": 4, "queued": 3, "delivered": 1}


def test_sent_overtaken_by_delivered_between_its_read_and_its_write_changes_nothing(
    api: ApiClient, campaign: str
) -> None:
    iccid = ICCIDS[0]
    client = chatflow.adapters.aws.dynamodb(REGION)
    with held_between_read_and_write(client, 1) as (reached, release), ThreadPoolExecutor(1) as pool:
        # Given SmsSent that read the recipient queued and is about to move it
        sent = pool.submit(_apply, api, _sent(campaign, iccid))
        assert reached.wait(10)

        # When SmsDelivered moves it to delivered meanwhile, then SmsSent goes on
        assert _apply(api, _delivered(campaign, iccid))
        release.set()
        assert not sent.result(timeout=10)

    # Then SmsSent, refused, found it past sent: still delivered, counted once
    counts, statuses = _state(api, campaign)
    assert statuses[iccid] == "delivered"
    assert counts == NO_COUNTS | {"total": 4, "queued": 3, "delivered": 1}


def test_sent_and_delivered_at_once_end_delivered_for_every_recipient(api: ApiClient, campaign: str) -> None:
    client = chatflow.adapters.aws.dynamodb(REGION)
    for iccid in ICCIDS:
        with held_between_read_and_write(client, 2) as (reached, release), ThreadPoolExecutor(2) as pool:
            # Given SmsSent and SmsDelivered that both read the recipient queued
            results = [
                pool.submit(_apply, api, event)
                for event in (_sent(campaign, iccid), _delivered(campaign, iccid))
            ]
            assert reached.wait(10)

            # When both write at the same moment
            release.set()
            outcomes = [r.result(timeout=10) for r in results]

        # Then the recipient is delivered, whichever wrote first
        assert outcomes[1], f"SmsDelivered of {iccid} was lost"
        counts, statuses = _state(api, campaign)
        assert statuses[iccid] == "delivered"
        assert sum(n for name, n in counts.items() if name != "total") == counts["total"]

    # And in the end every one is delivered, each counted once, and the campaign completed
    counts, statuses = _state(api, campaign)
    assert set(statuses.values()) == {"delivered"}
    assert counts == NO_COUNTS | {"total": 4, "delivered": 4}
    campaign_now = api.call("GET", f"/v1/campaigns/{campaign}", token=api.sign_in(OPERATOR)).json()
    assert campaign_now["status"] == "completed"


def test_the_same_delivery_twice_at_once_is_counted_once(api: ApiClient, campaign: str) -> None:
    # Given a sent recipient
    iccid = ICCIDS[0]
    _apply(api, _sent(campaign, iccid))
    client = chatflow.adapters.aws.dynamodb(REGION)
    with held_between_read_and_write(client, 2) as (reached, release), ThreadPoolExecutor(2) as pool:
        # When its SmsDelivered is delivered twice and both copies write at once
        results = [pool.submit(_apply, api, _delivered(campaign, iccid)) for _ in range(2)]
        assert reached.wait(10)
        release.set()
        outcomes = sorted(r.result(timeout=10) for r in results)

    # Then one moved it, the other found it delivered: counted once
    assert outcomes == [False, True]
    counts, _ = _state(api, campaign)
    assert counts == NO_COUNTS | {"total": 4, "queued": 3, "delivered": 1}


def test_the_campaign_completes_when_its_last_recipient_leaves_the_queue_and_not_before(
    api: ApiClient, campaign: str, calls: list[str]
) -> None:
    token = api.sign_in(OPERATOR)
    for iccid in ICCIDS[:-1]:
        # Given recipients leaving the queue while others are still in it
        calls.clear()
        assert _apply(api, _sent(campaign, iccid))

        # Then each is one read of the recipient, the move, one read of the campaign: no
        # write tried to complete it (DynamoDB charges a refused write as a write)
        assert calls == ["GetItem", "TransactWriteItems", "GetItem"]
        assert api.call("GET", f"/v1/campaigns/{campaign}", token=token).json()["status"] == "sending"

    # When the last one leaves it
    calls.clear()
    assert _apply(api, _sent(campaign, ICCIDS[-1]))

    # Then that move completes the campaign
    assert calls == ["GetItem", "TransactWriteItems", "GetItem", "UpdateItem"]
    done = api.call("GET", f"/v1/campaigns/{campaign}", token=token).json()
    assert done["status"] == "completed"
    assert done["counts"] == NO_COUNTS | {"total": 4, "sent": 4}


def test_the_last_two_recipients_leaving_the_queue_at_once_complete_the_campaign(
    api: ApiClient, campaign: str
) -> None:
    # Given a campaign with two recipients left in the queue
    for iccid in ICCIDS[:2]:
        _apply(api, _sent(campaign, iccid))
    client = chatflow.adapters.aws.dynamodb(REGION)
    both_moved, both_completing = threading.Barrier(2, timeout=10), threading.Barrier(2, timeout=10)
    completions: list[str] = []

    def after_move(**_: Any) -> None:
        both_moved.wait()  # neither reads the campaign before both moves are written

    def completing(params: dict[str, Any], **_: Any) -> None:
        completions.append(params["ExpressionAttributeValues"][":status"]["S"])
        both_completing.wait()  # neither completes it before both have read it

    client.meta.events.register("after-call.dynamodb.TransactWriteItems", after_move)
    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", completing)
    try:
        with ThreadPoolExecutor(2) as pool:
            # When both leave it at the same moment, and both then find the queue empty
            results = [pool.submit(_apply, api, _sent(campaign, iccid)) for iccid in ICCIDS[2:]]
            outcomes = [r.result(timeout=10) for r in results]
    finally:
        client.meta.events.unregister("after-call.dynamodb.TransactWriteItems", after_move)
        client.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", completing)

    # Then both moved, both tried to complete the campaign (one was refused), and it is
    # completed with every recipient sent
    assert outcomes == [True, True]
    assert completions == ["completed", "completed"]
    done = api.call("GET", f"/v1/campaigns/{campaign}", token=api.sign_in(OPERATOR)).json()
    assert done["status"] == "completed"
    assert done["counts"] == NO_COUNTS | {"total": 4, "sent": 4}
