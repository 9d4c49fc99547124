"""What a kubelet and kernel would do to the manager, under a low steady load, against the
chart's real managers on hostlet nodes: each fault once, held to the budget `kruisectl drill`
itself applies to a crash (``drill.default_budget``: the CLI's crash budget, no pod without its
sidecar, leadership back within the Lease's duration + 2 s, the full ready count back): the
scenario's ``breaches`` must be empty. Machine and zone loss are in test_machine_loss.py."""

from __future__ import annotations

import dataclasses
import sys
import threading

import pytest

from kruisectl import drill
from kruisectl.inventory import Names
from kubekit import paths
from localcluster import faults
from kruisectl.probe import probe_pod, probe_sidecarset
from tests.conftest import require

from .conftest import (apiserver_connections, during_fault, failed_within_connections, only_the_victims_failed,
                       pod_ips)

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

OPTIONS = drill.DrillOptions(rate=8, before_s=2, settle_s=2, timeout_s=180)
HANG_S = 12  # how long the hung replica stays stopped


def cli_budget(installed, scenario: drill.Scenario) -> drill.Budget:
    """The budget `kruisectl drill run` would give this scenario: its defaults, with the Lease
    duration read from the live Lease as the CLI reads it."""
    names = Names(namespace=installed.namespace)
    return drill.default_budget(scenario, OPTIONS, drill.lease_duration(installed.client(), names, 10))


def run(installed, scenario: drill.Scenario, during=None) -> drill.ScenarioResult:
    """The scenario measured as the CLI measures it, under the CLI's budget (``breaches``)."""
    installed.wait_settled()
    api, names = installed.client(), Names(namespace=installed.namespace)
    budget = cli_budget(installed, scenario)
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
    assert result.victims, result
    assert result.requests >= OPTIONS.rate * (OPTIONS.before_s + OPTIONS.settle_s), result  # the load really ran
    return result


@pytest.mark.parametrize("leader", [True, False], ids=["leader", "replica"])
def test_a_killed_process_costs_at_most_what_was_on_its_way_to_it(installed, leader):
    ips = pod_ips(installed)
    with apiserver_connections(installed) as seen:
        result = run(installed, during_fault(faults.process_crash(installed.hostlet, installed.namespace, leader), seen))
    assert not result.breaches, result
    only_the_victims_failed(result, ips, seen, window_s=result.recovery_s)
    if leader:  # the leader gap's budget is only checked when someone new took the Lease
        assert result.new_leader and result.leader_gap_s is not None, result


def test_a_hung_replica_leaves_the_endpoints_within_its_readiness_budget(installed):
    ips = pod_ips(installed)
    with apiserver_connections(installed) as seen:
        result = run(installed, during_fault(faults.hang(installed.hostlet, installed.namespace, seconds=HANG_S), seen))
    # Stopped, it answers nothing until its endpoint leaves: each connection the apiserver held
    # or dialled to it in that time loses the request sent on it.
    failed_within_connections(result, only_the_victims_failed(result, ips, seen, window_s=HANG_S))
    assert result.endpoint_removal_s is not None and result.endpoint_removal_s <= 2 * 2 + 2 + 2, result


def test_an_oom_killed_replica_is_restarted_and_costs_at_most_what_was_on_its_way_to_it(installed):
    require("memory", installed.hostlet.memory_limits_unavailable)
    ips = pod_ips(installed)
    with apiserver_connections(installed) as seen:
        result = run(installed, during_fault(faults.oom(installed.hostlet, installed.namespace), seen))
    assert not result.breaches, result
    only_the_victims_failed(result, ips, seen, window_s=result.recovery_s)
    (victim,) = result.victims
    last = installed.hostlet.worker(installed.namespace, victim).containers[0].last_terminated
    assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137)


def test_total_outage_keeps_the_excluded_namespaces_admitting_and_recovers_by_itself(installed):
    api = installed.client()
    failures: dict[str, list[str]] = {"kube-system": [], installed.namespace: []}

    def excluded_creates():
        for _ in range(20):
            for ns in failures:
                try:
                    api.request("POST", paths.pods(ns), body=probe_pod({"app": "outage"}), timeout=10, dryRun="All")
                except Exception as err:  # noqa: BLE001 - collected for the assertion
                    failures[ns].append(str(err)[:200])
            threading.Event().wait(0.2)

    during = threading.Thread(target=excluded_creates)
    scenario = faults.total_outage(installed.hostlet, installed.namespace, whole_pods=True)
    result = run(installed, scenario, during)
    during.join(30)
    assert failures == {"kube-system": [], installed.namespace: []}
    assert result.failed > 0, result  # elsewhere failurePolicy Fail refuses while nothing serves
    assert all("mpod.kb.io" in f for f in result.failures), result.failures
    assert result.min_ready_endpoints == 0 and result.recovery_s < 60, result
    # An outage is not a crash the CLI budgets for: admissions fail until a replica is back, and
    # no standby is left to take the Lease over (the restarted ones wait out its duration).
    # Everything else the crash budget holds: no pod without its sidecar, a new leader, and the
    # full ready count back.
    outage = dataclasses.replace(cli_budget(installed, scenario), failed=sys.maxsize, leader_gap_s=None)
    assert not outage.breaches(result), result
    assert result.new_leader and result.leader_gap_s is not None, result
