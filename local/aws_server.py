"""Emulated AWS: a moto server on one port, safe under concurrent clients, whose state can be saved.

Requests are served one at a time: local/moto_patches.py makes each DynamoDB request
atomic by itself, but the rest of moto is not thread-safe (an SQS receive finds a
visible message, then marks it received), and a snapshot needs a quiet moment. Every
request that may create work for an event source (a message sent, an item written, an
object put, an event published) bumps a change counter that the pollers wait on, so
delivery is prompt without busy polling.

State is saved by pickling moto's backends (the service models themselves), which is
fast and exact; it is restored into a fresh process before the server starts.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cheroot import wsgi
from moto.backends import get_backend
from moto.core.base_backend import BackendDict
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from local import moto_patches

# Operations that never create work for a poller (the pollers' own calls among them).
_QUIET_PREFIXES = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "ReceiveMessage", "DeleteMessage")
_STATE_VERSION = 1
# How often cheroot's selector loop wakes up when nothing happens (see EmulatedAws).
SELECT_INTERVAL_SECONDS = 0.05


class ChangeSignal:
    """Counters that pollers wait on, one per topic (``sqs:<queue>``, ``dynamodb:<table>``,
    ``s3``, ``events``): a request bumps the topics it may have created work for, so a
    write wakes only the pollers it concerns (waking all of them on every write would
    multiply the load on the emulator). A request of unknown effect bumps every topic."""

    ALL = "*"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._total = 0
        # The waiters of each topic: a bump wakes those of its topics, not every poller
        # (a notify_all on every write woke a dozen threads to go back to sleep).
        self._waiters: dict[str, set[threading.Event]] = {}

    @property
    def generation(self) -> int:
        """Changes of any topic so far (the state saver uses it to skip unchanged snapshots)."""
        return self._total

    def _count(self, topics: Iterable[str]) -> int:
        return self._counts.get(self.ALL, 0) + sum(self._counts.get(t, 0) for t in topics)

    def of(self, topics: Iterable[str]) -> int:
        with self._lock:
            return self._count(topics)

    def bump(self, topics: Iterable[str] | None = None) -> None:
        with self._lock:
            bumped = tuple(topics) if topics is not None else (self.ALL,)
            for topic in bumped:
                self._counts[topic] = self._counts.get(topic, 0) + 1
            self._total += 1
            if self.ALL in bumped:
                woken = {event for waiters in self._waiters.values() for event in waiters}
            else:
                woken = {event for topic in bumped for event in self._waiters.get(topic, ())}
        for event in woken:
            event.set()

    def wait(self, topics: Iterable[str], seen: int, timeout: float) -> int:
        """Block until one of ``topics`` moves past ``seen`` or ``timeout`` passes; the new value."""
        wanted = tuple(topics)
        event = threading.Event()
        with self._lock:
            if self._count(wanted) != seen:
                return self._count(wanted)
            for topic in (*wanted, self.ALL):
                self._waiters.setdefault(topic, set()).add(event)
        try:
            event.wait(timeout)
        finally:
            with self._lock:
                for topic in (*wanted, self.ALL):
                    self._waiters[topic].discard(event)
        return self.of(wanted)


def _topics(operation: str, environ: dict[str, Any], body: bytes) -> set[str] | None:
    """The topics a request may create work for; None when unknown (wake everyone)."""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if not target:
        return {"s3"}  # REST: S3 (object created or deleted)
    if target.startswith("AWSEvents."):
        return {"events"}
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return None
    if target.startswith("AmazonSQS."):
        url = str(document.get("QueueUrl", ""))
        return {f"sqs:{url.rsplit('/', 1)[-1]}"} if url else None
    if target.startswith("DynamoDB_"):
        tables = set(document.get("RequestItems") or {})
        if document.get("TableName"):
            tables.add(str(document["TableName"]))
        for item in document.get("TransactItems") or []:
            tables.update(str(op.get("TableName")) for op in item.values() if isinstance(op, dict))
        return {f"dynamodb:{table}" for table in tables} or None
    return None


def _operation(environ: dict[str, Any]) -> str:
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        return target.rsplit(".", 1)[-1]
    query = str(environ.get("QUERY_STRING", ""))
    for part in query.split("&"):
        if part.startswith("Action="):
            return part[len("Action=") :]
    return ""


class EmulatedAws:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        moto_patches.install()
        self.changes = ChangeSignal()
        # time.monotonic() of the latest request (local.collector waits for a quiet moment).
        self.last_request_at = time.monotonic()
        self._lock = threading.RLock()
        self._host = host
        self._dispatcher = DomainDispatcherApplication(create_backend_app)
        # cheroot keeps connections alive (werkzeug's server closes every connection, so
        # each AWS call of a function paid a TCP connect and a new server thread) and
        # hands a connection to a pool thread only when a request is ready on it.
        self._server = wsgi.Server((host, port), self._app, numthreads=16, server_name="chatflow-aws")
        # cheroot keeps at most 10 idle keep-alive connections by default and answers
        # `Connection: close` beyond that; every worker and poller holds its own, so with the
        # whole template running a third of the functions' AWS calls paid a new TCP connect.
        self._server.keep_alive_conn_limit = 4096
        # cheroot's selector loop notices a stop (and expires idle connections) once per
        # interval, 0.5 s by default: every stop of the stack waited that long.
        self._server.expiration_interval = SELECT_INTERVAL_SECONDS
        self._server.prepare()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.bind_addr[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        operation = _operation(environ)
        method = str(environ.get("REQUEST_METHOD", "GET"))
        if method == "PUT" and str(environ.get("CONTENT_TYPE", "")).startswith(
            "application/x-www-form-urlencoded"
        ):
            # A PUT body (an S3 object) is never a form; werkzeug would parse it as one and
            # moto would store nothing. urllib sends this type by default.
            environ["CONTENT_TYPE"] = "application/octet-stream"
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(request)
        with self._lock:
            response = self._dispatcher(environ, start_response)
            try:
                answer = b"".join(response)
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()
        self.last_request_at = time.monotonic()
        if method not in ("GET", "HEAD") and not operation.startswith(_QUIET_PREFIXES):
            self.changes.bump(_topics(operation, environ, request))
        return [answer]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve, name="moto", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def exclusive(self) -> threading.RLock:
        """Hold it to see a consistent state: no request is served meanwhile."""
        return self._lock

    # ---- state -------------------------------------------------------------------------

    def save(self, path: Path, extra: dict[str, Any], *, in_background: bool = False) -> float:
        """Write every service's state plus ``extra`` to ``path`` atomically; seconds taken.

        The state must be read with no request in progress, so requests wait meanwhile.
        Pickling a big state takes tens to hundreds of milliseconds: with ``in_background``
        (the periodic snapshots), the process forks while it holds the lock and the child,
        a copy-on-write image of that moment, pickles and writes it; requests wait only
        for the fork. (Only this thread runs in the child, which touches nothing but the
        models and the file: every other thread that could hold a lock of moto's is
        waiting for ``self._lock``.)"""
        started = time.perf_counter()
        if in_background and hasattr(os, "fork"):
            with self._lock:
                pid = os.fork()
                if pid == 0:  # the child: write the image, then leave without any clean-up
                    code = 1
                    try:
                        # Background work: on a busy machine the requests come first (a
                        # snapshot pickling the whole state took a core from them for up
                        # to a second: the real-time benchmark's latency spikes).
                        os.nice(19)
                        self._write_state(path, extra)
                        code = 0
                    finally:
                        os._exit(code)
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError(f"the snapshot process failed (status {status}); {path} is unchanged")
            return time.perf_counter() - started
        with self._lock:
            self._write_state(path, extra)
        return time.perf_counter() - started

    @staticmethod
    def _write_state(path: Path, extra: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        services = {
            backend.service_name: list(backend.iter_backends())
            for backend in list(BackendDict._instances)  # type: ignore[misc]
        }
        _StatePickler(buffer).dump({"version": _STATE_VERSION, "services": services, "extra": extra})
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_bytes(buffer.getvalue())
        os.replace(temporary, path)

    @staticmethod
    def reset() -> None:
        """Forget every service's state (moto keeps it per process, not per server)."""
        BackendDict.reset()

    @staticmethod
    def load(path: Path) -> dict[str, Any]:
        """Restore the services saved at ``path`` (before serving); the ``extra`` saved with them."""
        with path.open("rb") as file:
            state = pickle.load(file)  # noqa: S301 - our own file, written by save()
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise ValueError(f"{path} was written by another version of the local stack")
        for service, entries in state["services"].items():
            backends = get_backend(service)
            for account_id, region, backend in entries:
                dict.__setitem__(backends[account_id], region, backend)
        return dict(state["extra"])


class _StatePickler(pickle.Pickler):
    """Locks and conditions inside moto's models are recreated empty, not pickled."""

    _LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, self._LOCK_TYPES):
            return (threading.RLock if "RLock" in type(obj).__name__ else threading.Lock, ())
        if isinstance(obj, threading.Condition):
            return (threading.Condition, ())
        if isinstance(obj, threading.Event):
            return (threading.Event, ())
        return NotImplemented
