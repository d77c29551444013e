"""``chatflow sms send``: a SendSms command (CONTRACT §4) on the stack's queue."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import typer

from chatflow_cli.errors import CliError
from chatflow_cli.phone import normalize_phone
from chatflow_cli.runtime import runtime
from chatflow_cli.stack import aws_errors

MAX_TEXT_CHARS = 1600
MAX_COMMAND_ID_CHARS = 128

app = typer.Typer(help="Send SMS through the SMS gateway.", no_args_is_help=True)


def send_sms_command(phone: str, text: str, *, promotional: bool, command_id: str | None) -> dict[str, Any]:
    """The SendSms command body; a ``CliError`` for what the gateway would reject."""
    if not text.strip() or len(text) > MAX_TEXT_CHARS:
        raise CliError(f"the text must have 1-{MAX_TEXT_CHARS} characters (it has {len(text)})")
    command_id = f"cli-{uuid.uuid4()}" if command_id is None else command_id
    if not 1 <= len(command_id) <= MAX_COMMAND_ID_CHARS:
        raise CliError(f"--command-id must have 1-{MAX_COMMAND_ID_CHARS} characters")
    return {
        "commandId": command_id,
        "phoneNumber": normalize_phone(phone),
        "text": text,
        "messageType": "promotional" if promotional else "transactional",
    }


@app.command("send")
def send(
    ctx: typer.Context,
    phone: Annotated[str, typer.Argument(help="Where to send, in any common format.")],
    text: Annotated[str, typer.Argument(help="The message (1-1600 characters).")],
    promotional: Annotated[
        bool, typer.Option("--promotional", help="A promotional message: not sent to numbers that sent STOP.")
    ] = False,
    command_id: Annotated[
        str | None,
        typer.Option("--command-id", help="The idempotency key (default: a new one): an id is sent once."),
    ] = None,
) -> None:
    """Put a SendSms command on the queue and print its command id."""
    rt = runtime(ctx)
    command = send_sms_command(phone, text, promotional=promotional, command_id=command_id)
    stack = rt.stack
    queue_url = stack.output("SendSmsQueueUrl")
    with aws_errors(stack):
        stack.sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(command))
    rt.out.print(command["commandId"])
