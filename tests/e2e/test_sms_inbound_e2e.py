"""STOP / START from a simulated handset on the local stack, as README's `make run` section shows.

The fake provider's ``POST /inbound`` signs the message and delivers it to ChatFlow's
``POST /v1/sms/inbound``; the confirmations come back through the SendSms queue, the
gateway and the fake provider's outbox; a campaign-style command to the SIM is refused.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatflow.domain.webhooks import START_REPLY, STOP_REPLY
from local.stack_server import StackServer
from tests.e2e.test_sms_gateway_e2e import _drain, _observe
from tests.local.conftest import Lines, free_config

PHONE = "+14155550101"
ICCID = "8944500102198304826"


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    # Only ever the local fake provider's http:// URL.
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status), json.loads(response.read())


def _eventually(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_stop_and_start_from_a_handset_are_confirmed_and_stop_holds_for_the_sim(tmp_path: Path) -> None:
    config = free_config(
        tmp_path,
        persist=False,
        provider_environ={"CHATFLOW_FAKE_FAILURE_RATE": "0", "CHATFLOW_FAKE_DELAY_MS": "0-5"},
    )
    with StackServer(config, log=Lines()) as stack:
        provider = stack.provider
        assert provider is not None
        inbound = f"{stack.outputs['SmsProviderUrl']}/inbound"
        sqs, observed = _observe(stack)

        def texts() -> list[str]:
            return [m["text"] for m in provider.outbox(PHONE)]

        # Given a handset texts STOP through the fake provider, naming its SIM
        status, answer = _post(inbound, {"from": PHONE, "iccid": ICCID, "text": "stop"})
        assert status == 202, answer
        assert answer["chatflow"]["action"] == "opted_out"

        # Then its confirmation arrives
        assert _eventually(lambda: texts() == [STOP_REPLY]), texts()

        # When a campaign-style (promotional) SMS goes to the SIM
        sqs.send_message(
            QueueUrl=stack.outputs["SendSmsQueueUrl"],
            MessageBody=json.dumps(
                {"commandId": "promo-1", "iccid": ICCID, "text": "50% off", "messageType": "promotional"}
            ),
        )
        events: list[dict[str, Any]] = []

        def promo_outcome() -> tuple[str, str] | None:
            _drain(sqs, observed, events)
            found = [e for e in events if e["detail"].get("commandId") == "promo-1"]
            return (found[0]["detail-type"], found[0]["detail"].get("errorCode")) if found else None

        # Then it fails as opted out and the provider never sees it
        assert _eventually(lambda: promo_outcome() is not None), events
        assert promo_outcome() == ("SmsFailed", "opted_out")
        assert provider.outbox(ICCID) == []

        # When the handset texts START
        status, answer = _post(inbound, {"from": PHONE, "iccid": ICCID, "text": "START"})
        assert (status, answer["chatflow"]["action"]) == (202, "opted_in")

        # Then START is confirmed too, and nothing else reached the number
        assert _eventually(lambda: texts() == [STOP_REPLY, START_REPLY]), texts()
