"""``chatflow`` itself: finding the stack (outputs.json, --outputs, --stack-name) and its error messages."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chatflow_cli.sms import send_sms_command
from tests.cli.conftest import chatflow, write_outputs

PHONE = "+14155550101"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_help_lists_every_command_group(tmp_path: Path) -> None:
    # Given nothing at all
    # When the operator asks for help
    result = chatflow(tmp_path, "--help")

    # Then every command is listed
    assert result.exit_code == 0
    for command in ("admin", "sms", "campaign", "login", "whoami"):
        assert command in result.stdout


def test_with_no_local_stack_the_cli_says_how_to_start_one(tmp_path: Path) -> None:
    # Given a state directory without outputs.json
    # When any stack command runs
    result = chatflow(tmp_path, "sms", "send", PHONE, "hi")

    # Then it says where it looked and what to do
    assert result.exit_code == 1
    expected = f"no local stack found at {tmp_path / 'outputs.json'}: run `make run`, or pass --stack-name"
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_an_outputs_file_named_with_outputs_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    # Given a path with no file
    missing = tmp_path / "elsewhere.json"

    # When it is passed as --outputs
    result = chatflow(tmp_path, "--outputs", str(missing), "admin", "grant-operator", PHONE)

    # Then the CLI names it
    assert result.exit_code == 1
    assert f"no outputs file at {missing}" in result.stderr


def test_an_outputs_file_that_is_not_json_is_reported(tmp_path: Path) -> None:
    # Given a damaged outputs.json
    (tmp_path / "outputs.json").write_text("{not json", encoding="utf-8")

    # When a stack command runs
    result = chatflow(tmp_path, "sms", "send", PHONE, "hi")

    # Then the CLI says it cannot read it
    assert result.exit_code == 1
    assert f"cannot read the stack outputs in {tmp_path / 'outputs.json'}" in result.stderr


def test_a_missing_output_is_named(tmp_path: Path) -> None:
    # Given outputs without the users table
    write_outputs(tmp_path, {"HttpApiUrl": "http://127.0.0.1:1"})

    # When the operator grants a role
    result = chatflow(tmp_path, "admin", "grant-operator", PHONE)

    # Then the missing output is named
    assert result.exit_code == 1
    assert "has no UsersTableName output" in result.stderr


def test_an_api_that_refuses_connections_is_reported_with_a_hint(tmp_path: Path) -> None:
    # Given a local stack's outputs whose API is not running
    port = _closed_port()
    write_outputs(
        tmp_path, {"HttpApiUrl": f"http://127.0.0.1:{port}", "AwsEndpointUrl": "http://127.0.0.1:1"}
    )

    # When an API command runs
    result = chatflow(tmp_path, "--as", PHONE, "campaign", "list")

    # Then the CLI names the URL and suggests make run
    assert result.exit_code == 1
    assert f"cannot reach http://127.0.0.1:{port}: is `make run` running?" in result.stderr


def test_api_commands_need_the_operators_number(tmp_path: Path) -> None:
    # Given a stack, and no --as nor CHATFLOW_PHONE
    write_outputs(tmp_path, {"HttpApiUrl": "http://127.0.0.1:1"})

    # When an API command runs
    result = chatflow(tmp_path, "campaign", "list")

    # Then the CLI says how to name the operator
    assert result.exit_code == 1
    assert "pass --as PHONE (or set CHATFLOW_PHONE)" in result.stderr


def test_outputs_and_stack_name_together_are_refused(tmp_path: Path) -> None:
    # Given both ways of naming a stack
    write_outputs(tmp_path, {"HttpApiUrl": "http://127.0.0.1:1"})

    # When both are passed
    result = chatflow(
        tmp_path, "--outputs", str(tmp_path / "outputs.json"), "--stack-name", "x", "campaign", "list"
    )

    # Then the CLI asks for one of them
    assert result.exit_code == 1
    assert "pass either --outputs or --stack-name, not both" in result.stderr


def test_an_invalid_phone_number_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    # Given a stack
    write_outputs(
        tmp_path, {"SendSmsQueueUrl": "http://127.0.0.1:1/q", "AwsEndpointUrl": "http://127.0.0.1:1"}
    )

    # When an SMS is sent to something that is not a phone number
    result = chatflow(tmp_path, "sms", "send", "12", "hi")

    # Then the number is refused with an example of a valid one
    assert result.exit_code == 1
    assert "'12' is not a valid phone number" in result.stderr
    assert "+14155550101" in result.stderr


def test_a_send_sms_command_follows_the_contract() -> None:
    # Given a number in national format
    # When a promotional command is built without a command id
    command = send_sms_command("(415) 555-0101", "Sale!", promotional=True, command_id=None)

    # Then it has an id of its own, the number in E.164 and the promotional type
    assert command["commandId"].startswith("cli-")
    assert {k: v for k, v in command.items() if k != "commandId"} == {
        "phoneNumber": PHONE,
        "text": "Sale!",
        "messageType": "promotional",
    }


@pytest.fixture
def deployed() -> Iterator[Any]:
    """A CloudFormation stack named chatflow-dev with a SendSms queue, on moto (in-process)."""
    with mock_aws():
        template = {
            "Resources": {"SendSmsQueue": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {
                "SendSmsQueueUrl": {"Value": {"Ref": "SendSmsQueue"}},
                "HttpApiUrl": {"Value": "https://api.example.com"},
            },
        }
        cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
        cloudformation.create_stack(StackName="chatflow-dev", TemplateBody=json.dumps(template))
        yield cloudformation


def test_stack_name_reads_the_outputs_of_that_cloudformation_stack(tmp_path: Path, deployed: Any) -> None:
    # Given a deployed stack (and no local one)
    # When the operator sends an SMS through it
    result = chatflow(
        tmp_path,
        "--stack-name",
        "chatflow-dev",
        "--region",
        "eu-west-1",
        "sms",
        "send",
        PHONE,
        "hi",
        "--command-id",
        "c1",
    )

    # Then the command is on that stack's queue
    assert result.exit_code == 0, result.output
    sqs = boto3.client("sqs", region_name="eu-west-1")
    (queue_url,) = sqs.list_queues()["QueueUrls"]
    (message,) = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    assert json.loads(message["Body"]) == {
        "commandId": "c1",
        "phoneNumber": PHONE,
        "text": "hi",
        "messageType": "transactional",
    }


def test_an_unknown_stack_name_is_reported_with_its_region(tmp_path: Path, deployed: Any) -> None:
    # Given no stack of that name
    # When the operator names it
    result = chatflow(tmp_path, "--stack-name", "nope", "--region", "eu-west-1", "sms", "send", PHONE, "hi")

    # Then the CLI says so
    assert result.exit_code == 1
    assert "no CloudFormation stack named 'nope' in eu-west-1" in result.stderr
