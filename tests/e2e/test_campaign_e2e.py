"""A campaign end to end through the local stack, the provider failing 10%.

5,000 recipients (the issue's figure; about three minutes here, every AWS call of the
whole pipeline going through one emulator). CHATFLOW_E2E_ROWS sets another number, e.g.
`CHATFLOW_E2E_ROWS=500 .venv/bin/pytest tests/e2e/test_campaign_e2e.py` while iterating.

The operator creates a campaign over HTTP, PUTs a CSV to the presigned URL (the local
AWS endpoint), and the stack does the rest: the S3 notification, the loader, the SMS
gateway, the events, the progress. At the end the counts add up, each recipient's status
matches them, failed recipients say why, recipients who opted out beforehand are skipped
and got nothing, and uploading the same file again queues nothing new.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatflow.adapters.sms_store import DynamoOptOutRepository
from local.stack_server import StackServer
from tests.local.conftest import Lines, free_config, http

OPERATOR = "+14155550100"
ROWS = int(os.environ.get("CHATFLOW_E2E_ROWS", "5000"))
BAD_ROWS = 3
REPEATED = 2
OPTED_OUT = [f"89{i:018d}" for i in (10, 11)]  # sent STOP before the campaign
STATUSES = ("queued", "sent", "failed", "delivered", "skipped", "expired", "cancelled")


def _csv() -> bytes:
    lines = ["iccid,name,code"]
    for i in range(ROWS):
        lines.append(f"89{i:018d},Person {i},C{i:05d}")
    lines.append("123,Too short,C1")  # a bad ICCID
    lines.append(f"89{1:018d},Same ICCID again,C2")  # a duplicate within the file
    lines.append(f"89{ROWS + 1:018d},,C3")  # an empty value of a used variable
    lines.append(f'89{2:018d},"Quoted, with a comma",C4')  # another duplicate
    lines.append(f'89{ROWS + 2:018d},"Line\nbreak",C5')  # a valid quoted newline
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


def _upload(url: str, auth: dict[str, str], campaign_id: str, data: bytes) -> dict[str, Any]:
    status, ticket = http("POST", f"{url}/v1/campaigns/{campaign_id}/uploads", {}, auth)
    assert status == 201, ticket
    request = urllib.request.Request(
        ticket["uploadUrl"], data=data, method="PUT", headers={"content-type": "text/csv"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status, upload = http(
            "GET", f"{url}/v1/campaigns/{campaign_id}/uploads/{ticket['uploadId']}", headers=auth
        )
        assert status == 200, upload
        if upload["status"] in ("accepted", "rejected"):
            return dict(upload)
        time.sleep(0.5)
    raise AssertionError(f"the upload did not finish: {upload}")


def test_a_campaign_goes_out_and_its_counts_add_up(tmp_path: Path) -> None:
    config = free_config(
        tmp_path,
        persist=False,
        operators=OPERATOR,
        provider_environ={
            "CHATFLOW_FAKE_FAILURE_RATE": "0.1",
            "CHATFLOW_FAKE_DELAY_MS": "0-3",
            "CHATFLOW_FAKE_HANG_SECONDS": "0.2",
            # Receipts (and so "delivered") are covered by the integration tests; here they
            # would only double the events the emulated AWS has to carry.
            "CHATFLOW_FAKE_RECEIPT_DELAY_MS": "3600000",
        },
        parameters={
            "SmsRatePerSecond": "10000",
            "SmsRetryBaseSeconds": "1",
            "SmsMaxAttempts": "3",
            "SmsMaxConcurrency": "10",
            "LoaderMaxRowsPerInvocation": str(max(100, ROWS // 2)),
        },
    )
    with StackServer(config, log=Lines()) as stack:
        url = stack.outputs["HttpApiUrl"]
        token = http("POST", f"{url}/v1/sessions", {"phoneNumber": OPERATOR})[1]["token"]
        auth = {"authorization": f"Bearer {token}"}

        # Given a campaign and a CSV of 5,000 recipients plus awkward rows
        status, campaign = http(
            "POST",
            f"{url}/v1/campaigns",
            {"name": "launch", "template": "Hi {{name}}, your code is {{code}}"},
            auth,
        )
        assert status == 201, campaign
        campaign_id = campaign["campaignId"]
        data = _csv()
        opt_outs = DynamoOptOutRepository(stack.outputs["SmsTableName"], stack.client("dynamodb"))
        for iccid in OPTED_OUT:
            opt_outs.opt_out(iccid, at=datetime.now(UTC))

        # When the operator uploads it
        upload = _upload(url, auth, campaign_id, data)

        # Then the good rows are accepted (the loader went through several invocations),
        # the bad ones listed, the repeated ICCIDs counted as duplicates
        assert upload["status"] == "accepted", upload["error"]
        assert upload["accepted"] == ROWS + 1 - len(OPTED_OUT)
        assert upload["skipped"] == len(OPTED_OUT)
        assert upload["invalidRows"] == BAD_ROWS - 1
        assert upload["duplicates"] == REPEATED
        assert sorted(e["row"] for e in upload["errors"]) == [ROWS + 2, ROWS + 4]

        # And the campaign completes with counts that add up
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            campaign = http("GET", f"{url}/v1/campaigns/{campaign_id}", headers=auth)[1]
            if campaign["status"] == "completed":
                break
            time.sleep(1)
        counts = campaign["counts"]
        assert campaign["status"] == "completed", campaign
        assert counts["total"] == ROWS + 1
        assert sum(counts[s] for s in STATUSES) == counts["total"]
        assert counts["queued"] == 0
        assert counts["skipped"] == len(OPTED_OUT)
        assert counts["failed"] > 0
        assert campaign["lastError"]

        # And every recipient's status matches the counts; the failed ones say why
        recipients: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = f"?limit=100{f'&cursor={cursor}' if cursor else ''}"
            page = http("GET", f"{url}/v1/campaigns/{campaign_id}/recipients{query}", headers=auth)[1]
            recipients.extend(page["items"])
            cursor = page["nextCursor"]
            if cursor is None:
                break
        by_status = Counter(r["status"] for r in recipients)
        assert len(recipients) == counts["total"]
        assert {s: by_status.get(s, 0) for s in STATUSES} == {s: counts[s] for s in STATUSES}
        failed = http(
            "GET", f"{url}/v1/campaigns/{campaign_id}/recipients?status=failed&limit=100", headers=auth
        )[1]
        assert failed["items"]
        assert all(r["status"] == "failed" and r["lastError"] for r in failed["items"])

        # And the opted-out recipients are skipped, and the provider never got a message for them
        skipped = http("GET", f"{url}/v1/campaigns/{campaign_id}/recipients?status=skipped", headers=auth)[1]
        assert sorted(r["iccid"] for r in skipped["items"]) == OPTED_OUT
        provider = stack.outputs["SmsProviderUrl"]
        for iccid in OPTED_OUT:
            assert http("GET", f"{provider}/messages?to={iccid}")[1]["items"] == []

        # And uploading the same file again queues nothing new
        again = _upload(url, auth, campaign_id, data)
        assert again["status"] == "accepted"
        assert again["accepted"] == 0
        assert again["duplicates"] == ROWS + 1 + REPEATED
        after = http("GET", f"{url}/v1/campaigns/{campaign_id}", headers=auth)[1]
        assert after["counts"]["total"] == ROWS + 1
