"""The stack process's garbage collection, for a heap that mostly grows.

The stack's process holds all of emulated AWS: every item, queued message and stream record
(moto keeps a stream's records for good). CPython's full collection walks every tracked
object, and it runs whenever a quarter more objects have survived since the last one: at
30 messages a second, a full collection every 5 to 9 s that held the interpreter for 100 to
240 ms, the real-time benchmark's worst latencies (gc callbacks timed them).

``HeapKeeper`` moves what has survived into the collector's permanent generation every
``FREEZE_SECONDS`` (``gc.freeze()``), so the automatic full collections walk only what is
newer. Frozen objects are still freed by reference counting; only garbage cycles among them
wait: a full collection of everything (``gc.unfreeze()`` then ``gc.collect()``) runs once the
stack has been idle for ``IDLE_SECONDS`` after some work, and at the latest every
``FULL_COLLECTION_SECONDS`` under constant load.

While it runs, the youngest generation is collected after ``YOUNG_THRESHOLD`` allocations
rather than CPython's 700. Serving one request allocates thousands of objects (a 20-item
Query answer is several thousand dicts and values), so with 700 the collector ran about
once a request, walking the request's objects while they were still alive, and promoted
them to be walked again; most of them are freed by reference counting when the request
ends. With 5,000 the stack's collections cost 0.09 ms a 20-message read instead of 0.22,
and 0.25 ms a message POST instead of 0.53, with pauses no longer (docs/local-stack.md).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import Protocol

FREEZE_SECONDS = 2.0
IDLE_SECONDS = 1.0
FULL_COLLECTION_SECONDS = 300.0
YOUNG_THRESHOLD = 5000


class GarbageCollector(Protocol):
    def freeze(self) -> None: ...

    def unfreeze(self) -> None: ...

    def collect(self) -> int: ...

    def get_threshold(self) -> tuple[int, int, int]: ...

    def set_threshold(self, threshold0: int, threshold1: int = ..., threshold2: int = ..., /) -> None: ...


class HeapKeeper:
    """Freezes the surviving heap periodically; collects all of it when the stack is idle."""

    def __init__(
        self,
        last_activity: Callable[[], float],
        *,
        clock: Callable[[], float] = time.monotonic,
        collector: GarbageCollector = gc,
    ) -> None:
        # ``last_activity``: the ``clock`` time of the stack's latest request.
        self._last_activity = last_activity
        self._clock = clock
        self._gc = collector
        self._collected_at = clock()

    def tick(self) -> bool:
        """Freeze what survived; first collect everything if it is time. Whether it collected."""
        now = self._clock()
        active_at = self._last_activity()
        worked_since = active_at > self._collected_at
        idle = now - active_at >= IDLE_SECONDS
        due = now - self._collected_at >= FULL_COLLECTION_SECONDS
        collected = worked_since and (idle or due)
        if collected:
            self._gc.unfreeze()
            self._gc.collect()
            self._collected_at = self._clock()
        self._gc.freeze()
        return collected

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` with the young generation's threshold raised; then unfreeze and
        restore the thresholds, so that a process that goes on without the stack (a test
        run) collects as CPython does."""
        thresholds = self._gc.get_threshold()
        self._gc.set_threshold(YOUNG_THRESHOLD, *thresholds[1:])
        try:
            while not stop.wait(FREEZE_SECONDS):
                self.tick()
        finally:
            self._gc.set_threshold(*thresholds)
            self._gc.unfreeze()
