"""The operator's campaign use cases (CampaignService) on in-memory fakes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chatflow.domain.campaigns import (
    CampaignCancelled,
    CampaignCompleted,
    CampaignRecipient,
    CampaignService,
)
from chatflow.domain.pagination import CursorCodec
from chatflow.errors import Forbidden, NotFound, ValidationFailed
from tests.fakes import FakeCampaignRepository, FakeClock, FakeOperators, FakeRecipientFiles
from tests.unit.conftest import ALICE, OPERATOR, SECRET


@pytest.fixture
def repository() -> FakeCampaignRepository:
    return FakeCampaignRepository()


@pytest.fixture
def service(repository: FakeCampaignRepository, clock: FakeClock) -> CampaignService:
    return CampaignService(
        campaigns=repository,
        files=FakeRecipientFiles(),
        operators=FakeOperators(OPERATOR),
        cursors=CursorCodec(SECRET),
        clock=clock,
    )


def test_given_an_operator_when_creating_a_campaign_then_it_is_a_draft_with_the_template_variables(
    service: CampaignService, repository: FakeCampaignRepository
) -> None:
    campaign = service.create(OPERATOR, name="launch", template="Hi {{name}}!", sender_id=None)

    assert (campaign.status, campaign.variables, campaign.created_by) == ("draft", ("name",), OPERATOR)
    assert repository.get(campaign.campaign_id) == campaign


def test_given_a_user_who_is_not_an_operator_when_creating_a_campaign_then_it_is_forbidden(
    service: CampaignService, repository: FakeCampaignRepository
) -> None:
    with pytest.raises(Forbidden):
        service.create(ALICE, name="launch", template="Hi", sender_id=None)
    assert repository.campaigns == {}


def test_given_a_validity_under_a_minute_when_creating_a_campaign_then_valid_for_is_refused(
    service: CampaignService,
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        service.create(OPERATOR, name="launch", template="Hi", sender_id=None, valid_for=59)
    assert [d.field for d in refused.value.details] == ["validFor"]


def test_given_a_campaign_when_an_upload_is_made_then_its_key_and_url_name_the_upload(
    service: CampaignService, repository: FakeCampaignRepository
) -> None:
    campaign = service.create(OPERATOR, name="launch", template="Hi", sender_id=None)

    upload, url, expires_in = service.create_upload(OPERATOR, campaign.campaign_id)

    assert upload.key == f"campaigns/{campaign.campaign_id}/{upload.upload_id}.csv"
    assert upload.status == "pending"
    assert url == f"https://uploads.example/{upload.key}?expires={expires_in}"
    assert repository.get_upload(campaign.campaign_id, upload.upload_id) == upload


def test_given_no_such_campaign_when_an_upload_is_made_then_it_is_not_found(service: CampaignService) -> None:
    with pytest.raises(NotFound):
        service.create_upload(OPERATOR, "c_missing")


def test_given_three_campaigns_when_listed_by_two_then_the_cursor_leads_to_the_last(
    service: CampaignService,
) -> None:
    made = [service.create(OPERATOR, name=f"c{i}", template="Hi", sender_id=None) for i in range(3)]

    first, cursor = service.list(OPERATOR, limit=2, cursor=None)
    second, end = service.list(OPERATOR, limit=2, cursor=cursor)

    assert [c.name for c in first.items + second.items] == [c.name for c in reversed(made)]
    assert end is None


def test_given_recipients_when_listed_by_status_then_only_that_status_comes(
    service: CampaignService, repository: FakeCampaignRepository
) -> None:
    campaign = service.create(OPERATOR, name="launch", template="Hi", sender_id=None)
    repository.put_recipients(
        [
            CampaignRecipient(campaign.campaign_id, "8901", "queued"),
            CampaignRecipient(campaign.campaign_id, "8902", "skipped"),
        ]
    )

    page, _ = service.recipients(OPERATOR, campaign.campaign_id, status="skipped", limit=10, cursor=None)

    assert [r.iccid for r in page.items] == ["8902"]


def test_given_an_unknown_status_when_listing_recipients_then_it_is_refused(service: CampaignService) -> None:
    campaign = service.create(OPERATOR, name="launch", template="Hi", sender_id=None)

    with pytest.raises(ValidationFailed):
        service.recipients(OPERATOR, campaign.campaign_id, status="lost", limit=10, cursor=None)


def test_given_a_campaign_when_paused_resumed_and_cancelled_then_each_shows_and_refusals_say_why(
    service: CampaignService, repository: FakeCampaignRepository
) -> None:
    campaign = service.create(OPERATOR, name="launch", template="Hi", sender_id=None)
    cid = campaign.campaign_id

    assert service.pause(OPERATOR, cid).control == "paused"
    assert service.pause(OPERATOR, cid).control == "paused"  # again: unchanged
    assert service.resume(OPERATOR, cid).control == "none"
    assert service.cancel(OPERATOR, cid).control == "cancelled"
    with pytest.raises(CampaignCancelled, match="cannot resume"):
        service.resume(OPERATOR, cid)
    with pytest.raises(CampaignCancelled):
        service.create_upload(OPERATOR, cid)

    done = service.create(OPERATOR, name="done", template="Hi", sender_id=None)
    repository.campaigns[done.campaign_id] = replace(done, status="completed")
    for act in (service.pause, service.resume, service.cancel):
        with pytest.raises(CampaignCompleted, match="completed"):
            act(OPERATOR, done.campaign_id)
    with pytest.raises(Forbidden):
        service.pause(ALICE, cid)


def test_given_a_gateway_rate_when_a_campaign_asks_for_as_much_or_more_then_it_is_400(
    repository: FakeCampaignRepository, clock: FakeClock
) -> None:
    service = CampaignService(
        campaigns=repository,
        files=FakeRecipientFiles(),
        operators=FakeOperators(OPERATOR),
        cursors=CursorCodec(SECRET),
        clock=clock,
        gateway_rate=20,
    )
    with pytest.raises(ValidationFailed, match="from 1 to 19"):
        service.create(OPERATOR, name="x", template="Hi", sender_id=None, rate_per_second=20)
    assert (
        service.create(OPERATOR, name="x", template="Hi", sender_id=None, rate_per_second=19).rate_per_second
        == 19
    )
