"""The manager's parts start and stop in a fixed order (manager.runnable), pure logic."""

from __future__ import annotations

import pytest

from manager.runnable import Runnable, Runnables


class Health:
    def __init__(self):
        self.readiness, self.liveness = {}, {}


def parts(events: list, *specs):
    """Runnables recording 'start X' / 'stop X' in ``events``; a spec is (name, needs_leader)."""
    group = Runnables(Health())
    for name, needs_leader in specs:
        group.add(Runnable(name, lambda n=name: events.append(f"start {n}"), lambda n=name: events.append(f"stop {n}"),
                           needs_leader=needs_leader, liveness=lambda n=name: f"{n} stuck"))
    return group


SPECS = (("informer", False), ("credential", False), ("webhook", False), ("election", False), ("controller", True))


@pytest.mark.parametrize("steps, expected", [
    (["start"], ["start informer", "start credential", "start webhook", "start election"]),
    (["start", "lead"], ["start informer", "start credential", "start webhook", "start election",
                         "start controller"]),
    (["start", "lead", "lead"], ["start informer", "start credential", "start webhook", "start election",
                                 "start controller"]),
    (["start", "lead", "unlead", "lead"], ["start informer", "start credential", "start webhook", "start election",
                                           "start controller", "stop controller", "start controller"]),
    (["start", "stop"], ["start informer", "start credential", "start webhook", "start election",
                         "stop election", "stop webhook", "stop credential", "stop informer"]),
    (["start", "lead", "stop"], ["start informer", "start credential", "start webhook", "start election",
                                 "start controller", "stop controller", "stop election", "stop webhook",
                                 "stop credential", "stop informer"]),
    (["start", "stop", "stop", "lead"], ["start informer", "start credential", "start webhook", "start election",
                                         "stop election", "stop webhook", "stop credential", "stop informer"]),
    (["start", "unlead"], ["start informer", "start credential", "start webhook", "start election"]),
])
def test_order_of_starts_and_stops(steps, expected):
    events: list[str] = []
    group = parts(events, *SPECS)
    for step in steps:
        {"start": group.start, "lead": group.started_leading, "unlead": group.stopped_leading,
         "stop": group.stop}[step]()
    assert events == expected


def test_a_leaders_liveness_counts_only_while_it_runs():
    group = parts([], ("webhook", False), ("controller", True))
    group.start()
    assert group.health.liveness["webhook"]() == "webhook stuck"
    assert group.health.liveness["controller"]() is None  # a standby has nothing to beat
    group.started_leading()
    assert group.health.liveness["controller"]() == "controller stuck"
    group.stopped_leading()
    assert group.health.liveness["controller"]() is None


def test_checks_are_registered_before_anything_starts():
    group = Runnables(Health())
    group.add(Runnable("credential", lambda: None, readiness=lambda: "no certificate yet"))
    assert group.health.readiness["credential"]() == "no certificate yet"
    assert "credential" not in group.health.liveness


def test_a_part_failing_to_stop_does_not_keep_the_others_running():
    events: list[str] = []
    group = parts(events, ("informer", False))

    def broken():
        raise RuntimeError("socket already closed")

    group.add(Runnable("webhook", lambda: events.append("start webhook"), broken))
    group.start()
    group.stop()
    assert events == ["start informer", "start webhook", "stop informer"]


def test_a_part_started_first_still_stops_in_its_place():
    """The election starts before the caches and the credential (a restarted worker takes the
    Lease without waiting for them), and still stops before the webhook drains."""
    events: list[str] = []
    group = parts(events, ("informer", False), ("webhook", False))
    group.add(Runnable("election", lambda: events.append("start election"), lambda: events.append("stop election"),
                       first=True))
    group.start()
    group.stop()
    assert events == ["start election", "start informer", "start webhook",
                      "stop election", "stop webhook", "stop informer"]
