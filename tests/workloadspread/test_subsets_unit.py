"""WorkloadSpread's pod rules (manager.workloadspread.subsets), table-driven from upstream
v1.8.3's pkg/util/workloadspread tests and its code paths: subset choice, maxReplicas as an
int or a percent (rounded up), the creatingPods/deletingPods bookkeeping per pod version,
the injection and the annotation upstream writes. Pure logic, no cluster."""

from __future__ import annotations

import copy
import json

import pytest

from manager.workloadspread import subsets
from manager.workloadspread.strategicpatch import PatchError, apply_to_pod

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
STAMP = "2027-01-15T08:00:00Z"
RS_OWNER = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-6d4b", "uid": "u1", "controller": True}


def ws(*subset_list, status=None, name="ws", target=None) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": "w1", "resourceVersion": "7"},
            "spec": {"targetRef": target or {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                       "name": "web"},
                     "subsets": list(subset_list)},
            "status": status or {}}


def pod(name="", labels=None, owner=RS_OWNER, **spec) -> dict:
    meta = {"namespace": "default", "generateName": "web-6d4b-", "labels": {"pod-template-hash": "6d4b", **(labels or {})}}
    if name:
        meta["name"] = name
    if owner:
        meta["ownerReferences"] = [owner]
    return {"metadata": meta, "spec": {"containers": [{"name": "app", "image": "nginx"}], **spec}}


def status(name, missing, creating=None, deleting=None, schedulable=True, replicas=0) -> dict:
    out = {"name": name, "replicas": replicas, "missingReplicas": missing}
    if creating is not None:
        out["creatingPods"] = creating
    if deleting is not None:
        out["deletingPods"] = deleting
    if not schedulable:
        out["conditions"] = [{"type": "Schedulable", "status": "False"}]
    return out


# ---- subset choice -------------------------------------------------------------------------
@pytest.mark.parametrize("statuses, expected", [
    ([status("a", 2), status("b", -1)], "a"),
    ([status("a", 0), status("b", -1)], "b"),
    ([status("a", 0), status("b", 0)], None),
    ([status("a", 3, schedulable=False), status("b", 1)], "b"),
    ([status("a", -1), status("b", 5)], "a"),
    ([status("a", -1, schedulable=False), status("b", 0)], None),
])
def test_suitable_subset_is_the_first_schedulable_with_room(statuses, expected):
    found = subsets.suitable_subset(statuses)
    assert (found or {}).get("name") == expected


# ---- maxReplicas: int or percent, upstream's rounding -----------------------------------
@pytest.mark.parametrize("value, total, round_up, expected", [
    (3, 10, True, 3), ("20%", 10, True, 2), ("30%", 10, True, 3), ("50%", 10, True, 5),
    ("20%", 7, True, 2), ("20%", 7, False, 1), ("33%", 1, True, 1), ("0%", 9, True, 0), ("100%", 0, True, 0),
    ("150%", 4, True, 6),
])
def test_scaled_value(value, total, round_up, expected):
    assert subsets.scaled_value(value, total, round_up) == expected


@pytest.mark.parametrize("value", ["20", "x%", "2.5%", None, True])
def test_scaled_value_refuses_what_intstr_refuses(value):
    with pytest.raises(subsets.BadValue):
        subsets.scaled_value(value, 10, True)


@pytest.mark.parametrize("max_replicas, replicas, expected", [
    # upstream TestInitializedSubsetStatuses: 20%/30%/50% of 10 -> 2/3/5
    (["20%", "30%", "50%"], 10, [2, 3, 5]),
    ([2, 3, None], 10, [2, 3, -1]),
    (["20%", "30%", None], 0, [0, 0, -1]),  # workload not found: 0 replicas
    (["34%", "33%", "33%"], 5, [2, 2, 2]),  # rounded up, each on its own
])
def test_initial_statuses(max_replicas, replicas, expected):
    spread = ws(*({"name": f"s{i}", **({"maxReplicas": m} if m is not None else {})} for i, m in enumerate(max_replicas)))
    got = subsets.initial_statuses(spread, replicas)
    assert [s["missingReplicas"] for s in got] == expected
    assert [s["name"] for s in got] == [f"s{i}" for i in range(len(expected))]
    assert all(s["replicas"] == 0 for s in got)


# ---- versions (upstream TestGetPodVersion) ------------------------------------------------
@pytest.mark.parametrize("labels, owner, expected", [
    ({"pod-template-hash": "abc"}, RS_OWNER, "abc"),
    ({"controller-revision-hash": "web-5f8c"}, RS_OWNER, "5f8c"),
    ({"controller-revision-hash": "5f8c"}, RS_OWNER, "5f8c"),
    ({"pod-template-hash": "abc", "controller-revision-hash": "web-5f8c"}, RS_OWNER, "abc"),
    ({"pod-template-hash": "abc"}, {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "controller": True},
     "versionIgnored"),
    ({}, RS_OWNER, "versionIgnored"),
    ({"pod-template-hash": "abc"}, None, "versionIgnored"),
])
def test_pod_version(labels, owner, expected):
    p = pod(owner=owner)
    p["metadata"]["labels"] = labels
    assert subsets.pod_version(p) == expected


# ---- references and selection --------------------------------------------------------------
@pytest.mark.parametrize("ref, expected", [
    (RS_OWNER, True),
    ({"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": "c"}, True),
    ({"apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet", "name": "s"}, True),
    ({"apiVersion": "batch/v1", "kind": "Job", "name": "j"}, True),
    ({"apiVersion": "batch/v1", "kind": "CronJob", "name": "j"}, False),
    ({"apiVersion": "v1", "kind": "ReplicationController", "name": "r"}, False),
    ({"apiVersion": "extensions/v1beta1", "kind": "ReplicaSet", "name": "r"}, False),
    ({"apiVersion": "a/b/c", "kind": "ReplicaSet", "name": "r"}, False),
    (None, False),
])
def test_is_workload(ref, expected):
    assert subsets.is_workload(ref) is expected


def test_same_reference_compares_group_kind_name_not_version():
    target = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-6d4b"}
    assert subsets.same_reference(target, {**RS_OWNER, "apiVersion": "apps/v1beta2"})
    assert not subsets.same_reference(target, {**RS_OWNER, "name": "other"})
    assert not subsets.same_reference({**target, "kind": "Deployment"}, RS_OWNER)
    with pytest.raises(subsets.BadValue):
        subsets.same_reference({**target, "apiVersion": "a/b/c"}, RS_OWNER)


@pytest.mark.parametrize("target_filter, labels, expected", [
    (None, {"a": "b"}, True),
    ({}, {"a": "b"}, False),  # a filter without selector: labels.Nothing()
    ({"selector": {}}, {"a": "b"}, True),
    ({"selector": {"matchLabels": {"a": "b"}}}, {"a": "b"}, True),
    ({"selector": {"matchLabels": {"a": "c"}}}, {"a": "b"}, False),
    ({"selector": {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]}]}}, {"a": "b"}, False),
])
def test_pod_selected(target_filter, labels, expected):
    assert subsets.pod_selected(target_filter, labels) is expected


@pytest.mark.parametrize("workload, target_filter, expected", [
    ({"kind": "Deployment", "spec": {"replicas": 4}}, None, 4),
    ({"kind": "Job", "spec": {"parallelism": 3, "completions": 9}}, None, 3),
    (None, None, 0),
    ({"kind": "Deployment", "spec": {"replicas": 4}, "status": {"x": [{"r": 2}, {"r": 5}]}},
     {"replicasPathList": ["status.x.1.r", "spec.replicas"]}, 9),
])
def test_workload_replicas(workload, target_filter, expected):
    assert subsets.workload_replicas(workload, target_filter) == expected


# GetReplicasFromWorkloadWithTargetFilter / GetReplicasFromObject over NestedField: a list
# index is parsed as strconv.Atoi parses it; each value and the sum are int32.
@pytest.mark.parametrize("paths_, expected", [
    (["status.x.+1.r"], 5),  # Atoi takes a sign
    (["status.x.01.r"], 5),  # and leading zeros
    (["status.x.-0.r"], 2),
    (["", "spec.replicas"], 4),  # an empty path adds 0
    (["spec.big", "spec.replicas"], 2**31 - 1 + 4 - 2**32),  # the int32 sum wraps
    (["metadata.generation"], 5),  # an int64 truncated to int32
])
def test_replicas_paths_read_as_upstream(paths_, expected):
    workload = {"metadata": {"generation": 2**32 + 5}, "spec": {"replicas": 4, "big": 2**31 - 1},
                "status": {"x": [{"r": 2}, {"r": 5}]}}
    assert subsets.replicas_from_paths(workload, paths_) == expected


@pytest.mark.parametrize("path", ["spec.missing", "spec.replicas.deeper", "status.x.5.r", "status.x.a.r", "status.x",
                                  "spec.replicas.", "spec..replicas", "status.flag", "status.ratio", "status.none",
                                  # what Python's int() takes and strconv.Atoi does not
                                  "status.x. 0.r", "status.x.0 .r", "status.x.0_0.r", "status.x.\u0660.r",
                                  # upstream panics on it (refused at admission): never Python's x[-1]
                                  "status.x.-1.r"])
def test_replicas_paths_refuse_what_upstream_refuses(path):
    workload = {"spec": {"replicas": 4}, "status": {"x": [{"r": 2}], "flag": True, "ratio": 1.5, "none": None}}
    with pytest.raises(subsets.BadValue):
        subsets.replicas_from_paths(workload, [path])


@pytest.mark.parametrize("path, part", [
    ("a.-1.b", "-1"), ("a.+1.-3", "-3"), ("a.-0.b", None), ("a.b", None), ("", None),
    ("a.-99999999999999999999", None),  # out of int64: Atoi's error, not a panic
    ("a.- 1", None),
])
def test_negative_index(path, part):
    assert subsets.negative_index(path) == part


# ---- bookkeeping ---------------------------------------------------------------------------
def uid_source(*ids):
    it = iter(ids)
    return lambda: next(it)


def test_create_records_a_generated_uid_and_takes_a_replica():
    spread = ws({"name": "a", "maxReplicas": 2}, {"name": "b"})
    changed, chosen, uid = subsets.update_for_pod(spread, pod(), subsets.CREATE, replicas=lambda: 5, now=NOW,
                                                  new_uid=uid_source("g-1"))
    assert (changed, chosen["name"], uid) == (True, "a", "g-1")
    statuses = spread["status"]["versionedSubsetStatuses"]["6d4b"]
    assert statuses == [{"name": "a", "replicas": 0, "missingReplicas": 1, "creatingPods": {"g-1": STAMP}},
                        {"name": "b", "replicas": 0, "missingReplicas": -1}]
    assert "subsetStatuses" not in spread["status"]


def test_create_fills_subsets_in_order_then_the_unlimited_one_without_a_write():
    spread = ws({"name": "a", "maxReplicas": 2}, {"name": "b"})
    chosen_names, changes = [], []
    for i in range(4):
        changed, chosen, _ = subsets.update_for_pod(spread, pod(), subsets.CREATE, replicas=lambda: 0, now=NOW,
                                                    new_uid=uid_source(f"g{i}"))
        chosen_names.append(chosen["name"])
        changes.append(changed)
    assert chosen_names == ["a", "a", "b", "b"]
    assert changes == [True, True, False, False]
    assert spread["status"]["versionedSubsetStatuses"]["6d4b"][0]["missingReplicas"] == 0


def test_create_of_a_named_pod_already_recorded_is_not_counted_twice():
    recorded = status("b", 1, creating={"web-1": "x"})
    spread = ws({"name": "a", "maxReplicas": 1}, {"name": "b", "maxReplicas": 2},
                status={"versionedSubsetStatuses": {"6d4b": [status("a", 1), recorded]}})
    before = copy.deepcopy(spread)
    changed, chosen, uid = subsets.update_for_pod(spread, pod("web-1"), subsets.CREATE, replicas=lambda: 0, now=NOW,
                                                  new_uid=uid_source())
    assert (changed, chosen["name"], uid) == (False, "b", "")
    assert spread == before


def unreadable() -> int:
    raise subsets.BadValue("the workload's replicas cannot be read")


@pytest.mark.parametrize("status_", [None, {}, {"versionedSubsetStatuses": {"other": [status("a", 1)]}}])
@pytest.mark.parametrize("operation", [subsets.CREATE, subsets.DELETE])
def test_a_pod_refused_for_unreadable_replicas_leaves_the_spread_as_it_was(status_, operation):
    """Several pods are applied to one copy in turn (the shared status write): one refused must
    not leave anything behind for the next, not even an empty status."""
    spread = ws({"name": "a", "maxReplicas": "50%"}, {"name": "b"}, status=status_)
    if status_ is None:
        del spread["status"]
    before = copy.deepcopy(spread)
    with pytest.raises(subsets.BadValue):
        subsets.update_for_pod(spread, pod("web-1"), operation, injected_subset="a", replicas=unreadable, now=NOW,
                               new_uid=uid_source("g-1"))
    assert spread == before


def test_create_with_every_subset_full_chooses_none():
    spread = ws({"name": "a", "maxReplicas": 1}, status={"versionedSubsetStatuses": {"6d4b": [status("a", 0)]}})
    assert subsets.update_for_pod(spread, pod(), subsets.CREATE, replicas=lambda: 0, now=NOW,
                                  new_uid=uid_source()) == (False, None, "")


def test_statuses_are_per_version_and_the_replicas_are_read_only_for_a_new_version():
    spread = ws({"name": "a", "maxReplicas": "50%"}, {"name": "b"},
                status={"versionedSubsetStatuses": {"old": [status("a", 0), status("b", -1)]},
                        "subsetStatuses": [status("a", 0), status("b", -1)], "observedGeneration": 1})
    spread["metadata"]["generation"] = 3  # a status of an older generation: used as it is
    asked = []
    changed, chosen, _ = subsets.update_for_pod(spread, pod(), subsets.CREATE,
                                                replicas=lambda: asked.append(1) or 4, now=NOW, new_uid=uid_source("g"))
    assert (changed, chosen["name"], asked) == (True, "a", [1])
    assert spread["status"]["versionedSubsetStatuses"]["6d4b"][0]["missingReplicas"] == 1  # ceil(50% of 4) - 1
    assert spread["status"]["versionedSubsetStatuses"]["old"][0]["missingReplicas"] == 0
    subsets.update_for_pod(spread, pod(), subsets.CREATE, replicas=lambda: asked.append(1) or 4, now=NOW,
                           new_uid=uid_source("h"))
    assert asked == [1]


def test_job_pods_share_the_ignored_version():
    job = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "controller": True}
    spread = ws({"name": "a", "maxReplicas": 1}, {"name": "b", "maxReplicas": 1},
                target={"apiVersion": "batch/v1", "kind": "Job", "name": "j"})
    subsets.update_for_pod(spread, pod(owner=job), subsets.CREATE, replicas=lambda: 0, now=NOW, new_uid=uid_source("g"))
    assert list(spread["status"]["versionedSubsetStatuses"]) == ["versionIgnored"]


@pytest.mark.parametrize("operation", [subsets.DELETE, subsets.EVICTION])
def test_delete_records_deleting_pods_and_gives_the_replica_back(operation):
    spread = ws({"name": "a", "maxReplicas": 2}, {"name": "b"},
                status={"versionedSubsetStatuses": {"6d4b": [status("a", 0, replicas=2), status("b", -1)]}})
    changed, chosen, _ = subsets.update_for_pod(spread, pod("web-1"), operation, injected_subset="a",
                                                replicas=lambda: 0, now=NOW, new_uid=uid_source())
    assert (changed, chosen["name"]) == (True, "a")
    assert chosen == {"name": "a", "replicas": 2, "missingReplicas": 1, "deletingPods": {"web-1": STAMP}}


@pytest.mark.parametrize("subset, recorded_in, expected_changed", [
    ("b", None, False),  # unlimited subset: nothing to record
    ("gone", None, False),  # the subset no longer exists
    ("a", "creatingPods", False),  # already recorded
    ("a", "deletingPods", False),
])
def test_delete_without_a_record(subset, recorded_in, expected_changed):
    first = status("a", 0, **({recorded_in[:-4]: {"web-1": "x"}} if recorded_in else {}))
    spread = ws({"name": "a", "maxReplicas": 2}, {"name": "b"},
                status={"versionedSubsetStatuses": {"6d4b": [first, status("b", -1)]}})
    before = copy.deepcopy(spread)
    changed, _, _ = subsets.update_for_pod(spread, pod("web-1"), subsets.DELETE, injected_subset=subset,
                                           replicas=lambda: 0, now=NOW, new_uid=uid_source())
    assert changed is expected_changed
    assert spread == before


# ---- injection -----------------------------------------------------------------------------
ZONE_A = {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-a"]}]}


def test_inject_merges_required_term_into_each_existing_term_and_appends_the_rest():
    spread = ws({"name": "a", "requiredNodeSelectorTerm": ZONE_A,
                 "preferredNodeSelectorTerms": [{"weight": 10, "preference": ZONE_A}],
                 "tolerations": [{"key": "t", "operator": "Exists"}]})
    existing = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}
    original = pod(affinity=existing, tolerations=[{"key": "x", "operator": "Exists"}])
    keep = copy.deepcopy(original)
    got = subsets.inject(spread, original, "a", "g-1")
    assert original == keep
    terms = got["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}, *ZONE_A["matchExpressions"]]},
                     {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}],
                      "matchExpressions": ZONE_A["matchExpressions"]}]
    assert got["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [
        {"weight": 10, "preference": ZONE_A}]
    assert got["spec"]["tolerations"] == [{"key": "x", "operator": "Exists"}, {"key": "t", "operator": "Exists"}]
    assert got["metadata"]["annotations"] == {
        "apps.kruise.io/matched-workloadspread": '{"name":"ws","subset":"a","uid":"g-1"}'}


def test_inject_without_terms_still_adds_an_empty_node_affinity_as_upstream_marshals_it():
    got = subsets.inject(ws({"name": "b"}), pod(), "b")
    assert got["spec"]["affinity"] == {"nodeAffinity": {}}
    assert got["metadata"]["annotations"]["apps.kruise.io/matched-workloadspread"] == '{"name":"ws","subset":"b"}'
    assert "tolerations" not in got["spec"]


def test_inject_of_an_unknown_subset_changes_nothing():
    p = pod()
    assert subsets.inject(ws({"name": "b"}), p, "nope") is p


def test_inject_applies_the_patch_and_clears_priority_when_the_class_changes():
    # upstream TestPatchMetadata and TestPatchContainerResource
    patch = {"metadata": {"labels": {"subset": "subset-a"}, "annotations": {"subset": "subset-a"}},
             "spec": {"priorityClassName": "high",
                      "containers": [{"name": "sidecar", "resources": {"limits": {"cpu": "2", "memory": "8000Mi"}}}]}}
    p = pod(priority=0, priorityClassName="low")
    p["spec"]["containers"].append({"name": "sidecar", "image": "nginx:1.15.1"})
    got = subsets.inject(ws({"name": "a", "patch": patch}), p, "a")
    assert got["metadata"]["labels"]["subset"] == "subset-a"
    assert got["metadata"]["annotations"] == {"subset": "subset-a",
                                              "apps.kruise.io/matched-workloadspread": '{"name":"ws","subset":"a"}'}
    assert [c["name"] for c in got["spec"]["containers"]] == ["app", "sidecar"]
    assert got["spec"]["containers"][1]["resources"] == {"limits": {"cpu": "2", "memory": "8000Mi"}}
    assert "priority" not in got["spec"] and got["spec"]["priorityClassName"] == "high"
    same_class = subsets.inject(ws({"name": "a", "patch": {"metadata": {"labels": {"x": "y"}}}}), p, "a")
    assert same_class["spec"]["priority"] == 0


@pytest.mark.parametrize("name, subset, uid, expected", [
    ("ws", "a", "", '{"name":"ws","subset":"a"}'),
    ("ws", "a", "123e4567-e89b-12d3-a456-426614174000", '{"name":"ws","subset":"a","uid":"123e4567-e89b-12d3-a456-426614174000"}'),
    ("w<s>&", "zone\u2028", "", '{"name":"w\\u003cs\\u003e\\u0026","subset":"zone\\u2028"}'),
])
def test_annotation_value_is_go_json(name, subset, uid, expected):
    assert subsets.annotation_value(name, subset, uid) == expected
    assert subsets.parse_annotation(expected) == {"name": name, "subset": subset, "uid": uid}


@pytest.mark.parametrize("text", ["", "nope", "[1]", None, "null"])
def test_parse_annotation_ignores_what_upstream_cannot_read(text):
    assert subsets.parse_annotation(text) is None


# ---- strategic merge patch -----------------------------------------------------------------
BASE = {"metadata": {"labels": {"a": "1"}, "finalizers": ["f1", "f2"]},
        "spec": {"containers": [{"name": "app", "image": "i", "env": [{"name": "A", "value": "1"}]},
                                {"name": "side", "image": "s"}],
                 "volumes": [{"name": "v1", "emptyDir": {}}], "tolerations": [{"key": "t"}],
                 "nodeSelector": {"x": "y"}}}


@pytest.mark.parametrize("patch, check", [
    ({"metadata": {"labels": {"a": None, "b": "2"}}}, lambda p: p["metadata"]["labels"] == {"b": "2"}),
    ({"spec": {"containers": [{"name": "side", "image": "s2"}]}},
     lambda p: [(c["name"], c["image"]) for c in p["spec"]["containers"]] == [("app", "i"), ("side", "s2")]),
    ({"spec": {"containers": [{"name": "new", "image": "n"}]}},
     # apimachinery's mergeSortedSlice puts an item not in the live list before the live ones
     lambda p: [c["name"] for c in p["spec"]["containers"]] == ["new", "app", "side"]),
    ({"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]}},
     lambda p: p["spec"]["containers"][0]["env"] == [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]),
    ({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
     lambda p: [c["name"] for c in p["spec"]["containers"]] == ["app"]),
    ({"spec": {"containers": [{"name": "x", "image": "x"}, {"$patch": "replace"}]}},
     lambda p: p["spec"]["containers"] == [{"name": "x", "image": "x"}]),
    ({"spec": {"tolerations": [{"key": "u"}]}}, lambda p: p["spec"]["tolerations"] == [{"key": "u"}]),
    ({"spec": {"nodeSelector": {"$patch": "replace", "z": "w"}}}, lambda p: p["spec"]["nodeSelector"] == {"z": "w"}),
    ({"spec": {"nodeSelector": {"$patch": "delete"}}}, lambda p: p["spec"]["nodeSelector"] == {}),
    ({"metadata": {"finalizers": ["f3", "f1"]}}, lambda p: sorted(p["metadata"]["finalizers"]) == ["f1", "f2", "f3"]),
    ({"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}}, lambda p: p["metadata"]["finalizers"] == ["f2"]),
    ({"spec": {"volumes": [{"name": "v1", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}},
     lambda p: p["spec"]["volumes"] == [{"name": "v1", "hostPath": {"path": "/x"}}]),
    ({"spec": {"affinity": {"nodeAffinity": {"x": None, "y": 1}}}},
     lambda p: p["spec"]["affinity"] == {"nodeAffinity": {"y": 1}}),
])
def test_strategic_merge_patch(patch, check):
    got = apply_to_pod(BASE, copy.deepcopy(patch))
    assert check(got), json.dumps(got)
    assert BASE["metadata"]["labels"] == {"a": "1"}  # the input is not changed


@pytest.mark.parametrize("patch", [
    {"spec": {"containers": [{"image": "no-name"}]}},
    {"spec": {"containers": [{"name": "a", "$patch": "merge"}]}},
    {"spec": {"nodeSelector": {"$patch": "bogus"}}},
    {"spec": {"volumes": [{"name": "v1", "$retainKeys": ["name"], "hostPath": {"path": "/x"}}]}},
    [1],
])
def test_strategic_merge_patch_errors(patch):
    with pytest.raises(PatchError):
        apply_to_pod(BASE, patch)


def test_inject_with_a_bad_patch_raises():
    with pytest.raises(PatchError):
        subsets.inject(ws({"name": "a", "patch": {"spec": {"containers": [{"image": "x"}]}}}), pod(), "a")


# ---- upstream's TestWorkloadSpreadMutatingPod, the create and delete cases -----------------
UP_POD = {"metadata": {"name": "test-pod-1", "namespace": "default", "annotations": {},
                       "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                                            "name": "cloneset-test", "controller": True,
                                            "uid": "a03eb001-27eb-4713-b634-7c46f6861758"}]},
          "spec": {"containers": [{"name": "nginx", "image": "nginx:1.15.1"}]}}
UP_REQUIRED = {"matchExpressions": [
    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["ack"]},
    {"key": "sigma.ali/resource-pool", "operator": "In", "values": ["lark"]}],
    "matchFields": [{"key": "metadata.name", "operator": "In",
                     "values": ["i-8vbhlh6rte2w5d1k2sgn", "i-8vbhlh6rte2vnxlq8ztc"]}]}
UP_PREFERRED = [{"weight": 5, "preference": {"matchExpressions": [
    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["cn-zhangjiakou-a"]}]}}]
UP_TOLERATION = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
ZONE_B = {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["cn-zhangjiakou-b"]}]}


def up_ws(missing_a=5, subset_b=False, creating=None, deleting=None) -> dict:
    spec_subsets = [{"name": "subset-a", "requiredNodeSelectorTerm": UP_REQUIRED,
                     "preferredNodeSelectorTerms": UP_PREFERRED, "tolerations": [UP_TOLERATION],
                     "patch": {"metadata": {"labels": {"subset": "subset-a"}, "annotations": {"subset": "subset-a"}}},
                     "maxReplicas": 5}]
    statuses = [{"name": "subset-a", "missingReplicas": missing_a, "creatingPods": dict(creating or {}),
                 "deletingPods": dict(deleting or {})}]
    if subset_b:
        spec_subsets.append({"name": "subset-b", "requiredNodeSelectorTerm": ZONE_B})
        statuses.append({"name": "subset-b", "missingReplicas": -1, "creatingPods": {}, "deletingPods": {}})
    return {"metadata": {"name": "test-ws", "namespace": "default"},
            "spec": {"targetRef": {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                                         "name": "cloneset-test"}, "subsets": spec_subsets},
            "status": {"observedGeneration": 10, "subsetStatuses": copy.deepcopy(statuses),
                       "versionedSubsetStatuses": {"versionIgnored": statuses}}}


def mutating_pod(ws_obj: dict, pod_obj: dict, operation: str, injected: str = "") -> tuple[bool, dict]:
    """mutatingPod without its API calls: the status change, then the injection on create."""
    changed, chosen, uid = subsets.update_for_pod(ws_obj, pod_obj, operation, injected_subset=injected,
                                                  replicas=lambda: 0, now=NOW, new_uid=uid_source())
    if operation == subsets.CREATE and chosen is not None:
        pod_obj = subsets.inject(ws_obj, pod_obj, chosen["name"], uid)
    return changed, pod_obj


def test_upstream_create_missing_5():
    spread = up_ws()
    changed, got = mutating_pod(spread, copy.deepcopy(UP_POD), subsets.CREATE)
    assert changed
    assert got["metadata"]["labels"] == {"subset": "subset-a"}
    assert got["metadata"]["annotations"] == {
        "subset": "subset-a", "apps.kruise.io/matched-workloadspread": '{"name":"test-ws","subset":"subset-a"}'}
    assert got["spec"]["tolerations"] == [UP_TOLERATION]
    assert got["spec"]["affinity"] == {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [UP_REQUIRED]},
        "preferredDuringSchedulingIgnoredDuringExecution": UP_PREFERRED}}
    status = spread["status"]["versionedSubsetStatuses"]["versionIgnored"][0]
    assert status["missingReplicas"] == 4 and status["creatingPods"] == {"test-pod-1": STAMP}
    assert spread["status"]["subsetStatuses"][0]["missingReplicas"] == 5  # never the webhook's


def test_upstream_create_subset_a_full_subset_b_unlimited():
    spread = up_ws(missing_a=0, subset_b=True)
    changed, got = mutating_pod(spread, copy.deepcopy(UP_POD), subsets.CREATE)
    assert not changed
    assert got["metadata"]["annotations"] == {
        "apps.kruise.io/matched-workloadspread": '{"name":"test-ws","subset":"subset-b"}'}
    assert got["spec"]["affinity"] == {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [ZONE_B]}}}
    assert "labels" not in got["metadata"] and "tolerations" not in got["spec"]


def test_upstream_create_missing_0_leaves_the_pod():
    spread = up_ws(missing_a=0)
    changed, got = mutating_pod(spread, copy.deepcopy(UP_POD), subsets.CREATE)
    assert (changed, got) == (False, UP_POD)


def test_upstream_create_already_creating_is_injected_without_a_write():
    spread = up_ws(missing_a=4, creating={"test-pod-1": STAMP})
    before = copy.deepcopy(spread)
    changed, got = mutating_pod(spread, copy.deepcopy(UP_POD), subsets.CREATE)
    assert not changed and spread == before
    assert got["metadata"]["annotations"]["apps.kruise.io/matched-workloadspread"] == \
        '{"name":"test-ws","subset":"subset-a"}'


@pytest.mark.parametrize("operation", [subsets.DELETE, subsets.EVICTION])
def test_upstream_delete_missing_0(operation):
    spread = up_ws(missing_a=0)
    changed, got = mutating_pod(spread, copy.deepcopy(UP_POD), operation, "subset-a")
    assert changed and got == UP_POD
    status = spread["status"]["versionedSubsetStatuses"]["versionIgnored"][0]
    assert status["missingReplicas"] == 1 and status["deletingPods"] == {"test-pod-1": STAMP}


@pytest.mark.parametrize("case, jump_after, expected", [
    # as client-go's DefaultBackoff for 4 tries, then every 250 ms while a try starts within 3 s
    ("time to spare", None, [0.0, 0.01, 0.05, 0.25] + [0.25] * 10),
    ("the budget spent by the 4th try: upstream's 4 tries", 4, [0.0, 0.01, 0.05, 0.25]),
    ("spent after the 6th", 6, [0.0, 0.01, 0.05, 0.25, 0.25, 0.25]),
])
def test_a_conflicting_status_write_is_retried_within_its_budget(monkeypatch, case, jump_after, expected):
    from manager.workloadspread import admission

    monkeypatch.setattr(admission.random, "random", lambda: 0.0)  # no jitter
    elapsed = [0.0]
    pauses = []
    for pause in admission.conflict_delays(lambda: elapsed[0]):
        pauses.append(pause)
        elapsed[0] += pause + 0.0001  # the try itself
        if jump_after is not None and len(pauses) == jump_after:
            elapsed[0] += admission.RETRY_BUDGET_S  # a loaded apiserver answered slowly
    assert [round(p, 4) for p in pauses] == expected, case


@pytest.mark.parametrize("budget, tries", [
    (3.0, 4 + 10),  # without a deadline: 3 s (a try every 250 ms after the 4th, at 0.31 s)
    (8.5, 4 + 32),  # the apiserver waits 10 s: until 1.5 s before it
    (0.0, 4),  # a deadline too close for more: upstream's 4 tries still
])
def test_conflicting_writes_are_retried_until_their_budget(monkeypatch, budget, tries):
    from manager.workloadspread import admission

    monkeypatch.setattr(admission.random, "random", lambda: 0.0)  # no jitter
    elapsed = [0.0]
    pauses = []
    for pause in admission.conflict_delays(lambda: elapsed[0], budget):
        pauses.append(pause)
        elapsed[0] += pause
    assert len(pauses) == tries and elapsed[0] <= max(budget, 0.31)


@pytest.mark.parametrize("deadline, began, budget", [
    (None, 100.0, 3.0),  # the request said no deadline
    (110.0, 100.0, 8.5),  # ?timeout=10s: tries start until 1.5 s before it
    (130.0, 100.0, 28.5),
    (101.0, 100.0, 0.0),  # less than the reserve
])
def test_the_retry_budget_follows_the_apiservers_deadline(deadline, began, budget):
    from manager.workloadspread.admission import retry_budget

    assert retry_budget(deadline, began) == budget


@pytest.mark.parametrize("deadline, now, timeout", [
    (None, 100.0, 5.0),
    (110.0, 100.0, 5.0),  # time enough: the usual cap
    (110.0, 107.0, 2.5),  # the call must end half a second before the deadline
    (110.0, 109.9, 0.1),  # past it: the shortest call, whose failure is answered at once
])
def test_a_status_calls_timeout_ends_before_the_apiservers_deadline(deadline, now, timeout):
    from manager.workloadspread.admission import call_timeout

    assert call_timeout(deadline, now, 5.0) == pytest.approx(timeout)


def deleted_from(max_replicas, replicas: int, missing: int, creating=(), deleting=(), workload_replicas=10):
    """missingReplicas after pod "gone" of subset a is recorded as deleted (versionIgnored)."""
    status = {"name": "a", "replicas": replicas, "missingReplicas": missing,
              "creatingPods": {c: STAMP for c in creating}, "deletingPods": {d: STAMP for d in deleting}}
    spread = ws({"name": "a", "maxReplicas": max_replicas}, status={"versionedSubsetStatuses": {"versionIgnored": [status]}})
    job_pod = pod("gone", owner={"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j1", "controller": True})
    changed, _chosen, _uid = subsets.update_for_pod(spread, job_pod, subsets.DELETE, injected_subset="a",
                                                    replicas=lambda: workload_replicas, now=NOW, new_uid=uid_source())
    written = spread["status"]["versionedSubsetStatuses"]["versionIgnored"][0]
    assert changed and "gone" in written["deletingPods"]
    return written["missingReplicas"]


@pytest.mark.parametrize("case, args, missing", [
    # as upstream: the place the pod held is free again
    ("full: its place is free", (2, 2, 0), 1),
    ("one free already", (2, 1, 1), 2),
    ("a pod admitted since, another leaving", (2, 2, 0, ["u-new"], ["left"]), 1),
    ("a fresh status (no replicas counted yet): as upstream, one more than the limit", (2, 0, 2), 3),
    ("no pod counted, one admitted", (2, 0, 1, ["u-new"]), 2),
    ("a percent limit, room left", ("20%", 1, 1), 2),
    # beyond upstream: a subset over its limit stays full
    ("over by one: the deletion leaves it full", (2, 3, 0), 0),
    ("over by one with a pod admitted since", (2, 2, 0, ["u-new"]), 0),
    ("over by two", (2, 4, 0), 0),
    ("a percent limit lowered under its pods (20% of 10)", ("20%", 3, 0), 0),
])
def test_a_deletion_frees_a_place_unless_the_subset_stays_full(case, args, missing):
    assert deleted_from(*args) == missing, case


def test_a_percent_limit_that_cannot_be_read_frees_a_place_as_upstream():
    def unreadable():
        raise subsets.BadValue("the workload is gone")

    status = {"name": "a", "replicas": 5, "missingReplicas": 0, "creatingPods": {}, "deletingPods": {}}
    spread = ws({"name": "a", "maxReplicas": "20%"}, status={"versionedSubsetStatuses": {"versionIgnored": [status]}})
    job_pod = pod("gone", owner={"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j1", "controller": True})
    subsets.update_for_pod(spread, job_pod, subsets.EVICTION, injected_subset="a", replicas=unreadable, now=NOW,
                           new_uid=uid_source())
    assert spread["status"]["versionedSubsetStatuses"]["versionIgnored"][0]["missingReplicas"] == 1
