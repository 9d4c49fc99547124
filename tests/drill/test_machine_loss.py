"""Losing a machine, and a whole zone, under the chart's real managers on hostlet nodes: the
lost replicas leave the Service's endpoints within seconds, taken out by the leader through the
readiness gate its peers' probes justify (manager/peers.py), long before the node lifecycle
controller's grace period would; the others keep admitting within the budget `kruisectl drill`
applies to a crash (``breaches`` empty), every replica is back soon after its machine is, and
doctor's zone-failure prediction is what a real zone loss leaves. A partitioned leader takes no
one out: cut off entirely, its followers take it out as fast as a lost non-leader, without
waiting for a successor; cut off from its peers only (it still writes and renews), it leaves
them in and they leave it in.

The node lifecycle timings are this module's own (the kube-controller-manager flags below:
short, so that a loss outlasts them in half a minute). Every bound is derived from them, the
hostlet's heartbeat interval (``HEARTBEAT_S``), the chart's probes and its peer-probe values:

- a lost replica is out within ``PEER_REMOVAL_MAX_S`` (the 5 s the design promises: two failed
  probes, at most (threshold + 1) x interval + timeout = 4 s with the chart's defaults, then one
  write and the EndpointSlice controller) when a replica other than the leader survives to
  confirm it; so is a lost leader, by its followers (the same probes, and its Lease not renewed
  for two retry periods: 2 s here); that is below the earliest the node controller could act,
  so only the peers can have done it;
- without such a witness the node controller does it: no sooner than a grace period after the
  node's last heartbeat (sent at most one heartbeat before the loss), and no later than a grace
  period after the controller noticed that heartbeat (up to one monitor period late), at its
  next pass (one more period); the EndpointSlice controller and the drill's poll follow within
  a third period;
- once the machine is back, its replicas are ready within a heartbeat (the node reports again)
  plus the time the chart gives a starting manager before its liveness probe counts
  (``livenessProbe.initialDelaySeconds``, read from the Deployment).
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from kruisectl import drill
from kruisectl.inventory import Names
from localcluster import faults
from manager.peers import GATE, SILENT_LEADER_REASON, UNREACHABLE_REASON

from kubekit import kruise

from .connections import ConnectionLog
from .conftest import (HEARTBEAT_S, VALUES, apiserver_connections, during_fault, failed_within_connections,
                       install, only_the_victims_failed, pod_ips)
from .test_faults import run

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

NODE_MONITOR_GRACE_S = 12  # kube-controller-manager's default is 50 s
NODE_MONITOR_PERIOD_S = 2  # its default is 5 s
CONTROLLER_MANAGER_ARGS = (f"--node-monitor-grace-period={NODE_MONITOR_GRACE_S}s",
                           f"--node-monitor-period={NODE_MONITOR_PERIOD_S}s")
ENDPOINT_REMOVAL_MIN_S = NODE_MONITOR_GRACE_S - HEARTBEAT_S
ENDPOINT_REMOVAL_MAX_S = NODE_MONITOR_GRACE_S + 3 * NODE_MONITOR_PERIOD_S
PEER_REMOVAL_MAX_S = 5.0
assert PEER_REMOVAL_MAX_S < ENDPOINT_REMOVAL_MIN_S  # else the node controller could pass for the peers
LOSS_S = ENDPOINT_REMOVAL_MAX_S + 10  # the survivors alone for a while, past the latest removal
REPLICAS = 3
INFORMER_BACKOFF_MAX_S = 10  # manager/informer.py's cap on the back-off between relists
PARTITION_S = 15  # many probe rounds, past the failure threshold several times over


@pytest.fixture(scope="module")
def installed(tmp_path_factory, manager_archive):
    """An install of its own: the node lifecycle's timings above are the controller-manager's flags."""
    with install(VALUES, manager_archive, tmp_path_factory.mktemp("drill"), CONTROLLER_MANAGER_ARGS) as env:
        yield env


def liveness_delay_s(installed) -> float:
    from kubernetes import client

    deployment = client.AppsV1Api(installed.api()).read_namespaced_deployment(
        "kruise-controller-manager", installed.namespace)
    (probe,) = [c.liveness_probe for c in deployment.spec.template.spec.containers if c.liveness_probe]
    return float(probe.initial_delay_seconds or 0)


def zone_of_nodes(installed) -> dict[str, str]:
    from kubernetes import client

    nodes = client.CoreV1Api(installed.api()).list_node().items
    return {n.metadata.name: (n.metadata.labels or {}).get(kruise.ZONE_LABEL, "") for n in nodes}


def leader_node(installed) -> str:
    pod = drill.Target(installed.client(), Names(namespace=installed.namespace), 10).leader_pod()
    assert pod is not None, "no pod holds the manager's Lease"
    return pod["spec"]["nodeName"]


def timed(scenario: drill.Scenario) -> dict[str, float]:
    """How long the scenario's act took (the machines come back ``LOSS_S`` after it returned)."""
    took: dict[str, float] = {}
    original = scenario.act

    def act(target, deadline):
        started = time.monotonic()
        try:
            return original(target, deadline)
        finally:
            took["act_s"] = time.monotonic() - started

    scenario.act = act
    return took


def assert_machine_loss_within_design(installed, result: drill.ScenarioResult, ips: dict[str, str],
                                      act_s: float, seen: ConnectionLog) -> None:
    # The CLI's crash budget (failed admissions, sidecars, recovery), a failure allowed for each
    # connection the apiserver held or dialled to a lost replica while it was gone.
    failed_within_connections(result, only_the_victims_failed(result, ips, seen, window_s=act_s + LOSS_S))
    assert result.endpoint_removal_s is not None, result
    if REPLICAS - len(result.victims) >= 2:  # the leader and a witness survive: the peers act
        assert result.endpoint_removal_s <= PEER_REMOVAL_MAX_S, result
    else:  # nobody to confirm the leader's view: the node controller's grace period
        assert ENDPOINT_REMOVAL_MIN_S <= result.endpoint_removal_s <= ENDPOINT_REMOVAL_MAX_S, result
    # At the worst moment the Service had exactly the replicas off the lost machines.
    assert result.min_ready_endpoints == REPLICAS - len(result.victims), result
    assert result.recovery_s <= act_s + LOSS_S + HEARTBEAT_S + liveness_delay_s(installed), result


def test_a_lost_node_leaves_the_endpoints_within_seconds_and_comes_back(installed):
    ips = pod_ips(installed)
    scenario = faults.node_loss(installed.hostlet, installed.namespace, seconds=LOSS_S)
    took = timed(scenario)
    with apiserver_connections(installed) as seen:
        result = run(installed, during_fault(scenario, seen))
    assert len(result.victims) == 1, result  # one replica per node (host network: their ports)
    assert_machine_loss_within_design(installed, result, ips, took["act_s"], seen)


def test_a_lost_zone_leaves_what_doctor_predicted(installed):
    installed.wait_settled()
    doctor = installed.kruisectl("doctor", "-o", "json")
    findings = {f["check"]: f for f in json.loads(doctor.stdout)["findings"]}
    prediction = findings["zone-failure"]["evidence"]
    assert findings["zone-failure"]["level"] == "ok", findings["zone-failure"]
    zone_of = zone_of_nodes(installed)
    leader_zone = zone_of[leader_node(installed)]
    zone = next(z for z in sorted(prediction["readyReplicasPerZone"]) if z != leader_zone)
    ips = pod_ips(installed)
    scenario = faults.zone_loss(installed.hostlet, installed.namespace, zone, zone_of, seconds=LOSS_S)
    took = timed(scenario)
    with apiserver_connections(installed) as seen:
        result = run(installed, during_fault(scenario, seen))
    assert len(result.victims) == prediction["readyReplicasPerZone"][zone], (result, prediction)
    assert_machine_loss_within_design(installed, result, ips, took["act_s"], seen)
    # What the lost zone really left, as the apiserver saw it: the Service's ready endpoints.
    assert result.min_ready_endpoints == prediction["readyReplicasLeftIfZoneLost"][zone], (result, prediction)


class GateWatch(threading.Thread):
    """Who first took a pod out: the reason of its gate's first False (polled)."""

    def __init__(self, installed, pod: str, seconds: float):
        super().__init__(daemon=True)
        self.installed, self.pod, self.seconds = installed, pod, seconds
        self.reason: str | None = None

    def run(self):
        from kubernetes import client

        api = client.CoreV1Api(self.installed.api())
        end = time.monotonic() + self.seconds
        while time.monotonic() < end and self.reason is None:
            try:
                conditions = api.read_namespaced_pod_status(self.pod, self.installed.namespace).status.conditions
                gate = {c.type: c for c in conditions or []}.get(GATE)
                if gate is not None and gate.status == "False":
                    self.reason = gate.reason
            except Exception:  # noqa: BLE001 - a missed sample
                pass
            time.sleep(0.2)


def test_a_partitioned_leader_takes_no_one_out_and_its_followers_take_it_out(installed):
    """The leader's machine cut off with its processes running: it sees every peer down but can
    write nothing, and stops leading; the others never leave the Service and, finding it
    unreachable (each confirming the other) and its Lease silent, take it out as fast as a lost
    non-leader, without waiting for a successor; once healed, it is let back in."""
    ips = pod_ips(installed)
    old_leader = drill.Target(installed.client(), Names(namespace=installed.namespace), 10).leader_pod()
    scenario = faults.node_partition(installed.hostlet, installed.namespace, seconds=LOSS_S, leader=True)
    took = timed(scenario)
    watch = GateWatch(installed, old_leader["metadata"]["name"], LOSS_S)
    with apiserver_connections(installed) as seen:
        result = run(installed, during_fault(scenario, seen), watch)
    watch.join(LOSS_S + 5)
    assert result.victims == [old_leader["metadata"]["name"]], result
    failed_within_connections(result, only_the_victims_failed(result, ips, seen, window_s=took["act_s"] + LOSS_S))
    assert result.new_leader and result.leader_gap_s is not None, result
    assert result.min_ready_endpoints == REPLICAS - 1, result  # the survivors never left
    assert result.endpoint_removal_s is not None, result
    # Out by its followers as a lost non-leader is by the leader, whatever the Lease's duration:
    # the probes and two retry periods of silence. (This drill's Lease is short, 4 s: when the
    # probes are slow, the successor may write first; with the chart's 15 s never, see the bench.)
    assert result.endpoint_removal_s <= PEER_REMOVAL_MAX_S, (result, watch.reason)
    assert watch.reason in (SILENT_LEADER_REASON, UNREACHABLE_REASON), watch.reason  # through the gate
    print(f"taken out by {'its followers' if watch.reason == SILENT_LEADER_REASON else 'its successor'}")
    # Back once healed: its worker, restarted when it lost the Lease, resyncs its caches within
    # the informers' relist back-off, then its readiness probe and the leader's probes pass.
    assert result.recovery_s <= took["act_s"] + LOSS_S + INFORMER_BACKOFF_MAX_S + PEER_REMOVAL_MAX_S, result


def metric(ip: str, name: str) -> float:
    import requests

    text = requests.get(f"http://{ip}:8080/metrics", timeout=2).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_a_leader_cut_off_from_its_peers_only_takes_no_one_out(installed):
    """The leader still reaches the apiserver (and writes), the apiserver every replica, but the
    leader and its peers cannot reach each other: the leader sees both peers unreachable and
    finds no witness, so it withholds; its followers find it unreachable but renewing (not
    silent), so they leave it in: every replica stays in and nothing fails."""
    leader = drill.Target(installed.client(), Names(namespace=installed.namespace), 10).leader_pod()
    leader_ip = leader["status"]["podIP"]
    withheld_before = metric(leader_ip, "kruise_manager_webhook_peer_marks_withheld_total")
    seen = {"unreachable": 0.0}

    class Watch(threading.Thread):
        def run(self):
            end = time.monotonic() + PARTITION_S
            while time.monotonic() < end:
                try:
                    seen["unreachable"] = max(seen["unreachable"],
                                              metric(leader_ip, "kruise_manager_webhook_peers_unreachable"))
                except Exception:  # noqa: BLE001 - a missed sample
                    pass
                time.sleep(0.5)

    watch = Watch(daemon=True)
    result = run(installed, faults.peer_partition(installed.hostlet, installed.namespace, seconds=PARTITION_S), watch)
    watch.join(PARTITION_S + 5)
    assert not result.breaches and result.failed == 0, result
    assert seen["unreachable"] == REPLICAS - 1, seen  # it did see every peer down ...
    assert metric(leader_ip, "kruise_manager_webhook_peer_marks_withheld_total") > withheld_before
    assert result.min_ready_endpoints == REPLICAS, result  # ... and took no one out
    assert result.endpoint_removal_s is None, result
    from kubernetes import client

    for pod in client.CoreV1Api(installed.api()).list_namespaced_pod(
            installed.namespace, label_selector="control-plane=controller-manager").items:
        gate = {c.type: c.status for c in pod.status.conditions or []}.get(GATE)
        assert gate == "True", (pod.metadata.name, pod.status.conditions)
