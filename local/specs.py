"""What the local stack knows about the application, read from the transformed template.

Plain data shared by every part of the local runtime (the function runner, the API
gateways, the event sources); ``local.template`` builds them, nobody else does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function: code, handler, layers and its own environment variables."""

    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int = 3
    memory: int = 128
    layer_dirs: tuple[Path, ...] = ()
    reserved_concurrency: int | None = None

    @property
    def module(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def attribute(self) -> str:
        return self.handler.rpartition(".")[2]

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.logical_id}"


class FunctionError(Exception):
    """A function raised, timed out or could not start: Lambda's ``errorType``/``errorMessage``."""

    def __init__(self, function: str, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.error_message = message
        self.trace = trace or []


# Calls one function of the stack on one event and returns what the handler returned;
# raises FunctionError when the function fails. ``trigger`` names the caller for the logs
# (for example "http GET /v1/health", "sqs SendSmsQueue", "ws $connect").
Invoker = Callable[[str, dict[str, Any], str], Any]


@dataclass(frozen=True)
class WebSocketAuthorizer:
    """A REQUEST authorizer on ``$connect``; identity sources such as ``route.request.querystring.token``."""

    function: str
    identity_sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebSocketRoute:
    route_key: str
    function: str
    authorizer: WebSocketAuthorizer | None = None
    # True when the route has a RouteResponseSelectionExpression: the integration's ``body``
    # is sent back to the calling connection (a two-way route).
    returns_response: bool = False


@dataclass(frozen=True)
class WebSocketApiSpec:
    logical_id: str
    api_id: str
    stage: str
    route_selection_expression: str
    routes: dict[str, WebSocketRoute] = field(default_factory=dict)
