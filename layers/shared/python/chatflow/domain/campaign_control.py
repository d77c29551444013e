"""Campaign control as the SMS gateway applies it: pause, cancel, ``sendAt``, ``quietHours``.

Pure rules (no boto3, no environment). The gateway reads a campaign's ``SendControl``
(cached for a second, and once more, fresh, right before the provider call) and asks
``decide`` what one of its commands may do now:

- ``send``: go on (then the campaign's ``ratePerSecond`` and the provider-wide rate);
- ``hold`` until a moment: the campaign is paused, scheduled for later, or the recipient is
  inside its quiet hours. The command goes back to the queue, delayed; nothing is counted;
- ``cancel``: the campaign was cancelled; the command ends in ``SmsFailed``
  ``errorCode: "cancelled"`` (permanent) and its recipient becomes ``cancelled``.

A recipient's local time: the ``timezone`` column of its CSV row (an IANA name), else the
country of its ICCID. An ICCID is ``89`` (telecommunications), then the ITU-T E.164
country code of the issuer (1 to 3 digits; ITU-T E.118), so ``8944...`` is the United
Kingdom and ``8949...`` Germany. North America is written ``01`` (``8901...``): a leading
0 is padding. A country that spans several time zones (the +1 zone spans Hawaii to
Newfoundland) is outside its quiet hours only when it is outside them in every one of its
zones: the safe side, never an SMS at night somewhere in the country. When those zones
leave no common hour to send in, the row needs a ``timezone`` (the loader says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

ControlState = Literal["none", "paused", "cancelled"]
# The errorCode of the SmsFailed that ends a command of a cancelled campaign (permanent).
CANCELLED_CODE = "cancelled"
_HH_MM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# How long ahead the next moment outside every zone's quiet hours is looked for.
_HORIZON = timedelta(hours=48)


@dataclass(frozen=True)
class QuietHours:
    """No SMS from ``start`` (inclusive) to ``end`` (exclusive), local time; wraps midnight
    when ``start`` is later than ``end`` (21:00 to 08:00)."""

    start: time
    end: time

    @classmethod
    def parse(cls, start: str, end: str) -> QuietHours:
        """``ValueError`` naming the field for a time that is not HH:MM, or an empty window."""
        parsed = []
        for name, value in (("start", start), ("end", end)):
            match = _HH_MM.match(value)
            if match is None:
                raise ValueError(f"quietHours.{name} must be a 24-hour time HH:MM, such as 21:00")
            parsed.append(time(int(match.group(1)), int(match.group(2))))
        if parsed[0] == parsed[1]:
            raise ValueError("quietHours.start and quietHours.end must differ")
        return cls(parsed[0], parsed[1])

    def text(self) -> tuple[str, str]:
        return self.start.strftime("%H:%M"), self.end.strftime("%H:%M")

    def covers(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True)
class SendControl:
    """What the gateway needs of a campaign to decide about one of its commands."""

    campaign_id: str
    state: ControlState = "none"
    paused_at: datetime | None = None
    send_at: datetime | None = None
    rate_per_second: int | None = None
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class Decision:
    kind: Literal["send", "hold", "cancel"]
    until: datetime | None = None
    reason: str = ""


# A paused command comes back after half the time the campaign has been paused so far,
# between these bounds: a short pause resumes within seconds, a long one costs few receives.
MIN_PAUSED_RECHECK = timedelta(seconds=2)
MAX_HOLD = timedelta(seconds=900)  # SQS's longest delay


def decide(control: SendControl, now: datetime, zones: tuple[str, ...] = ()) -> Decision:
    """What a command of this campaign may do at ``now``; ``zones``: the recipient's time zones."""
    if control.state == "cancelled":
        return Decision("cancel", reason=f"campaign {control.campaign_id} was cancelled by an operator")
    if control.state == "paused":
        paused_for = now - control.paused_at if control.paused_at else timedelta(0)
        wait = min(MAX_HOLD, max(MIN_PAUSED_RECHECK, paused_for / 2))
        return Decision("hold", now + wait, "the campaign is paused")
    if control.send_at is not None and now < control.send_at:
        return Decision("hold", min(control.send_at, now + MAX_HOLD), "the campaign is scheduled for later")
    if control.quiet_hours is not None and zones:
        allowed = next_allowed(now, zones, control.quiet_hours)
        if allowed is None:
            # The loader lets no such recipient in; one loaded before quiet hours changed waits.
            return Decision("hold", now + MAX_HOLD, "no hour outside the quiet hours in every time zone")
        if allowed > now:
            return Decision("hold", min(allowed, now + MAX_HOLD), "quiet hours where the recipient is")
    return Decision("send")


def next_allowed(now: datetime, zones: tuple[str, ...], quiet: QuietHours) -> datetime | None:
    """The first moment from ``now`` outside ``quiet`` in every zone; None within 48 h.

    That moment is ``now`` or the end of some zone's quiet hours (the last zone to wake up).
    """
    infos = [ZoneInfo(zone) for zone in zones]

    def allowed(moment: datetime) -> bool:
        return not any(quiet.covers(moment.astimezone(info).time()) for info in infos)

    if allowed(now):
        return now
    candidates: list[datetime] = []
    for info in infos:
        today = now.astimezone(info).date()
        for days in range(3):
            day: date = today + timedelta(days=days)
            end = datetime.combine(day, quiet.end, tzinfo=info).astimezone(now.tzinfo)
            if now < end <= now + _HORIZON:
                candidates.append(end)
    return next((moment for moment in sorted(candidates) if allowed(moment)), None)


def valid_zone(name: str) -> bool:
    """``name`` is an IANA time zone name (Europe/London), not a path or an abbreviation."""
    if name not in _zone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def iccid_country_code(iccid: str) -> int | None:
    """The E.164 country code an ICCID names after its ``89``; None when it names none."""
    import phonenumbers  # on first use: only loaders and gateways of quiet-hour campaigns

    digits = iccid[2:] if iccid.startswith("89") else ""
    if digits.startswith("0"):
        digits = digits[1:]  # 8901...: North America's 1, padded
    for size in (1, 2, 3):
        code = int(digits[:size]) if digits[:size].isdigit() else 0
        if code and phonenumbers.region_codes_for_country_code(code) not in ((), ("ZZ",)):
            return code
    return None


@lru_cache(maxsize=512)
def country_zones(code: int) -> tuple[str, ...]:
    """The time zones of a country code (phonenumbers' data); () when it has none."""
    from phonenumbers import timezone
    from phonenumbers.phonenumber import PhoneNumber

    zones = timezone.time_zones_for_geographical_number(PhoneNumber(country_code=code, national_number=0))
    return tuple(z for z in zones if z != "Etc/Unknown")


def recipient_zones(destination: str, timezone_name: str | None) -> tuple[str, ...]:
    """The zones a recipient's quiet hours are kept in: its own, else the country of its
    ICCID (or of its E.164 number, for a command sent to a phone number)."""
    if timezone_name:
        return (timezone_name,) if valid_zone(timezone_name) else ()
    if destination.startswith("+"):
        import phonenumbers

        try:
            code: int | None = phonenumbers.parse(destination).country_code
        except phonenumbers.NumberParseException:
            code = None
    else:
        code = iccid_country_code(destination)
    return country_zones(code) if code is not None else ()


def zones_problem(iccid: str, timezone_name: str | None, quiet: QuietHours, now: datetime) -> str | None:
    """Why quiet hours cannot be kept for this recipient (a row problem), or None."""
    zones = recipient_zones(iccid, timezone_name)
    if not zones:
        return (
            "no time zone for the quiet hours: the ICCID names no known country; "
            "add a timezone column (an IANA name such as Europe/London)"
        )
    if timezone_name is None and _no_common_hour(
        zones, quiet, now.replace(minute=0, second=0, microsecond=0)
    ):
        return (
            f"the ICCID's country spans {len(zones)} time zones with no hour outside the quiet hours "
            "in all of them: add a timezone column (an IANA name such as America/New_York)"
        )
    return None


@lru_cache(maxsize=512)
def _no_common_hour(zones: tuple[str, ...], quiet: QuietHours, hour: datetime) -> bool:
    return next_allowed(hour, zones, quiet) is None
