"""FunctionRunner: Lambda functions in isolated, warm worker processes."""

from __future__ import annotations

import os
import re
import secrets
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local.functions import FunctionRunner, Invocation
from local.specs import FunctionError, FunctionSpec

ALPHA_APP = """
    import os
    import sys
    import time
    from decimal import Decimal

    import collide
    import shared

    CALLS = 0


    def handler(event, context):
        global CALLS
        CALLS += 1
        action = event.get("action", "echo")
        if action == "echo":
            return {"function": "alpha", "event": event}
        if action == "env":
            return {name: os.environ.get(name) for name in event["names"]}
        if action == "imports":
            return {"shared": shared.VALUE, "collide": collide.WHO, "path": sys.path[:2]}
        if action == "count":
            return {"calls": CALLS, "pid": os.getpid()}
        if action == "raise":
            raise ValueError("boom " + event["detail"])
        if action == "sleep":
            start = time.time()
            time.sleep(event["seconds"])
            return {"start": start, "end": time.time(), "pid": os.getpid()}
        if action == "exit":
            sys.exit(3)
        if action == "os_exit":
            os._exit(7)
        if action == "unserializable":
            return {"when": object()}
        if action == "decimal":
            return {"count": Decimal("3"), "ratio": Decimal("0.5")}
        if action == "print":
            print('{"ok": "forged"}')
            print("hello from alpha")
            return "printed"
        if action == "context":
            return {
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "aws_request_id": context.aws_request_id,
                "log_group_name": context.log_group_name,
                "log_stream_name": context.log_stream_name,
                "identity": context.identity,
                "client_context": context.client_context,
                "remaining_ms": context.get_remaining_time_in_millis(),
            }
        raise AssertionError(action)
"""

BETA_APP = """
    import os


    def handler(event, context):
        return {"function": "beta", "env": {name: os.environ.get(name) for name in event.get("names", [])}}
"""


@dataclass
class Stack:
    """Handler folders in a temporary directory and the runners made over them."""

    root: Path
    logs: list[str] = field(default_factory=list)
    runners: list[FunctionRunner] = field(default_factory=list)

    def write(self, relative: str, source: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    def spec(self, name: str, folder: str, **overrides: Any) -> FunctionSpec:
        values: dict[str, Any] = {
            "logical_id": name,
            "code_dir": self.root / folder,
            "handler": "app.handler",
            "environment": {},
            "timeout": 1,
            "layer_dirs": (self.root / "layer" / "python",),
        }
        return FunctionSpec(**(values | overrides))

    def runner(self, *specs: FunctionSpec, **options: Any) -> FunctionRunner:
        base_env = options.pop("base_env", {"PATH": os.environ.get("PATH", "/usr/bin")})
        runner = FunctionRunner(
            {spec.logical_id: spec for spec in specs}, base_env, self.logs.append, **options
        )
        self.runners.append(runner)
        return runner

    def wait_for_log(self, predicate: Callable[[str], bool], seconds: float = 2.0) -> list[str]:
        # Worker output arrives through a reader thread, shortly after the response.
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [line for line in list(self.logs) if predicate(line)]
            if found:
                return found
            time.sleep(0.01)
        return []


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    stack.write("alpha/app.py", ALPHA_APP)
    stack.write("alpha/collide.py", 'WHO = "function"\n')
    stack.write("beta/app.py", BETA_APP)
    stack.write("layer/python/shared.py", 'VALUE = "from the layer"\n')
    stack.write("layer/python/collide.py", 'WHO = "layer"\n')
    yield stack
    for runner in stack.runners:
        runner.close()


@pytest.fixture
def alpha(stack: Stack) -> FunctionSpec:
    return stack.spec("Alpha", "alpha")


def in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_invoke_returns_the_handlers_result(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a runner over one function
    runner = stack.runner(alpha)

    # When it is invoked
    result = runner.invoke("Alpha", {"action": "echo", "value": 42}, "test")

    # Then the handler's return value comes back, as JSON would carry it
    assert result == {"function": "alpha", "event": {"action": "echo", "value": 42}}


def test_two_functions_with_the_same_module_name_do_not_collide(stack: Stack, alpha: FunctionSpec) -> None:
    # Given two functions whose handlers are both app.handler
    runner = stack.runner(alpha, stack.spec("Beta", "beta"))

    # When both are invoked
    first = runner.invoke("Alpha", {}, "test")
    second = runner.invoke("Beta", {}, "test")

    # Then each ran its own app.py
    assert (first["function"], second["function"]) == ("alpha", "beta")


def test_a_function_sees_its_own_base_and_reserved_variables(stack: Stack) -> None:
    # Given a function with its own variable, one overriding the base environment
    spec = stack.spec("Alpha", "alpha", environment={"TABLE": "alpha-table", "SHARED": "function"})
    runner = stack.runner(spec, base_env={"SHARED": "base", "AWS_REGION": "us-east-1"})
    names = [
        "TABLE",
        "SHARED",
        "AWS_REGION",
        "AWS_LAMBDA_FUNCTION_NAME",
        "_HANDLER",
        "TZ",
        "LAMBDA_TASK_ROOT",
    ]

    # When it reads its environment
    env = runner.invoke("Alpha", {"action": "env", "names": names}, "test")

    # Then it has base_env, Lambda's reserved variables and its own, its own winning
    assert env == {
        "TABLE": "alpha-table",
        "SHARED": "function",
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "Alpha",
        "_HANDLER": "app.handler",
        "TZ": "UTC",
        "LAMBDA_TASK_ROOT": str(stack.root / "alpha"),
    }


def test_a_function_sees_neither_another_functions_nor_the_parents_variables(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a secret only in the parent's environment and a variable only beta has
    secret = secrets.token_hex(8)
    monkeypatch.setenv("CHATFLOW_TEST_SECRET", secret)
    runner = stack.runner(
        stack.spec("Alpha", "alpha"), stack.spec("Beta", "beta", environment={"ONLY_B": "b"})
    )
    runner.invoke("Beta", {}, "test")

    # When alpha reads both
    env = runner.invoke("Alpha", {"action": "env", "names": ["CHATFLOW_TEST_SECRET", "ONLY_B"]}, "test")

    # Then it sees neither
    assert env == {"CHATFLOW_TEST_SECRET": None, "ONLY_B": None}


def test_layer_modules_are_importable_and_the_function_dir_comes_first(
    stack: Stack, alpha: FunctionSpec
) -> None:
    # Given a layer with a shared module and a module the function dir also has
    runner = stack.runner(alpha)

    # When the handler reports what it imported
    result = runner.invoke("Alpha", {"action": "imports"}, "test")

    # Then the layer's module was found, and the function's copy won over the layer's
    assert result == {
        "shared": "from the layer",
        "collide": "function",
        "path": [str(stack.root / "alpha"), str(stack.root / "layer" / "python")],
    }


def test_a_warm_worker_keeps_module_state_between_calls(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a function invoked once
    runner = stack.runner(alpha)
    first = runner.invoke("Alpha", {"action": "count"}, "test")

    # When it is invoked again
    second = runner.invoke("Alpha", {"action": "count"}, "test")

    # Then the same process ran it, with its module-level counter kept
    assert (first["calls"], second["calls"]) == (1, 2)
    assert first["pid"] == second["pid"]


def test_only_the_first_invocation_is_a_cold_start(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a listener on a runner
    runner = stack.runner(alpha)
    records: list[Invocation] = []
    runner.add_listener(records.append)

    # When the function is invoked twice
    runner.invoke("Alpha", {}, "test")
    runner.invoke("Alpha", {}, "test")

    # Then only the first was cold, and it reports how long the import took
    assert [record.cold for record in records] == [True, False]
    assert records[0].init_duration_ms is not None
    assert records[1].init_duration_ms is None


def test_the_context_object_looks_like_lambdas(stack: Stack) -> None:
    # Given a function with 256 MB and a 1 s timeout
    runner = stack.runner(stack.spec("Alpha", "alpha", memory=256))

    # When the handler reports its context
    context = runner.invoke("Alpha", {"action": "context"}, "test")

    # Then it has Lambda's attributes (memory as a string, as Lambda's runtime gives it)
    remaining = context.pop("remaining_ms")
    request_id = context.pop("aws_request_id")
    stream = context.pop("log_stream_name")
    assert context == {
        "function_name": "Alpha",
        "function_version": "$LATEST",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:Alpha",
        "memory_limit_in_mb": "256",
        "log_group_name": "/aws/lambda/Alpha",
        "identity": None,
        "client_context": None,
    }
    assert 0 < remaining <= 1000
    assert re.fullmatch(r"[0-9a-f-]{36}", request_id)
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", stream)


def test_a_handler_exception_becomes_a_function_error(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a handler that raises
    runner = stack.runner(alpha)

    # When it is invoked
    with pytest.raises(FunctionError) as raised:
        runner.invoke("Alpha", {"action": "raise", "detail": "x"}, "test")

    # Then the error carries the exception's type, message and the handler's frame
    error = raised.value
    assert (error.function, error.error_type, error.error_message) == ("Alpha", "ValueError", "boom x")
    assert any("app.py" in entry and 'raise ValueError("boom "' in entry for entry in error.trace)
    assert not any("worker.py" in entry for entry in error.trace)


def test_the_worker_stays_warm_after_a_handler_exception(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a handler that raised once
    runner = stack.runner(alpha)
    with pytest.raises(FunctionError):
        runner.invoke("Alpha", {"action": "raise", "detail": "x"}, "test")

    # When it is invoked again
    result = runner.invoke("Alpha", {"action": "count"}, "test")

    # Then the same warm worker answers: its counter saw both calls
    assert result["calls"] == 2


def test_a_slow_handler_times_out(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a function with a 1 s timeout
    runner = stack.runner(alpha)

    # When its handler takes longer
    with pytest.raises(FunctionError) as raised:
        runner.invoke("Alpha", {"action": "sleep", "seconds": 5}, "test")

    # Then it fails as Lambda reports a timeout
    assert (raised.value.error_type, raised.value.error_message) == (
        "Sandbox.Timedout",
        "Task timed out after 1.00 seconds",
    )


def test_after_a_timeout_the_next_call_gets_a_fresh_worker(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a warm function that then timed out
    runner = stack.runner(alpha)
    before = runner.invoke("Alpha", {"action": "count"}, "test")
    with pytest.raises(FunctionError):
        runner.invoke("Alpha", {"action": "sleep", "seconds": 5}, "test")

    # When it is invoked again
    after = runner.invoke("Alpha", {"action": "count"}, "test")

    # Then a new process cold-started for it
    assert after["calls"] == 1
    assert after["pid"] != before["pid"]


@pytest.mark.parametrize(("action", "status"), [("exit", "exit status 3"), ("os_exit", "exit status 7")])
def test_a_handler_that_exits_the_process_is_an_exit_error(
    stack: Stack, alpha: FunctionSpec, action: str, status: str
) -> None:
    # Given a handler that ends its process
    runner = stack.runner(alpha)

    # When it is invoked
    with pytest.raises(FunctionError) as raised:
        runner.invoke("Alpha", {"action": action}, "test")

    # Then the runtime reports the exit
    assert raised.value.error_type == "Runtime.ExitError"
    assert raised.value.error_message == f"Runtime exited with error: {status}"


def test_after_an_exit_the_next_call_starts_a_new_worker(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a handler that exited its process
    runner = stack.runner(alpha)
    with pytest.raises(FunctionError):
        runner.invoke("Alpha", {"action": "exit"}, "test")

    # When it is invoked again
    result = runner.invoke("Alpha", {"action": "count"}, "test")

    # Then a new worker ran it
    assert result["calls"] == 1


def test_an_import_error_is_reported_then_retried_once_fixed(stack: Stack) -> None:
    # Given a function whose module imports something missing
    stack.write("broken/app.py", "import chatflow_no_such_module\n")
    runner = stack.runner(stack.spec("Broken", "broken"))
    with pytest.raises(FunctionError) as raised:
        runner.invoke("Broken", {}, "test")

    # When the file is fixed and the function invoked again
    stack.write("broken/app.py", "def handler(event, context):\n    return 'fixed now'\n")
    result = runner.invoke("Broken", {}, "test")

    # Then the first call failed as Lambda's import error and the retry cold-started the fixed code
    assert raised.value.error_type == "Runtime.ImportModuleError"
    assert "Unable to import module 'app'" in raised.value.error_message
    assert "chatflow_no_such_module" in raised.value.error_message
    assert result == "fixed now"


def test_an_exception_at_import_keeps_its_class_as_error_type(stack: Stack) -> None:
    # Given a module that fails while initializing
    stack.write("broken/app.py", "import os\nTABLE = os.environ['CHATFLOW_MISSING_TABLE']\n")
    runner = stack.runner(stack.spec("Broken", "broken"))

    # When it is invoked
    with pytest.raises(FunctionError) as raised:
        runner.invoke("Broken", {}, "test")

    # Then the error is the init exception's
    assert (raised.value.error_type, raised.value.error_message) == ("KeyError", "'CHATFLOW_MISSING_TABLE'")


def test_a_slow_init_times_out(stack: Stack) -> None:
    # Given a module that takes longer to import than the init budget
    stack.write("slow/app.py", "import time\ntime.sleep(5)\n\ndef handler(event, context):\n    return 1\n")
    runner = stack.runner(stack.spec("Slow", "slow"), init_timeout=0.3)

    # When it is invoked
    with pytest.raises(FunctionError) as raised:
        runner.invoke("Slow", {}, "test")

    # Then the init phase timed out
    assert raised.value.error_type == "Sandbox.Timedout"
    assert raised.value.error_message == "Init phase timed out after 0.30 seconds"


def test_a_result_that_is_not_json_is_a_marshal_error(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a handler returning an object JSON cannot carry
    runner = stack.runner(alpha)

    # When it is invoked
    with pytest.raises(FunctionError) as raised:
        runner.invoke("Alpha", {"action": "unserializable"}, "test")

    # Then it fails as Lambda's marshalling does
    assert raised.value.error_type == "Runtime.MarshalError"


def test_decimals_in_a_result_are_numbers_as_in_lambda(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a handler returning DynamoDB-style Decimals
    runner = stack.runner(alpha)

    # When it is invoked
    result = runner.invoke("Alpha", {"action": "decimal"}, "test")

    # Then they arrive as JSON numbers
    assert result == {"count": 3, "ratio": 0.5}


def test_function_prints_reach_the_log_without_breaking_the_protocol(
    stack: Stack, alpha: FunctionSpec
) -> None:
    # Given a handler that prints, even a line that looks like a response
    runner = stack.runner(alpha)

    # When it is invoked
    result = runner.invoke("Alpha", {"action": "print"}, "test")

    # Then the real result came back, and the prints went to the log under the function's name
    assert result == "printed"
    assert stack.wait_for_log(lambda line: line == "Alpha | hello from alpha")
    assert stack.wait_for_log(lambda line: line == 'Alpha | {"ok": "forged"}')


def test_two_workers_run_slow_calls_in_parallel(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a runner allowing two workers per function
    runner = stack.runner(alpha, max_concurrency=2)
    sleep = {"action": "sleep", "seconds": 0.3}

    # When two slow calls arrive together
    first, second = in_parallel([lambda: runner.invoke("Alpha", sleep, "test")] * 2)

    # Then two processes ran them at overlapping times
    assert first["pid"] != second["pid"]
    assert first["start"] < second["end"]
    assert second["start"] < first["end"]


def test_reserved_concurrency_of_one_serializes_calls(stack: Stack) -> None:
    # Given a function limited to one concurrent execution
    runner = stack.runner(stack.spec("Alpha", "alpha", reserved_concurrency=1), max_concurrency=4)
    sleep = {"action": "sleep", "seconds": 0.3}

    # When two slow calls arrive together
    first, second = in_parallel([lambda: runner.invoke("Alpha", sleep, "test")] * 2)

    # Then one worker ran them one after the other
    earlier, later = sorted([first, second], key=lambda result: result["start"])
    assert first["pid"] == second["pid"]
    assert earlier["end"] <= later["start"]


def test_each_invocation_logs_one_summary_line(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a runner
    runner = stack.runner(alpha)

    # When a function is invoked cold then warm
    runner.invoke("Alpha", {}, "http POST /v1/chats")
    runner.invoke("Alpha", {}, "http POST /v1/chats")

    # Then each call logged its function, trigger, duration and outcome
    summaries = [line for line in stack.logs if line.startswith("Alpha  ")]
    assert len(summaries) == 2
    assert re.fullmatch(r"Alpha  http POST /v1/chats  \d+ ms  ok  \(cold start, init \d+ ms\)", summaries[0])
    assert re.fullmatch(r"Alpha  http POST /v1/chats  \d+ ms  ok", summaries[1])


def test_a_failure_logs_its_error_and_indented_stack_trace(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a warm function
    runner = stack.runner(alpha)
    runner.invoke("Alpha", {}, "sqs Queue")
    stack.logs.clear()

    # When its handler raises
    with pytest.raises(FunctionError):
        runner.invoke("Alpha", {"action": "raise", "detail": "y"}, "sqs Queue")

    # Then the summary names the error, followed by the trace, indented
    index = next(i for i, line in enumerate(stack.logs) if line.startswith("Alpha  sqs Queue"))
    assert re.fullmatch(r"Alpha  sqs Queue  \d+ ms  error ValueError: boom y", stack.logs[index])
    trace = stack.logs[index + 1 :]
    assert any(line.startswith("    ") and "app.py" in line for line in trace)
    assert any(line.strip() == 'raise ValueError("boom " + event["detail"])' for line in trace)


def test_listeners_get_when_the_handler_started(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a listener on a runner
    runner = stack.runner(alpha)
    records: list[Invocation] = []
    runner.add_listener(records.append)

    # When a call sleeps in its handler
    before = time.time()
    result = runner.invoke("Alpha", {"action": "sleep", "seconds": 0.05}, "sqs Queue")

    # Then the record holds the handler's start time and the call's facts
    (record,) = records
    assert before <= record.started_at <= result["start"]
    assert (record.function, record.trigger, record.error_type) == ("Alpha", "sqs Queue", None)
    assert record.duration_ms >= 50


def test_listeners_get_the_error_type_of_a_failure(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a listener on a runner
    runner = stack.runner(alpha)
    records: list[Invocation] = []
    runner.add_listener(records.append)

    # When the handler raises
    with pytest.raises(FunctionError):
        runner.invoke("Alpha", {"action": "raise", "detail": "z"}, "test")

    # Then the record carries the error type
    assert [record.error_type for record in records] == ["ValueError"]


def test_an_unknown_function_is_a_key_error(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a runner over alpha only
    runner = stack.runner(alpha)

    # When another function is invoked / Then the error names it
    with pytest.raises(KeyError, match="Gamma"):
        runner.invoke("Gamma", {}, "test")


def test_close_stops_every_worker_and_can_be_repeated(stack: Stack, alpha: FunctionSpec) -> None:
    # Given a warm worker
    runner = stack.runner(alpha)
    pid = runner.invoke("Alpha", {"action": "count"}, "test")["pid"]

    # When the runner is closed twice
    runner.close()
    runner.close()

    # Then the worker process is gone and the runner refuses new calls
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(FunctionError, match="closed"):
        runner.invoke("Alpha", {}, "test")
