"""The loop of the leader-only controllers (SidecarSet status, WorkloadSpread).

A pass recomputes everything from the watched caches, so an event only marks the loop dirty,
and a burst of them (a rollout, a scale-up) becomes one pass. An urgent change (a workload's
replicas: the webhook admits the new pods against the status this pass writes) skips the
``min_interval`` pause; the pause only spaces passes that ordinary events ask for. Every write
goes through :meth:`Reconciler.write`, which asks the lease gate before the request and again
just before its body goes out: a replica that lost or may have lost the Lease never writes.
"""

from __future__ import annotations

import threading
import time


class NotLeading(Exception):
    """The lease gate is shut: this replica is not (surely) the leader, so nothing was sent."""


class Reconciler:
    """Subclasses give :meth:`sync_all` (one pass), :meth:`caches` (what a pass reads) and,
    when some object must be looked at again at a time, :meth:`due`. A pass runs when something
    changed, when due, and every ``resync`` seconds; at most one per ``min_interval``."""

    thread_name = "reconciler"

    def __init__(self, client, elector, resync: float = 30.0, min_interval: float = 0.5):
        self.client = client
        self.elector = elector
        self.resync = resync
        self.min_interval = min_interval
        self._dirty = threading.Event()
        self._urgent = threading.Event()
        self._stop = threading.Event()
        self.last_heartbeat = time.monotonic()

    def _changed(self, *_args) -> None:
        self._dirty.set()

    def _changed_urgently(self) -> None:
        """A pass now, even right after another (never two at once: the loop is one thread)."""
        self._dirty.set()
        self._urgent.set()

    def caches(self) -> tuple:
        return ()

    def due(self, now: float) -> bool:
        return False

    def sync_all(self) -> None:
        raise NotImplementedError

    def start_loop(self) -> None:
        """Called once this replica leads, after the caches are started."""
        self._stop = threading.Event()  # this term's: a thread of an earlier term sees its own set
        threading.Thread(target=self._run, args=(self._stop,), name=self.thread_name, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        self._urgent.set()

    def write_timeout(self) -> float | None:
        """Seconds a write may take, or None when this replica is not (surely) the leader."""
        left = self.elector.may_act()
        if left < 0.5 or self._stop.is_set():
            return None
        return min(5.0, left - 0.25)

    def may_write(self) -> bool:
        """The gate again, as a write's ``guard``: checked once more just before its body goes out."""
        return self.write_timeout() is not None

    def write(self, method: str, path: str, **kwargs):
        """A leader's request: NotLeading when the gate is shut before it is sent; bounded by
        what is left of the renew deadline; the gate asked again just before the body goes out
        (``Client.request``'s guard: shut then, ApiError "gate shut" and nothing sent)."""
        timeout = self.write_timeout()
        if timeout is None:
            raise NotLeading(f"{method} {path}")
        return self.client.request(method, path, timeout=timeout, guard=self.may_write, **kwargs)

    def _run(self, stop: threading.Event) -> None:
        # The election may win before the shared caches are synced (it starts first): a status
        # computed from partial caches would be wrong.
        deadline = time.monotonic() + 60
        for cache in self.caches():
            if cache is not None:
                cache.synced.wait(max(0.0, deadline - time.monotonic()))
        last_full = 0.0
        while not stop.is_set():
            self.last_heartbeat = time.monotonic()
            self._dirty.wait(1.0)
            if stop.is_set():
                return
            now = time.monotonic()
            if not self._dirty.is_set() and not self.due(now) and now - last_full < self.resync:
                continue
            self._dirty.clear()
            self._urgent.clear()  # one set from here on asks for the pass after this one at once
            last_full = now
            self.sync_all()
            self._urgent.wait(self.min_interval)
