"""The sample events under events/ are real inputs: each runs through its function."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.stack import InProcessStack
from local.template import Template

EVENTS = Path(__file__).resolve().parents[2] / "events"
FUNCTION_OF_PREFIX = {
    "authorizer": "AuthorizerFunction",
    "identity": "IdentityFunction",
    "chats": "ChatsFunction",
    "api_meta": "ApiMetaFunction",
    "chat_activity": "ChatActivityFunction",
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
        json.loads(result["body"] or "null")
    elif "isAuthorized" in result:
        assert result["isAuthorized"] is True
    else:
        assert result == {"batchItemFailures": []}


def test_every_function_has_a_sample_event() -> None:
    # Given the functions of the template, Then each has at least one sample event
    covered = {_function_for(p.name) for p in EVENTS.glob("*.json")}
    assert covered == set(Template.load().functions())
