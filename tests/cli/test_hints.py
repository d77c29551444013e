"""What the CLI tells a user who is stuck: a campaign id it does not know, the hour's codes used up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatflow_cli.auth import OutboxCode, PromptCode, sign_in
from chatflow_cli.errors import ApiError
from chatflow_cli.transport import Http
from tests.cli.conftest import chatflow
from tests.cli.stub_api import OPERATOR, StubApi

AS = ("--as", OPERATOR)
RATE_LIMITED = "5 codes were sent to this number in the last hour: retry in 3598 seconds."


@pytest.mark.parametrize(
    "command",
    [
        ("campaign", "status", "c-unknown"),
        ("campaign", "recipients", "c-unknown"),
        ("campaign", "upload", "c-unknown", "examples/recipients.csv"),
    ],
)
def test_an_unknown_campaign_id_points_to_the_cli_command_that_lists_the_ids(
    command: tuple[str, ...], stub: StubApi, stub_state: Path
) -> None:
    # Given an operator and no campaign c-unknown
    # When they name it in a command
    result = chatflow(stub_state, *AS, *command)

    # Then the error says so and how to find the ids with the CLI (not an HTTP route), exit code 1
    assert result.exit_code == 1
    assert (
        "no campaign c-unknown: `chatflow campaign list` shows the campaigns and their ids" in result.stderr
    )
    assert "/v1/campaigns" not in result.stderr
    assert "Traceback" not in result.output


class _RateLimitedApi(Http):
    """The API after a number's fifth code of the hour."""

    def __init__(self) -> None:
        super().__init__("unused")

    def api(self, method: str, url: str, **kwargs: Any) -> Any:
        if url.endswith("/v1/verifications"):
            raise ApiError(429, "rate_limited", f"{RATE_LIMITED} (retry after 3598 s)")
        return {"items": []}  # the fake provider's outbox


def test_on_the_local_stack_the_code_limit_names_the_ways_out() -> None:
    # Given the local stack, whose fake provider's outbox gives the codes, and a number out of codes
    http = _RateLimitedApi()
    codes = OutboxCode(http, "http://127.0.0.1:3002", "+14155550100")

    # When the CLI signs in
    with pytest.raises(ApiError) as refused:
        sign_in(http, "http://127.0.0.1:3000", "+14155550100", codes)

    # Then the API's reason is kept and the local ways out are named
    message = refused.value.message
    assert message.startswith(f"rate_limited: {RATE_LIMITED}")
    assert "make run ARGS=--fresh" in message
    assert "CHATFLOW_AUTH_MODE=phone make run" in message
    assert "another number (--as, or CHATFLOW_PHONE)" in message


def test_on_a_deployed_stack_the_code_limit_does_not_suggest_local_settings() -> None:
    # Given a deployed stack (the code is typed) and a number out of codes
    http = _RateLimitedApi()
    codes = PromptCode("+14155550100", prompt=lambda _: "123456")

    # When the CLI signs in
    with pytest.raises(ApiError) as refused:
        sign_in(http, "https://api.example.com", "+14155550100", codes)

    # Then it says to wait or use another number, and nothing about make run
    message = refused.value.message
    assert "wait, or sign in as another number" in message
    assert "make run" not in message
