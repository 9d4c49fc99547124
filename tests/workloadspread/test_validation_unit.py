"""The WorkloadSpread validating webhook's rules as pure functions (no cluster), table-driven
from upstream v1.8.3's workloadspread_validation_test.go (its CloneSet demo retargeted at a
Deployment: this manager refuses CloneSet targets) plus the cases upstream's table leaves out.
Each refusal is asserted by its field path and upstream's message text."""

from __future__ import annotations

import copy

import pytest

from manager.admission import result_of
from manager.workloadspread.validation import (UNSUPPORTED_TARGET, aggregate, validate, validate_request)

ZONE = "topology.kubernetes.io/zone"


def subset(name, zone=None, max_replicas=None, **extra) -> dict:
    found = {"name": name, **extra}
    if zone is not None:
        found["requiredNodeSelectorTerm"] = {"matchExpressions": [{"key": ZONE, "operator": "In", "values": [zone]}]}
    if max_replicas is not None:
        found["maxReplicas"] = max_replicas
    return found


TOLERATE_ECS = [{"key": "ecs", "operator": "Exists"}]
DEMO = {
    "apiVersion": "apps.kruise.io/v1alpha1", "kind": "WorkloadSpread",
    "metadata": {"name": "workloadspread", "namespace": "default"},
    "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"},
             "subsets": [subset("subset-a", "zone-a", 50, tolerations=TOLERATE_ECS,
                                patch={"metadata": {"annotations": {"subset": "subset-a"}}}),
                         subset("subset-b", "zone-b", 50, tolerations=TOLERATE_ECS,
                                patch={"metadata": {"annotations": {"subset": "subset-b"}}}),
                         subset("subset-c", "zone-c")]},
}


def demo(**spec) -> dict:
    ws = copy.deepcopy(DEMO)
    ws["spec"].update(spec)
    return ws


def with_subset(index, **fields) -> dict:
    ws = demo()
    ws["spec"]["subsets"][index].update(fields)
    return ws


def paths(errors) -> list[str]:
    return [e.split(": ", 1)[0] for e in errors]


ADAPTIVE = {"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 30, "disableSimulationSchedule": True}}
PATCH_RESOURCES = {"spec": {"containers": [{"name": "main", "resources": {"limits": {"cpu": "2", "memory": "8000Mi"}}}]}}


@pytest.mark.parametrize("ws", [
    demo(),
    demo(scheduleStrategy={"type": "Fixed"}),
    demo(subsets=[subset("subset-a", max_replicas=50, patch=PATCH_RESOURCES,
                         preferredNodeSelectorTerms=[{"weight": 20, "preference": {"matchExpressions": [
                             {"key": ZONE, "operator": "NotIn", "values": ["zone-a"]}]}}]),
                  subset("subset-b", "zone-b", tolerations=TOLERATE_ECS, patch=PATCH_RESOURCES)],
         scheduleStrategy=ADAPTIVE),
    demo(targetRef={"apiVersion": "batch/v1", "kind": "Job", "name": "test"},
         subsets=[subset("subset-a", "zone-a", "50%"), subset("subset-b", "zone-b", "50%")]),
    demo(targetRef={"apiVersion": "batch/v1", "kind": "Job", "name": "test"},
         subsets=[subset("subset-a", "zone-a", "50%"), subset("subset-b", "zone-b", "50%"), subset("subset-c")],
         scheduleStrategy=ADAPTIVE),
    demo(targetRef={"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs"}),
    demo(subsets=[subset("a", "zone-a", "30%"), subset("b", "zone-b", "70%")]),
    demo(subsets=[subset("a", "zone-a", "30%"), subset("b", "zone-b")]),  # the last without: less than 100% is fine
    demo(subsets=[subset("only")]),
    demo(subsets=[subset("a", max_replicas="3"), subset("b")]),              # a string without '%' is a percentage
    demo(subsets=[subset("a", max_replicas="3"), subset("b", max_replicas="97%%")]),  # every '%' is dropped
    demo(subsets=[subset("a", max_replicas=0), subset("b")]),
    demo(subsets=[subset("a", "zone-a", 1, tolerations=[{"operator": "Exists"},
                                                           {"key": "k", "value": "v", "effect": "NoExecute",
                                                            "tolerationSeconds": 5}])]),
    demo(targetFilter={"selector": {"matchLabels": {"app": "web"}}}),
    demo(scheduleStrategy={"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 147}},
         subsets=[subset("a", "zone-a", 1), subset("b", "zone-b", 1), subset("c")]),  # 295 // 2
], ids=lambda ws: ",".join(s["name"] for s in ws["spec"]["subsets"]))
def test_valid_workloadspreads_pass(ws):
    assert validate(ws) == []


@pytest.mark.parametrize("ws, path, message", [
    (demo(targetRef=None), "spec.targetRef", "spec.targetRef: Required value: no targetRef defined in WorkloadSpread"),
    (demo(targetRef={"apiVersion": "", "kind": "Deployment", "name": "demo"}), "spec.targetRef",
     'spec.targetRef: Invalid value: v1alpha1.TargetReference{APIVersion:"", Kind:"Deployment", Name:"demo"}: '
     "empty TargetReference is not valid for WorkloadSpread."),
    (demo(targetRef={"apiVersion": "apps/v1", "kind": "", "name": "demo"}), "spec.targetRef", None),
    (demo(targetRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": ""}), "spec.targetRef", None),
    (demo(targetRef={"apiVersion": "extensions/v1beta1", "kind": "Deployment", "name": "demo"}), "spec.targetRef",
     'spec.targetRef: Invalid value: v1alpha1.TargetReference{APIVersion:"extensions/v1beta1", Kind:"Deployment", '
     'Name:"demo"}: TargetReference is not valid for Deployment.'),
    (demo(targetRef={"apiVersion": "apps/v1", "kind": "Job", "name": "demo"}), "spec.targetRef",
     'spec.targetRef: Invalid value: v1alpha1.TargetReference{APIVersion:"apps/v1", Kind:"Job", Name:"demo"}: '
     "TargetReference is not valid for Job."),
    (demo(targetRef={"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": "demo"}), "spec.targetRef",
     'spec.targetRef: Invalid value: v1alpha1.TargetReference{APIVersion:"apps.kruise.io/v1alpha1", Kind:"CloneSet", '
     f'Name:"demo"}}: {UNSUPPORTED_TARGET}'),
    (demo(targetRef={"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "demo"}), "spec.targetRef", None),
    (demo(subsets=None), "spec.subsets", "spec.subsets: Required value: subsets number must >= 1 in WorkloadSpread"),
    (demo(subsets=[]), "spec.subsets", None),
    (with_subset(0, name=""), "spec.subsets[0].name", 'spec.subsets[0].name: Invalid value: ""'),
    (with_subset(1, name=""), "spec.subsets[1].name", None),
    (with_subset(0, name="subset-b"), "spec.subsets[1].name",
     'spec.subsets[1].name: Invalid value: "subset-b": duplicated subset name subset-b'),
    (with_subset(0, requiredNodeSelectorTerm={"matchExpressions": [{"key": "key", "operator": "Exists",
                                                                     "values": ["unexpected"]}]}),
     "spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].values",
     "spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].values: Forbidden: may not be specified when "
     "`operator` is 'Exists' or 'DoesNotExist'"),
    (with_subset(0, requiredNodeSelectorTerm={"matchExpressions": [{"key": ZONE, "operator": "In"}]}),
     "spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].values",
     "spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].values: Required value: must be specified when "
     "`operator` is 'In' or 'NotIn'"),
    (with_subset(0, requiredNodeSelectorTerm={"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["1", "2"]}]}),
     "spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].values", None),
    (with_subset(0, requiredNodeSelectorTerm={"matchExpressions": [{"key": "n", "operator": "Near", "values": ["1"]}]}),
     "spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].operator",
     'spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].operator: Invalid value: "Near": not a valid '
     "selector operator"),
    (with_subset(0, requiredNodeSelectorTerm={"matchExpressions": [{"key": "bad key", "operator": "Exists"}]}),
     "spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].key",
     'spec.subsets[0].requiredNodeSelectorTerm.matchExpressions[0].key: Invalid value: "bad key": name part must '
     "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
     "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
     "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
    (with_subset(0, requiredNodeSelectorTerm={"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["x"]}]}),
     "spec.subsets[0].requiredNodeSelectorTerm.matchFields[0].key",
     'spec.subsets[0].requiredNodeSelectorTerm.matchFields[0].key: Invalid value: "metadata.uid": not a valid field '
     "selector key"),
    (with_subset(0, requiredNodeSelectorTerm={"matchFields": [{"key": "metadata.name", "operator": "In",
                                                                "values": ["a", "b"]}]}),
     "spec.subsets[0].requiredNodeSelectorTerm.matchFields[0].values", None),
    (with_subset(0, requiredNodeSelectorTerm={"matchFields": [{"key": "metadata.name", "operator": "In",
                                                                "values": ["Node_1"]}]}),
     "spec.subsets[0].requiredNodeSelectorTerm.matchFields[0].values[0]", None),
    (with_subset(0, preferredNodeSelectorTerms=[{"weight": 101, "preference": {"matchExpressions": [
        {"key": "key", "operator": "Exists", "values": ["unexpected"]}]}}]),
     "spec.subsets[0].preferredSchedulingTerms[0].weight",
     "spec.subsets[0].preferredSchedulingTerms[0].weight: Invalid value: 101: must be in the range 1-100"),
    (with_subset(0, preferredNodeSelectorTerms=[{"weight": 50, "preference": {"matchExpressions": [
        {"key": "key", "operator": "Exists", "values": ["unexpected"]}]}}]),
     "spec.subsets[0].preferredSchedulingTerms[0].preference.matchExpressions[0].values", None),
    (with_subset(0, tolerations=[{"operator": "Equal", "value": "x"}]), "spec.subsets[0].tolerations[0].operator",
     'spec.subsets[0].tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, '
     'which means "match all values and all keys"'),
    (with_subset(0, tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
     "spec.subsets[0].tolerations[0].operator", None),
    (with_subset(0, tolerations=[{"key": "k", "operator": "Like"}]), "spec.subsets[0].tolerations[0].operator",
     'spec.subsets[0].tolerations[0].operator: Unsupported value: "Like": supported values: "Equal", "Exists"'),
    (with_subset(0, tolerations=[{"key": "k", "operator": "Exists", "effect": "Evict"}]),
     "spec.subsets[0].tolerations[0].effect",
     'spec.subsets[0].tolerations[0].effect: Unsupported value: "Evict": supported values: "NoSchedule", '
     '"PreferNoSchedule", "NoExecute"'),
    (with_subset(0, tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 3}]),
     "spec.subsets[0].tolerations[0].effect",
     "spec.subsets[0].tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
     "`tolerationSeconds` is set"),
    (with_subset(0, tolerations=[{"key": "k", "value": "not valid"}]), "spec.subsets[0].tolerations[0].operator", None),
    (with_subset(0, tolerations=[{"key": "a/b/c", "operator": "Exists"}]), "spec.subsets[0].tolerations[0].key", None),
    (with_subset(0, maxReplicas=-100), "spec.subsets[0].maxReplicas",
     "spec.subsets[0].maxReplicas: Invalid value: intstr.IntOrString{Type:0, IntVal:-100, StrVal:\"\"}: "
     "maxReplicas is not valid for subset"),
    (demo(subsets=[subset("a", max_replicas="0.2%"), subset("b")]), "spec.subsets[0].maxReplicas",
     'spec.subsets[0].maxReplicas: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"0.2%"}: '
     "maxReplicas is not valid for subset"),
    (demo(subsets=[subset("a", max_replicas="50.2%"), subset("b")]), "spec.subsets[0].maxReplicas", None),
    (demo(subsets=[subset("a", max_replicas="-1%"), subset("b")]), "spec.subsets[0].maxReplicas", None),
    (demo(subsets=[subset("a", max_replicas="7"), subset("b", max_replicas="7")]), "spec.subsets[0].maxReplicas",
     'spec.subsets[0].maxReplicas: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"7"}: maxReplicas sum of '
     "all subsets must equal 100% when type is specified as percent"),  # "7" is 7%, as Go reads it
    (demo(subsets=[subset("a", max_replicas="3"), subset("b", max_replicas=3)]), "spec.subsets[1].maxReplicas", None),
    (demo(subsets=[subset("a", max_replicas="101%"), subset("b")]), "spec.subsets[0].maxReplicas",
     'spec.subsets[0].maxReplicas: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"101%"}: '
     "the sum of all subset's maxReplicas exceeds 100% is no permitted"),
    (demo(subsets=[subset("a", max_replicas="40%"), subset("b", max_replicas="70%"), subset("c")]),
     "spec.subsets[1].maxReplicas", None),
    (demo(subsets=[subset("a", max_replicas="40%"), subset("b", max_replicas="20%"), subset("c", max_replicas="20%")]),
     "spec.subsets[0].maxReplicas",
     'spec.subsets[0].maxReplicas: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"40%"}: maxReplicas '
     "sum of all subsets must equal 100% when type is specified as percent"),
    (demo(subsets=[subset("a", max_replicas="40%"), subset("b", max_replicas=3)]), "spec.subsets[1].maxReplicas",
     "spec.subsets[1].maxReplicas: Invalid value: intstr.IntOrString{Type:0, IntVal:3, StrVal:\"\"}: the maxReplicas "
     "type of all subsets must be the same"),
    (demo(scheduleStrategy={"type": "random"}), "spec.scheduleStrategy.type",
     'spec.scheduleStrategy.type: Invalid value: "random": ScheduleStrategy\'s type is not valid'),
    (demo(scheduleStrategy={"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": -1}}),
     "spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds",
     "spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds: Invalid value: -1: rescheduleCriticalSeconds < 0 or "
     "rescheduleCriticalSeconds > 147 is not permitted"),
    (demo(scheduleStrategy={"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 148}}),
     "spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds", None),
    (demo(scheduleStrategy={"type": "Fixed", "adaptive": {}}), "spec.scheduleStrategy.type",
     'spec.scheduleStrategy.type: Invalid value: "null": the scheduleStrategy\'s type must be adaptive when using '
     "adaptive scheduleStrategy"),
    (demo(targetFilter={"selector": {"matchLabels": {"app": "not valid"}}}), "spec.targetFilter", None),
    (demo(scheduleStrategy={"type": "Fixed", "adaptive": {"rescheduleCriticalSeconds": 20}}),
     "spec.scheduleStrategy.type",
     "spec.scheduleStrategy.type: Invalid value: 20: the scheduleStrategy's type must be adaptive when using "
     "adaptive scheduleStrategy"),
    (demo(scheduleStrategy={"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 20}},
          subsets=[subset("a", max_replicas=1), subset("b", max_replicas=2)]),
     "spec.scheduleStrategy.adaptive",
     "spec.scheduleStrategy.adaptive: Invalid value: 20: the last subset's maxReplicas must be not specified when "
     "using adaptive scheduleStrategy"),
    (demo(targetFilter={"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}),
     "spec.targetFilter", None),
])
def test_invalid_workloadspreads_are_refused_where_upstream_refuses(ws, path, message):
    errors = validate(ws)
    assert path in paths(errors), errors
    if message is not None:
        assert message in errors


def test_a_maxreplicas_type_mismatch_stops_the_subset_checks_as_upstream():
    """Upstream returns at the first maxReplicas error: a later duplicate name goes unreported."""
    ws = demo(subsets=[subset("a", max_replicas="40%"), subset("b", max_replicas=3), subset("a")])
    assert paths(validate(ws)) == ["spec.subsets[1].maxReplicas"]


def test_rescheduleCriticalSeconds_bound_is_per_subset_count():
    one = demo(subsets=[subset("a")], scheduleStrategy={"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 10**6}})
    two = demo(subsets=[subset("a", max_replicas=1), subset("b")],
               scheduleStrategy={"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 296}})
    assert validate(one) == []
    assert validate(two) == ["spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds: Invalid value: 296: "
                             "rescheduleCriticalSeconds < 0 or rescheduleCriticalSeconds > 295 is not permitted"]


def other(name, target_name, api_version="apps/v1", kind="Deployment", namespace="default") -> dict:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"targetRef": {"apiVersion": api_version, "kind": kind, "name": target_name}}}


@pytest.mark.parametrize("others, conflict", [
    ([other("ws-1", "test1"), other("ws-2", "test2")], None),
    ([other("ws-1", "demo", api_version="extensions/v1beta1")], None),   # group differs
    ([other("ws-1", "demo", kind="ReplicaSet")], None),                   # kind differs
    ([other("ws-1", "demo", namespace="elsewhere")], None),               # another namespace
    ([other("workloadspread", "demo")], None),                            # itself (an update)
    ([other("ws-1", "test1"), other("ws-2", "demo")], "ws-2"),
    ([other("ws-1", "demo", api_version="apps/v1beta2"), other("ws-2", "demo")], "ws-1"),  # the version is not compared
])
def test_one_workloadspread_per_workload(others, conflict):
    errors = validate(demo(), others=others)
    if conflict is None:
        assert errors == []
    else:
        assert errors == ['spec.targetRef: Invalid value: v1alpha1.TargetReference{APIVersion:"apps/v1", '
                          f'Kind:"Deployment", Name:"demo"}}: ws.spec.targetRef is in conflict with other '
                          f'WorkloadSpread {conflict}']


@pytest.mark.parametrize("change", [{"apiVersion": "batch/v1", "kind": "Job"}, {"kind": "ReplicaSet"}, {"name": "deploy-1"}])
def test_the_target_cannot_change(change):
    new = demo(targetRef={**DEMO["spec"]["targetRef"], **change})
    errors = validate(new, old=demo())
    assert errors[-1].startswith("spec.targetRef: Invalid value: ") and errors[-1].endswith(
        "change TargetReference is not permitted for WorkloadSpread")


def test_a_version_change_of_the_target_is_allowed():
    assert validate(demo(targetRef={**DEMO["spec"]["targetRef"], "apiVersion": "apps/v1beta2"}), old=demo()) == []


# as the API stores it: defaulted (pod validation requires restartPolicy and dnsPolicy)
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo", "namespace": "default"},
              "spec": {"template": {"metadata": {"labels": {"app": "demo"}},
                                    "spec": {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                                             "containers": [{"name": "main", "image": "img:1",
                                                             "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
                                             "volumes": [{"name": "data", "emptyDir": {}}]}}}}


@pytest.mark.parametrize("patch, refusal", [
    ({"metadata": {"annotations": {"subset": "a"}}}, None),
    (PATCH_RESOURCES, None),
    ({"spec": {"containers": [{"name": "main", "env": [{"name": "ZONE", "value": "a"}]}]}}, None),
    ({"spec": {"containers": [{"name": "side", "image": "side:1"}]}}, None),       # a container added
    ({"spec": {"volumes": [{"name": "data", "$patch": "delete"}]}}, "Not found"),  # its mount dangles
    ({"spec": {"containers": [{"name": "side"}]}}, "image"),                       # added without an image
    ({"spec": {"containers": [{"image": "x"}]}}, "failed to merge patch"),        # no merge key
    ({"spec": {"containers": [{"name": "main", "resources": {"limits": {"cpu": "lots"}}}]}}, "failed to unmarshal"),
    ({"spec": {"containers": [{"name": "main", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}},
     "must be less than or equal to"),
    ({"metadata": {"labels": {"zone": 1}}}, "failed to unmarshal"),
    ("not an object", "failed to merge patch"),
    ({"spec": {"containers": [{"name": "main", "env": [{"value": "x"}]}]}}, "env[0].name: Required value"),  # no list to merge into
    ({"spec": {"containers": [{"name": "main", "image": " img:2 "}]}}, None),  # a pod-only rule, not a template's
    ({"spec": {"containers": [{"name": "main", "resources": {"limits": {"cpu": "-1"}}}]}},
     'limits[cpu]: Invalid value: "-1": must be greater than or equal to 0'),
    ({"spec": {"dnsPolicy": "Sometimes"}}, 'dnsPolicy: Unsupported value: "Sometimes"'),
    ({"spec": {"restartPolicy": "Never"}}, None),
    ({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}}},
     "must have at least one node selector term"),
    ({"spec": {"tolerations": [{"key": "k", "operator": "Like"}]}}, 'Unsupported value: "Like"'),
    ({"spec": {"containers": [{"name": "Side_1", "image": "x"}]}}, "a lowercase RFC 1123 label"),
    ({"spec": {"containers": [{"name": "main", "volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "/abs"}]}]}},
     "must be a relative path"),
])
def test_a_patch_is_checked_against_an_existing_workloads_template(patch, refusal):
    ws = with_subset(0, patch=patch)
    errors = validate(ws, workload=DEPLOYMENT)
    if refusal is None:
        assert errors == []
    else:
        assert errors and all(e.startswith("spec.subsets[0].patch") for e in errors), errors
        assert any(refusal in e for e in errors), errors
    assert validate(ws) == []  # as upstream: with no workload to patch, nothing to check


def request(operation="CREATE", obj=None, old=None, namespace="default") -> dict:
    return {"uid": "u", "operation": operation, "namespace": namespace, "kind": {"kind": "WorkloadSpread"},
            "object": obj if obj is not None else demo(), "oldObject": old}


def test_request_answers_as_upstream():
    assert validate_request(request()) == {"allowed": True}
    assert validate_request(request("DELETE", obj={})) == {"allowed": True}
    refused = validate_request(request(obj=demo(subsets=[])))
    assert refused["allowed"] is False and refused["status"]["code"] == 400 and result_of(refused) == "denied"
    assert refused["status"]["message"] == "spec.subsets: Required value: subsets number must >= 1 in WorkloadSpread"
    two = validate_request(request(obj=demo(subsets=[subset("")], scheduleStrategy={"type": "x"})))
    assert two["status"]["message"] == ('[spec.subsets[0].name: Invalid value: "", spec.scheduleStrategy.type: '
                                        'Invalid value: "x": ScheduleStrategy\'s type is not valid]')
    update = validate_request(request("UPDATE", obj=demo(targetRef={"apiVersion": "apps/v1", "kind": "Deployment",
                                                                    "name": "other"}), old=demo()))
    assert "change TargetReference is not permitted" in update["status"]["message"]
    assert validate_request(request("UPDATE", old=None))["status"]["code"] == 400
    assert validate_request(request(obj="text"))["status"]["code"] == 400


def test_request_reads_the_namespaces_workloadspreads_and_the_target():
    asked = []

    def others(namespace):
        asked.append(namespace)
        return [other("ws-2", "demo", namespace=namespace)]

    in_shop = demo()
    in_shop["metadata"]["namespace"] = "shop"
    answer = validate_request(request(obj=in_shop, namespace="shop"), others)
    assert asked == ["shop"] and "in conflict with other WorkloadSpread ws-2" in answer["status"]["message"]

    def failing(namespace):
        raise RuntimeError("forbidden")

    assert validate_request(request(), failing)["status"]["message"] == (
        ": Internal error: query other WorkloadSpread failed, err: forbidden")
    bad_patch = with_subset(0, patch={"spec": {"containers": [{"name": "side"}]}})
    assert validate_request(request(obj=bad_patch), workload=lambda ns, ref: DEPLOYMENT)["allowed"] is False
    assert validate_request(request(obj=bad_patch), workload=lambda ns, ref: None)["allowed"] is True


def test_aggregate_drops_duplicates():
    assert aggregate(["a", "a"]) == "a"
    assert aggregate(["a", "b", "a"]) == "[a, b]"


@pytest.mark.parametrize("change, where", [
    ({"subsets": [{"name": 3}]}, "spec.subsets[0].name"),
    ({"subsets": {"name": "a"}}, "spec.subsets"),
    ({"subsets": [{"name": "a", "maxReplicas": 1.5}]}, "spec.subsets[0].maxReplicas"),
    ({"subsets": [{"name": "a", "maxReplicas": 2**31}]}, "spec.subsets[0].maxReplicas"),  # an IntOrString is int32
    ({"scheduleStrategy": {"adaptive": {"rescheduleCriticalSeconds": "30"}}},
     "spec.scheduleStrategy.adaptive.rescheduleCriticalSeconds"),
    ({"targetRef": "web"}, "spec.targetRef"),
])
def test_what_upstream_cannot_decode_is_a_400_of_one_line(change, where):
    """Upstream decodes the object into its Go type first: a field of the wrong JSON type is
    its decoder's 400, whatever else is wrong."""
    answer = validate_request(request(obj=demo(**change)))
    assert answer["allowed"] is False and answer["status"]["code"] == 400
    assert where in answer["status"]["message"] and "\n" not in answer["status"]["message"]
    assert validate(demo(**change)) == [answer["status"]["message"]]


def test_a_patch_of_the_wrong_shape_is_refused_not_raised():
    """A patch keeps any JSON (the CRD preserves unknown fields): shapes Go cannot unmarshal
    into a pod are refused as upstream refuses them."""
    for patch in ({"spec": {"containers": "main"}}, {"spec": {"containers": [{"name": "main", "env": "A=1"}]}},
                  {"spec": {"volumes": 3}}, {"spec": 1}, {"metadata": {"labels": ["a"]}}):
        errors = validate(with_subset(0, patch=patch), workload=DEPLOYMENT)
        assert errors and all(e.startswith("spec.subsets[0].patch") for e in errors), (patch, errors)


# ---- targetFilter.replicasPathList: this manager's refusal of a negative list index ----------
# Upstream (NestedField / nestedSlice in pkg/util/workloadspread/utils.go) parses a path part
# with strconv.Atoi and indexes the list with it unchecked: a negative number panics in its
# pod webhook and controller, so there is no result to match and such a path is refused here.
@pytest.mark.parametrize("paths_, refused", [
    (["spec.replicas"], []),
    (["status.conditions.0.x", ""], []),  # an empty path is upstream's 0
    (["spec.template.spec.containers.+0.ports.0.containerPort"], []),  # Atoi takes "+0"
    (["spec.x.-0"], []),  # -0 is index 0
    (["spec.x.-99999999999999999999"], []),  # below int64: Atoi's error, no panic (upstream errs too)
    (["spec.replicas", "spec.template.spec.containers.-1.ports.0.containerPort"], [1]),
    (["a.-2", "b.-1"], [0, 1]),
])
def test_a_negative_index_in_replicas_path_list_is_refused(paths_, refused):
    errors = validate(demo(targetFilter={"replicasPathList": paths_}))
    assert paths(errors) == [f"spec.targetFilter.replicasPathList[{i}]" for i in refused]
    for error in errors:
        assert "negative list index is not supported" in error


def test_a_negative_index_refusal_reads_clearly():
    errors = validate(demo(targetFilter={"replicasPathList": ["status.x.-1.r"]}))
    assert errors == ['spec.targetFilter.replicasPathList[0]: Invalid value: "status.x.-1.r": "-1": a negative list '
                      "index is not supported (upstream's manager crashes reading it, so it has no result to match)"]
