"""``chatflow`` against the real local stack (started in-process on free ports, sign-in codes by SMS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack_server import StackServer
from tests.cli.conftest import chatflow
from tests.local.conftest import Lines, eventually, free_config, http


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    """One stack for the module (moto keeps one state per process); each test uses its own numbers."""
    config = free_config(tmp_path_factory.mktemp("cli-stack"), auth_mode="otp", persist=False)
    with StackServer(config, log=Lines()) as server:
        yield server


@pytest.fixture
def state(stack: StackServer) -> Path:
    """The stack's state directory: its outputs.json, and the CLI's token cache."""
    return stack.config.state_dir


def _texts(stack: StackServer, phone: str) -> list[str]:
    assert stack.provider is not None
    return [str(message["text"]) for message in stack.provider.outbox(phone)]


def _cached_token(state: Path, stack: StackServer, phone: str) -> str:
    tokens = json.loads((state / "cli-tokens.json").read_text())
    return str(tokens[stack.outputs["HttpApiUrl"]][phone]["token"])


def test_the_first_command_signs_in_with_the_code_from_the_outbox_and_the_next_reuses_the_token(
    stack: StackServer, state: Path
) -> None:
    # Given an operator who never used the CLI
    phone = "+14155550111"

    # When they run two API commands
    first = chatflow(state, "--as", "(415) 555-0111", "whoami")
    second = chatflow(state, "--as", phone, "whoami")

    # Then the first signed in with the code the SMS brought, and the second used the cached token
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert phone in first.stdout
    assert phone in second.stdout
    codes = _texts(stack, phone)
    assert len(codes) == 1
    assert "code" in codes[0]
    assert _cached_token(state, stack, phone)


def test_a_cached_token_the_api_rejects_is_replaced_by_a_new_sign_in(stack: StackServer, state: Path) -> None:
    # Given an operator whose cached token no longer works
    phone = "+14155550112"
    assert chatflow(state, "--as", phone, "login").exit_code == 0
    tokens_file = state / "cli-tokens.json"
    tokens = json.loads(tokens_file.read_text())
    tokens[stack.outputs["HttpApiUrl"]][phone]["token"] = "revoked-token"
    tokens_file.write_text(json.dumps(tokens))

    # When they run an API command
    result = chatflow(state, "--as", phone, "whoami")

    # Then the CLI signed in again (a second code) and cached a working token
    assert result.exit_code == 0, result.output
    assert len(_texts(stack, phone)) == 2
    token = _cached_token(state, stack, phone)
    assert token != "revoked-token"
    status, _ = http(
        "GET", f"{stack.outputs['HttpApiUrl']}/v1/users/me", headers={"authorization": f"Bearer {token}"}
    )
    assert status == 200


def test_grant_operator_gives_the_role_that_users_me_then_shows(stack: StackServer, state: Path) -> None:
    # Given a user who signed in once
    phone = "+14155550113"
    assert chatflow(state, "--as", phone, "login").exit_code == 0

    # When they are made an operator (their number written another way)
    result = chatflow(state, "admin", "grant-operator", "415.555.0113")

    # Then GET /v1/users/me lists the operator role
    assert result.exit_code == 0, result.output
    assert f"{phone} is an operator" in result.stdout
    token = _cached_token(state, stack, phone)
    status, me = http(
        "GET", f"{stack.outputs['HttpApiUrl']}/v1/users/me", headers={"authorization": f"Bearer {token}"}
    )
    assert status == 200
    assert me["roles"] == ["operator"]


def test_grant_operator_on_a_number_that_never_signed_in_fails_clearly(
    stack: StackServer, state: Path
) -> None:
    # Given a number with no user
    # When it is made an operator
    result = chatflow(state, "admin", "grant-operator", "+14155550177")

    # Then the CLI says why, with exit code 1, and creates no user
    assert result.exit_code == 1
    assert "no user for +14155550177: they must sign in once first" in result.stderr
    item = stack.client("dynamodb").get_item(
        TableName=stack.outputs["UsersTableName"],
        Key={"PK": {"S": "USER#+14155550177"}, "SK": {"S": "PROFILE"}},
    )
    assert "Item" not in item


def test_sms_send_puts_a_command_on_the_queue_that_the_gateway_delivers(
    stack: StackServer, state: Path
) -> None:
    # Given the running stack
    phone = "+14155550114"

    # When the operator sends an SMS with a chosen command id
    result = chatflow(
        state, "sms", "send", "(415) 555-0114", "Hello from the CLI", "--command-id", "cli-test-1"
    )

    # Then the command id is printed, and the fake provider eventually received the text
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "cli-test-1"
    assert eventually(lambda: _texts(stack, phone)) == ["Hello from the CLI"]
    assert stack.provider is not None
    assert stack.provider.outbox(phone)[0]["reference"] == "cli-test-1"


def test_logout_ends_the_session_and_forgets_the_token(stack: StackServer, state: Path) -> None:
    # Given a signed-in operator
    phone = "+14155550115"
    assert chatflow(state, "--as", phone, "login").exit_code == 0
    token = _cached_token(state, stack, phone)

    # When they log out
    result = chatflow(state, "--as", phone, "logout")

    # Then the token no longer works and is no longer cached
    assert result.exit_code == 0, result.output
    status, _ = http(
        "GET", f"{stack.outputs['HttpApiUrl']}/v1/users/me", headers={"authorization": f"Bearer {token}"}
    )
    assert status == 401
    tokens = json.loads((state / "cli-tokens.json").read_text())
    assert phone not in tokens[stack.outputs["HttpApiUrl"]]
