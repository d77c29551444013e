"""local.collector: the stack process's heap is frozen out of full collections, and collected
whole once the stack is quiet (or every few minutes under constant load)."""

from __future__ import annotations

import gc
import threading
import weakref
from dataclasses import dataclass, field

from local.collector import FULL_COLLECTION_SECONDS, IDLE_SECONDS, YOUNG_THRESHOLD, HeapKeeper


@dataclass
class _Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class _Collector:
    calls: list[str] = field(default_factory=list)
    threshold: tuple[int, int, int] = (700, 10, 10)

    def get_threshold(self) -> tuple[int, int, int]:
        return self.threshold

    def set_threshold(self, threshold0: int, threshold1: int = 10, threshold2: int = 10, /) -> None:
        self.threshold = (threshold0, threshold1, threshold2)
        self.calls.append(f"threshold {threshold0}")

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def collect(self) -> int:
        self.calls.append("collect")
        return 0


@dataclass
class _Stack:
    """The stack's latest request, on the fake clock."""

    clock: _Clock
    last_request_at: float = 0.0

    def request(self) -> None:
        self.last_request_at = self.clock.now


def _keeper() -> tuple[HeapKeeper, _Clock, _Collector, _Stack]:
    clock, collector = _Clock(), _Collector()
    stack = _Stack(clock, last_request_at=clock.now - 60)
    keeper = HeapKeeper(lambda: stack.last_request_at, clock=clock, collector=collector)
    return keeper, clock, collector, stack


def test_each_tick_freezes_what_survived_and_an_idle_stack_is_not_collected_again_and_again() -> None:
    keeper, clock, collector, _ = _keeper()

    for _ in range(5):
        clock.now += 2
        assert keeper.tick() is False

    assert collector.calls == ["freeze"] * 5


def test_after_some_work_the_heap_is_collected_whole_once_the_stack_is_quiet() -> None:
    keeper, clock, collector, stack = _keeper()

    # While requests keep coming: frozen, not collected
    clock.now += 2
    stack.request()
    assert keeper.tick() is False
    # Quiet for IDLE_SECONDS: unfrozen and collected, then what survives is frozen again
    clock.now += IDLE_SECONDS
    assert keeper.tick() is True
    # Still quiet: nothing new to collect
    clock.now += 2
    assert keeper.tick() is False

    assert collector.calls == ["freeze", "unfreeze", "collect", "freeze", "freeze"]


def test_under_constant_load_the_heap_is_still_collected_whole_every_few_minutes() -> None:
    keeper, clock, collector, stack = _keeper()

    collections = 0
    for _ in range(int(FULL_COLLECTION_SECONDS / 2) * 2):  # 2 x FULL_COLLECTION_SECONDS
        clock.now += 2
        stack.request()
        collections += keeper.tick()

    assert collections == 2
    assert collector.calls.count("collect") == 2


def test_a_garbage_cycle_frozen_with_the_heap_is_freed_by_the_full_collection() -> None:
    # Given a real collector and a garbage cycle that was alive when the heap was frozen
    clock = _Clock()
    stack = _Stack(clock, last_request_at=clock.now)
    keeper = HeapKeeper(lambda: stack.last_request_at, clock=clock)

    class Node:
        pass

    node = Node()
    node.self = node  # type: ignore[attr-defined]
    alive = weakref.ref(node)
    try:
        clock.now += 0.5
        stack.request()
        keeper.tick()  # frozen, with the stack busy
        del node
        gc.collect()
        frozen_survives = alive() is not None

        # When the stack has been quiet long enough
        clock.now += IDLE_SECONDS
        collected = keeper.tick()
    finally:
        gc.unfreeze()

    # Then the frozen cycle outlived an ordinary collection, and the keeper's freed it
    assert frozen_survives
    assert collected
    assert alive() is None


def test_while_it_runs_the_young_generation_waits_for_more_allocations_then_gets_its_threshold_back() -> None:
    # Given a collector with its own thresholds (the second and third are kept throughout)
    keeper, _, collector, _ = _keeper()
    collector.threshold = (700, 11, 12)
    stop = threading.Event()
    seen: list[tuple[int, int, int]] = []
    original_freeze = collector.freeze

    def freeze_and_note() -> None:
        seen.append(collector.threshold)
        stop.set()  # one tick is enough
        original_freeze()

    collector.freeze = freeze_and_note  # type: ignore[method-assign]

    # When the keeper runs until it is stopped (after its first tick)
    runner = threading.Thread(target=keeper.run, args=(stop,))
    runner.start()
    runner.join(timeout=10)

    # Then it ticked with the young generation's threshold raised, and restored all three after
    assert not runner.is_alive()
    assert seen == [(YOUNG_THRESHOLD, 11, 12)]
    assert collector.threshold == (700, 11, 12)
    assert collector.calls[-1] == "unfreeze"
