"""Runs the stack's Lambda functions in worker subprocesses, isolated the way Lambda isolates them.

Each worker (``local/worker.py``) is one execution environment: its own process, a clean
environment, the function's code directory then its layers on ``sys.path``. Workers stay warm
between invocations, up to a per-function concurrency limit, and are replaced after a
timeout or a crash.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from local.specs import FunctionError, FunctionSpec

WORKER_SCRIPT = Path(__file__).resolve().with_name("worker.py")
# Lambda gives an on-demand init phase 10 s, apart from the function's own timeout.
INIT_TIMEOUT_SECONDS = 10.0
TERMINATE_GRACE_SECONDS = 1.0
# A grandchild process of a function may hold the stderr pipe open after the worker died.
READER_JOIN_SECONDS = 2.0


@dataclass(frozen=True)
class Invocation:
    """What happened in one invocation, for benchmarks and other observers."""

    function: str
    trigger: str
    started_at: float
    duration_ms: float
    cold: bool
    error_type: str | None
    init_duration_ms: float | None = None


Listener = Callable[[Invocation], None]


@dataclass(frozen=True)
class _Outcome:
    result: Any
    error: FunctionError | None
    started_at: float
    duration_ms: float
    keep_worker: bool
    init_duration_ms: float | None = None


class _WorkerTimeout(Exception):
    pass


class _Worker:
    """One worker process: its pipes, its stderr forwarding thread, its protocol reader."""

    def __init__(self, function_id: str, spec: FunctionSpec, env: dict[str, str], log: Callable[[str], None]):
        config = {
            "codeDir": str(spec.code_dir),
            "layerDirs": [str(path) for path in spec.layer_dirs],
            "handler": spec.handler,
            "functionName": spec.logical_id,
            "functionArn": spec.arn,
            "memory": spec.memory,
            "timeout": spec.timeout,
            "logStreamName": env["AWS_LAMBDA_LOG_STREAM_NAME"],
        }
        self.function_id = function_id
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-I", str(WORKER_SCRIPT), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=spec.code_dir,
            # Ctrl-C in the terminal reaches the runner only; it stops the workers itself.
            start_new_session=True,
        )
        self._stdin: IO[bytes] = _pipe(self.process.stdin)
        self._stdout: IO[bytes] = _pipe(self.process.stdout)
        self._stderr: IO[bytes] = _pipe(self.process.stderr)
        self._buffer = bytearray()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._stdout.fileno(), selectors.EVENT_READ)
        self._log = log
        self._stopped = False
        self._reader = threading.Thread(
            target=self._forward_stderr, name=f"{function_id}-stderr", daemon=True
        )
        self._reader.start()

    def _forward_stderr(self) -> None:
        with self._stderr:
            for raw in self._stderr:
                self._log(f"{self.function_id} | {raw.decode(errors='replace').rstrip()}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, request: str) -> bool:
        """Write one request line; False when the worker is gone."""
        try:
            self._stdin.write(request.encode() + b"\n")
            self._stdin.flush()
        except OSError:
            return False
        return True

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or None when the worker closed its end; ``_WorkerTimeout`` past ``timeout``."""
        deadline = time.monotonic() + timeout
        while (newline := self._buffer.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _WorkerTimeout
            if not self._selector.select(remaining):
                continue
            chunk = os.read(self._stdout.fileno(), 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line = bytes(self._buffer[:newline])
        del self._buffer[: newline + 1]
        message: dict[str, Any] = json.loads(line)
        return message

    def exit_description(self) -> str:
        """How the process ended, worded like Lambda's ``Runtime.ExitError``."""
        try:
            code = self.process.wait(TERMINATE_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if code >= 0:
            return f"Runtime exited with error: exit status {code}"
        name = signal.strsignal(-code) or str(-code)
        return f"Runtime exited with error: signal: {name.lower()}"

    def terminate(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()

    def wait_or_kill(self, deadline: float) -> None:
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def join_reader(self) -> None:
        self._reader.join(READER_JOIN_SECONDS)

    def stop(self) -> None:
        """Kill the process and release its pipes; safe to call again."""
        if self._stopped:
            return
        self._stopped = True
        if self.alive():
            self.process.kill()
        self.process.wait()
        self._selector.close()
        for pipe in (self._stdin, self._stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        self.join_reader()


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    if stream is None:
        raise RuntimeError("worker started without a pipe")
    return stream


class _Pool:
    """The workers of one function: idle ones, and how many exist against the concurrency limit."""

    def __init__(self, function_id: str, limit: int) -> None:
        self.function_id = function_id
        self.limit = limit
        self._condition = threading.Condition()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._starting = 0
        self._closed = False

    def _closed_error(self) -> FunctionError:
        return FunctionError(self.function_id, "Runtime.Unavailable", "the function runner is closed")

    def acquire(self) -> _Worker | None:
        """A warm worker, or None when the caller may start one (its slot is then reserved)."""
        dead: list[_Worker] = []
        try:
            with self._condition:
                while True:
                    if self._closed:
                        raise self._closed_error()
                    while self._idle:
                        worker = self._idle.pop()
                        if worker.alive():
                            return worker
                        # Died while idle (a background thread exited, say): start afresh.
                        self._workers.discard(worker)
                        dead.append(worker)
                    if len(self._workers) + self._starting < self.limit:
                        self._starting += 1
                        return None
                    self._condition.wait()
        finally:
            for worker in dead:
                worker.stop()

    def add(self, worker: _Worker) -> None:
        """Count a started worker in place of its reserved slot."""
        with self._condition:
            self._starting -= 1
            self._workers.add(worker)
            if self._closed:
                raise self._closed_error()

    def release(self, worker: _Worker | None, keep: bool) -> bool:
        """Give the worker (None: an unused start slot) back; False when the caller must stop it."""
        with self._condition:
            self._condition.notify()
            if worker is None:
                self._starting -= 1
                return False
            if keep and not self._closed and worker.alive():
                self._idle.append(worker)
                return True
            self._workers.discard(worker)
            return False

    def shut(self) -> tuple[list[_Worker], list[_Worker]]:
        """Refuse new work; the idle and the busy workers."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            idle = list(self._idle)
            busy = [worker for worker in self._workers if worker not in idle]
            self._idle.clear()
            self._workers.clear()
            return idle, busy


class FunctionRunner:
    """Invokes functions by logical id in warm, isolated worker processes; thread-safe."""

    def __init__(
        self,
        specs: Mapping[str, FunctionSpec],
        base_env: Mapping[str, str],
        log: Callable[[str], None] = print,
        max_concurrency: int = 4,
        *,
        init_timeout: float = INIT_TIMEOUT_SECONDS,
    ) -> None:
        self._specs = dict(specs)
        self._base_env = dict(base_env)
        self._log_function = log
        self._init_timeout = init_timeout
        self._log_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._closed = False
        self._pools = {
            function_id: _Pool(function_id, _limit(max_concurrency, spec.reserved_concurrency))
            for function_id, spec in self._specs.items()
        }

    def __enter__(self) -> FunctionRunner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with an ``Invocation`` after every invocation."""
        with self._lock:
            self._listeners.append(listener)

    def invoke(self, function_id: str, event: dict[str, Any], trigger: str) -> Any:
        """Run one function on ``event``; its result, or ``FunctionError`` when it fails."""
        spec = self._specs.get(function_id)
        if spec is None:
            known = ", ".join(sorted(self._specs)) or "none"
            raise KeyError(f"unknown function {function_id!r} (known functions: {known})")
        pool = self._pools[function_id]
        if pool.limit == 0:
            raise FunctionError(function_id, "TooManyRequestsException", "Rate Exceeded.")
        worker = pool.acquire()
        cold = worker is None
        outcome: _Outcome | None = None
        started = time.time()
        clock = time.perf_counter()
        try:
            if worker is None:
                worker = _Worker(function_id, spec, self._environment(spec), self._log)
                pool.add(worker)
                init_error, init_ms = self._initialize(function_id, worker)
                if init_error is not None:
                    outcome = _failure(init_error, started, clock, init_ms)
                else:
                    outcome = replace(self._call(function_id, spec, worker, event), init_duration_ms=init_ms)
            else:
                outcome = self._call(function_id, spec, worker, event)
        except FunctionError as exc:
            outcome = _failure(exc, started, clock)
        except Exception as exc:
            error = FunctionError(function_id, "Runtime.Unknown", repr(exc), traceback.format_exception(exc))
            outcome = _failure(error, started, clock)
        finally:
            keep = outcome is not None and outcome.keep_worker
            if not pool.release(worker, keep) and worker is not None:
                worker.stop()
        self._report(function_id, trigger, cold, outcome)
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    def close(self) -> None:
        """Stop every worker: terminate, kill after a short grace, join the log readers. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        idle: list[_Worker] = []
        busy: list[_Worker] = []
        for pool in self._pools.values():
            pool_idle, pool_busy = pool.shut()
            idle += pool_idle
            busy += pool_busy
        for worker in idle + busy:
            worker.terminate()
        deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
        for worker in idle + busy:
            worker.wait_or_kill(deadline)
        for worker in idle:
            worker.stop()
        # A busy worker's pipes belong to the thread invoking it; only its log reader is ours.
        for worker in busy:
            worker.join_reader()

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        stream = f"{datetime.datetime.now(datetime.UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        reserved = {
            "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "TZ": "UTC",
        }
        return self._base_env | reserved | spec.environment

    def _initialize(self, function_id: str, worker: _Worker) -> tuple[FunctionError | None, float | None]:
        """Wait for the cold start: the init error if any, and the init duration when known."""
        try:
            message = worker.receive(self._init_timeout)
        except _WorkerTimeout:
            message_text = f"Init phase timed out after {self._init_timeout:.2f} seconds"
            return FunctionError(function_id, "Sandbox.Timedout", message_text), None
        if message is None:
            return _exited(function_id, worker), None
        init_ms = float(message["initMs"])
        if "error" in message:
            return _error_of(function_id, message["error"]), init_ms
        return None, init_ms

    def _call(self, function_id: str, spec: FunctionSpec, worker: _Worker, event: dict[str, Any]) -> _Outcome:
        started = time.time()
        clock = time.perf_counter()
        deadline_ms = int((started + spec.timeout) * 1000)
        try:
            request = json.dumps({"event": event, "requestId": str(uuid.uuid4()), "deadlineMs": deadline_ms})
        except (TypeError, ValueError) as exc:
            error = FunctionError(function_id, "InvalidRequestContentException", f"event is not JSON: {exc}")
            return _failure(error, started, clock, keep_worker=True)
        if not worker.send(request):
            return _failure(_exited(function_id, worker), started, clock)
        try:
            message = worker.receive(spec.timeout)
        except _WorkerTimeout:
            error = FunctionError(
                function_id, "Sandbox.Timedout", f"Task timed out after {spec.timeout:.2f} seconds"
            )
            return _failure(error, started, clock)
        if message is None:
            return _failure(_exited(function_id, worker), started, clock)
        started_at = float(message["startedAt"])
        duration_ms = float(message["durationMs"])
        if "error" in message:
            return _Outcome(None, _error_of(function_id, message["error"]), started_at, duration_ms, True)
        return _Outcome(message["ok"], None, started_at, duration_ms, True)

    def _report(self, function_id: str, trigger: str, cold: bool, outcome: _Outcome) -> None:
        error = outcome.error
        status = "ok" if error is None else f"error {error.error_type}: {error.error_message}"
        summary = f"{function_id}  {trigger}  {outcome.duration_ms:.0f} ms  {status}"
        first, *rest = summary.splitlines() or [summary]
        init = outcome.init_duration_ms
        cold_note = f"  (cold start, init {init:.0f} ms)" if cold and init is not None else "  (cold start)"
        lines = [first + (cold_note if cold else "")]
        if error is not None:
            details = rest + [line for entry in error.trace for line in entry.splitlines()]
            lines += [f"    {line}" for line in details]
        for line in lines:
            self._log(line)
        record = Invocation(
            function=function_id,
            trigger=trigger,
            started_at=outcome.started_at,
            duration_ms=outcome.duration_ms,
            cold=cold,
            error_type=None if error is None else error.error_type,
            init_duration_ms=outcome.init_duration_ms,
        )
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(record)
            except Exception as exc:  # an observer must not fail the invocation
                self._log(f"{function_id}  listener {listener!r} failed: {exc!r}")

    def _log(self, line: str) -> None:
        # One line at a time from every worker's reader thread and every invoking thread.
        with self._log_lock:
            try:
                self._log_function(line)
            except Exception:
                traceback.print_exc()


def _limit(max_concurrency: int, reserved: int | None) -> int:
    return max_concurrency if reserved is None else min(max_concurrency, reserved)


def _failure(
    error: FunctionError,
    started: float,
    clock: float,
    init_duration_ms: float | None = None,
    *,
    keep_worker: bool = False,
) -> _Outcome:
    duration_ms = (time.perf_counter() - clock) * 1000
    return _Outcome(None, error, started, duration_ms, keep_worker, init_duration_ms)


def _exited(function_id: str, worker: _Worker) -> FunctionError:
    return FunctionError(function_id, "Runtime.ExitError", worker.exit_description())


def _error_of(function_id: str, error: dict[str, Any]) -> FunctionError:
    return FunctionError(
        function_id, str(error["errorType"]), str(error["errorMessage"]), list(error.get("stackTrace") or [])
    )
