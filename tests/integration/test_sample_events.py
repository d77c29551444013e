"""The sample events under events/ are real inputs: each runs through its function."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from local.fake_provider import FakeProviderSettings, FakeSmsProvider
from local.stack import InProcessStack
from local.template import Template

EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.fixture
def stack() -> Iterator[InProcessStack]:
    """The stack in phone mode, its SMS gateway pointed at a fake provider that never fails."""
    provider = FakeSmsProvider(
        FakeProviderSettings(failure_rate=0, min_delay_ms=0, max_delay_ms=1), log=print
    )
    provider.start()
    try:
        with mock_aws():
            yield InProcessStack.create(parameters={"AuthMode": "phone", "SmsProviderBaseUrl": provider.url})
    finally:
        provider.stop()


FUNCTION_OF_PREFIX = {
    "authorizer": "AuthorizerFunction",
    "identity": "IdentityFunction",
    "chats": "ChatsFunction",
    "api_meta": "ApiMetaFunction",
    "chat_activity": "ChatActivityFunction",
    "send_sms": "SendSmsFunction",
    "sms_dead_letters": "SmsDeadLettersFunction",
    "sms_events": "SmsEventsFunction",
    "sms_webhooks": "SmsWebhooksFunction",
    "campaigns": "CampaignsFunction",
    "campaign_loader": "CampaignLoaderFunction",
    "campaign_progress": "CampaignProgressFunction",
    "realtime_connections": "RealtimeConnectionsFunction",
    "realtime_actions": "RealtimeActionsFunction",
    "fanout": "FanoutFunction",
}


def _function_for(name: str) -> str:
    prefix = max((p for p in FUNCTION_OF_PREFIX if name.startswith(p + "_")), key=len)
    return FUNCTION_OF_PREFIX[prefix]


@pytest.mark.parametrize("event_file", sorted(p.name for p in EVENTS.glob("*.json")))
def test_sample_event_is_handled_without_a_server_error(stack: InProcessStack, event_file: str) -> None:
    # Given a sample event and the function it is meant for
    event = json.loads((EVENTS / event_file).read_text())
    function = stack.functions[_function_for(event_file)]

    # When the function handles it
    result = function.invoke(event)

    # Then it answers in the shape its trigger expects, without a server error
    if "statusCode" in result:
        assert result["statusCode"] < 500, result
        json.loads(result.get("body") or "null")  # WebSocket routes may answer without one
    elif "isAuthorized" in result:
        assert result["isAuthorized"] is True
    elif "applied" in result:  # an EventBridge target: a campaign it does not know changes nothing
        assert result == {"applied": False}
    else:
        assert result == {"batchItemFailures": []}


def test_every_function_has_a_sample_event() -> None:
    # Given the functions of the template, Then each has at least one sample event
    covered = {_function_for(p.name) for p in EVENTS.glob("*.json")}
    assert covered == set(Template.load().functions())
