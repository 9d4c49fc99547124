"""The JSON Patch a composed pod mutation answers (manager.admission.json_patch): applied to
the request's pod as the apiserver applies it (RFC 6902 add/remove), it must give the pod
WorkloadSpread and SidecarSet produced, whatever fields they changed. Pure logic, no cluster."""

from __future__ import annotations

import copy

import pytest

from manager.admission import json_patch
from manager.workloadspread import subsets


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def apply(doc: dict, ops: list[dict]) -> dict:
    """RFC 6902 add (object members only, as json_patch writes) and remove."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [_unescape(t) for t in op["path"].split("/")[1:]]
        target = doc
        for token in parents:
            target = target[token]
        if op["op"] == "add":
            target[last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del target[last]
        else:
            raise AssertionError(op)
    return doc


POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"generateName": "web-", "namespace": "default", "labels": {"app": "web", "a/b~c": "1"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "controller": True}]},
       "spec": {"containers": [{"name": "app", "image": "app:1"}], "priority": 5, "priorityClassName": "low"}}
SUBSET = {"name": "a", "maxReplicas": 2, "tolerations": [{"key": "t", "operator": "Exists"}],
          "requiredNodeSelectorTerm": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
          "patch": {"metadata": {"labels": {"a/b~c": None, "subset": "a"}, "annotations": {"x": "y"}},
                    "spec": {"priorityClassName": "high", "containers": [{"name": "app", "env": [{"name": "Z", "value": "1"}]}]}}}


@pytest.mark.parametrize("change", [
    lambda p: subsets.inject({"metadata": {"name": "ws"}, "spec": {"subsets": [SUBSET]}}, p, "a", "u-1"),
    lambda p: subsets.inject({"metadata": {"name": "ws"}, "spec": {"subsets": [{"name": "b"}]}}, p, "b"),
    lambda p: {**p, "status": {"phase": "Pending"}},
    lambda p: {k: v for k, v in p.items() if k != "kind"},
    lambda p: p,
])
def test_the_patch_leads_from_the_request_to_the_result(change):
    result = change(copy.deepcopy(POD))
    ops = json_patch(POD, result)
    assert apply(POD, ops) == result
    if result == POD:
        assert ops == []


def test_the_patch_touches_only_changed_fields():
    result = subsets.inject({"metadata": {"name": "ws"}, "spec": {"subsets": [SUBSET]}}, copy.deepcopy(POD), "a", "u")
    paths = sorted(op["path"] for op in json_patch(POD, result))
    assert paths == ["/metadata/annotations", "/metadata/labels", "/spec/affinity", "/spec/containers",
                     "/spec/priority", "/spec/priorityClassName", "/spec/tolerations"]
    assert {op["path"]: op["op"] for op in json_patch(POD, result)}["/spec/priority"] == "remove"
