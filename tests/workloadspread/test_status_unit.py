"""The WorkloadSpread controller's decisions as pure functions (no cluster), table-driven,
with cases taken from upstream v1.8.3's workloadspread_controller_test.go and
reschedule_test.go: subset statuses, the creatingPods/deletingPods timeouts, Adaptive
conditions and rescheduling, and the pod deletion cost."""

from __future__ import annotations

import json

import pytest

from kubekit.kruise import MATCHED_WORKLOADSPREAD_ANNOTATION as MATCHED
from kubekit.kruise import POD_DELETION_COST_ANNOTATION as COST
from manager.workloadspread import status as st
from manager.workloadspread.subsets import VERSION_IGNORED

NOW = 1_800_000_000.0  # the injected clock


def t(offset: float) -> str:
    """A timestamp ``offset`` seconds from NOW, as the API writes it."""
    return st.format_time(NOW + offset)


def ws(*subsets, name="ws", status=None, adaptive: int | None = None, generation=3) -> dict:
    spec = {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "subsets": [dict(s) for s in subsets]}
    if adaptive is not None:
        spec["scheduleStrategy"] = {"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": adaptive}}
    return {"metadata": {"name": name, "namespace": "default", "generation": generation}, "spec": spec,
            "status": status or {}}


def sub(name, max_replicas=None) -> dict:
    return {"name": name} if max_replicas is None else {"name": name, "maxReplicas": max_replicas}


def pod(name, subset=None, *, ws_name="ws", phase="Running", node="node-1", ready=False, ready_at=None,
        created=-600.0, deleting=False, restarts=0, hash_="h1", owner="ReplicaSet", uid=None,
        unschedulable=False, cost=None) -> dict:
    annotations = {}
    if subset is not None:
        value = {"name": ws_name, "subset": subset}
        if uid:
            value["uid"] = uid
        annotations[MATCHED] = json.dumps(value)
    if cost is not None:
        annotations[COST] = cost
    conditions = []
    if ready:
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": t(ready_at or -60)})
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"})
    meta = {"name": name, "namespace": "default", "labels": {"pod-template-hash": hash_},
            "annotations": annotations, "creationTimestamp": t(created),
            "ownerReferences": [{"kind": owner, "name": "web-x", "uid": "rs-1", "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = t(0)
    return {"metadata": meta, "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"restartCount": restarts}]}}


def run(w, pods, replicas=5, latest="h1", kind="Deployment", now=NOW):
    return st.plan(w, pods, replicas, now, target_kind=kind, latest_version=latest)


def subsets_of(plan) -> dict:
    return {s["name"]: s for s in plan.status.get("subsetStatuses", [])}


# ---------------------------------------------------------------- maxReplicas


@pytest.mark.parametrize("value, total, strict, expected", [
    (5, 10, True, 5), ("50%", 5, True, 3), ("80%", 5, True, 4), ("100%", 5, True, 5), ("1%", 1, True, 1),
    ("0%", 9, True, 0), ("33%", 10, True, 4), ("5", 10, False, 1), ("50", 5, False, 3),
])
def test_int_or_percent_rounds_up_as_upstream(value, total, strict, expected):
    assert st.scaled_value(value, total, strict=strict) == expected


@pytest.mark.parametrize("value", ["5", "x%", "", 1.5, None])
def test_status_refuses_what_getscaledvalue_refuses(value):
    with pytest.raises(ValueError):
        st.scaled_value(value, 10, strict=True)


# ---------------------------------------------------------------- status


@pytest.mark.parametrize("subsets, pods, replicas, expected", [
    # one subset, create zero pod, maxReplicas = 5, missingReplicas = 5
    ([sub("a", 5)], [], 5, {"a": (0, 5)}),
    # two subsets, no pod
    ([sub("a", 5), sub("b", 5)], [], 10, {"a": (0, 5), "b": (0, 5)}),
    # two subsets, one pod each
    ([sub("a", 5), sub("b", 5)], [pod("p0", "a"), pod("p1", "b")], 10, {"a": (1, 4), "b": (1, 4)}),
    # maxReplicas = 100% of 5, one pod: 4 missing; 80% of 5 rounds up to 4: 3 missing
    ([sub("a", "100%")], [pod("p0", "a")], 5, {"a": (1, 4)}),
    ([sub("a", "80%")], [pod("p0", "a")], 5, {"a": (1, 3)}),
    # unlimited subset: -1, never counted down
    ([sub("a", 1), sub("b")], [pod("p0", "a"), pod("p1", "b"), pod("p2", "b")], 3, {"a": (1, 0), "b": (2, -1)}),
    # more pods than maxReplicas: missing stops at 0
    ([sub("a", 1)], [pod("p0", "a"), pod("p1", "a")], 2, {"a": (2, 0)}),
    # inactive pods (failed, succeeded, being deleted) count for nothing
    ([sub("a", 3)], [pod("p0", "a", phase="Failed"), pod("p1", "a", phase="Succeeded"),
                     pod("p2", "a", deleting=True), pod("p3", "a")], 3, {"a": (1, 2)}),
    # a pod of another WorkloadSpread, of no subset, or of a removed subset: in no subset
    ([sub("a", 3)], [pod("p0", "a", ws_name="other"), pod("p1", "gone"), pod("p2")], 3, {"a": (0, 3)}),
])
def test_subset_replicas_and_missing_replicas(subsets, pods, replicas, expected):
    plan = run(ws(*subsets), pods, replicas)
    got = {name: (s["replicas"], s["missingReplicas"]) for name, s in subsets_of(plan).items()}
    assert got == expected
    assert [s["name"] for s in plan.status["subsetStatuses"]] == [s["name"] for s in subsets]
    assert plan.status["observedGeneration"] == 3


def test_creating_pods_stay_until_seen_or_30_seconds():
    old = {"subsetStatuses": [{"name": "a", "replicas": 0, "missingReplicas": 2,
                               "creatingPods": {"seen": t(-5), "young": t(-29), "stale": t(-31), "by-uid": t(-1)}}]}
    pods = [pod("seen", "a"), pod("other-name", "a", uid="by-uid")]
    plan = run(ws(sub("a", 5), status=old), pods)
    a = subsets_of(plan)["a"]
    assert a["creatingPods"] == {"young": t(-29)}  # seen (by name or by the webhook's uid) or timed out: gone
    assert a["replicas"] == 2 and a["missingReplicas"] == 2  # 5 - 2 active - 1 still on its way
    assert plan.requeue_after == pytest.approx(1.0)  # look again when "young" times out
    # upstream's Event for the one that timed out only
    assert plan.events == [("Warning", "CreatePodFailed", "Pod default/stale was expected to be created but it wasn't")]


def test_deleting_pods_stay_while_the_pod_is_active_for_15_seconds():
    old = {"subsetStatuses": [{"name": "a", "replicas": 3, "missingReplicas": 2,
                               "deletingPods": {"p0": t(-14), "p1": t(-16), "gone": t(-1)}}]}
    pods = [pod("p0", "a"), pod("p1", "a"), pod("p2", "a")]
    plan = run(ws(sub("a", 5), status=old), pods)
    a = subsets_of(plan)["a"]
    assert a["deletingPods"] == {"p0": t(-14)}  # p1 timed out, "gone" is gone
    assert a["replicas"] == 3 and a["missingReplicas"] == 3  # p0 is counted as already deleted
    assert plan.requeue_after == pytest.approx(1.0)
    # an Event for the active pod whose entry timed out; none for the pod that went
    assert plan.events == [("Warning", "DeletePodFailed", "Pod default/p1 was expected to be deleted but it wasn't")]


@pytest.mark.parametrize("max_replicas, n_pods, missing", [
    (2, 4, 1),  # pods counted in order: a deleting pod gives back the one it took, the 4th takes one
    (None, 2, -1),  # unlimited stays -1: a deleting pod never raises it
])
def test_deleting_pods_give_back_what_they_took(max_replicas, n_pods, missing):
    old = {"subsetStatuses": [{"name": "a", "replicas": 3, "missingReplicas": 0,
                               "deletingPods": {"p0": t(-1), "p1": t(-1), "p2": t(-1)}}]}
    pods = [pod(f"p{i}", "a") for i in range(n_pods)]
    a = subsets_of(run(ws(sub("a", max_replicas), status=old), pods))["a"]
    assert a["missingReplicas"] == missing and len(a["deletingPods"]) == min(3, n_pods)


def test_old_statuses_follow_subsets_by_name_after_a_reorder():
    old = {"subsetStatuses": [{"name": "a", "replicas": 0, "missingReplicas": 1, "creatingPods": {"x": t(-1)}},
                              {"name": "b", "replicas": 0, "missingReplicas": 1}]}
    plan = run(ws(sub("b", 1), sub("a", 1), status=old), [])
    assert [s["name"] for s in plan.status["subsetStatuses"]] == ["b", "a"]
    assert subsets_of(plan)["a"]["creatingPods"] == {"x": t(-1)}
    assert subsets_of(plan)["a"]["missingReplicas"] == 0


def test_bad_max_replicas_leaves_no_subset_statuses():
    plan = run(ws(sub("a", 1), sub("b", "7")), [pod("p0", "a")])
    assert "subsetStatuses" not in plan.status


def test_versioned_statuses_per_pod_template_hash_and_kept_while_counting():
    old = {"versionedSubsetStatuses": {
        "h0": [{"name": "a", "replicas": 0, "missingReplicas": 2, "creatingPods": {"q": t(-2)}}],
        "dead": [{"name": "a", "replicas": 0, "missingReplicas": 2, "creatingPods": {"r": t(-40)}}]}}
    pods = [pod("p0", "a", hash_="h1"), pod("p1", "a", hash_="h2"), pod("p2", "a", hash_="h2")]
    plan = run(ws(sub("a", 3), status=old), pods)
    versioned = {v: {s["name"]: (s["replicas"], s["missingReplicas"]) for s in ss}
                 for v, ss in plan.status["versionedSubsetStatuses"].items()}
    assert versioned == {"h1": {"a": (1, 2)}, "h2": {"a": (2, 1)}, "h0": {"a": (0, 2)}}
    assert subsets_of(plan)["a"]["replicas"] == 3


def test_job_pods_are_one_version():
    pods = [pod("p0", "a", owner="Job", hash_="x"), pod("p1", "a", owner="Job", hash_="y")]
    plan = run(ws(sub("a", 3)), pods, kind="Job")
    assert list(plan.status["versionedSubsetStatuses"]) == [VERSION_IGNORED]
    assert plan.costs == {}  # no deletion cost for a Job's pods


def test_equal_statuses_ignore_empty_maps():
    assert st.status_equal({"subsetStatuses": [{"name": "a", "replicas": 0, "missingReplicas": 1,
                                                "creatingPods": {}}], "versionedSubsetStatuses": {}},
                           {"subsetStatuses": [{"name": "a", "replicas": 0, "missingReplicas": 1}]})
    assert not st.status_equal({"subsetStatuses": [{"name": "a", "replicas": 1, "missingReplicas": 0}]},
                               {"subsetStatuses": [{"name": "a", "replicas": 0, "missingReplicas": 1}]})


def test_annotation_keys_are_read_case_insensitively_as_go_does():
    p = pod("p0")
    p["metadata"]["annotations"][MATCHED] = '{"Name":"ws","Subset":"a"}'
    assert st.injected(p) == {"name": "ws", "subset": "a", "uid": ""}
    p["metadata"]["annotations"][MATCHED] = "not json"
    assert st.injected(p) is None


# ---------------------------------------------------------------- Adaptive


def conds(plan, name):
    return {c["type"]: (c["status"], c["lastTransitionTime"]) for c in subsets_of(plan)[name].get("conditions", [])}


def test_adaptive_pending_past_deadline_marks_subset_unschedulable_and_reschedules():
    pods = [pod("late", "a", phase="Pending", node="", unschedulable=True, created=-31),
            pod("early", "a", phase="Pending", node="", unschedulable=True, created=-10),
            pod("b0", "b", phase="Pending", node="", unschedulable=True, created=-100)]
    plan = run(ws(sub("a", 2), sub("b"), adaptive=30), pods)
    assert [p["metadata"]["name"] for p in plan.reschedule] == ["late"]  # never from the last subset
    assert conds(plan, "a") == {"Schedulable": ("False", t(0))}
    assert conds(plan, "b") == {"Schedulable": ("True", t(0))}
    assert plan.requeue_after == pytest.approx(20.0)  # "early" reaches its deadline


@pytest.mark.parametrize("old_status, old_time, failed, expected", [
    (None, None, False, ("True", 0)),
    ("True", -1000, False, ("True", -1000)),  # unchanged: keeps its transition time
    ("True", -1000, True, ("False", 0)),
    ("False", -100, True, ("False", -100)),
    ("False", -299, False, ("False", -299)),  # unschedulable for 300 s
    ("False", -301, False, ("True", 0)),  # then schedulable again
])
def test_adaptive_condition_transitions(old_status, old_time, failed, expected):
    old = None
    if old_status:
        old = {"subsetStatuses": [{"name": "a", "replicas": 0, "missingReplicas": 2, "conditions": [
            {"type": "Schedulable", "status": old_status, "lastTransitionTime": t(old_time)}]}]}
    pods = [pod("p", "a", phase="Pending", node="", unschedulable=True, created=-60)] if failed else []
    plan = run(ws(sub("a", 2), sub("b"), adaptive=30, status=old), pods)
    assert conds(plan, "a") == {"Schedulable": (expected[0], t(expected[1]))}
    assert len(plan.reschedule) == int(failed)
    recovered = old_status == "False" and expected[0] == "True"
    assert plan.events == ([("Normal", "RecoverSchedulable", "Subset a of WorkloadSpread default/ws is recovered "
                             "from unschedulable to schedulable")] if recovered else [])


@pytest.mark.parametrize("p", [
    pod("scheduled", "a", phase="Pending", node="node-1", unschedulable=True, created=-60),
    pod("running", "a", phase="Running", node="", unschedulable=True, created=-60),
    pod("deleting", "a", phase="Pending", node="", unschedulable=True, created=-60, deleting=True),
    pod("just-pending", "a", phase="Pending", node="", created=-60),
])
def test_only_unschedulable_pending_unassigned_pods_are_rescheduled(p):
    assert run(ws(sub("a", 2), sub("b"), adaptive=30), [p]).reschedule == []


def test_without_adaptive_the_condition_is_removed():
    old = {"subsetStatuses": [{"name": "a", "replicas": 0, "missingReplicas": 2, "conditions": [
        {"type": "Schedulable", "status": "False", "lastTransitionTime": t(-5)}]}]}
    plan = run(ws(sub("a", 2), sub("b"), status=old),
               [pod("p", "a", phase="Pending", node="", unschedulable=True, created=-600)])
    assert "conditions" not in subsets_of(plan)["a"] and plan.reschedule == []


# ---------------------------------------------------------------- deletion cost


def costs(w, pods, replicas=5, index=0, subset_index=0):
    return st.subset_costs(w, w["spec"]["subsets"][subset_index], index, pods, replicas)


def same_pods(n, **kw):
    return [pod(f"p{i}", "a", **kw) for i in range(n)]


@pytest.mark.parametrize("n_subsets, index, max_replicas, n_pods, expected", [
    # upstream TestSubsetPodDeletionCost
    (2, 0, 3, 3, ["200"] * 3),
    (2, 1, 3, 3, ["100"] * 3),
    (2, 0, 3, 4, ["-100", "200", "200", "200"]),
    (2, 1, 3, 4, ["-200", "100", "100", "100"]),
    (1, 0, 3, 3, ["100"] * 3),
    (1, 0, 3, 2, ["100"] * 2),
    (1, 0, 1, 3, ["-100", "-100", "100"]),
    (1, 0, None, 3, ["100"] * 3),
    (1, 0, "40%", 5, ["-100", "-100", "-100", "100", "100"]),  # 40% of 5 = 2
])
def test_deletion_cost_by_subset_index_and_max_replicas(n_subsets, index, max_replicas, n_pods, expected):
    w = ws(*[sub(f"s{i}", max_replicas) for i in range(n_subsets)])
    pods = same_pods(n_pods)
    got = costs(w, pods, index=index)
    assert [got[p["metadata"]["name"]] for p in pods] == expected


def test_being_deleted_pod_gets_no_cost():
    pods = same_pods(4)
    pods[0]["metadata"]["deletionTimestamp"] = t(0)
    got = costs(ws(sub("a", 1)), pods)
    assert got == {"p1": "-100", "p2": "-100", "p3": "100"}


@pytest.mark.parametrize("shape, negative", [
    # upstream: (pod-0, pod-3, pod-4) unhealthy: unassigned and pending go first
    ({0: {"node": ""}, 1: {}, 2: {}, 3: {"phase": "Pending"}, 4: {"phase": "Pending"}}, {0, 3, 4}),
    ({0: {}, 1: {}, 2: {"node": ""}, 3: {"phase": "Pending"}, 4: {"phase": "Unknown"}}, {2, 3, 4}),
    # failed / succeeded pods are not active: not counted, not annotated
    ({0: {}, 1: {}, 2: {"node": ""}, 3: {"phase": "Failed"}, 4: {"phase": "Pending"}}, {2, 4}),
    # not ready before ready; recently ready before long ready; more restarts first; younger first
    ({0: {"ready": True}, 1: {}, 2: {"ready": True}}, {1}),
    ({0: {"ready": True, "ready_at": -10}, 1: {"ready": True, "ready_at": -500}, 2: {"ready": True, "ready_at": -5}},
     {2}),
    ({0: {"restarts": 1}, 1: {"restarts": 5}, 2: {}}, {1}),
    ({0: {"created": -100}, 1: {"created": -10}, 2: {"created": -1000}}, {1}),
])
def test_deletion_cost_puts_the_least_healthy_beyond_max_replicas(shape, negative):
    pods = [pod(f"p{i}", "a", phase=kw.get("phase", "Running"), node=kw.get("node", "node-1"),
                ready=kw.get("ready", False), ready_at=kw.get("ready_at"), restarts=kw.get("restarts", 0),
                created=kw.get("created", -600.0)) for i, kw in sorted(shape.items())]
    active = sum(1 for p in pods if st.is_active(p))
    got = costs(ws(sub("a", active - len(negative))), pods)
    assert {int(name[1:]) for name, cost in got.items() if cost == "-100"} == negative
    assert {int(name[1:]) for name, cost in got.items() if cost == "100"} == \
        {i for i, p in enumerate(pods) if st.is_active(p)} - negative


def test_latest_version_empties_the_last_subset_first_older_versions_the_first():
    w = ws(sub("a", 2), sub("b", 2), sub("c"))
    pods = [pod("new-a", "a", hash_="new"), pod("new-c", "c", hash_="new"),
            pod("old-a", "a", hash_="old"), pod("old-c", "c", hash_="old"), pod("stray", hash_="new")]
    plan = run(w, pods, replicas=4, latest="new")
    assert plan.costs == {"new-a": "300", "new-c": "100", "old-a": "100", "old-c": "300", "stray": "-400"}


def test_cost_patched_only_when_it_changes():
    pods = [pod("p0", "a", cost="100"), pod("p1", "a", cost="7"), pod("p2", "a")]
    assert run(ws(sub("a")), pods).costs == {"p1": "100", "p2": "100"}


def test_unknown_latest_version_gives_up_the_sync_for_deployments_only():
    with pytest.raises(ValueError):
        run(ws(sub("a")), [pod("p0", "a")], latest=None)
    assert run(ws(sub("a")), [pod("p0", "a", owner="Job")], latest=None, kind="Job").costs == {}


def test_slim_pod_keeps_what_the_status_reads():
    full = pod("p0", "a", phase="Pending", node="", unschedulable=True, ready=True, restarts=2, cost="5")
    full["metadata"]["annotations"]["other"] = "x"
    full["spec"]["containers"] = [{"name": "c", "image": "i"}]
    slim = st.slim_pod(full)
    assert "other" not in slim["metadata"]["annotations"] and "containers" not in slim["spec"]
    w = ws(sub("a", 0), sub("b"), adaptive=30)
    from_slim = st.plan(w, [slim], 1, NOW, target_kind="Deployment", latest_version="h1")
    from_full = st.plan(w, [full], 1, NOW, target_kind="Deployment", latest_version="h1")
    assert (from_slim.status, from_slim.costs) == (from_full.status, from_full.costs)
    assert [p["metadata"]["name"] for p in from_slim.reschedule] == ["p0"] == \
        [p["metadata"]["name"] for p in from_full.reschedule]


# ---------------------------------------------------------------- pods created before the spread

REQ, PREF, TEST, UNIT, TOL = ("apps.kruise.io/schedule-required", "apps.kruise.io/schedule-preferred",
                              "apps.kruise.io/is-test", "apps.kruise.io/is-unit-test", "apps.kruise.io/toleration")
PATCH_LABEL, PATCH_ANNO = "apps.kruise.io/patch-label", "apps.kruise.io/patch-annotation"


def match_subset(**changes) -> dict:
    """upstream's matchSubsetDemo"""
    subset = {"name": "subset-a", "maxReplicas": 5,
              "tolerations": [{"key": TOL, "operator": "Equal", "value": "true"}],
              "requiredNodeSelectorTerm": {"matchExpressions": [{"key": REQ, "operator": "In", "values": ["true"]}]},
              "preferredNodeSelectorTerms": [{"weight": 100, "preference": {
                  "matchExpressions": [{"key": PREF, "operator": "In", "values": ["true"]}]}}],
              "patch": {"metadata": {"labels": {PATCH_LABEL: "true"}, "annotations": {PATCH_ANNO: "true"}}}}
    subset.update(changes)
    return subset


def match_node(**labels) -> dict:
    return {"metadata": {"name": "node-1", "labels": {TEST: "true", UNIT: "true", REQ: "true", PREF: "true", **labels}},
            "spec": {"taints": [{"key": TOL, "value": "true", "effect": "NoSchedule"}]}}


def match_pod(label="true", annotation="true") -> dict:
    return {"metadata": {"name": "old", "labels": {PATCH_LABEL: label}, "annotations": {PATCH_ANNO: annotation}},
            "spec": {"nodeName": "node-1", "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": TEST, "operator": "In", "values": ["true"]},
                    {"key": UNIT, "operator": "In", "values": ["true"]}]}]}}}},
            "status": {"phase": "Running"}}


@pytest.mark.parametrize("subset, node, p, score", [
    # upstream TestMatchSubset
    (match_subset(), match_node(), match_pod(), 10010),
    (match_subset(), match_node(), match_pod(label="false", annotation="false"), 10000),
    (match_subset(), match_node(**{PREF: "false"}), match_pod(), 10),
    (match_subset(), match_node(**{REQ: "false"}), match_pod(), -1),
    (match_subset(tolerations=[]), match_node(), match_pod(), -1),
    # the pod's own required terms must hold on the node too
    (match_subset(), match_node(**{UNIT: "false"}), match_pod(), -1),
    # matchFields select the node by name
    (match_subset(requiredNodeSelectorTerm={"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}), match_node(), match_pod(), 10010),
    (match_subset(requiredNodeSelectorTerm={"matchFields": [
        {"key": "metadata.name", "operator": "NotIn", "values": ["node-1"]}]}), match_node(), match_pod(), -1),
])
def test_subset_score_for_a_pod_on_a_node(subset, node, p, score):
    assert st.subset_score(p, node, subset, 0) == score
    if score >= 0:
        assert st.subset_score(p, node, subset, 1) == score + 1  # a subset still missing pods is preferred


def test_pods_created_before_the_spread_join_the_subset_of_their_node():
    zone = "topology.kubernetes.io/zone"
    nodes = {f"n-{z}": {"metadata": {"name": f"n-{z}", "labels": {zone: z}}} for z in ("a", "b", "x")}
    term = lambda z: {"matchExpressions": [{"key": zone, "operator": "In", "values": [z]}]}  # noqa: E731
    w = ws({"name": "a", "maxReplicas": 1, "requiredNodeSelectorTerm": term("a"),
            "patch": {"metadata": {"labels": {"tier": "a"}}}},
           {"name": "b", "requiredNodeSelectorTerm": term("b")})
    pods = [pod("in-a", "a"), pod("old-a", node="n-a"), pod("old-b", node="n-b"), pod("old-x", node="n-x"),
            pod("pending", node=""), pod("other", "b", ws_name="another", node="n-b")]
    result = st.plan(w, pods, 4, NOW, target_kind="Deployment", latest_version="h1", nodes=nodes.get)
    matched = lambda s: {"metadata": {"annotations": {MATCHED: json.dumps({"name": "ws", "subset": s},  # noqa: E731
                                                                           separators=(",", ":"))}}}
    assert result.adopt == {"old-a": {"metadata": {"labels": {"tier": "a"}, **matched("a")["metadata"]}},
                            "old-b": matched("b"), "other": matched("b")}
    assert {s["name"]: s["replicas"] for s in result.status["subsetStatuses"]} == {"a": 2, "b": 2}
    # a holds 2 for a maxReplicas of 1: one of them is beyond it; old-x and pending are in no subset
    assert sorted(result.costs.values()) == ["-100", "-300", "-300", "100", "100", "200"]
    assert result.costs["old-x"] == result.costs["pending"] == "-300"


def test_ignore_patch_annotation_adopts_without_the_subset_patch():
    w = ws({"name": "a", "patch": {"metadata": {"labels": {"tier": "a"}}}})
    w["metadata"]["annotations"] = {st.IGNORE_PATCH_EXISTING_PODS: "true"}
    result = st.plan(w, [pod("old")], 1, NOW, nodes=lambda name: {"metadata": {"name": name}})
    assert list(result.adopt["old"]["metadata"]) == ["annotations"]


def test_slim_pod_keeps_what_node_matching_reads():
    full = match_pod()
    full["spec"]["tolerations"] = [{"key": TOL, "operator": "Exists"}]
    slim = st.slim_pod(full)
    subset = match_subset(tolerations=[])
    assert st.subset_score(slim, match_node(), subset, 0) == st.subset_score(full, match_node(), subset, 0) == 10010
    assert st.subset_score(slim, match_node(**{UNIT: "false"}), subset, 0) == -1


@pytest.mark.parametrize("owner, kept", [("ReplicaSet", True), ("Job", True), ("Deployment", True),
                                          ("StatefulSet", False), (None, False)])
def test_the_shared_pod_cache_keeps_the_spread_part_for_target_pods_only(owner, kept):
    from manager.controller import slim_pod as cached

    full = pod("p0", "a", cost="5")
    full["metadata"]["ownerReferences"] = [{"kind": owner, "uid": "u", "controller": True}] if owner else []
    slim = cached(full)
    assert ("workloadspread" in slim) is kept
    if kept:
        assert slim["workloadspread"] == st.slim_pod(full)


@pytest.mark.parametrize("order", [["p1", "p2", "w1", "w2"], ["w1", "p1", "w2", "p2"], ["w1", "w2", "p1", "p2"]])
def test_leaving_pods_beside_the_pods_that_took_their_places_leave_none_free_in_any_order(order):
    """Two pods deleted (deletingPods, still in the cache) and the two that took their places:
    the subset is full whatever the cache's order. Upstream walks its order, and in the first
    one a leaving pod's +1 after a -1 that stopped at 0 gives a place back twice (missing 1):
    the webhook over-fills the subset."""
    old = {"subsetStatuses": [{"name": "a", "replicas": 2, "missingReplicas": 0,
                               "deletingPods": {"w1": t(-1), "w2": t(-1)}}]}
    pods = {name: pod(name, "a") for name in order}
    a = subsets_of(run(ws(sub("a", 2), status=old), [pods[n] for n in order]))["a"]
    assert (a["replicas"], a["missingReplicas"]) == (4, 0)
    assert sorted(a["deletingPods"]) == ["w1", "w2"]


@pytest.mark.parametrize("order", [["t", "w"], ["w", "t"]])
def test_a_timed_out_deleting_entry_holds_its_place_in_any_order(order):
    """``t`` was recorded as leaving 16 s ago (past the 15 s timeout: it stays, so it holds its
    place), ``w`` 1 s ago: one place, held by ``t``, whatever the cache's order."""
    old = {"subsetStatuses": [{"name": "a", "replicas": 2, "missingReplicas": 0,
                               "deletingPods": {"t": t(-16), "w": t(-1)}}]}
    pods = {name: pod(name, "a") for name in order}
    a = subsets_of(run(ws(sub("a", 1), status=old), [pods[n] for n in order]))["a"]
    assert (a["replicas"], a["missingReplicas"], sorted(a["deletingPods"])) == (2, 0, ["w"])


def test_an_entry_timed_out_in_the_overall_and_a_versioned_status_is_one_event():
    """Upstream's calculation runs for the overall status and each version's; the same timed-out
    entry in both is one Event (client-go's recorder would count the repeat)."""
    entry = {"name": "a", "replicas": 0, "missingReplicas": 2, "creatingPods": {"ghost": t(-40)}}
    old = {"subsetStatuses": [dict(entry)], "versionedSubsetStatuses": {"h1": [dict(entry)]}}
    plan = run(ws(sub("a", 2), status=old), [pod("p", "a")])
    assert plan.events == [("Warning", "CreatePodFailed", "Pod default/ghost was expected to be created but it wasn't")]
    assert "creatingPods" not in subsets_of(plan)["a"]



@pytest.mark.parametrize("case, deleting, marked, kept", [
    ("marked for deletion, recorded 5 s ago: the entry stays while the pod is here", {"p0": -5}, True, {"p0": -5}),
    ("recorded 16 s ago: dropped, no Event (it is being deleted)", {"p0": -16}, True, {}),
    ("marked, never recorded: nothing to keep", {}, True, {}),
    ("gone from the cache: dropped", {"gone": -5}, True, {}),
])
def test_a_pod_marked_for_deletion_keeps_its_deleting_entry_while_it_is_here(case, deleting, marked, kept):
    """Beyond upstream (which drops the entry once the pod is marked): the apiserver validates
    the removal on its watch cache's copy, which may still show the pod live; the entry makes
    that second validation a no-op instead of a second place freed."""
    old = {"versionedSubsetStatuses": {"h1": [{"name": "a", "replicas": 2, "missingReplicas": 1,
                                               "deletingPods": {k: t(v) for k, v in deleting.items()}}]}}
    pods = [pod("p0", "a", deleting=marked), pod("p1", "a")]
    plan = run(ws(sub("a", 2), status=old), pods)
    (a,) = plan.status["versionedSubsetStatuses"]["h1"]
    assert a.get("deletingPods", {}) == {k: t(v) for k, v in kept.items()}, case
    assert (a["replicas"], a["missingReplicas"]) == (1, 1), case  # the marked pod counts as nothing, as upstream
    assert plan.events == [], case
