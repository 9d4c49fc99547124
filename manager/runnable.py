"""What the manager runs, and in which order: every part is a :class:`Runnable` (start, stop,
whether it needs the Lease, its readiness and liveness checks), so the manager only lists them.

- Parts that do not need the Lease start in the order added and stop in reverse, so what
  others depend on (informers, the credential) outlives them. A part marked ``first`` starts
  before all of them but stops in its place: the election, which needs nothing the others
  provide, so a restarted worker's first attempt on the Lease waits for no cache or
  certificate (what it leads waits for its caches itself).
- Parts that need the Lease start when this replica starts leading and stop, newest first,
  when it stops (lost, released, or shutting down); their liveness counts only while they run,
  as a standby has nothing to beat.
- Readiness checks are registered before anything starts (the manager holds readiness at
  "starting" until :meth:`Runnables.start` returns), so /readyz never passes on a partial set.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("manager")

Check = Callable[[], "str | None"]


@dataclass
class Runnable:
    name: str
    start: Callable[[], object]
    stop: Callable[[], object] = lambda: None
    needs_leader: bool = False
    first: bool = False  # started before the others, stopped in the order added
    readiness: Check | None = None
    liveness: Check | None = None


class Runnables:
    """The manager's parts, started and stopped as one; checks go to ``health`` (a
    :class:`manager.health.Health`, or anything with ``readiness``/``liveness`` dicts)."""

    def __init__(self, health):
        self.health = health
        self._all: list[Runnable] = []
        self._leading: list[Runnable] = []  # the leader's parts now running, in start order
        self._lock = threading.Lock()
        self._stopped = False

    def add(self, runnable: Runnable) -> Runnable:
        self._all.append(runnable)
        if runnable.readiness is not None:
            self.health.readiness[runnable.name] = runnable.readiness
        if runnable.liveness is not None:
            self.health.liveness[runnable.name] = (self._while_running(runnable) if runnable.needs_leader
                                                   else runnable.liveness)
        return runnable

    def _while_running(self, runnable: Runnable) -> Check:
        return lambda: runnable.liveness() if runnable in self._leading else None

    def start(self) -> None:
        """Start every part that does not need the Lease: those marked ``first``, then the
        others, each in the order added."""
        for first in (True, False):
            for runnable in self._all:
                if not runnable.needs_leader and runnable.first == first:
                    runnable.start()

    def started_leading(self) -> None:
        """Start the parts that need the Lease (the elector's on_started_leading)."""
        with self._lock:
            if self._stopped:
                return
            for runnable in self._all:
                if runnable.needs_leader and runnable not in self._leading:
                    runnable.start()
                    self._leading.append(runnable)

    def stopped_leading(self) -> None:
        """Stop the parts that need the Lease, newest first (the elector's on_stopped_leading)."""
        with self._lock:
            running, self._leading = self._leading, []
        for runnable in reversed(running):
            _stop(runnable)

    def stop(self) -> None:
        """Stop everything: the leader's parts first, then the rest in reverse order. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.stopped_leading()
        for runnable in reversed(self._all):
            if not runnable.needs_leader:
                _stop(runnable)


def _stop(runnable: Runnable) -> None:
    """A part that fails to stop must not keep the others running."""
    try:
        runnable.stop()
    except Exception:  # noqa: BLE001 - logged; shutting down goes on
        log.exception("stopping %s", runnable.name)
