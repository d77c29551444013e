"""The composition: settings read at cold start, each product made once, clients injectable."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import ValidationError

from chatflow.composition import Composition
from chatflow.settings import AwsSettings, CampaignSettings, TableSettings

ENV = {"AWS_REGION": "eu-west-1", "USERS_TABLE": "users", "CHATS_TABLE": "chats"}


class StandInClient:
    """Stands for a boto3 client: the composition hands it to adapters and calls nothing on it."""


def test_given_a_missing_variable_when_required_then_the_cold_start_fails_naming_it() -> None:
    with pytest.raises(ValidationError, match="CAMPAIGNS_TABLE"):
        Composition(ENV).require(AwsSettings, CampaignSettings)


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
