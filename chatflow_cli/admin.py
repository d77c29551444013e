"""``chatflow admin``: what the API has no route for, done on the stack's AWS resources."""

from __future__ import annotations

from typing import Annotated

import typer
from botocore.exceptions import ClientError

from chatflow_cli.errors import CliError
from chatflow_cli.phone import normalize_phone
from chatflow_cli.runtime import runtime
from chatflow_cli.stack import aws_errors

OPERATOR_ROLE = "operator"

app = typer.Typer(help="Administer users (directly in the stack's AWS resources).", no_args_is_help=True)


@app.command("grant-operator")
def grant_operator(
    ctx: typer.Context,
    phone: Annotated[str, typer.Argument(help="The user's number, in any common format.")],
) -> None:
    """Give a user the operator role (campaigns). They must have signed in once."""
    rt = runtime(ctx)
    number = normalize_phone(phone)
    stack = rt.stack
    table = stack.output("UsersTableName")
    with aws_errors(stack):
        client = stack.dynamodb()
        try:
            # The user item of the identity store: PK=USER#<e164>, SK=PROFILE, roles a string set.
            client.update_item(
                TableName=table,
                Key={"PK": {"S": f"USER#{number}"}, "SK": {"S": "PROFILE"}},
                UpdateExpression="ADD #roles :roles",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#roles": "roles"},
                ExpressionAttributeValues={":roles": {"SS": [OPERATOR_ROLE]}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise CliError(f"no user for {number}: they must sign in once first") from exc
            raise
    rt.out.print(f"{number} is an operator")
