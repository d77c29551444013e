"""Campaign control end to end on a started stack (issue 15's proof).

200 recipients at ``ratePerSecond`` 5, scheduled 8 s ahead, paused, resumed, then
cancelled, through the HTTP API, the loader, the SMS gateway, the events and the progress,
with the fake provider's log as the witness of what was sent:

- nothing goes out before ``sendAt``, nor while paused, nor after the cancel (a provider
  call whose last campaign check preceded the pause may still land within a moment of it:
  ``IN_FLIGHT`` below);
- the counts add up at every read (``queued + sent + failed + delivered + skipped +
  expired + cancelled == total``), and at the end every recipient is sent or cancelled;
- each sending phase goes at ``ratePerSecond`` within 10%: no faster, counted as the limit
  is kept (sends per second of the clock, over the seconds the phase touched: a busy
  machine may bunch a second's sends at its end and the next second's at its start, which
  makes a short phase look faster from its first send to its last), and no slower than
  90% of it from its first send to its last.

About a minute and a half here.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from local.stack_server import StackServer
from tests.local.conftest import Lines, free_config, http

OPERATOR = "+14155550100"
ROWS = 200
RATE = 5
STATUSES = ("queued", "sent", "failed", "delivered", "skipped", "expired", "cancelled")
# A provider call that read the campaign just before the pause was stored still lands:
# its provider call takes milliseconds; a second is a generous bound on a busy machine.
IN_FLIGHT = 1.0


def _when(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Run:
    def __init__(self, stack: StackServer) -> None:
        self.url = stack.outputs["HttpApiUrl"]
        self.provider = stack.outputs["SmsProviderUrl"]
        token = http("POST", f"{self.url}/v1/sessions", {"phoneNumber": OPERATOR})[1]["token"]
        self.auth = {"authorization": f"Bearer {token}"}
        self.cid = ""
        self.reads = 0

    def campaign(self) -> dict[str, Any]:
        """The campaign; its counts must add up at every read."""
        status, campaign = http("GET", f"{self.url}/v1/campaigns/{self.cid}", headers=self.auth)
        assert status == 200, campaign
        counts = campaign["counts"]
        assert sum(counts[s] for s in STATUSES) == counts["total"], counts
        self.reads += 1
        return dict(campaign)

    def act(self, action: str) -> tuple[float, dict[str, Any]]:
        """The control action; (the moment its answer came back, the campaign it answered)."""
        status, body = http("POST", f"{self.url}/v1/campaigns/{self.cid}/{action}", {}, self.auth)
        assert status == 200, body
        return time.time(), dict(body)

    def sent(self) -> list[float]:
        """When the provider accepted each of this campaign's messages, in order."""
        items = http("GET", f"{self.provider}/messages")[1]["items"]
        prefix = f"cmp-{self.cid}-"
        return sorted(_when(m["acceptedAt"]) for m in items if str(m["reference"]).startswith(prefix))

    def wait(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        """Until ``condition``, reading the campaign (its counts checked) meanwhile."""
        deadline = time.monotonic() + seconds
        while not condition():
            self.campaign()
            assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
            time.sleep(0.25)


def _rate(moments: list[float]) -> float:
    """Sends per second from the first send to the last."""
    return (len(moments) - 1) / (moments[-1] - moments[0])


def _per_clock_second(moments: list[float]) -> float:
    """Sends per second of the clock, over every second from the first send's to the last's."""
    return len(moments) / (int(moments[-1]) - int(moments[0]) + 1)


def test_a_campaign_is_scheduled_paused_resumed_and_cancelled_at_its_own_rate(tmp_path: Path) -> None:
    config = free_config(
        tmp_path,
        persist=False,
        operators=OPERATOR,
        provider_environ={
            "CHATFLOW_FAKE_FAILURE_RATE": "0",
            "CHATFLOW_FAKE_DELAY_MS": "0-3",
            "CHATFLOW_FAKE_RECEIPT_DELAY_MS": "3600000",  # receipts: covered elsewhere
        },
        parameters={"SmsRatePerSecond": "100"},
    )
    with StackServer(config, log=Lines()) as stack:
        run = Run(stack)

        # Given a campaign at 5 per second, scheduled 8 s ahead, and 200 recipients loaded
        send_at = datetime.now(UTC) + timedelta(seconds=8)
        status, created = http(
            "POST",
            f"{run.url}/v1/campaigns",
            {
                "name": "control",
                "template": "Hi {{name}}",
                "ratePerSecond": RATE,
                "sendAt": send_at.isoformat(),
            },
            run.auth,
        )
        assert status == 201, created
        assert created["status"] == "scheduled"
        run.cid = created["campaignId"]
        rows = "".join(f"89440{i:014d},P{i}\n" for i in range(ROWS))
        status, ticket = http("POST", f"{run.url}/v1/campaigns/{run.cid}/uploads", {}, run.auth)
        assert status == 201, ticket
        put = urllib.request.Request(ticket["uploadUrl"], data=f"iccid,name\n{rows}".encode(), method="PUT")
        with urllib.request.urlopen(put, timeout=30) as response:
            assert response.status == 200

        def loaded() -> bool:
            upload = http(
                "GET", f"{run.url}/v1/campaigns/{run.cid}/uploads/{ticket['uploadId']}", headers=run.auth
            )[1]
            return bool(upload["status"] == "accepted")

        run.wait(loaded, 60, "the upload is loaded")
        assert run.campaign()["counts"]["total"] == ROWS
        estimate = http("GET", f"{run.url}/v1/campaigns/{run.cid}/estimate", headers=run.auth)[1]
        assert estimate == {"messages": ROWS, "segments": ROWS, "encodings": {"GSM-7": ROWS, "UCS-2": 0}}

        # When sendAt passes, Then nothing went out before it, and the campaign sends
        if time.time() < send_at.timestamp():
            assert run.campaign()["status"] == "scheduled"
        run.wait(lambda: len(run.sent()) >= 40, 60, "40 sent after sendAt")
        assert run.sent()[0] >= send_at.timestamp()
        assert run.campaign()["status"] == "sending"

        # When it is paused
        paused_at, paused = run.act("pause")
        assert paused["status"] == "paused"
        before_pause = [t for t in run.sent() if t <= paused_at + IN_FLIGHT]
        run.wait(lambda: time.time() > paused_at + 6, 10, "six seconds paused")

        # Then nothing was sent while paused (the counts added up at every read meanwhile)
        assert run.campaign()["status"] == "paused"
        assert [t for t in run.sent() if t > paused_at + IN_FLIGHT] == []

        # When it resumes, it sends again
        resumed_at, resumed = run.act("resume")
        assert resumed["status"] == "sending"
        run.wait(lambda: len(run.sent()) >= len(before_pause) + 60, 60, "60 more sent after resume")

        # When it is cancelled
        cancelled_at, cancelled = run.act("cancel")
        assert cancelled["status"] == "cancelled"
        run.wait(lambda: run.campaign()["counts"]["queued"] == 0, 90, "nothing left queued")

        # Then nothing was sent after the cancel, and every recipient is sent or cancelled
        sent = run.sent()
        assert [t for t in sent if t > cancelled_at + IN_FLIGHT] == []
        final = run.campaign()
        counts = final["counts"]
        assert final["status"] == "cancelled"
        assert counts["sent"] == len(sent), (counts, len(sent))
        assert counts["sent"] + counts["cancelled"] == ROWS, counts
        assert counts["cancelled"] > 0, counts
        assert final["lastError"] is None

        # And each sending phase went at ratePerSecond, within 10%
        first_phase = [t for t in sent if t <= paused_at + IN_FLIGHT]
        second_phase = [t for t in sent if t > resumed_at]
        assert len(first_phase) + len(second_phase) == len(sent)
        for phase in (first_phase, second_phase):
            assert _per_clock_second(phase) <= RATE * 1.1, (_per_clock_second(phase), phase)
            assert _rate(phase) >= RATE * 0.9, (_rate(phase), phase)
        assert run.reads > 20
