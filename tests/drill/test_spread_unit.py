"""WorkloadSpread pods in the drill's load, the arithmetic: which pods count against a subset's
maxReplicas, the pods and objects the load creates, its budget and report. No cluster."""

from __future__ import annotations

import json
import time

import pytest

from kruisectl.drill import (SCENARIOS, SUBSETS, Budget, DrillOptions, ScenarioResult, default_budget, excess,
                             lifetime_for, spread_pod, subset_of)
from kruisectl.drill.report import spread_summary
from kruisectl.drill.spread import GATE, MANAGED_BY, Spread, evidence, job_body, workloadspread_body

LIMITS = {"a": 2, "b": 2, "c": 2}


def pod(name: str, subset: str | None = None, deleting: bool = False, annotation: str | None = None) -> dict:
    meta = {"name": name}
    if subset is not None:
        meta["annotations"] = {"apps.kruise.io/matched-workloadspread": json.dumps({"name": "ws", "subset": subset})}
    if annotation is not None:
        meta["annotations"] = {"apps.kruise.io/matched-workloadspread": annotation}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


@pytest.mark.parametrize("case, pods, leaving, expected", [
    ("full, not over", [pod("p1", "a"), pod("p2", "a"), pod("p3", "b")], set(), {}),
    ("one over", [pod("p1", "a"), pod("p2", "a"), pod("p3", "a")], set(), {"a": 1}),
    ("two subsets over", [pod(f"a{i}", "a") for i in range(4)] + [pod(f"c{i}", "c") for i in range(3)], set(),
     {"a": 2, "c": 1}),
    ("a pod being deleted frees its place", [pod("p1", "a"), pod("p2", "a"), pod("p3", "a", deleting=True)], set(), {}),
    ("a pod whose deletion was sent frees its place", [pod("p1", "a"), pod("p2", "a"), pod("p3", "a")], {"p1"}, {}),
    ("pods in no subset never count", [pod(f"p{i}") for i in range(9)], set(), {}),
    ("an unreadable annotation is no subset", [pod(f"p{i}", annotation="{") for i in range(3)], set(), {}),
    ("a subset the spread does not have is not checked", [pod(f"p{i}", "z") for i in range(3)], set(), {}),
])
def test_what_counts_against_a_subsets_max_replicas(case, pods, leaving, expected):
    assert excess(pods, LIMITS, leaving) == expected, case


def test_subset_of_reads_the_webhooks_annotation():
    assert subset_of(pod("p", "b")) == "b"
    assert subset_of(pod("p")) is None
    assert subset_of(pod("p", annotation='["a"]')) is None


def test_the_pods_belong_to_the_job_and_are_never_scheduled():
    job = {"metadata": {"name": "j", "uid": "u-1", "labels": {"kruisectl.io/drill-spread": "x"}},
           "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}}}
    body = spread_pod(job, {"kruisectl.io/probe": "p"})
    assert body["metadata"]["labels"] == {"batch.kubernetes.io/controller-uid": "u-1", "kruisectl.io/drill-spread": "x",
                                          "kruisectl.io/probe": "p"}
    assert body["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u-1",
                                                    "controller": True}]
    assert body["spec"]["schedulingGates"] == [{"name": GATE}]
    assert "name" not in body["metadata"] and body["metadata"]["generateName"]


def test_the_job_is_managed_by_nobody_and_the_workloadspread_limits_every_subset():
    job = job_body("n", "x")
    assert job["spec"]["managedBy"] == MANAGED_BY
    assert job["spec"]["parallelism"] == sum(m for _n, m in SUBSETS)
    ws = workloadspread_body("n", "n", "x")
    assert ws["spec"]["targetRef"] == {"apiVersion": "batch/v1", "kind": "Job", "name": "n"}
    assert all(isinstance(s["maxReplicas"], int) for s in ws["spec"]["subsets"])


@pytest.mark.parametrize("rate, share, lifetime", [(20, 0.25, 2.4), (8, 0.25, 6.0), (500, 1, 1.0)])
def test_pods_live_long_enough_for_twice_the_places(rate, share, lifetime):
    assert lifetime_for(rate, share) == pytest.approx(lifetime)


def test_with_spread_pods_every_scenario_allows_no_violation():
    for name in ("eviction", "leader-crash"):
        assert default_budget(SCENARIOS[name], DrillOptions(), 15).workloadspread_violations is None
        budget = default_budget(SCENARIOS[name], DrillOptions(workloadspread_share=0.25), 15)
        assert budget.workloadspread_violations == 0
        assert budget.to_dict()["workloadspreadViolations"] == 0
    assert "workloadspreadViolations" not in default_budget(SCENARIOS["eviction"], DrillOptions(), 15).to_dict()


@pytest.mark.parametrize("violations, breached", [(0, False), (1, True), (None, False)])
def test_a_violation_breaches_the_budget(violations, breached):
    result = ScenarioResult("eviction", [], recovery_s=1.0, workloadspread_violations=violations)
    found = Budget(failed=0, workloadspread_violations=0).breaches(result)
    assert bool(found) == breached, found
    assert not Budget(failed=0).breaches(result)  # not checked without spread pods


def test_the_report_and_json_carry_the_figures():
    rows = [ScenarioResult("rollout", [], workloadspread_pods=40, workloadspread_unplaced=20,
                           workloadspread_violations=0, workloadspread_delete_failed=0),
            ScenarioResult("eviction", [], workloadspread_pods=30, workloadspread_unplaced=12,
                           workloadspread_violations=2, workloadspread_details=["at +1.0s: subset a holds 4 pods"])]
    assert rows[1].to_dict()["workloadspreadViolations"] == 2
    html = spread_summary(rows)
    assert "2 over maxReplicas in total" in html and "subset a holds 4 pods" in html
    assert spread_summary([ScenarioResult("rollout", [])]) == ""


def test_the_evidence_of_an_overfull_subset_names_its_pods_and_what_the_status_said():
    held = [pod("p1", "b"), pod("p2", "b"), pod("p3", "a"), pod("p4", "b", deleting=True)]
    held[0]["metadata"]["creationTimestamp"] = "2026-12-05T07:00:00Z"
    held[1]["metadata"]["annotations"]["apps.kruise.io/matched-workloadspread"] = json.dumps(
        {"name": "ws", "subset": "b", "uid": "u-2"})
    ws = {"metadata": {"resourceVersion": "42"}, "status": {
        "subsetStatuses": [{"name": "a", "missingReplicas": 2}, {"name": "b", "missingReplicas": 2}],
        "versionedSubsetStatuses": {"": [
            {"name": "b", "missingReplicas": 1, "creatingPods": {"u-2": "2026-12-05T07:00:01Z"}, "deletingPods": None}]}}}
    assert evidence(held, "b", ws) == (
        "subset b held p1@2026-12-05T07:00:00Z, p2@? uid u-2; status at resourceVersion 42: overall missingReplicas 2, "
        "creatingPods [], deletingPods []; version '' missingReplicas 1, creatingPods [('u-2', '2026-12-05T07:00:01Z')], "
        "deletingPods []")
    assert evidence([], "c", None) == "subset c held nothing; status at resourceVersion ?: overall none"


def test_a_subsets_history_has_its_statuses_its_pods_and_their_deletions_in_order():
    spread = Spread(api=None, namespace="default", timeout=5.0)
    spread._began = time.monotonic() - 10
    ws = {"metadata": {"resourceVersion": "7"}, "status": {
        "subsetStatuses": [{"name": "b", "replicas": 1, "missingReplicas": 1}],
        "versionedSubsetStatuses": {"versionIgnored": [
            {"name": "b", "missingReplicas": 0, "creatingPods": {"u-1": "t"}, "deletingPods": {"p0": "t"}}]}}}
    at = time.monotonic()
    spread._history.extend([
        (at - 30, "created", ("too-old", "b", "")),  # before the window
        (at - 3, "created", ("p1", "b", "u-1")), (at - 2.5, "created", ("p2", "a", "u-2")),
        (at - 2, "status", ws), (at - 1, "delete", "p1"), (at - 1, "delete", "p2"), (at - 0.5, "deleted", "p1")])
    said = spread.history("b")
    assert said.startswith("history of subset b: ")
    lines = said.split(": ", 1)[1].split("; ")
    assert [line.split(" ", 1)[1] for line in lines] == [
        "created p1 uid u-1",
        "status rv 7: overall replicas 1 missing 1 creating [] deleting [] | 'versionIgnored' missing 0 "
        "creating ['u-1'] deleting ['p0']",
        "delete sent p1", "deleted p1"]
    assert lines[0].startswith("+7.") and lines[-1].startswith("+9.")


class ListedWhileDeleting(Spread):
    """A Spread whose list answers while the drill sends a deletion (``racing``): the listed
    pods are what the apiserver held at its read, the deletion's admission included."""

    def __init__(self, listed: list[dict], racing: str | None):
        super().__init__(api=None, namespace="default", timeout=5.0)
        self.listed, self.racing = listed, racing
        self._began = time.monotonic()

    def pods(self) -> list[dict]:
        if self.racing:
            with self._lock:
                self._leaving.add(self.racing)  # churn() on the load's thread, meanwhile
        return self.listed


@pytest.mark.parametrize("case, listed, leaving, racing, over, noted", [
    ("a deletion sent while the list was on its way: its place was taken again, not a violation",
     [pod("old", "b"), pod("p2", "b"), pod("new", "b")], set(), "old", {}, True),
    ("sent before the look: not counted, nothing to note",
     [pod("old", "b"), pod("p2", "b"), pod("new", "b")], {"old"}, None, {}, False),
    ("an excess the racing deletion does not explain is a violation",
     [pod("old", "b"), pod("p2", "b"), pod("p3", "b"), pod("new", "b")], set(), "old", {"b": 1}, True),
    ("a deletion of a pod in no full subset changes nothing: nothing to note",
     [pod("x", "a"), pod("p2", "b"), pod("p3", "b")], set(), "x", {}, False),
    ("no deletion meanwhile: an excess is a violation",
     [pod("p1", "b"), pod("p2", "b"), pod("p3", "b")], set(), None, {"b": 1}, False),
])
def test_a_look_counts_the_deletions_sent_until_its_list_answered(monkeypatch, case, listed, leaving, racing, over,
                                                                 noted):
    spread = ListedWhileDeleting(listed, racing)
    spread._leaving.update(leaving)
    monkeypatch.setattr(spread, "history", lambda subset: f"history of {subset}")
    monkeypatch.setattr(spread, "workloadspread", lambda: None)  # the evidence's read
    assert spread.check() == over, case
    assert spread.figures.violations == sum(over.values()), case
    assert any("could not tell" in d for d in spread.figures.details) == noted, (case, spread.figures.details)
