"""What one invocation knows: the global options; the stack and API client, built when first needed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import typer
from rich.console import Console

from chatflow_cli.api import ApiClient
from chatflow_cli.auth import TOKENS_FILE, CodeSource, OutboxCode, PromptCode, TokenCache
from chatflow_cli.errors import CliError
from chatflow_cli.phone import normalize_phone
from chatflow_cli.stack import Stack, cloudformation_stack, local_stack
from chatflow_cli.transport import Http


@dataclass(frozen=True)
class Options:
    state_dir: Path
    outputs_path: Path | None = None
    stack_name: str | None = None
    region: str | None = None
    phone: str | None = None


def _prompt(text: str) -> str:
    return str(typer.prompt(text))


class Runtime:
    """Built once per command line; nothing touches the network until a command needs it."""

    def __init__(self, options: Options) -> None:
        if options.outputs_path is not None and options.stack_name is not None:
            raise CliError("pass either --outputs or --stack-name, not both")
        self.options = options
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    @cached_property
    def stack(self) -> Stack:
        options = self.options
        if options.stack_name:
            return cloudformation_stack(options.stack_name, options.region)
        if options.outputs_path is not None:
            stack = local_stack(options.outputs_path, explicit=True)
        else:
            stack = local_stack(options.state_dir / "outputs.json", explicit=False)
        return Stack(stack.outputs, stack.source, options.region)

    @cached_property
    def http(self) -> Http:
        return Http(self.stack.hint)

    @cached_property
    def phone(self) -> str:
        if not self.options.phone:
            raise CliError("API commands act as an operator: pass --as PHONE (or set CHATFLOW_PHONE)")
        return normalize_phone(self.options.phone)

    @cached_property
    def api(self) -> ApiClient:
        stack = self.stack
        api_url = stack.output("HttpApiUrl")
        provider = stack.optional("SmsProviderUrl")
        codes: CodeSource = (
            OutboxCode(self.http, provider, self.phone) if provider else PromptCode(self.phone, _prompt)
        )
        cache = TokenCache(self.options.state_dir / TOKENS_FILE)
        return ApiClient(self.http, api_url, self.phone, cache, codes)


def runtime(ctx: typer.Context) -> Runtime:
    """The ``Runtime`` the root callback stored on the context."""
    found = ctx.find_root().obj
    if not isinstance(found, Runtime):  # pragma: no cover - the root callback always sets it
        raise CliError("internal error: no runtime on the context")
    return found
