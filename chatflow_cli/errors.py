"""The CLI's one exception tree: every expected failure is a ``CliError`` with a message for people."""

from __future__ import annotations

from dataclasses import dataclass


class CliError(Exception):
    """An expected failure: printed in red, exit code 1, never a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldError:
    """One entry of a contract error's ``details``."""

    field: str
    message: str


class ApiError(CliError):
    """The API answered with a contract error (``{"error": {"code", "message", "details"}}``)."""

    def __init__(self, status: int, code: str, reason: str, details: tuple[FieldError, ...] = ()) -> None:
        super().__init__(f"{code}: {reason}")
        self.status = status
        self.code = code
        self.reason = reason
        self.details = details


class Unreachable(CliError):
    """No connection could be made (refused, unknown host, timed out)."""

    def __init__(self, url: str, hint: str) -> None:
        super().__init__(f"cannot reach {url}: {hint}")
        self.url = url
