"""The pod mutation composed as upstream orders it (manager.workloadspread.admission.PodMutation):
WorkloadSpread first, then SidecarSet on the pod WorkloadSpread returned. Cases that need no API
call (the pod's owner is the target itself; a single unlimited subset takes no status write), with
the watched caches filled in memory: the answer's patch, applied to the request's pod, carries
both injections; a pod WorkloadSpread handled is never answered from the SidecarSet memo, a pod
it left alone is. Pure logic, no cluster."""

from __future__ import annotations

import base64
import json

from manager.admission import errored
from manager.handlers import SidecarSetAdmission, slim_namespace, slim_sidecarset
from manager.informer import Informer
from manager.workloadspread.admission import PodMutation, WorkloadSpreadAdmission, slim_workloadspread
from tests.workloadspread.test_json_patch_unit import apply

RS = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u", "controller": True}
NOT_A_WORKLOAD = {"apiVersion": "v1", "kind": "ReplicationController", "name": "rc", "uid": "r", "controller": True}


def request(name: str, owner: dict, uid: str) -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "web", "labels": {"app": "web", "pod-template-hash": "1"},
                        "ownerReferences": [owner]},
           "spec": {"containers": [{"name": "app", "image": "app:1"}],
                    "volumes": [{"name": f"kube-api-access-{uid}", "projected": {"sources": []}}]}}
    return {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "operation": "CREATE",
            "namespace": "web", "name": name, "object": pod, "options": {"kind": "CreateOptions"}}


def mutation() -> tuple[PodMutation, SidecarSetAdmission]:
    sidecarsets, namespaces = Informer(None, "/sidecarsets"), Informer(None, "/namespaces")
    sidecarsets.items["/logger"] = slim_sidecarset({
        "metadata": {"name": "logger", "generation": 1, "resourceVersion": "1", "uid": "s1"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "containers": [{"name": "logger", "image": "logger:1", "podInjectPolicy": "BeforeAppContainer"}]}})
    namespaces.items["/web"] = slim_namespace({"metadata": {"name": "web"}})
    spreads = Informer(None, "/workloadspreads")
    spreads.items["web/spread"] = slim_workloadspread({
        "metadata": {"name": "spread", "namespace": "web", "uid": "w1", "resourceVersion": "3"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1"},
                 "subsets": [{"name": "zone-a", "requiredNodeSelectorTerm": {"matchExpressions": [
                     {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-a"]}]}}]}})
    spreads.version = 1
    sidecar = SidecarSetAdmission(sidecarsets, namespaces, "kruise-system")
    return PodMutation(WorkloadSpreadAdmission(None, spreads), sidecar), sidecar


def test_workloadspread_then_sidecarset_in_one_patch_from_the_request_pod():
    pods, sidecar = mutation()
    for i in range(4):
        req = request(f"web-1-{i}", RS, f"{i}abcd")
        answer = pods.mutate_pod(req)
        assert answer["allowed"] and answer["auditAnnotations"] == {"sidecarsets": "logger"}
        result = apply(req["object"], answer["patch"])
        assert [c["name"] for c in result["spec"]["containers"]] == ["logger", "app"]
        assert result["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-a"]}]}]}
        assert json.loads(result["metadata"]["annotations"]["apps.kruise.io/matched-workloadspread"]) == {
            "name": "spread", "subset": "zone-a"}
        assert result["metadata"]["name"] == f"web-1-{i}"
    memo = sidecar._memo
    assert (memo.firsts, memo.misses, memo.hits) == (0, 0, 0)  # never through the memo


def test_a_pod_workloadspread_leaves_alone_takes_the_sidecarset_path():
    pods, sidecar = mutation()
    answers = [pods.mutate_pod(request(f"rc-{i}", NOT_A_WORKLOAD, f"{i}wxyz")) for i in range(3)]
    memo = sidecar._memo
    assert memo.firsts + memo.misses + memo.hits == 3
    for i, answer in enumerate(answers):
        req = request(f"rc-{i}", NOT_A_WORKLOAD, f"{i}wxyz")
        ops = answer["patch"]
        if answer.get("patchType"):  # a reused answer comes in wire form
            ops = json.loads(base64.b64decode(ops))
        assert ops == sidecar._mutate_pod(req, sidecar._current_state().value)["patch"]
        assert "matched-workloadspread" not in json.dumps(ops) and "affinity" not in json.dumps(ops)


def test_a_refusal_of_workloadspread_is_upstreams_500():
    pods, _ = mutation()
    spreads = pods.workloadspread.workloadspreads
    ws = spreads.items["web/spread"]
    ws["spec"]["subsets"][0]["patch"] = {"spec": {"containers": [{"image": "no-name"}]}}
    spreads.version += 1
    answer = pods.mutate_pod(request("web-1-0", RS, "0abcd"))
    assert answer == errored(500, answer["status"]["message"])
    assert "merge key" in answer["status"]["message"]
