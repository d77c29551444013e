"""Campaign control's pure rules (quiet hours, ICCID countries, decisions) and the gateway obeying
them, with in-memory fakes for every port."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from chatflow.domain.campaign_control import (
    QuietHours,
    SendControl,
    country_zones,
    decide,
    iccid_country_code,
    next_allowed,
    recipient_zones,
    valid_zone,
    zones_problem,
)
from chatflow.domain.campaigns import Campaign, Counts
from chatflow.domain.gateway import SmsGateway
from chatflow.domain.sms import OutgoingSms, RetryPolicy
from tests.fakes import FakeClock
from tests.sms_fakes import FixedRate, InMemoryCommands, InMemoryOptOuts, ScriptedProvider, sms

NOON = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
NIGHT = QuietHours(time(21), time(8))
UK_SIM = "8944000000000000001"


def test_quiet_hours_wrap_midnight_and_exclude_their_end() -> None:
    assert NIGHT.covers(time(23))
    assert NIGHT.covers(time(7, 59))
    assert NIGHT.covers(time(21))
    assert not NIGHT.covers(time(8))
    assert not NIGHT.covers(time(12))
    day = QuietHours(time(12), time(14))
    assert day.covers(time(13))
    assert not day.covers(time(14))
    assert not day.covers(time(11))


@pytest.mark.parametrize(("start", "end"), [("9pm", "08:00"), ("24:00", "08:00"), ("08:00", "08:00")])
def test_quiet_hours_must_be_two_different_hh_mm_times(start: str, end: str) -> None:
    with pytest.raises(ValueError, match="quietHours"):
        QuietHours.parse(start, end)


@pytest.mark.parametrize(
    ("iccid", "code"),
    [(UK_SIM, 44), ("8949000000000000001", 49), ("8901260000000000001", 1), ("8910000000000000001", 1)],
)
def test_an_iccid_names_its_issuers_country_code_after_89(iccid: str, code: int) -> None:
    assert iccid_country_code(iccid) == code


def test_an_iccid_without_a_known_country_names_none() -> None:
    assert iccid_country_code("8999900000000000001") is None
    assert recipient_zones("8999900000000000001", None) == ()


def test_a_recipients_zones_are_its_own_else_its_countrys() -> None:
    assert recipient_zones(UK_SIM, "Asia/Tokyo") == ("Asia/Tokyo",)
    assert "Europe/London" in recipient_zones(UK_SIM, None)
    assert recipient_zones("+33612345678", None) == ("Europe/Paris",)
    assert len(country_zones(1)) > 10


def test_only_iana_names_are_time_zones() -> None:
    assert valid_zone("Europe/London")
    assert not valid_zone("Mars/Olympus")
    assert not valid_zone("../etc/passwd")
    assert not valid_zone("")


def test_the_next_allowed_moment_is_the_end_of_the_last_zone_to_wake() -> None:
    # 23:00 UTC: night in London and in New York (18:00 there is not quiet)
    at = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    assert next_allowed(at, ("Europe/London",), NIGHT) == datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    # Tokyo (UTC+9) is awake 23:00-12:00 UTC, London 08:00-21:00 UTC: both from 08:00 UTC
    assert next_allowed(at, ("Europe/London", "Asia/Tokyo"), NIGHT) == datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    assert next_allowed(NOON, ("Europe/London",), NIGHT) == NOON


def test_a_country_whose_zones_share_no_hour_is_a_row_problem() -> None:
    narrow = QuietHours(time(18), time(10))
    problem = zones_problem("8910000000000000001", None, narrow, NOON)
    assert problem is not None
    assert "timezone column" in problem
    assert zones_problem("8910000000000000001", "America/New_York", narrow, NOON) is None
    assert zones_problem(UK_SIM, None, NIGHT, NOON) is None


def test_decisions_cancel_first_then_pause_then_schedule_then_quiet_hours() -> None:
    control = SendControl("c_1", quiet_hours=NIGHT, send_at=NOON + timedelta(hours=1))
    assert decide(replace(control, state="cancelled"), NOON).kind == "cancel"
    paused = decide(replace(control, state="paused", paused_at=NOON - timedelta(minutes=10)), NOON)
    assert (paused.kind, paused.until) == ("hold", NOON + timedelta(minutes=5))  # half the pause so far
    scheduled = decide(control, NOON)
    assert (scheduled.kind, scheduled.until) == ("hold", NOON + timedelta(seconds=900))  # SQS's longest delay
    soon = decide(replace(control, send_at=NOON + timedelta(seconds=8)), NOON)
    assert (soon.kind, soon.until) == ("hold", NOON + timedelta(seconds=8))
    night = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    quiet = decide(replace(control, send_at=None), night, ("Europe/London",))
    assert (quiet.kind, quiet.until) == ("hold", night + timedelta(seconds=900))  # at most SQS's delay
    assert decide(replace(control, send_at=None), NOON, ("Europe/London",)).kind == "send"


def test_a_campaigns_shown_status_puts_the_operators_control_first() -> None:
    campaign = Campaign("c_1", "x", "Hi", (), None, "sending", Counts(), None, NOON, "op")
    assert campaign.shown_status(NOON) == "sending"
    assert replace(campaign, send_at=NOON + timedelta(seconds=1)).shown_status(NOON) == "scheduled"
    assert replace(campaign, control="paused").shown_status(NOON) == "paused"
    assert replace(campaign, control="cancelled", status="completed").shown_status(NOON) == "cancelled"


# ---- the gateway --------------------------------------------------------------------------------


class FakeControls:
    def __init__(self, control: SendControl) -> None:
        self.current = control
        self.reads: list[bool] = []
        self.places: dict[int, int] = {}

    def control(self, campaign_id: str, *, fresh: bool = False) -> SendControl | None:
        self.reads.append(fresh)
        return self.current if campaign_id == self.current.campaign_id else None

    def reserve(self, campaign_id: str, per_second: int, now: datetime) -> float | None:
        second = int(now.timestamp())
        taken = self.places.get(second, 0)
        if taken >= per_second:
            return None
        self.places[second] = taken + 1
        return 0.0


def _gateway(
    controls: FakeControls, provider: ScriptedProvider, commands: InMemoryCommands, clock: FakeClock
) -> SmsGateway:
    return SmsGateway(
        provider=provider,
        commands=commands,
        opt_outs=InMemoryOptOuts(),
        rate=FixedRate(),
        policy=RetryPolicy(max_attempts=3),
        clock=clock,
        rng=random.Random(7),
        sleep=lambda seconds: clock.advance(timedelta(seconds=seconds)),
        campaigns=controls,
    )


def _campaign_sms(command_id: str = "c1") -> OutgoingSms:
    return sms(command_id=command_id, metadata={"campaignId": "c_1"})


def test_a_paused_campaigns_command_is_held_without_a_record_or_a_provider_call() -> None:
    clock, provider, commands = FakeClock(NOON), ScriptedProvider(), InMemoryCommands()
    controls = FakeControls(SendControl("c_1", state="paused", paused_at=NOON))

    outcome = _gateway(controls, provider, commands, clock).handle(_campaign_sms())

    assert (outcome.kind, outcome.detail) == ("wait", "the campaign is paused")
    assert 2 <= outcome.delay_seconds <= 4
    assert provider.requests == []
    assert commands.records == {}


def test_a_cancelled_campaigns_command_ends_failed_cancelled_without_a_provider_call() -> None:
    clock, provider, commands = FakeClock(NOON), ScriptedProvider(), InMemoryCommands()
    controls = FakeControls(SendControl("c_1", state="cancelled"))

    outcome = _gateway(controls, provider, commands, clock).handle(_campaign_sms())

    assert outcome.kind == "failed"
    record = commands.records["c1"]
    assert (record.status, record.error_code, record.permanent, record.attempts) == (
        "failed",
        "cancelled",
        True,
        0,
    )
    assert provider.requests == []


def test_a_pause_stored_during_the_rate_wait_stops_the_send_at_the_fresh_check() -> None:
    # Given a campaign at 1 per second whose second is taken, paused while the command waits for the next
    clock, provider, commands = FakeClock(NOON), ScriptedProvider(), InMemoryCommands()
    controls = FakeControls(SendControl("c_1", rate_per_second=1))
    controls.places[int(NOON.timestamp())] = 1
    gateway = _gateway(controls, provider, commands, clock)
    original = controls.reserve

    def reserve_then_pause(campaign_id: str, per_second: int, now: datetime) -> float | None:
        got = original(campaign_id, per_second, now)
        if got is not None:
            controls.current = replace(controls.current, state="paused", paused_at=now)
        return got

    controls.reserve = reserve_then_pause  # type: ignore[method-assign]

    # When it is handled
    outcome = gateway.handle(_campaign_sms())

    # Then the fresh read before the provider call holds it: nothing sent, no attempt counted
    assert (outcome.kind, outcome.detail) == ("wait", "the campaign is paused")
    assert provider.requests == []
    assert commands.records["c1"].attempts == 0
    assert controls.reads[-1] is True


def test_a_campaign_rate_sends_at_most_that_many_per_second() -> None:
    clock, provider, commands = (
        FakeClock(NOON),
        ScriptedProvider(*[f"pm_{i}" for i in range(6)]),
        InMemoryCommands(),
    )
    controls = FakeControls(SendControl("c_1", rate_per_second=2))
    gateway = _gateway(controls, provider, commands, clock)

    kinds = [gateway.handle(_campaign_sms(f"c{i}")).kind for i in range(6)]

    # Then all are sent, two in each of three seconds (each waited for the next free second)
    assert kinds == ["sent"] * 6
    assert sorted(controls.places.values()) == [2, 2, 2]
    assert clock() >= NOON + timedelta(seconds=2)
