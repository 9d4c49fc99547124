"""Losing a machine, and a whole zone, under the chart's real managers on hostlet nodes: the
lost replicas leave the Service's endpoints when the node lifecycle controller's grace period
says so, the others keep admitting within the budget `kruisectl drill` applies to a crash
(``breaches`` empty), every replica is back soon after its machine is, and doctor's zone-failure
prediction is what a real zone loss leaves.

The node lifecycle timings are this module's own (the kube-controller-manager flags below:
short, so that a loss outlasts them in half a minute). Every bound is derived from them, the
hostlet's heartbeat interval (``HEARTBEAT_S``) and the chart's probes:

- a lost node is declared unknown, and its pods not ready, no sooner than a grace period after
  its last heartbeat (sent at most one heartbeat before the loss), and no later than a grace
  period after the controller noticed that heartbeat (up to one monitor period late), at its
  next pass (one more period); the EndpointSlice controller and the drill's poll follow within
  a third period;
- once the machine is back, its replicas are ready within a heartbeat (the node reports again)
  plus the time the chart gives a starting manager before its liveness probe counts
  (``livenessProbe.initialDelaySeconds``, read from the Deployment).
"""

from __future__ import annotations

import json
import time

import pytest

from kruisectl import drill
from kruisectl.inventory import Names
from localcluster import faults

from kubekit import kruise

from .conftest import HEARTBEAT_S
from .test_faults import only_the_victims_failed, pod_ips, run

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

NODE_MONITOR_GRACE_S = 12  # kube-controller-manager's default is 50 s
NODE_MONITOR_PERIOD_S = 2  # its default is 5 s
CONTROLLER_MANAGER_ARGS = (f"--node-monitor-grace-period={NODE_MONITOR_GRACE_S}s",
                           f"--node-monitor-period={NODE_MONITOR_PERIOD_S}s")
ENDPOINT_REMOVAL_MIN_S = NODE_MONITOR_GRACE_S - HEARTBEAT_S
ENDPOINT_REMOVAL_MAX_S = NODE_MONITOR_GRACE_S + 3 * NODE_MONITOR_PERIOD_S
LOSS_S = ENDPOINT_REMOVAL_MAX_S + 10  # the survivors alone for a while, past the latest removal
REPLICAS = 3


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
    pod = drill.Target(installed.api(), Names(namespace=installed.namespace), 10).leader_pod()
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
                                      act_s: float) -> None:
    assert not result.breaches, result  # the CLI's crash budget: failed admissions, sidecars, recovery
    only_the_victims_failed(installed, result, ips)
    assert result.endpoint_removal_s is not None, result
    assert ENDPOINT_REMOVAL_MIN_S <= result.endpoint_removal_s <= ENDPOINT_REMOVAL_MAX_S, result
    # At the worst moment the Service had exactly the replicas off the lost machines.
    assert result.min_ready_endpoints == REPLICAS - len(result.victims), result
    assert result.recovery_s <= act_s + LOSS_S + HEARTBEAT_S + liveness_delay_s(installed), result


def test_a_lost_node_leaves_the_endpoints_in_its_grace_period_and_comes_back(installed):
    ips = pod_ips(installed)
    scenario = faults.node_loss(installed.hostlet, installed.namespace, seconds=LOSS_S)
    took = timed(scenario)
    result = run(installed, scenario)
    assert len(result.victims) == 1, result  # one replica per node (host network: their ports)
    assert_machine_loss_within_design(installed, result, ips, took["act_s"])


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
    result = run(installed, scenario)
    assert len(result.victims) == prediction["readyReplicasPerZone"][zone], (result, prediction)
    assert_machine_loss_within_design(installed, result, ips, took["act_s"])
    # What the lost zone really left, as the apiserver saw it: the Service's ready endpoints.
    assert result.min_ready_endpoints == prediction["readyReplicasLeftIfZoneLost"][zone], (result, prediction)
