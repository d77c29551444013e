"""Runs a function of the template inside this process: the tests' and benchmarks' runtime.

Each function gets its own environment variables (applied while its module is imported
and while it runs) and its own module name, so two functions with an ``app.py`` never
collide. Exceptions propagate unchanged, so a failing test shows the real traceback.
``make run`` uses ``local.functions`` instead: one worker process per function, as Lambda.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from local.specs import FunctionSpec

_ENV_LOCK = threading.RLock()


@dataclass
class InvocationContext:
    """The parts of Lambda's context object that handlers use."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old


class LocalFunction:
    def __init__(self, spec: FunctionSpec, base_env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.environment = (base_env or {}) | spec.environment
        self._module: ModuleType | None = None

    @property
    def module(self) -> ModuleType:
        if self._module is None:
            path = self.spec.code_dir / f"{self.spec.module.replace('.', '/')}.py"
            name = f"chatflow_fn_{self.spec.logical_id}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None
            assert module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            with _environment(self.environment):
                module_spec.loader.exec_module(module)
            self._module = module
        return self._module

    @property
    def handler(self) -> Callable[[dict[str, Any], Any], Any]:
        return getattr(self.module, self.spec.attribute)  # type: ignore[no-any-return]

    def invoke(self, event: dict[str, Any]) -> Any:
        context = InvocationContext(self.spec.logical_id, self.spec.memory, self.spec.timeout)
        handler = self.handler
        with _environment(self.environment):
            return handler(event, context)
