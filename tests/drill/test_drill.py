"""`kruisectl drill` against the chart's real managers (processes on hostlet nodes, the
apiserver calling their webhook through the Service, failurePolicy Fail): each scenario once
at a low rate, with the design's budgets as assertions, and the command's plan, refusals and
clean-up."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from kruisectl.cli import cli
from kruisectl.drill import SPREAD_LABEL_SELECTOR
from localcluster import faults

from ..conftest import wait_for

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)


def sidecarsets(env) -> list[str]:
    from kubernetes import client

    found = client.CustomObjectsApi(env.api()).list_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets")
    return [s["metadata"]["name"] for s in found["items"]]


def test_without_yes_it_prints_the_plan_and_touches_nothing(installed):
    installed.wait_settled()  # the install is shared: whatever ran before has settled
    before = {p.metadata.name for p in installed.ready_pods()}
    result = installed.kruisectl("drill", "run", "leader-crash", "eviction", "-o", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert [s["scenario"] for s in plan["scenarios"]] == ["leader-crash", "eviction"]
    crash, eviction = plan["scenarios"]
    assert crash["budget"] == {"failed": 1, "notInjected": 0, "leaderGapS": 6.0}  # lease 4s + 2s
    assert eviction["budget"] == {"failed": 0, "notInjected": 0, "leaderGapS": 1.0}
    assert "Nothing was done" in result.stderr
    assert {p.metadata.name for p in installed.ready_pods()} == before
    assert not [n for n in sidecarsets(installed) if n.startswith("kruisectl-probe-")]
    assert installed.kruisectl("drill", "plan").exit_code == 0


def test_no_scenario_named_is_a_usage_error(installed):
    result = installed.kruisectl("drill", "run", "--yes")
    assert result.exit_code == 2 and "name at least one scenario" in result.stderr


@pytest.mark.parametrize("scenario", ["eviction", "rollout", "leader-delete", "replica-delete", "replica-crash",
                                      "leader-crash"])
def test_scenario_stays_within_the_designs_budget(installed, scenario):
    installed.wait_settled()
    result = installed.kruisectl("drill", "run", scenario, "--yes", "--rate", "8", "-o", "json")
    report = json.loads(result.stdout)
    (row,) = report["scenarios"]
    print(json.dumps(row))
    assert row["requests"] >= 40, row
    assert row["notInjected"] == 0, row
    if scenario in ("eviction", "rollout", "leader-delete"):
        assert row["failed"] == 0, row  # no admission is lost on a graceful path
        assert row["leaderGapS"] is not None and row["leaderGapS"] <= 1.0, row
    elif scenario == "replica-delete":
        assert row["failed"] == 0 and row["leaderGapS"] is None, row
    else:
        assert row["failed"] <= 1, row  # at most what was in flight on the victim
    if scenario == "leader-crash":
        assert row["newLeader"] and row["newLeader"] != row["oldLeader"]
        assert row["leaderGapS"] <= 4 + 2, row
    assert row["recoveryS"] is not None, row
    assert result.exit_code == 0, (result.output, row)
    assert not [n for n in sidecarsets(installed) if n.startswith("kruisectl-probe-")]


def test_ctrl_c_stops_the_load_and_deletes_the_probe(installed):
    installed.wait_settled()
    env = {**os.environ, "KUBECONFIG": str(installed.cluster.kubeconfig)}
    # A terminal's Ctrl-C: SIGINT's default disposition, even when this run inherited it ignored.
    process = subprocess.Popen([sys.executable, "-m", "kruisectl", "drill", "run", "rollout", "--yes", "--rate", "5"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: [n for n in sidecarsets(installed) if n.startswith("kruisectl-probe-")], timeout=60,
                 what="the drill's probe SidecarSet")
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert not [n for n in sidecarsets(installed) if n.startswith("kruisectl-probe-")]
    installed.wait_settled()


def test_fewer_than_two_ready_replicas_is_refused(installed):
    from kubernetes import client

    apps = client.AppsV1Api(installed.api())
    apps.patch_namespaced_deployment_scale("kruise-controller-manager", "kruise-system", {"spec": {"replicas": 1}})
    try:
        installed.wait_settled(replicas=1)
        result = installed.kruisectl("drill", "run", "eviction", "--yes", "--force")
        assert result.exit_code == 2 and "only 1 ready replica" in result.stderr, result.output
        assert not [n for n in sidecarsets(installed) if n.startswith("kruisectl-probe-")]
    finally:
        apps.patch_namespaced_deployment_scale("kruise-controller-manager", "kruise-system", {"spec": {"replicas": 3}})
        installed.wait_settled()


def test_kruisectl_upgrade_with_a_template_change_loses_no_admission(installed):
    from kruisectl import drill
    from kruisectl.inventory import Names
    from kruisectl.probe import probe_sidecarset

    installed.wait_settled()

    def upgrade(target, deadline):
        names = [p["metadata"]["name"] for p in target.pods()]
        result = installed.kruisectl("upgrade", "--set", f"manager.podAnnotations.drill=t{int(time.time())}")
        assert result.exit_code == 0, result.output
        return names

    scenario = drill.Scenario("upgrade", "kruisectl upgrade", graceful=True, moves_leader=True, act=upgrade)
    options = drill.DrillOptions(rate=8, before_s=2, settle_s=2, timeout_s=180)
    api, names = installed.client(), Names(namespace=installed.namespace)
    with probe_sidecarset(api, options.probe_namespace, 10) as probe:
        drill.wait_injecting(api, options.probe_namespace, probe.labels, 10, print)
        result = drill.measure(api, names, scenario, options, probe.labels,
                               drill.default_budget(scenario, options, 4))
    print(result.to_dict())
    assert (result.failed, result.not_injected) == (0, 0), result
    assert result.leader_gap_s is not None and result.leader_gap_s <= 1.0, result
    assert result.recovery_s is not None and not result.breaches, result


def test_worker_scenarios_plan_their_own_budgets_whatever_the_lease(installed):
    result = installed.kruisectl("drill", "plan", "worker-crash-leader", "worker-hang-leader", "worker-crash-replica",
                                 "-o", "json")
    assert result.exit_code == 0, result.output
    budgets = {s["scenario"]: s["budget"] for s in json.loads(result.stdout)["scenarios"]}
    assert budgets == {"worker-crash-leader": {"failed": 1, "notInjected": 0, "leaderGapS": 3.0,  # not lease 4s + 2s
                                               "failedBeyondInFlight": 0},
                       "worker-hang-leader": {"failed": 1, "notInjected": 0, "leaderGapS": 9.5},  # + a hang's 6.5s
                       "worker-crash-replica": {"failed": 1, "notInjected": 0, "leaderGapS": None,
                                                "failedBeyondInFlight": 0}}


def test_a_worker_scenario_without_pods_exec_is_refused_in_one_line(installed, tmp_path):
    """A user who may not exec into the manager's pods cannot signal its worker: refused before
    anything is touched, naming the rights (a ServiceAccount token, real RBAC: no role at all)."""
    from kubernetes import client

    core = client.CoreV1Api(installed.api())
    core.create_namespaced_service_account("default", {"metadata": {"name": "drill-no-exec"}})
    try:
        token = core.create_namespaced_service_account_token(
            "drill-no-exec", "default", {"spec": {"expirationSeconds": 600}}).status.token
        kubeconfig = installed.cluster.write_token_kubeconfig(tmp_path / "no-exec.kubeconfig", token)
        pods = {p.metadata.name for p in installed.ready_pods()}
        result = CliRunner().invoke(cli, ["drill", "run", "worker-crash-leader", "--yes", "-n", "kruise-system",
                                          "--kubeconfig", str(kubeconfig)])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: refusing to drill: worker-crash-leader needs create pods/exec in "
                               "kruise-system; worker-crash-leader needs get pods/exec in kruise-system"), line
        assert "Traceback" not in result.output
        assert {p.metadata.name for p in installed.ready_pods()} == pods
        assert not [n for n in sidecarsets(installed) if n.startswith("kruisectl-probe-")]
    finally:
        core.delete_namespaced_service_account("drill-no-exec", "default")


def test_a_worker_scenario_where_exec_fails_is_refused_in_one_line_and_cleans_up(installed):
    """With the rights but a kubelet that serves no exec (the hostlet runs no kubelet server),
    the signal cannot be sent: one line saying so, nothing left behind, no container restarted."""
    installed.wait_settled()
    pods = {p.metadata.name for p in installed.ready_pods()}
    result = installed.kruisectl("drill", "run", "worker-crash-replica", "--yes", "--rate", "5")
    assert result.exit_code == 2, result.output
    (line,) = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("error:")]
    assert line.startswith("error: cannot exec into "), line
    assert "Traceback" not in result.output
    assert {p.metadata.name for p in installed.ready_pods()} == pods
    assert not [n for n in sidecarsets(installed) if n.startswith("kruisectl-probe-")]


# ---- WorkloadSpread pods in the load (issue 24): real creates, no subset over its maxReplicas ----
SPREAD_SHARE = "0.3"  # of 10 creates/s: 3 real pods/s for 6 places, each pod living 4 s


def spread_leftovers(env) -> list[str]:
    """What a drill's WorkloadSpread load left behind in the probe namespace."""
    from kubernetes import client

    api = env.api()
    found = client.CustomObjectsApi(api).list_namespaced_custom_object("apps.kruise.io", "v1alpha1", "default",
                                                                       "workloadspreads")["items"]
    left = [f"workloadspread/{w['metadata']['name']}" for w in found]
    left += [f"job/{j.metadata.name}" for j in client.BatchV1Api(api).list_namespaced_job(
        "default", label_selector=SPREAD_LABEL_SELECTOR).items]
    left += [f"pod/{p.metadata.name}" for p in client.CoreV1Api(api).list_namespaced_pod(
        "default", label_selector=SPREAD_LABEL_SELECTOR).items]
    return left


def held_the_limit(row: dict) -> None:
    assert row["workloadspreadViolations"] == 0, row["workloadspreadDetails"]
    assert row["workloadspreadPods"] > 6, row  # more real pods than the subsets have places...
    assert row["workloadspreadUnplaced"] > 0, row  # ...so some found every subset full: the limit mattered
    assert row["workloadspreadDeleteFailed"] == 0, row["workloadspreadDetails"]


def test_workloadspread_pods_in_the_load_never_overfill_a_subset_through_eviction_and_rollout(installed):
    installed.wait_settled()
    result = installed.kruisectl("drill", "run", "eviction", "rollout", "--yes", "--rate", "10",
                                 "--workloadspread-share", SPREAD_SHARE, "-o", "json")
    report = json.loads(result.stdout)
    for row in report["scenarios"]:
        print(json.dumps(row))
        assert (row["failed"], row["notInjected"]) == (0, 0), row  # graceful paths, WorkloadSpread pods included
        assert row["budget"]["workloadspreadViolations"] == 0, row
        held_the_limit(row)
    assert report["workloadspreadViolations"] == 0
    assert result.exit_code == 0, result.output
    assert spread_leftovers(installed) == []


def test_workloadspread_pods_in_the_load_never_overfill_a_subset_through_a_crash_of_the_leader(installed):
    from kruisectl import drill
    from kruisectl.inventory import Names
    from kruisectl.probe import probe_sidecarset

    installed.wait_settled()
    options = drill.DrillOptions(rate=10, before_s=3, settle_s=3, timeout_s=180,
                                 workloadspread_share=float(SPREAD_SHARE))
    scenario = faults.process_crash(installed.hostlet, installed.namespace, leader=True)
    api, names = installed.client(), Names(namespace=installed.namespace)
    budget = drill.default_budget(scenario, options, drill.lease_duration(api, names, 10))
    with probe_sidecarset(api, options.probe_namespace, 10) as probe, \
            drill.workloadspread_load(api, options, 10) as spread:
        drill.wait_injecting(api, options.probe_namespace, probe.labels, 10, print)
        spread.warm(probe.labels)
        result = drill.measure(api, names, scenario, options, probe.labels, budget, print, spread)
    row = result.to_dict()
    print(json.dumps(row))
    assert row["budget"]["workloadspreadViolations"] == 0 and not result.breaches, result
    held_the_limit(row)
    assert spread_leftovers(installed) == []


def test_a_subset_over_its_limit_is_seen(installed):
    """The check reads the live pods as the webhook annotated them: a pod that names a full
    subset itself (the webhook, finding every subset full, leaves it as it came) is one too many."""
    import copy

    from kruisectl.drill import Spread, subset_of
    from kubekit import paths

    api = installed.client()
    with Spread(api, "default", 10, lifetime_s=3600) as spread:
        spread.warm({})
        placed = []
        for _ in range(6):
            created = api.request("POST", paths.pods("default"), body=spread.pod({}), timeout=10)
            spread.created(created)
            assert subset_of(created) is not None, created["metadata"]
            placed.append(subset_of(created))
        over = spread.check()
        assert over == {}, (placed, api.request("GET", paths.workloadspreads("default", spread.name), timeout=10).get("status"))
        forged = copy.deepcopy(spread.pod({}))
        forged["metadata"]["annotations"] = {"apps.kruise.io/matched-workloadspread":
                                             json.dumps({"name": spread.name, "subset": "a"})}
        stored = api.request("POST", paths.pods("default"), body=forged, timeout=10)
        spread.created(stored)
        assert spread.check() == {"a": 1}
        assert spread.figures.violations == 1
        (said,) = [d for d in spread.figures.details if d.startswith("subset a held ")]  # the evidence, once
        assert f"{stored['metadata']['name']}@" in said and "status at resourceVersion " in said, said
        assert re.search(r"version '[^']*' missingReplicas 0,", said), said  # the webhooks had filled it: the forged pod is one too many
    assert spread_leftovers(installed) == []
