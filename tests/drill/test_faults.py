"""What a kubelet and kernel would do to the manager, under a low steady load, against the
chart's real managers on hostlet nodes: each fault once, with the design's expectations."""

from __future__ import annotations

import threading

import pytest

from kruisectl import drill
from kruisectl.inventory import Names
from kruisectl.kube import request_json
from localcluster import faults
from kruisectl.probe import probe_pod, probe_sidecarset
from tests.conftest import require

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

OPTIONS = drill.DrillOptions(rate=8, before_s=2, settle_s=2, timeout_s=180)


def pod_ips(installed) -> dict[str, str]:
    from kubernetes import client

    pods = client.CoreV1Api(installed.api()).list_namespaced_pod(installed.namespace).items
    return {p.metadata.name: p.status.pod_ip for p in pods}


def only_the_victims_failed(installed, result: drill.ScenarioResult, ips: dict[str, str]) -> None:
    """A fault may cost the requests in flight on the victim's connections and the connections
    the apiserver dialled to it before its endpoint was removed: every failure must name the
    victim's address (reset or refused there) or be a timeout (the apiserver names no address
    then; the live replicas answer in milliseconds), never another replica's address."""
    victims = {ips[v] for v in result.victims}
    for failure in result.failures:
        assert "mpod.kb.io" in failure, failure
        named = any(f"{ip}:" in failure for ip in victims)
        timed_out = "deadline exceeded" in failure or "Timeout" in failure
        assert named or timed_out, (failure, victims)


def run(installed, scenario: drill.Scenario, during=None) -> drill.ScenarioResult:
    installed.wait_settled()
    api, names = installed.api(), Names(namespace=installed.namespace)
    budget = drill.default_budget(scenario, OPTIONS, lease_duration_s=4)
    with probe_sidecarset(api, OPTIONS.probe_namespace, 10) as probe:
        drill.wait_injecting(api, OPTIONS.probe_namespace, probe.labels, 10, print)
        if during is not None:
            original = scenario.act

            def act(target, deadline):
                victims = original(target, deadline)
                during.start()
                return victims

            scenario.act = act
        result = drill.measure(api, names, scenario, OPTIONS, probe.labels, budget)
    print(result.to_dict())
    assert result.not_injected == 0, result
    assert result.recovery_s is not None, result
    return result


@pytest.mark.parametrize("leader", [True, False], ids=["leader", "replica"])
def test_a_killed_process_costs_at_most_what_was_on_its_way_to_it(installed, leader):
    ips = pod_ips(installed)
    result = run(installed, faults.process_crash(installed.hostlet, installed.namespace, leader))
    assert result.failed <= 2, result
    only_the_victims_failed(installed, result, ips)
    if leader:
        assert result.new_leader and result.leader_gap_s <= 4 + 2, result


def test_a_hung_replica_leaves_the_endpoints_within_its_readiness_budget(installed):
    ips = pod_ips(installed)
    result = run(installed, faults.hang(installed.hostlet, installed.namespace, seconds=12))
    assert result.failed <= 2, result
    only_the_victims_failed(installed, result, ips)
    assert result.endpoint_removal_s is not None and result.endpoint_removal_s <= 2 * 2 + 2 + 2, result


def test_an_oom_killed_replica_is_restarted_and_costs_at_most_what_was_on_its_way_to_it(installed):
    require("memory", installed.hostlet.memory_limits_unavailable)
    ips = pod_ips(installed)
    scenario = faults.oom(installed.hostlet, installed.namespace)
    result = run(installed, scenario)
    assert result.failed <= 2, result
    only_the_victims_failed(installed, result, ips)
    (victim,) = result.victims
    last = installed.hostlet.worker(installed.namespace, victim).containers[0].last_terminated
    assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137)


def test_total_outage_keeps_the_excluded_namespaces_admitting_and_recovers_by_itself(installed):
    api = installed.api()
    failures: dict[str, list[str]] = {"kube-system": [], installed.namespace: []}

    def excluded_creates():
        for _ in range(20):
            for ns in failures:
                try:
                    request_json(api, "POST", f"/api/v1/namespaces/{ns}/pods", 10,
                                 body=probe_pod({"app": "outage"}), dryRun="All")
                except Exception as err:  # noqa: BLE001 - collected for the assertion
                    failures[ns].append(str(err)[:200])
            threading.Event().wait(0.2)

    during = threading.Thread(target=excluded_creates)
    result = run(installed, faults.total_outage(installed.hostlet, installed.namespace), during)
    during.join(30)
    assert failures == {"kube-system": [], installed.namespace: []}
    assert result.failed > 0, result  # elsewhere failurePolicy Fail refuses while nothing serves
    assert all("mpod.kb.io" in f for f in result.failures), result.failures
    assert result.min_ready_endpoints == 0 and result.recovery_s < 60, result


def test_node_loss_is_measured_and_the_node_comes_back(installed):
    ips = pod_ips(installed)
    result = run(installed, faults.node_loss(installed.hostlet, installed.namespace, seconds=25))
    assert result.victims, result
    # A lost machine's address stops answering: whatever fails is a call to it, in the
    # apiserver's own words.
    only_the_victims_failed(installed, result, ips)
