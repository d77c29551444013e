"""What each gateway event means for a campaign recipient (``progress_of``): forward only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chatflow.domain.campaigns import RANK, RECIPIENT_STATUSES, progress_of

AT = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
CID = "c_1"
ICCID = "89000000000000000001"


def _detail(**extra: Any) -> dict[str, Any]:
    return {"commandId": f"cmp-{CID}-{ICCID}", "metadata": {"campaignId": CID}} | extra


EVENTS = {
    "SmsSent": _detail(iccid=ICCID, providerMessageId="pm_1", attempts=1),
    "SmsFailed": _detail(iccid=ICCID, errorCode="dead_lettered", reason="never handled", attempts=3),
    "SmsExpired": _detail(iccid=ICCID, validUntil="2026-12-04T09:00:00.000Z", attempts=0),
    "SmsDelivered": _detail(providerMessageId="pm_1", status="delivered"),
    "SmsUndelivered": _detail(providerMessageId="pm_1", status="undelivered"),
}


def test_every_status_has_a_rank() -> None:
    assert set(RANK) == set(RECIPIENT_STATUSES)


@pytest.mark.parametrize("detail_type", list(EVENTS))
def test_every_event_moves_a_recipient_only_to_a_later_status(detail_type: str) -> None:
    progress = progress_of(detail_type, EVENTS[detail_type], AT)
    assert progress is not None
    assert progress.from_statuses
    assert all(RANK[status] < RANK[progress.to] for status in progress.from_statuses)


@pytest.mark.parametrize(
    ("detail_type", "to", "from_statuses"),
    [
        ("SmsSent", "sent", ("queued",)),
        ("SmsFailed", "failed", ("queued",)),
        ("SmsExpired", "expired", ("queued",)),
        ("SmsDelivered", "delivered", ("queued", "sent")),
        ("SmsUndelivered", "failed", ("queued", "sent")),
    ],
)
def test_each_event_names_its_move(detail_type: str, to: str, from_statuses: tuple[str, ...]) -> None:
    progress = progress_of(detail_type, EVENTS[detail_type], AT)
    assert progress is not None
    assert (progress.iccid, progress.to, progress.from_statuses) == (ICCID, to, from_statuses)


def test_an_expiry_says_until_when_the_sms_was_worth_sending() -> None:
    progress = progress_of("SmsExpired", EVENTS["SmsExpired"], AT)
    assert progress is not None
    assert progress.error is not None
    assert "2026-12-04T09:00:00.000Z" in progress.error


def test_a_dead_lettered_command_fails_its_recipient_saying_so() -> None:
    progress = progress_of("SmsFailed", EVENTS["SmsFailed"], AT)
    assert progress is not None
    assert (progress.to, progress.error, progress.attempts) == ("failed", "dead_lettered: never handled", 3)


def test_an_event_without_a_campaign_is_not_a_campaigns() -> None:
    assert progress_of("SmsExpired", {"commandId": "x", "iccid": ICCID, "metadata": {}}, AT) is None
