"""What the leader-election tests share: who holds the Lease, a steady stream of status writes
for the leader to make, and the apiserver's audit log read back to show that no two leaders
ever wrote at once (on the server's clock, not the test's)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid

import pytest
from kubernetes import client


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


def status_writes(api, limit: int = 400) -> PodStream:
    """A SidecarSet of its own selecting the pods of a started :class:`PodStream`: the leader
    writes its status while the stream runs."""
    label = f"stream-{uuid.uuid4().hex[:6]}"
    client.CustomObjectsApi(api).create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", {
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": label},
        "spec": {"selector": {"matchLabels": {"app": label}}, "containers": [{"name": "s", "image": "s"}]}})
    stream = PodStream(api, label, limit)
    stream.thread.start()
    return stream


@contextlib.contextmanager
def writing_leader(fleet, limit: int = 400):
    """The fleet's leader, once it has written a status or two, while a status stream runs
    (stopped on the way out)."""
    from tests.conftest import wait_for

    stream = status_writes(fleet.cluster.api(), limit=limit)
    try:
        leader = wait_for(lambda: fleet.leader(), timeout=60, what="a leader")
        time.sleep(3)  # it writes a status or two first
        yield leader
    finally:
        stream.stop.set()
        stream.thread.join(10)


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
