"""A WorkloadSpread's target as upstream's controller finder sees it (no cluster): which pods
and how many replicas for a Deployment, a ReplicaSet and a Job, and the latest version."""

from __future__ import annotations

import json

import pytest

from manager.workloadspread import targets
from manager.workloadspread.subsets import BadValue

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}


def spread(kind="Deployment", api="apps/v1", name="web", **spec) -> dict:
    return {"metadata": {"name": "ws", "namespace": "ns"},
            "spec": {"targetRef": {"apiVersion": api, "kind": kind, "name": name}, "subsets": [{"name": "a"}], **spec}}


def obj(name, uid, owner_uid=None, labels=None, ns="ns", deleting=False, **spec) -> dict:
    meta = {"name": name, "namespace": ns, "uid": uid, "labels": labels or {"app": "web"}}
    if owner_uid:
        meta["ownerReferences"] = [{"kind": "X", "uid": owner_uid, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": spec}


def deployment(replicas=3, template=TEMPLATE, **kw):
    return obj("web", "dep", selector={"matchLabels": {"app": "web"}}, replicas=replicas, template=template, **kw)


def rs(name, uid, hash_, template=TEMPLATE, owner="dep", **kw):
    t = {**template, "metadata": {"labels": {**template["metadata"]["labels"], "pod-template-hash": hash_}}}
    return obj(name, uid, owner, labels={"app": "web", "pod-template-hash": hash_}, template=t, **kw)


def names(pods):
    return sorted(p["metadata"]["name"] for p in pods)


PODS = [obj("p-old", "1", "rs-old"), obj("p-new", "2", "rs-new"), obj("p-foreign", "3", "rs-foreign"),
        obj("p-elsewhere", "4", "rs-new", ns="other"), obj("p-job", "5", "job", labels={"job": "j"}),
        obj("p-job-unselected", "6", "job", labels={"job": "other"}), obj("p-dep", "7", "dep")]
RSS = [rs("web-old", "rs-old", "h-old", template={**TEMPLATE, "spec": {"containers": [{"name": "app", "image": "app:0"}]}}),
       rs("web-new", "rs-new", "h-new"), rs("web-foreign", "rs-foreign", "h-f", owner="someone-else"),
       rs("web-gone", "rs-gone", "h-g", deleting=True)]


@pytest.mark.parametrize("ws, workload, rss, expected", [
    # a Deployment's pods are those of the ReplicaSets it controls (old and new), in its namespace
    (spread(), deployment(), RSS, (["p-new", "p-old"], 3)),
    # without ReplicaSets, the pods it owns itself
    (spread(), deployment(), [], (["p-dep"], 3)),
    # scaled to 0: no pods at all; gone or being deleted: nothing
    (spread(), deployment(replicas=0), RSS, ([], 0)),
    (spread(), None, RSS, ([], 0)),
    (spread(), deployment(deleting=True), RSS, ([], 0)),
    # a ReplicaSet's own pods
    (spread("ReplicaSet", name="web-new"), RSS[1] | {"spec": {**RSS[1]["spec"], "replicas": 2}}, [], (["p-new"], 2)),
    # a Job: its parallelism, its pods its selector selects
    (spread("Job", "batch/v1", "j"), obj("j", "job", selector={"matchLabels": {"job": "j"}}, parallelism=4), [],
     (["p-job"], 4)),
    # wrong group or an unhandled kind: nothing
    (spread("Deployment", "extensions/v1beta1"), deployment(), RSS, ([], 0)),
    (spread("CloneSet", "apps.kruise.io/v1alpha1"), deployment(), RSS, ([], 0)),
    # targetFilter narrows the pods, not the replicas
    (spread(targetFilter={"selector": {"matchLabels": {"pick": "me"}}}), deployment(), RSS, ([], 3)),
])
def test_target_pods_and_replicas(ws, workload, rss, expected):
    pods, replicas = targets.target_pods(ws, workload, rss, PODS)
    assert (names(pods), replicas) == expected


def with_status(workload, **status):
    return {**workload, "status": status}


JOB = obj("j", "job", selector={"matchLabels": {"job": "j"}}, parallelism=4, completions=9)
PICK_OLD = {"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}
PODS_X = PODS + [obj("p-new-x", "8", "rs-new", labels={"app": "web", "x": "1"})]


# upstream's getPodsForWorkloadSpread -> getPodJob / GetPodsForRef, then filterWorkload
@pytest.mark.parametrize("ws, workload, expected", [
    # replicasPathList replaces the replicas, not the pods
    (spread(targetFilter={"replicasPathList": ["status.readyReplicas"]}), with_status(deployment(), readyReplicas=2),
     (["p-new", "p-new-x", "p-old"], 2)),
    (spread(targetFilter={"replicasPathList": ["spec.replicas", "status.readyReplicas"]}),
     with_status(deployment(), readyReplicas=2), (["p-new", "p-new-x", "p-old"], 5)),
    # an empty list: the workload's own replicas
    (spread(targetFilter={"replicasPathList": []}), deployment(), (["p-new", "p-new-x", "p-old"], 3)),
    # scaled to 0: still no pods (GetPodsForRef lists none), the paths give the replicas
    (spread(targetFilter={"replicasPathList": ["status.replicas"]}), with_status(deployment(replicas=0), replicas=2),
     ([], 2)),
    # being deleted: no pods, but filterWorkload still reads the paths from the object
    (spread(targetFilter={"replicasPathList": ["spec.replicas"]}), deployment(deleting=True), ([], 3)),
    (spread("ReplicaSet", name="web-new", targetFilter={"replicasPathList": ["status.replicas"]}),
     with_status(RSS[1] | {"spec": {**RSS[1]["spec"], "replicas": 2}}, replicas=7), (["p-new", "p-new-x"], 7)),
    # gone: nothing, paths or not
    (spread(targetFilter={"replicasPathList": ["spec.replicas"]}), None, ([], 0)),
    # a Job: the paths over its parallelism; being deleted, getPodJob still lists its pods
    (spread("Job", "batch/v1", "j", targetFilter={"replicasPathList": ["spec.completions"]}), JOB, (["p-job"], 9)),
    (spread("Job", "batch/v1", "j"), {**JOB, "metadata": {**JOB["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}},
     (["p-job"], 4)),
    # selector and paths together
    (spread(targetFilter={"selector": PICK_OLD, "replicasPathList": ["status.readyReplicas"]}),
     with_status(deployment(), readyReplicas=1), (["p-new", "p-old"], 1)),
    # the controller filters only with a selector: a filter without one keeps every pod (the
    # pod webhook's IsPodSelected selects none with it); an empty selector keeps every pod
    (spread(targetFilter={}), deployment(), (["p-new", "p-new-x", "p-old"], 3)),
    (spread(targetFilter={"selector": None}), deployment(), (["p-new", "p-new-x", "p-old"], 3)),
    (spread(targetFilter={"selector": {}}), deployment(), (["p-new", "p-new-x", "p-old"], 3)),
])
def test_target_filter_as_upstream_filter_workload(ws, workload, expected):
    pods, replicas = targets.target_pods(ws, workload, RSS, PODS_X)
    assert (names(pods), replicas) == expected


@pytest.mark.parametrize("paths_", [["status.readyReplicas"], ["spec.selector"], ["spec.replicas", "metadata.name"],
                                    ["spec.template.spec.containers.-1.x"]])
def test_a_path_upstream_cannot_read_fails_the_pass(paths_):
    """filterWorkload returns GetReplicasFromObject's error: the reconcile fails, nothing is
    written (a missing field, a non-integer, a negative index: upstream panics)."""
    with pytest.raises(BadValue):
        targets.target_pods(spread(targetFilter={"replicasPathList": paths_}), deployment(), RSS, PODS)


def test_the_cache_keeps_the_whole_workload_but_managed_fields():
    full = with_status(deployment(), readyReplicas=2)
    full["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    slim = targets.slim_workload(full)
    assert "managedFields" not in slim["metadata"] and "managedFields" in full["metadata"]
    assert slim["status"] == {"readyReplicas": 2} and slim["spec"] == full["spec"]


@pytest.mark.parametrize("ws, workload, rss, expected", [
    (spread(), deployment(), RSS, "h-new"),  # the ReplicaSet whose template is the Deployment's, hash aside
    (spread(), deployment(template={**TEMPLATE, "spec": {"containers": [{"name": "app", "image": "app:9"}]}}),
     RSS, None),  # its new ReplicaSet not there yet: unknown, upstream retries
    (spread(), None, RSS, ""),  # gone
    (spread("ReplicaSet", name="web-new"), RSS[1], [], "h-new"),
])
def test_latest_version(ws, workload, rss, expected):
    assert targets.latest_version(ws, workload, rss) == expected


@pytest.mark.parametrize("old, new, changed", [
    (None, {"spec": {"replicas": 3}}, True),  # a new target
    ({"spec": {"replicas": 3}}, None, True),  # a deleted one
    ({"spec": {"replicas": 3}}, {"spec": {"replicas": 5}}, True),
    ({"spec": {"parallelism": 2}}, {"spec": {"parallelism": 4}}, True),  # a Job
    ({"spec": {"replicas": 3, "template": {"a": 1}}}, {"spec": {"replicas": 3, "template": {"a": 2}}}, False),
    ({"metadata": {"labels": {"x": "1"}}, "spec": {"replicas": 3}}, {"spec": {"replicas": 3}}, False),
])
def test_a_scale_change_is_told_from_other_changes(old, new, changed):
    assert (targets.scale_of(old) != targets.scale_of(new)) is changed


# ---- the custom-workload whitelist: upstream's getReplicasPathList fallback -----------------
# Without a replicasPathList, upstream's controller (not its pod webhook) takes the replicasPath
# of the whitelist entry (WorkloadSpread_Watch_Custom_Workload_WhiteList in kruise-configuration,
# read by GetWSWatchCustomWorkloadWhiteList) whose group, version and kind are the target's.
def whitelist(*entries, raw=None):
    return {targets.WHITELIST_KEY: raw if raw is not None else json.dumps({"workloads": list(entries)})}


DEP_V1 = {"group": "apps", "version": "v1", "kind": "Deployment"}


@pytest.mark.parametrize("ws, data, expected", [
    (spread(), None, 3),  # no ConfigMap
    (spread(), {}, 3),  # no whitelist in it
    (spread(), whitelist(), 3),
    (spread(), whitelist(DEP_V1 | {"replicasPath": "status.readyReplicas"}), 2),
    (spread(), whitelist(DEP_V1), 0),  # an entry without replicasPath: the path "", 0 replicas
    (spread(), whitelist(DEP_V1 | {"version": "v1beta1", "replicasPath": "status.readyReplicas"}), 3),  # version too
    (spread("Deployment", "apps/v1beta1"), whitelist(DEP_V1 | {"version": "v1beta1", "replicasPath": "status.readyReplicas"}), 2),
    (spread(), whitelist({"group": "apps", "version": "v1", "kind": "ReplicaSet", "replicasPath": "x"}), 3),
    # the first matching entry wins; the spread's own replicasPathList before the whitelist
    (spread(), whitelist(DEP_V1 | {"replicasPath": "status.readyReplicas"}, DEP_V1 | {"replicasPath": "spec.replicas"}), 2),
    (spread(targetFilter={"replicasPathList": ["spec.replicas"]}), whitelist(DEP_V1 | {"replicasPath": "nope"}), 3),
    # Go's json.Unmarshal: case-insensitive keys (the Kelvin sign folds to k), the last duplicate
    # wins, unknown keys and nulls ignored, a null slice is nil
    (spread(), whitelist(raw='{"Workloads":[{"GROUP":"apps","Version":"v1","\u212aind":"Deployment",'
                             '"replicaspath":"status.readyReplicas","other":1}]}'), 2),
    (spread(), whitelist(raw='{"workloads":[{"group":"apps","version":"v1","kind":"Deployment",'
                             '"replicasPath":"spec.replicas","replicasPath":"status.readyReplicas","kind":null}]}'), 2),
    (spread(), whitelist(raw='{"workloads":[' + json.dumps(DEP_V1 | {"replicasPath": "status.readyReplicas"})
                             + '],"workloads":null}'), 3),
    (spread(), whitelist(raw='null'), 3),
    (spread(), whitelist(raw='{"workloads":[null]}'), 3),
])
def test_whitelist_replicas_path(ws, data, expected):
    workload = with_status(deployment(), readyReplicas=2)
    assert targets.target_pods(ws, workload, RSS, PODS, configuration=lambda: data)[1] == expected


@pytest.mark.parametrize("raw", ["", "{", "[]", '{"workloads":{}}', '{"workloads":[[]]}', '{"workloads":[{"kind":5}]}',
                                 '{"workloads":[{"subResources":{}}]}', '{"workloads":[]} x', "NaN",
                                 '{"workloads":[{"replicasPath":1.5}]}'])
def test_a_whitelist_go_cannot_decode_fails_the_pass(raw):
    """GetWSWatchCustomWorkloadWhiteList's Unmarshal error: upstream's reconcile fails for every
    spread without a replicasPathList (and for a target that is gone too)."""
    with pytest.raises(BadValue):
        targets.target_pods(spread(), deployment(), RSS, PODS, configuration=lambda: whitelist(raw=raw))
    with pytest.raises(BadValue):
        targets.target_pods(spread(), None, RSS, PODS, configuration=lambda: whitelist(raw=raw))
    assert targets.target_pods(spread(targetFilter={"replicasPathList": ["spec.replicas"]}), deployment(), RSS, PODS,
                               configuration=lambda: whitelist(raw=raw))[1] == 3


def test_the_configuration_is_read_only_without_a_replicas_path_list():
    def unreadable():
        raise AssertionError("read")
    assert targets.target_pods(spread(targetFilter={"replicasPathList": ["spec.replicas"]}), deployment(), RSS, PODS,
                               configuration=unreadable)[1] == 3
