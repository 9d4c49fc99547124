"""Leader election with real replicas: one leader, crash failover, graceful handover, and a
frozen leader that must never write again. Every controller write and every Lease write is
taken from the apiserver's own audit log, so "no two leaders acting" is checked on the
server's clock, not the test's."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid

import pytest
import requests
from kubernetes import client

from localcluster.fleet import METRICS_PORT, Fleet
from tests.conftest import wait_for

from .conftest import start_cluster

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

LEASE, RENEW, RETRY = 4.0, 3.0, 1.0
ARGS = (f"--leader-election-lease-duration={LEASE}s", f"--leader-election-renew-deadline={RENEW}s",
        f"--leader-election-retry-period={RETRY}s")


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    local = start_cluster(audit_log=audit)
    fleet = Fleet(local, extra_args=ARGS).install(3)
    fleet.start_all()
    fleet.wait_ready(timeout=90)
    yield fleet, audit
    fleet.stop_all()
    local.stop()


def holder(fleet) -> str:
    return fleet.lease()["holder"]


def wait_new_holder(fleet, old: str, timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        now = holder(fleet)
        if now and now != old:
            return now, time.monotonic() - started
        time.sleep(0.02)
    pytest.fail(f"no new leader within {timeout}s (holder still {holder(fleet)!r})")


def is_leader_metric(replica) -> float:
    text = requests.get(f"http://{replica.ip}:{METRICS_PORT}/metrics", timeout=2).text
    line = next(l for l in text.splitlines() if l.startswith("kruise_manager_is_leader "))
    return float(line.split()[1])


class PodStream:
    """Pods created in kube-system (never sent to the webhook) that a SidecarSet selects, so
    the leader keeps writing status. Bounded in count and time."""

    def __init__(self, api, label: str, limit: int = 400, interval: float = 0.15):
        self.core = client.CoreV1Api(api)
        self.label, self.limit, self.interval = label, limit, interval
        self.stop = threading.Event()
        self.created = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set() and self.created < self.limit:
            self.core.create_namespaced_pod("kube-system", {
                "metadata": {"name": f"{self.label}-{self.created}", "labels": {"app": self.label}},
                "spec": {"containers": [{"name": "c", "image": "registry.local/c:1"}]}})
            self.created += 1
            self.stop.wait(self.interval)


def audit_events(path) -> list[dict]:
    events = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("stage") == "ResponseComplete" and 200 <= (event.get("responseStatus") or {}).get("code", 0) < 300:
            events.append(event)
    return events


def check_no_overlap(events: list[dict]) -> dict[str, int]:
    """Every status write happened entirely while its writer held the Lease; returns the
    writes per identity."""
    lease_writes = sorted((e for e in events if e["objectRef"]["resource"] == "leases"
                           and e["objectRef"].get("name") == "kruise-manager"
                           and e["objectRef"].get("namespace") == "kruise-system"),
                          key=lambda e: e["stageTimestamp"])
    timeline = [(e["stageTimestamp"], (e.get("requestObject") or {}).get("spec", {}).get("holderIdentity") or "")
                for e in lease_writes]

    def holder_at(stamp: str) -> str:
        current = ""
        for when, who in timeline:
            if when > stamp:
                break
            current = who
        return current

    writes: dict[str, int] = {}
    for event in events:
        if event["objectRef"]["resource"] != "sidecarsets":
            continue
        writer = event["userAgent"].split(" ")[0].removeprefix("kruise-manager/")
        for stamp in (event["requestReceivedTimestamp"], event["stageTimestamp"]):
            assert holder_at(stamp) == writer, f"{writer} wrote status at {stamp} while {holder_at(stamp)!r} held the lease"
        writes[writer] = writes.get(writer, 0) + 1
    return writes


def test_one_leader_failover_handover_and_a_frozen_leader_never_writes(audited):
    fleet, audit = audited
    api = fleet.cluster.api()
    label = f"stream-{uuid.uuid4().hex[:6]}"
    client.CustomObjectsApi(api).create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", {
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": label},
        "spec": {"selector": {"matchLabels": {"app": label}}, "containers": [{"name": "s", "image": "s"}]}})
    stream = PodStream(api, label)
    stream.thread.start()
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
