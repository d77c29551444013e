"""The composition: settings read at cold start, each product made once, clients injectable."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chatflow.composition import Composition
from chatflow.settings import (
    AwsSettings,
    CampaignSettings,
    IdentitySettings,
    RealtimeSettings,
    SettingsError,
    TableSettings,
)

ENV = {"AWS_REGION": "eu-west-1", "USERS_TABLE": "users", "CHATS_TABLE": "chats"}


class StandInClient:
    """Stands for a boto3 client: the composition hands it to adapters and calls nothing on it."""


def test_given_a_missing_variable_when_required_then_its_first_use_fails_naming_it_and_what_to_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given an environment without CAMPAIGNS_TABLE, When the cold start requires it
    deps = Composition(ENV).require(AwsSettings, CampaignSettings)

    # Then the cold start goes on and logs the problem; the other settings are read
    assert "CAMPAIGNS_TABLE is not set" in caplog.text
    assert deps.region == "eu-west-1"
    # And every use of the setting fails, naming the variable and how to set it
    for _ in range(2):
        with pytest.raises(SettingsError, match=r"CAMPAIGNS_TABLE is not set.*--env-vars events/env.json"):
            deps.campaign_repository()


def test_given_an_unresolved_intrinsic_when_its_setting_is_used_then_the_error_says_so() -> None:
    # Given WEBSOCKET_ENDPOINT as `sam local invoke` leaves !Sub "${WebSocketApi.ApiEndpoint}/${Stage}"
    unresolved = {"WEBSOCKET_ENDPOINT": "$WebSocketApi.ApiEndpoint/dev"}
    deps = Composition(ENV | {"CONNECTIONS_TABLE": "connections"} | unresolved).require(RealtimeSettings)

    # When it is used, Then the error names the value and calls it unresolved
    with pytest.raises(SettingsError) as raised:
        deps.settings(RealtimeSettings)
    message = str(raised.value)
    assert "WEBSOCKET_ENDPOINT='$WebSocketApi.ApiEndpoint/dev' is not usable" in message
    assert "an intrinsic of template.yaml that nothing resolved" in message


def test_given_a_bad_value_that_is_no_intrinsic_when_used_then_it_is_not_called_unresolved() -> None:
    deps = Composition(ENV | {"AUTH_MODE": "password"})
    with pytest.raises(SettingsError, match="AUTH_MODE='password' is not usable") as raised:
        deps.settings(IdentitySettings)
    assert "intrinsic" not in str(raised.value)


def test_given_the_environment_changes_after_cold_start_when_settings_are_read_then_they_are_the_first() -> (
    None
):
    environ = dict(ENV)
    deps = Composition(environ).require(TableSettings)

    environ["USERS_TABLE"] = "other"

    assert deps.settings(TableSettings).users_table == "users"


def test_given_an_injected_client_when_a_repository_is_made_then_it_uses_that_client() -> None:
    client: Any = StandInClient()
    deps = Composition(ENV, dynamodb=client)

    chats = deps.chats()

    assert chats._client is client


def test_given_many_threads_when_they_ask_for_a_product_then_it_is_made_once() -> None:
    client: Any = StandInClient()
    deps = Composition(ENV, dynamodb=client)

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: deps.users(), range(32)))

    assert len({id(m) for m in made}) == 1


def test_given_a_provided_product_when_the_factory_is_called_then_it_returns_it() -> None:
    deps = Composition(ENV)
    stand_in = object()

    deps.provide("chats", stand_in)

    assert deps.chats() is stand_in


def test_given_an_unknown_factory_when_provided_then_it_is_refused() -> None:
    with pytest.raises(AttributeError, match="no factory named chat"):
        Composition(ENV).provide("chat", object())
