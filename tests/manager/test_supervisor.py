"""The supervisor with real replicas (``--supervise``, the chart's default) and the default
15 s lease: a SIGKILLed leader worker and a hung one are succeeded by their own pod's next
worker long before any standby could take the Lease, with every status write and Lease write
taken from the apiserver's audit log to show no two leaders wrote at once; crashes show in
the metrics and as Events; a crash loop exits the supervisor with the worker's status."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from kubernetes import client

from localcluster.fleet import METRICS_PORT
from manager.lease import HOLDER_POD_ANNOTATION
from tests.conftest import wait_for

from .conftest import audited_fleet
from .leadership import audit_events, check_no_overlap, holder, wait_new_holder, writing_leader

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

LEASE = 15.0  # the manager's default; standbys wait this long for a holder that stopped renewing
HEARTBEAT = 3.0


@pytest.fixture(scope="module")
def supervised(tmp_path_factory):
    yield from audited_fleet(tmp_path_factory, 120, supervise=True,
                             extra_args=(f"--worker-heartbeat-timeout={HEARTBEAT:g}s",))


def pod_of(replica) -> str:
    return f"kruise-controller-manager-m{replica.index}"


def restarts(replica) -> dict[str, float]:
    text = requests.get(f"http://{replica.ip}:{METRICS_PORT}/metrics", timeout=5).text
    found = {}
    for line in text.splitlines():
        if line.startswith("kruise_manager_worker_restarts_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = float(line.rsplit(" ", 1)[1])
    return found


def succeed_after(fleet, victim, fault: int) -> tuple[str, float, int]:
    """Send ``fault`` to the leader's worker; (new holder, seconds from the fault, old pid)."""
    old = holder(fleet)
    assert old.startswith(pod_of(victim) + "_"), old
    pid = fleet.worker_pid(victim)
    assert pid, "the supervisor runs no worker"
    os.kill(pid, fault)
    new, took = wait_new_holder(fleet, old, timeout=LEASE + 5)
    print(f"{signal.Signals(fault).name} of the leader's worker: {new} holds the Lease {took:.2f}s later")
    return new, took, pid


def test_a_dead_or_hung_leader_worker_is_succeeded_by_its_own_pod_and_no_write_overlaps(supervised):
    fleet, audit = supervised
    api = fleet.cluster.api()
    with writing_leader(fleet, limit=600) as leader:

        # A crash: SIGKILL of the worker. Its supervisor reaped it, so its next worker takes
        # the Lease at once, where a standby would wait the lease duration out.
        killed_id, killed_s, killed_pid = succeed_after(fleet, leader, signal.SIGKILL)
        assert killed_id.startswith(pod_of(leader) + "_"), killed_id
        assert killed_s < LEASE, killed_s
        assert leader.alive() and fleet.worker_pid(leader) not in (None, killed_pid)
        fleet.wait_ready([leader], timeout=60)
        assert restarts(leader) == {"killed": 1.0}
        time.sleep(3)  # the successor writes

        # A hang: the worker stopped. The watchdog kills it after the heartbeat timeout, and
        # the next worker succeeds it the same way.
        hung_id, hung_s, hung_pid = succeed_after(fleet, leader, signal.SIGSTOP)
        assert hung_id.startswith(pod_of(leader) + "_"), hung_id
        assert HEARTBEAT <= hung_s < LEASE, hung_s
        assert not os.path.exists(f"/proc/{hung_pid}")  # killed and reaped
        fleet.wait_ready([leader], timeout=60)
        assert restarts(leader) == {"killed": 1.0, "hung": 1.0}
        time.sleep(3)
    events = client.CoreV1Api(api).list_namespaced_event(
        fleet.namespace, field_selector=f"involvedObject.name={pod_of(leader)},reason=WorkerRestarted").items
    messages = sorted(e.message for e in events)
    assert len(messages) == 2, messages
    assert any("killed by SIGKILL" in m and killed_id in m for m in messages), messages
    assert any("liveness checks had not passed" in m and hung_id in m for m in messages), messages
    writes = check_no_overlap(audit_events(audit))
    print({"writes": writes, "killed_s": round(killed_s, 3), "hung_s": round(hung_s, 3)})
    assert writes.get(killed_id, 0) > 0 and writes.get(hung_id, 0) > 0, writes


def test_a_killed_leader_container_is_succeeded_by_its_pods_next_container_and_no_write_overlaps(supervised):
    """SIGKILL of the supervisor, the container's first process, takes its worker with it; the
    pod's next container (started again as the kubelet would, same pod UID) takes the Lease
    within seconds, where a standby waits the lease duration out."""
    fleet, audit = supervised
    api = fleet.cluster.api()
    with writing_leader(fleet, limit=300) as leader:
        old = holder(fleet)
        assert old.startswith(pod_of(leader) + "_"), old
        worker = fleet.worker_pid(leader)
        assert worker, "the supervisor runs no worker"
        leader.signal(signal.SIGKILL)
        assert leader.process.wait(15) == -signal.SIGKILL
        wait_for(lambda: not os.path.exists(f"/proc/{worker}"), timeout=10, what="the worker to die with it")
        fleet.start(leader)
        new, took = wait_new_holder(fleet, old, timeout=LEASE + 5)
        print(f"SIGKILL of the leader's container: {new} holds the Lease {took:.2f}s after it started again")
        assert new.startswith(pod_of(leader) + "_"), new  # its own pod, not a standby
        assert took < LEASE - 5, took
        fleet.wait_ready([leader], timeout=60)
        time.sleep(3)  # the successor writes
    lease = client.CoordinationV1Api(api).read_namespaced_lease(fleet.lease_name, fleet.namespace)
    assert lease.metadata.annotations[HOLDER_POD_ANNOTATION].split(" ") == [fleet.pod_uid(leader), new]
    writes = check_no_overlap(audit_events(audit))
    print({"writes": writes, "container_restart_s": round(took, 3)})
    assert writes.get(old, 0) > 0 and writes.get(new, 0) > 0, writes


def test_a_crash_loop_exits_the_supervisor_with_the_workers_status(supervised):
    fleet, _audit = supervised
    replica = next(r for r in fleet.replicas if r is not fleet.leader())
    assert fleet.stop(replica) == 0
    fleet.start(replica, "--worker-restart-limit=2", "--worker-restart-window=5m")
    fleet.wait_ready([replica], timeout=60)
    for _ in range(2):
        pid = wait_for(lambda: fleet.worker_pid(replica), timeout=30, what="a worker")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: fleet.worker_pid(replica) not in (None, pid), timeout=30, what="the next worker")
        assert replica.alive()
    os.kill(fleet.worker_pid(replica), signal.SIGKILL)  # the third crash within the window
    assert replica.process.wait(15) == 128 + signal.SIGKILL
    fleet.start(replica)
    fleet.wait_ready([replica], timeout=60)
