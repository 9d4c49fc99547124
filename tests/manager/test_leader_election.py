"""Leader election with real replicas: one leader, crash failover, graceful handover, and a
frozen leader that must never write again. Every controller write and every Lease write is
taken from the apiserver's own audit log, so "no two leaders acting" is checked on the
server's clock, not the test's."""

from __future__ import annotations

import signal
import time

import pytest
import requests

from localcluster.fleet import METRICS_PORT
from tests.conftest import wait_for

from .conftest import audited_fleet
from .leadership import audit_events, check_no_overlap, holder, status_writes, wait_new_holder

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

LEASE, RENEW, RETRY = 4.0, 3.0, 1.0
ARGS = (f"--leader-election-lease-duration={LEASE}s", f"--leader-election-renew-deadline={RENEW}s",
        f"--leader-election-retry-period={RETRY}s")


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    yield from audited_fleet(tmp_path_factory, 90, extra_args=ARGS)


def is_leader_metric(replica) -> float:
    text = requests.get(f"http://{replica.ip}:{METRICS_PORT}/metrics", timeout=2).text
    line = next(l for l in text.splitlines() if l.startswith("kruise_manager_is_leader "))
    return float(line.split()[1])


def test_one_leader_failover_handover_and_a_frozen_leader_never_writes(audited):
    fleet, audit = audited
    api = fleet.cluster.api()
    stream = status_writes(api)
    try:
        # Exactly one leader, and it is the one the metrics say.
        first = wait_for(lambda: fleet.leader(), timeout=30, what="a leader")
        assert [is_leader_metric(r) for r in fleet.replicas].count(1.0) == 1
        assert is_leader_metric(first) == 1.0

        # Crash: a standby takes over within leaseDuration + retryPeriod (+ observation slack).
        old = holder(fleet)
        first.signal(signal.SIGKILL)
        first.process.wait()
        second_id, crash_s = wait_new_holder(fleet, old, timeout=LEASE + RETRY + 5)
        assert crash_s <= LEASE + RETRY + 0.5, f"crash failover took {crash_s:.2f}s"
        fleet.start(first)
        fleet.wait_ready([first])

        # Graceful: SIGTERM releases the Lease and a standby holds it within a second.
        second = fleet.leader()
        second.signal(signal.SIGTERM)
        third_id, handover_s = wait_new_holder(fleet, second_id, timeout=5)
        assert handover_s <= 1.0, f"graceful handover took {handover_s:.2f}s"
        assert second.process.wait(15) == 0
        fleet.start(second)
        fleet.wait_ready([second])

        # Frozen past the renew deadline: another leads; once thawed the old one exits 1.
        third = fleet.leader()
        time.sleep(2 * RETRY)  # let it write a status or two first
        third.signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        fourth_id, _ = wait_new_holder(fleet, third_id, timeout=LEASE + RETRY + 5)
        time.sleep(max(0.0, RENEW + 1 - (time.monotonic() - frozen_at)))
        third.signal(signal.SIGCONT)
        assert third.process.wait(15) == 1
        time.sleep(2 * RETRY)  # the new leader keeps writing
    finally:
        stream.stop.set()
        stream.thread.join(10)
    writes = check_no_overlap(audit_events(audit))
    assert writes.get(fourth_id, 0) > 0 and writes.get(third_id, 0) > 0, writes
    assert stream.created > 20
