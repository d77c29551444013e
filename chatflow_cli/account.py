"""``chatflow login``, ``whoami``, ``logout``: the operator's own session (CONTRACT §1)."""

from __future__ import annotations

import typer
from rich.table import Table

from chatflow_cli.errors import ApiError
from chatflow_cli.output import text
from chatflow_cli.runtime import runtime


def login(ctx: typer.Context) -> None:
    """Sign in as --as PHONE now (a code by SMS; on the local stack read from the fake provider)."""
    rt = runtime(ctx)
    token = rt.api.sign_in()
    rt.out.print(f"signed in as {rt.phone} (until {text(token.expires_at)})")


def whoami(ctx: typer.Context) -> None:
    """Show the signed-in operator's profile and roles (GET /v1/users/me)."""
    rt = runtime(ctx)
    user = rt.api.call_object("GET", "/v1/users/me")
    table = Table(show_header=False, box=None)
    table.add_column("field", style="bold")
    table.add_column("value")
    for label, key in (
        ("phone", "phoneNumber"),
        ("user id", "userId"),
        ("name", "displayName"),
        ("username", "username"),
        ("roles", "roles"),
        ("since", "createdAt"),
    ):
        table.add_row(label, text(user.get(key)))
    rt.out.print(table)


def logout(ctx: typer.Context) -> None:
    """End the cached session (DELETE /v1/sessions/current) and forget its token."""
    rt = runtime(ctx)
    api = rt.api
    token = api.cached_token()
    if token is not None:
        try:
            api.http.api(
                "DELETE",
                f"{api.api_url}/v1/sessions/current",
                headers={"Authorization": f"Bearer {token.token}"},
            )
        except ApiError as exc:
            if exc.status != 401:  # already ended: nothing to do
                raise
        api.forget()
    rt.out.print(f"signed out {rt.phone}")
