"""One exception tree for the whole application.

Domain code raises these; adapters translate provider errors (``ClientError`` codes)
into them with ``raise ... from exc``; the HTTP layer maps each class to one status
code and error code in a single place (``chatflow.api.errors``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One invalid input field, as reported in an error's ``details``."""

    field: str
    message: str


class ChatFlowError(Exception):
    """Base class: every error has a stable snake_case code and a human message."""

    code = "internal_error"

    def __init__(self, message: str, *, details: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(ChatFlowError):
    code = "validation_error"


class InvalidPhoneNumber(ValidationFailed):
    code = "invalid_phone_number"


class InvalidCursor(ValidationFailed):
    code = "invalid_cursor"


class InvalidTemplate(ValidationFailed):
    """A campaign template is malformed; the message says where (line and column)."""

    code = "invalid_template"


class InvalidFile(ValidationFailed):
    """An uploaded recipients file cannot be read as a whole (encoding, header, empty...)."""

    code = "invalid_file"


class NotAuthenticated(ChatFlowError):
    code = "unauthorized"


class Forbidden(ChatFlowError):
    code = "forbidden"


class NotFound(ChatFlowError):
    code = "not_found"


class Conflict(ChatFlowError):
    code = "conflict"


class UsernameTaken(Conflict):
    code = "username_taken"


class RateLimited(ChatFlowError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ConcurrentUpdate(ChatFlowError):
    """A conditional write lost a race; the caller re-reads and tries again."""

    code = "conflict"


class Throttled(ChatFlowError):
    """The data store asked us to slow down; safe to retry later."""

    code = "service_unavailable"


class AlreadyExists(Conflict):
    """A conditional create found the item already there (a lost race or a retry)."""

    code = "conflict"


class ProviderError(ChatFlowError):
    """The SMS provider did not take the message; ``code`` is its error code (or ours)."""

    def __init__(self, message: str, *, code: str = "provider_error") -> None:
        super().__init__(message)
        self.code = code


class TransientProviderError(ProviderError):
    """Worth retrying: a timeout, a connection error, 429 or 5xx. ``retry_after`` in seconds if given."""

    def __init__(
        self, message: str, *, code: str = "provider_unavailable", retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Retrying cannot help: the provider refused the message (4xx other than 429)."""
