"""The ``chatflow`` command: global options, the command groups, and the one error handler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from chatflow_cli import account, admin, campaigns, sms
from chatflow_cli.errors import CliError
from chatflow_cli.output import print_error
from chatflow_cli.runtime import Options, Runtime

DEFAULT_STATE_DIR = Path(".local")


class ChatflowGroup(TyperGroup):
    """Every expected failure (``CliError``) ends here: printed in red, exit code 1, no traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as error:
            print_error(Console(stderr=True, highlight=False, soft_wrap=True), error)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=ChatflowGroup,
    name="chatflow",
    help="Operate a ChatFlow stack: the local one (make run) by default, or a deployed one (--stack-name).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(admin.app, name="admin")
app.add_typer(sms.app, name="sms")
app.add_typer(campaigns.app, name="campaign")
# The spelling (`chatflow campaigns pause ID`): the same commands.
app.add_typer(campaigns.app, name="campaigns", hidden=True)
app.command("login")(account.login)
app.command("whoami")(account.whoami)
app.command("logout")(account.logout)


@app.callback()
def main(
    ctx: typer.Context,
    phone: Annotated[
        str | None,
        typer.Option(
            "--as",
            envvar="CHATFLOW_PHONE",
            metavar="PHONE",
            help="The operator's number: API commands sign in as this user (token cached).",
        ),
    ] = None,
    outputs: Annotated[
        Path | None,
        typer.Option("--outputs", metavar="PATH", help="Read the stack outputs from this JSON file."),
    ] = None,
    stack_name: Annotated[
        str | None,
        typer.Option("--stack-name", help="Use this deployed CloudFormation stack's Outputs."),
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region of --stack-name.")] = None,
    state_dir: Annotated[
        Path,
        typer.Option(
            "--state-dir",
            envvar="CHATFLOW_STATE_DIR",
            help="The local stack's state directory (outputs.json; the CLI's token cache).",
        ),
    ] = DEFAULT_STATE_DIR,
) -> None:
    """Operate a ChatFlow stack: the local one (make run) by default, or a deployed one (--stack-name)."""
    ctx.obj = Runtime(
        Options(state_dir=state_dir, outputs_path=outputs, stack_name=stack_name, region=region, phone=phone)
    )
