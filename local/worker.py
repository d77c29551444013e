"""One Lambda execution environment: imports a function's handler once, then runs it per request.

Started by ``local.functions.FunctionRunner`` as ``python -I worker.py CONFIG_JSON``. It speaks
JSON lines with the runner over private duplicates of stdin/stdout; the function's own
stdout goes to stderr, which the runner forwards to its log. Only the standard library is
imported here, before the function's directories are put on ``sys.path``.

Lines written by the worker: first ``{"ready": true, "initMs"}`` or ``{"error", "initMs"}`` once
the handler is imported, then one ``{"ok" | "error", "startedAt", "durationMs"}`` per request
``{"event", "requestId", "deadlineMs"}``.
"""

from __future__ import annotations

import decimal
import importlib
import io
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

Handler = Callable[[Any, Any], Any]


class RuntimeFault(Exception):
    """A failure of the runtime itself (bad handler, import error), with Lambda's ``errorType``."""

    def __init__(self, error_type: str, message: str, trace: list[str]) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.trace = trace


class LambdaContext:
    """The context object of Lambda's Python runtime (``memory_limit_in_mb`` is a string there too)."""

    def __init__(self, config: dict[str, Any], request_id: str, deadline_ms: int) -> None:
        self.function_name: str = config["functionName"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = config["functionArn"]
        self.memory_limit_in_mb = str(config["memory"])
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name: str = config["logStreamName"]
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _stack(tb: TracebackType | None) -> list[str]:
    # Like Lambda, hide the runtime's own frames: the trace starts in the function's code.
    frames = [
        frame
        for frame in traceback.extract_tb(tb)
        if frame.filename != __file__ and not frame.filename.startswith("<frozen importlib")
    ]
    return traceback.format_list(frames)


def _describe(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, RuntimeFault):
        return {"errorType": exc.error_type, "errorMessage": str(exc), "stackTrace": exc.trace}
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": _stack(exc.__traceback__),
    }


def load_handler(handler: str) -> Handler:
    """Import ``module.attribute`` the way Lambda's runtime does, with its error types."""
    module_name, _, attribute = handler.rpartition(".")
    if not module_name:
        raise RuntimeFault("Runtime.MalformedHandlerName", f"Bad handler '{handler}'", [])
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise RuntimeFault(
            "Runtime.ImportModuleError",
            f"Unable to import module '{module_name}': {exc}",
            _stack(exc.__traceback__),
        ) from exc
    except SyntaxError as exc:
        raise RuntimeFault(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            traceback.format_exception_only(exc),
        ) from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise RuntimeFault(
            "Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'", []
        )
    return function  # type: ignore[no-any-return]


def _encode_decimal(value: object) -> object:
    # Lambda's marshaller writes Decimals (what DynamoDB returns) as JSON numbers.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _send(channel: IO[bytes], line: str) -> None:
    # The function's last log lines go out before its response does.
    sys.stdout.flush()
    sys.stderr.flush()
    channel.write(line.encode() + b"\n")
    channel.flush()


def invoke(handler: Handler, config: dict[str, Any], request: dict[str, Any]) -> str:
    """Run the handler on one request; the response line."""
    context = LambdaContext(config, request["requestId"], int(request["deadlineMs"]))
    started_at = time.time()
    clock = time.perf_counter()
    try:
        result = handler(request["event"], context)
    except Exception as exc:
        duration_ms = (time.perf_counter() - clock) * 1000
        return json.dumps({"error": _describe(exc), "startedAt": started_at, "durationMs": duration_ms})
    duration_ms = (time.perf_counter() - clock) * 1000
    try:
        body = json.dumps(result, default=_encode_decimal)
    except (TypeError, ValueError) as exc:
        error = {
            "errorType": "Runtime.MarshalError",
            "errorMessage": f"Unable to marshal response: {exc}",
            "stackTrace": [],
        }
        return json.dumps({"error": error, "startedAt": started_at, "durationMs": duration_ms})
    return f'{{"ok": {body}, "startedAt": {started_at!r}, "durationMs": {duration_ms!r}}}'


def _redirect_standard_streams() -> tuple[IO[bytes], IO[bytes]]:
    """Keep private copies of the protocol pipes; fd 1 becomes stderr and fd 0 reads nothing."""
    requests = os.fdopen(os.dup(0), "rb")
    responses = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    return requests, responses


def main(argv: list[str]) -> int:
    config: dict[str, Any] = json.loads(argv[1])
    requests, responses = _redirect_standard_streams()
    sys.path[:0] = [config["codeDir"], *config["layerDirs"]]
    clock = time.perf_counter()
    try:
        handler = load_handler(config["handler"])
    except Exception as exc:
        init_ms = (time.perf_counter() - clock) * 1000
        _send(responses, json.dumps({"error": _describe(exc), "initMs": init_ms}))
        return 1
    _send(responses, json.dumps({"ready": True, "initMs": (time.perf_counter() - clock) * 1000}))
    for line in requests:
        _send(responses, invoke(handler, config, json.loads(line)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
