"""The supervisor with real replicas (``--supervise``, the chart's default) and the default
15 s lease: a SIGKILLed leader worker and a hung one are succeeded by their own pod's next
worker long before any standby could take the Lease, with every status write and Lease write
taken from the apiserver's audit log to show no two leaders wrote at once; a worker that loses
the Lease answers the admission it holds before it restarts; crashes show in
the metrics and as Events; a crash loop exits the supervisor with the worker's status."""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import ssl
import time

import pytest
import requests
from kubernetes import client

from kubekit import kruise
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
    # a request may stay half sent for 30 s: the lost-Lease test holds one while the worker loses it
    yield from audited_fleet(tmp_path_factory, 120, supervise=True,
                             extra_args=(f"--worker-heartbeat-timeout={HEARTBEAT:g}s", "--webhook-io-timeout=30s"))


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


def admission_review(uid: str) -> bytes:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": "default",
        "operation": "CREATE", "object": pod, "userInfo": {"username": "test"}}}).encode()


def test_a_worker_that_loses_the_lease_answers_the_admission_it_holds_before_it_restarts(supervised):
    """The Lease taken from the leader (as a renewal too slow on a loaded machine loses it): its
    worker exits to restart clean, and an admission it is reading meanwhile is still answered,
    where an exit at once would reset it (the apiserver retries no webhook POST)."""
    fleet, _audit = supervised
    api = client.CoordinationV1Api(fleet.cluster.api())
    leader = fleet.leader()
    old, worker = holder(fleet), fleet.worker_pid(leader)
    assert leader is not None and worker
    body = admission_review("lost-lease-1")
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # the connection is tested, not the certificate
    with socket.create_connection((leader.ip, kruise.WEBHOOK_PORT), timeout=15) as raw, \
            tls.wrap_socket(raw) as conn:
        conn.sendall(f"POST {kruise.MUTATE_POD_PATH} HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:-1])  # all but its last byte
        for _ in range(20):  # the Lease taken by another holder (retried on a conflict)
            lease = api.read_namespaced_lease(fleet.lease_name, fleet.namespace)
            lease.spec.holder_identity = "thief"
            lease.spec.renew_time = datetime.datetime.now(datetime.timezone.utc)
            try:
                api.replace_namespaced_lease(fleet.lease_name, fleet.namespace, lease)
                break
            except client.ApiException as err:
                if err.status != 409:
                    raise
        # the worker sees the new holder at its next renewal (every 2 s) and stops leading
        wait_for(lambda: "leadership lost" in fleet.tail(leader, 40), timeout=20, what="the worker to lose the Lease")
        time.sleep(1.0)  # an exit at once would have come by now
        conn.sendall(body[-1:])
        answer = b""
        try:
            while chunk := conn.recv(65536):  # a draining server closes the connection after its answer
                answer += chunk
        except OSError as err:
            pytest.fail(f"the connection broke before the answer ({err!r}); read {answer!r}")
    assert answer, "the worker closed the connection without answering the admission it was reading"
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert json.loads(payload)["response"]["uid"] == "lost-lease-1"
    wait_for(lambda: fleet.worker_pid(leader) not in (None, worker), timeout=30, what="the next worker")
    fleet.wait_ready([leader], timeout=60)  # its metrics count the restart once it serves
    assert restarts(leader).get("exited") == 1.0
    lease = api.read_namespaced_lease(fleet.lease_name, fleet.namespace)  # the thief lets go: a replica leads again
    lease.spec.holder_identity, lease.spec.lease_duration_seconds = None, 1
    api.replace_namespaced_lease(fleet.lease_name, fleet.namespace, lease)
    wait_new_holder(fleet, "thief", timeout=LEASE + 5)
    fleet.wait_ready(timeout=60)
    assert old != holder(fleet)


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
