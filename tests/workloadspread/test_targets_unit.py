"""A WorkloadSpread's target as upstream's controller finder sees it (no cluster): which pods
and how many replicas for a Deployment, a ReplicaSet and a Job, and the latest version."""

from __future__ import annotations

import pytest

from manager.workloadspread import targets

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
