"""How results and errors look: rich tables on stdout, errors in red on stderr."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape

from chatflow_cli.errors import ApiError, CliError


def print_error(console: Console, error: CliError) -> None:
    """``code: message`` (and each detail) in red."""
    console.print(f"[red]{escape(error.message)}[/red]")
    if isinstance(error, ApiError):
        for detail in error.details:
            where = f"{detail.field}: " if detail.field else ""
            console.print(f"[red]  {escape(where + detail.message)}[/red]")


def text(value: Any) -> str:
    """A value as a table cell or a line (markup escaped): ``-`` for nothing."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list):
        return escape(", ".join(str(v) for v in value))
    return escape(str(value))


def count(counts: Mapping[str, Any], name: str) -> int:
    value = counts.get(name, 0)
    return value if isinstance(value, int) else 0
