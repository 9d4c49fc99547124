"""The leader-only controllers' loop (manager.reconciler), pure logic: when a pass runs, and
the lease gate on writes."""

from __future__ import annotations

import threading
import time

from manager.reconciler import Reconciler
from tests.conftest import wait_for


class Elector:
    def __init__(self, left: float):
        self.left = left

    def may_act(self) -> float:
        return self.left


class Counting(Reconciler):
    def __init__(self, **options):
        super().__init__(client=None, elector=Elector(15.0), **options)
        self.cache = type("Cache", (), {"synced": threading.Event()})()
        self.passes = 0

    def caches(self) -> tuple:
        return self.cache, None

    def sync_all(self) -> None:
        self.passes += 1


def test_passes_wait_for_the_caches_then_run_on_changes():
    loop = Counting(resync=3600, min_interval=0.01)
    loop.start_loop()
    try:
        loop._changed()
        time.sleep(0.1)
        assert loop.passes == 0, "a pass ran before its caches synced"
        loop.cache.synced.set()
        wait_for(lambda: loop.passes == 1, timeout=5, interval=0.01, what="the first pass")
        for _ in range(50):  # a burst of events is one pass or a few, never one each
            loop._changed()
        wait_for(lambda: loop.passes >= 2, timeout=5, interval=0.01, what="the pass after the burst")
        assert loop.passes < 20
    finally:
        loop.stop()


def test_a_stopped_term_ends_its_thread_and_the_next_term_runs():
    loop = Counting(resync=3600, min_interval=0.01)
    loop.cache.synced.set()
    loop.start_loop()
    first = loop._stop
    loop.stop()
    assert loop.write_timeout() is None  # stopped: never write
    loop.start_loop()
    try:
        assert first.is_set() and not loop._stop.is_set()
        loop._changed()
        wait_for(lambda: loop.passes >= 1, timeout=5, interval=0.01, what="a pass of the second term")
    finally:
        loop.stop()


def test_writes_only_with_half_a_second_of_lease_left_and_at_most_five_seconds():
    loop = Counting()
    for left, expected in ((15.0, 5.0), (3.0, 2.75), (0.6, 0.35), (0.4, None), (-1.0, None)):
        loop.elector.left = left
        assert loop.write_timeout() == expected


def test_an_urgent_change_skips_the_pause_an_ordinary_one_waits_out():
    loop = Counting(resync=3600, min_interval=30)
    loop.cache.synced.set()
    loop.start_loop()
    try:
        loop._changed()
        wait_for(lambda: loop.passes == 1, timeout=5, interval=0.01, what="the first pass")
        loop._changed()
        time.sleep(0.3)
        assert loop.passes == 1, "an ordinary change ran a pass inside min_interval"
        loop._changed_urgently()
        wait_for(lambda: loop.passes == 2, timeout=5, interval=0.01, what="the urgent pass")
    finally:
        loop.stop()
