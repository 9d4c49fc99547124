"""bench/ha_drills.py's final figures from the scenarios' reports: totals from each scenario's
own budget, breaches per scenario, and null (with the reason) for what was not measured. No
cluster."""

from __future__ import annotations

import threading

import pytest

from kruisectl.drill import SCENARIOS, DrillOptions, ScenarioResult, default_budget, worker_scenario
from tests import bench_modules

bench = bench_modules.load("ha_drills")


def row(name: str, failed: int = 0, not_injected: int = 0, shares=None, errors=(), **kwargs) -> dict:
    scenario = SCENARIOS.get(name) or SCENARIOS["replica-crash" if kwargs.pop("crash", False) else "eviction"]
    result = ScenarioResult(name, [], requests=100, failed=failed, not_injected=not_injected, recovery_s=3.0,
                            shares=shares, errors=list(errors), budget=default_budget(scenario, DrillOptions(), 15),
                            **kwargs)
    result.breaches = result.budget.breaches(result)
    return result.to_dict()


@pytest.mark.parametrize("case, rows, total_failed, over, breaches", [
    ("a loss in a graceful delete is counted (no hand list leaves it out)",
     [row("steady"), row("leader-delete", failed=2), row("replica-delete", failed=1), row("leader-crash", failed=1)],
     3, ["steady", "leader-delete", "replica-delete"],
     {"leader-delete": ["2 failed admissions (budget 0)"], "replica-delete": ["1 failed admissions (budget 0)"]}),
    ("a crash within its budget is not in the zero-budget total",
     [row("eviction"), row("rollout"), row("process-crash-leader", failed=1, crash=True)],
     0, ["eviction", "rollout"], {}),
    ("a crash over its budget is a breach of that scenario",
     [row("upgrade"), row("total-outage", failed=48, crash=True)],
     0, ["upgrade"], {"total-outage": ["48 failed admissions (budget 1)"]}),
])
def test_totals_come_from_the_scenarios_budgets(case, rows, total_failed, over, breaches):
    summary = bench.summarise({r["scenario"]: r for r in rows})
    assert (summary["total_failed"], summary["total_failed_over"], summary["breaches"]) == \
        (total_failed, over, breaches), case
    assert summary["total_not_injected_over"] == [r["scenario"] for r in rows]  # every budget allows none
    assert {n: s["budget_failed"] for n, s in summary["scenarios"].items()} == \
        {r["scenario"]: r["budget"]["failed"] for r in rows}


def test_sidecar_less_admissions_are_totalled_over_every_scenario_that_allows_none():
    rows = [row("steady"), row("replica-delete", not_injected=1), row("node-loss", not_injected=2, crash=True)]
    summary = bench.summarise({r["scenario"]: r for r in rows})
    assert summary["total_not_injected"] == 3
    assert summary["breaches"]["node-loss"] == ["2 pods admitted without their sidecar (budget 0)"]


@pytest.mark.parametrize("case, steady, min_share, errors", [
    ("a starved replica shows as 0", row("steady", shares={"a": 0.6, "b": 0.4, "c": 0.0}), 0.0, []),
    ("even shares", row("steady", shares={"a": 0.34, "b": 0.33, "c": 0.33}), 0.33, []),
    ("an unreadable replica: null and the reason, never a share over the others",
     row("steady", shares=None, errors=["replica c: its metrics could not be read (timed out)"]), None,
     ["steady: replica c: its metrics could not be read (timed out)"]),
])
def test_min_replica_share(case, steady, min_share, errors):
    summary = bench.summarise({"steady": steady})
    assert (summary["min_replica_share"], summary["errors"]) == (min_share, errors), case


def test_an_outage_check_that_did_not_finish_is_null_and_an_error():
    check = bench.ExcludedNamespaces(api=None, namespaces=("kube-system",), seconds=1)
    assert check.finish(0.01) == (None, ["the excluded-namespace check never started"])
    release = threading.Event()
    check._thread = threading.Thread(target=release.wait, daemon=True)
    check._thread.start()
    try:
        assert check.finish(0.05) == (None, ["the excluded-namespace check did not finish within 0.05s"])
    finally:
        release.set()


def test_an_outage_check_that_sent_nothing_or_crashed_is_an_error():
    check = bench.ExcludedNamespaces(api=None, namespaces=("kube-system", "kruise-system"), seconds=0)
    check.start()
    nothing = {"requests": 0, "failed": 0}
    assert check.finish(5) == ({"kube-system": nothing, "kruise-system": nothing},
                               ["no create was sent to kube-system during the outage",
                                "no create was sent to kruise-system during the outage"])
    crashing = bench.ExcludedNamespaces(api=None, namespaces=("kube-system",), seconds=5)
    crashing.counts = None  # its loop cannot count: the figures are unknown
    crashing.start()
    figures, errors = crashing.finish(5)
    assert figures is None and errors[0].startswith("the excluded-namespace check failed: TypeError")


def worker_row(fault: str, leader: bool, gap: float | None, failed: int = 0, refused: int = 0,
               in_flight: int | None = 0) -> dict:
    scenario = worker_scenario(fault, leader, lambda target, pod: None)
    result = ScenarioResult(scenario.name, [], requests=100, failed=failed, refused=refused, leader_gap_s=gap,
                            recovery_s=3.0, budget=default_budget(scenario, DrillOptions(), 15),
                            in_flight=None if fault == "worker-hang" else in_flight)
    result.breaches = result.budget.breaches(result)
    return result.to_dict()


def test_worker_faults_are_held_to_their_own_budgets_not_the_leases():
    rows = [row("eviction"), worker_row("worker-crash", True, 0.9, failed=1, in_flight=1),
            worker_row("worker-crash", False, None, refused=0), worker_row("worker-hang", True, 6.2),
            worker_row("worker-oom", True, 4.0, failed=2, refused=2, in_flight=1)]
    summary = bench.summarise({r["scenario"]: r for r in rows})
    assert summary["leader_worker_crash_gap_s"] == 0.9
    assert summary["breaches"] == {"worker-oom-leader": [
        "2 failed admissions, 1 beyond the 1 in flight when it died (budget 0)",
        "leadership vacant 4.00s (budget 3s)"]}
    assert summary["total_failed_over"] == ["eviction"]  # a crash may cost what was in flight
    assert summary["total_refused"] == 2 and summary["scenarios"]["worker-oom-leader"]["refused"] == 2
    assert {n: s["budget_failed"] for n, s in summary["scenarios"].items()} == \
        {"eviction": 0, "worker-crash-leader": 1, "worker-crash-replica": 1, "worker-hang-leader": 1,
         "worker-oom-leader": 1}


@pytest.mark.parametrize("case, rows, failed, in_flight", [
    ("the SIGKILLs and the OOM kill, not the hang",
     [worker_row("worker-crash", True, 0.9, failed=1, in_flight=2), worker_row("worker-crash", False, None),
      worker_row("worker-hang", True, 6.0, failed=3), worker_row("worker-oom", True, 1.0, failed=1, in_flight=1)],
     2, 3),
    ("an instant not known: the in-flight total is unknown, the failed still counted",
     [worker_row("worker-crash", True, 0.9, failed=1, in_flight=None), worker_row("worker-oom", True, 1.0)], 1, None),
    ("no worker death in the run", [row("eviction")], None, None),
])
def test_a_workers_death_is_reported_with_what_was_in_flight(case, rows, failed, in_flight):
    summary = bench.summarise({r["scenario"]: r for r in rows})
    assert (summary["worker_crash_failed"], summary["worker_crash_in_flight"]) == (failed, in_flight), case
    for r in rows:
        assert summary["scenarios"][r["scenario"]]["in_flight"] == r["inFlight"]


def test_endpoint_removal_is_reported_for_every_machine_loss_and_partition():
    rows = [row("steady"), row("node-loss", crash=True), row("zone-loss-zone-a", crash=True),
            row("node-partition-leader", crash=True), row("hang", crash=True)]
    for r, seconds in zip(rows, (None, 3.2, 3.9, 7.5, 4.0)):
        r["endpointRemovalS"] = seconds
    summary = bench.summarise({r["scenario"]: r for r in rows})
    assert summary["endpoint_removal_s"] == {"node-loss": 3.2, "zone-loss-zone-a": 3.9, "node-partition-leader": 7.5}


def test_a_process_crash_of_the_leader_is_reported_with_what_was_in_flight_and_refusals_outside_an_outage():
    rows = [row("process-crash-leader", crash=True, leader_gap_s=2.1, in_flight=1, failed=1),
            row("process-crash-replica", crash=True, in_flight=0),
            worker_row("worker-crash", True, 0.9, failed=0, in_flight=2),
            row("total-outage", crash=True, failed=40, refused=12, in_flight=None),
            row("oom", crash=True, failed=1, refused=1)]
    summary = bench.summarise({r["scenario"]: r for r in rows})
    assert summary["leader_process_crash_gap_s"] == 2.1
    assert (summary["process_crash_failed"], summary["process_crash_in_flight"]) == (1, 3)
    assert summary["total_refused"] == 13 and summary["refused_outside_total_outage"] == 1
    assert bench.summarise({"eviction": row("eviction")})["leader_process_crash_gap_s"] is None


def test_workloadspread_figures_per_scenario_and_in_total():
    spread = dict(workloadspread_pods=40, workloadspread_unplaced=21, workloadspread_delete_failed=0)
    rows = {"eviction": row("eviction", workloadspread_violations=0, **spread),
            "rollout": row("rollout", workloadspread_violations=2, **spread)}
    summary = bench.summarise(rows)
    assert (summary["total_workloadspread_pods"], summary["total_workloadspread_violations"]) == (80, 2)
    assert summary["scenarios"]["rollout"]["workloadspread_violations"] == 2
    assert summary["scenarios"]["eviction"]["workloadspread_unplaced"] == 21
    plain = bench.summarise({"eviction": row("eviction")})
    assert "total_workloadspread_violations" not in plain
    assert "workloadspread_pods" not in plain["scenarios"]["eviction"]


@pytest.mark.parametrize("zone, name, moves_leader", [("zone-a", "zone-loss-zone-a", False),
                                                      (None, "zone-loss-leader", True)])
def test_a_zone_loss_is_named_for_its_zone_or_for_the_leaders(zone, name, moves_leader):
    """The names ``--scenarios`` selects: zone None loses the leader's zone, chosen when it strikes."""
    from localcluster import faults

    scenario = faults.zone_loss(None, "kruise-system", zone, {})
    assert (scenario.name, scenario.moves_leader) == (name, moves_leader)
