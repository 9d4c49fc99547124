"""kruisectl's WorkloadSpread checks as pure functions (no cluster): which label gaps and
never-filled subsets doctor warns about, when its webhooks hold drains, and what status says is missing. Against the real
apiserver: test_workloadspread_cluster.py."""

from __future__ import annotations

import pytest

from kruisectl import workloadspreads as ws_checks
from kruisectl.doctor import check_workloadspread_drains, check_workloadspread_labels, check_workloadspread_subsets, diagnose
from kruisectl.inventory import Inventory, Names
from kruisectl.status import build
from kubekit import kruise

ZONE = kruise.ZONE_LABEL


def node(name, unschedulable=False, **labels) -> dict:
    return {"metadata": {"name": name, "labels": {k.replace("__", "/").replace("_", "."): v for k, v in labels.items()}},
            "spec": {"unschedulable": True} if unschedulable else {}}


def zoned(name, zone, **kw) -> dict:
    found = node(name, **kw)
    found["metadata"]["labels"][ZONE] = zone
    return found


def term(*expressions, fields=()) -> dict:
    found = {"matchExpressions": [{"key": k, "operator": op, **({"values": list(v)} if v else {})}
                                  for k, op, v in expressions]}
    if fields:
        found["matchFields"] = [{"key": "metadata.name", "operator": op, "values": list(v)} for op, v in fields]
    return found


def spread(name, *subsets, namespace="shop", status=None) -> dict:
    found = {"metadata": {"name": name, "namespace": namespace},
             "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "subsets": list(subsets)}}
    if status is not None:
        found["status"] = status
    return found


def zone_subset(name, zone, **extra) -> dict:
    return {"name": name, "requiredNodeSelectorTerm": term((ZONE, "In", [zone])), **extra}


NODES = [zoned("a1", "zone-a"), zoned("b1", "zone-b"), node("bare")]


@pytest.mark.parametrize("t, node_, matches", [
    (term((ZONE, "In", ["zone-a"])), zoned("n", "zone-a"), True),
    (term((ZONE, "In", ["zone-a"])), node("n"), False),
    (term((ZONE, "NotIn", ["zone-a"])), node("n"), True),         # an absent label is not in any zone
    (term((ZONE, "Exists", ())), node("n"), False),
    (term((ZONE, "DoesNotExist", ())), node("n"), True),
    (term(("rank", "Gt", ["3"])), node("n", rank="5"), True),
    (term(("rank", "Lt", ["3"])), node("n", rank="5"), False),
    (term(fields=[("In", ["n"])]), node("n"), True),
    (term(fields=[("NotIn", ["n"])]), node("n"), False),
    ({}, node("n"), False),                                       # an empty term matches no node
])
def test_term_matches_as_the_scheduler(t, node_, matches):
    assert ws_checks.term_matches(t, node_) is matches


def test_label_gaps_name_the_nodes_and_subsets():
    web = spread("web", zone_subset("a", "zone-a"), zone_subset("b", "zone-b"), {"name": "rest"})
    gaps = ws_checks.label_gaps([web], NODES)
    assert gaps == [{"workloadSpread": "shop/web", "key": ZONE, "subsets": ["a", "b"], "nodesWithout": ["bare"],
                     "schedulableNodes": 3}]
    assert ws_checks.label_gaps([web], NODES[:2]) == []                       # every node labelled
    assert ws_checks.label_gaps([web], [*NODES[:2], node("bare", unschedulable=True)]) == []  # cordoned: not counted
    preferred = spread("pref", {"name": "p", "preferredNodeSelectorTerms": [
        {"weight": 10, "preference": term(("pool", "In", ["spot"]))}]})
    assert [g["key"] for g in ws_checks.label_gaps([preferred], NODES)] == ["pool"]
    assert ws_checks.label_gaps([spread("none", {"name": "x", "tolerations": []})], NODES) == []


def test_unfillable_subsets_are_those_no_schedulable_node_matches():
    web = spread("web", zone_subset("a", "zone-a", maxReplicas=2), zone_subset("c", "zone-c", maxReplicas=2),
                 {"name": "rest"})
    assert ws_checks.unfillable([web], NODES) == [{"workloadSpread": "shop/web", "subset": "c", "maxReplicas": 2}]
    cordoned = [zoned("a1", "zone-a", unschedulable=True), zoned("c1", "zone-c")]
    assert [u["subset"] for u in ws_checks.unfillable([web], cordoned)] == ["a"]


def test_missing_pods_are_read_from_the_status():
    status = {"subsetStatuses": [{"name": "a", "missingReplicas": 0}, {"name": "b", "missingReplicas": 2},
                                 {"name": "rest", "missingReplicas": -1}]}
    assert ws_checks.missing_pods([spread("web", status=status), spread("idle", status={"subsetStatuses": [
        {"name": "a", "missingReplicas": 0}]}), spread("new")]) == [
        {"workloadSpread": "shop/web", "missingReplicas": {"b": 2}}]


def inventory(spreads, nodes=NODES, **kw) -> Inventory:
    return Inventory(names=Names(namespace="kruise-system"), workloadspreads=spreads, all_nodes=nodes, **kw)


def test_doctor_warns_and_points_at_label_zones():
    found = check_workloadspread_labels(inventory([spread("web", zone_subset("a", "zone-a"))]), {})
    assert found.level == "warning" and "shop/web" in found.message and "1 of 3 schedulable nodes lack (bare)" in found.message
    assert "kruisectl label-zones" in found.remediation
    other = check_workloadspread_labels(inventory([spread("web", {"name": "p", "requiredNodeSelectorTerm":
                                                                  term(("pool", "In", ["x"]))})]), {})
    assert other.level == "warning" and "kubectl label node" in other.remediation
    assert check_workloadspread_labels(inventory([spread("web", zone_subset("a", "zone-a"))], NODES[:2]), {}).level == "ok"
    assert check_workloadspread_labels(inventory([]), {}).message == "no WorkloadSpread"
    assert check_workloadspread_labels(inventory(None), {}).level == "info"


def test_doctor_warns_about_a_subset_never_filled():
    found = check_workloadspread_subsets(inventory([spread("web", zone_subset("c", "zone-c"))]), {})
    assert found.level == "warning" and "shop/web/c" in found.message
    assert check_workloadspread_subsets(inventory([spread("web", zone_subset("a", "zone-a"))]), {}).level == "ok"


def test_a_refused_read_is_unknown_never_a_verdict():
    inv = inventory(None, statuses={"workloadspreads": 403}, errors={"workloadspreads": "forbidden"})
    found = {f.check: f for f in diagnose(inv)}
    for check in ("workloadspread-labels", "workloadspread-subsets"):
        assert found[check].level == "info"
        assert found[check].message == "unknown (forbidden: list workloadspreads.apps.kruise.io --all-namespaces)"
    assert "list workloadspreads.apps.kruise.io --all-namespaces" in inv.forbidden()
    assert build(inv)["workloadSpreads"]["unknown"] == "forbidden: list workloadspreads.apps.kruise.io --all-namespaces"


def test_status_reports_missing_pods():
    status = {"subsetStatuses": [{"name": "b", "missingReplicas": 3}]}
    report = build(inventory([spread("web", status=status)]))
    assert report["workloadSpreads"] == {"missingPods": [{"workloadSpread": "shop/web", "missingReplicas": {"b": 3}}],
                                         "unknown": None}


def test_a_node_tainted_against_the_subsets_is_no_gap_and_taints_never_make_a_subset_unfillable():
    tainted = node("gpu")
    tainted["spec"]["taints"] = [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]
    soft = node("soft")
    soft["spec"]["taints"] = [{"key": "x", "effect": "PreferNoSchedule"}]  # a preference: pods may still go there
    web = spread("web", zone_subset("a", "zone-a"))
    assert [g["nodesWithout"] for g in ws_checks.label_gaps([web], [*NODES[:2], tainted, soft])] == [["soft"]]
    tolerating = spread("web", zone_subset("a", "zone-a", tolerations=[{"key": "gpu", "operator": "Exists"}]))
    assert [g["nodesWithout"] for g in ws_checks.label_gaps([tolerating], [*NODES[:2], tainted])] == [["gpu"]]
    tainted_c = zoned("c1", "zone-c")
    tainted_c["spec"]["taints"] = [{"key": "gpu", "effect": "NoExecute"}]
    assert ws_checks.unfillable([spread("web", zone_subset("c", "zone-c"))], [tainted_c]) == []


def webhook(name, operations, resources, policy=None) -> dict:
    found = {"name": name, "rules": [{"operations": operations, "apiGroups": [""], "apiVersions": ["v1"],
                                      "resources": resources}]}
    if policy is not None:
        found["failurePolicy"] = policy
    return found


VALIDATING = {"metadata": {"name": "kruise-validating-webhook-configuration"}, "webhooks": [
    webhook("vsidecarset.kb.io", ["CREATE", "UPDATE"], ["sidecarsets"], "Fail"),
    webhook("vpod.kb.io", ["DELETE"], ["pods"], "Fail"),
    webhook("vpodeviction.kb.io", ["CREATE"], ["pods/eviction"])]}  # no policy: the API's default, Fail
NO_REPLICA, ONE_READY = {"replicas": [{"pod": "m-0", "ready": False}]}, {"replicas": [{"pod": "m-0", "ready": True}]}


@pytest.mark.parametrize("spreads, validating, report, level, said", [
    ([spread("web"), spread("api")], VALIDATING, NO_REPLICA, "warning",
     "no ready manager replica and 2 WorkloadSpread(s): vpod.kb.io, vpodeviction.kb.io (failurePolicy Fail) refuse "
     "every pod delete and eviction in the namespaces they match, so node drains and evictions wait"),
    # they match every pod of their namespaces, spread or not: drains wait all the same
    ([], VALIDATING, NO_REPLICA, "warning", "no ready manager replica and no WorkloadSpread(s): vpod.kb.io, "),
    (None, VALIDATING, NO_REPLICA, "warning", "no ready manager replica: vpod.kb.io, vpodeviction.kb.io "),
    ([spread("web")], VALIDATING, ONE_READY, "ok", "answered by 1 ready replica(s)"),
    ([spread("web")], {"metadata": {"name": "v"}, "webhooks": [webhook("vpod.kb.io", ["*"], ["pods"], "Ignore")]},
     NO_REPLICA, "ok", "no pod delete or eviction webhook with failurePolicy Fail"),
    ([spread("web")], {"metadata": {"name": "v"}, "webhooks": [webhook("vpod.kb.io", ["*"], ["pods"])]},
     NO_REPLICA, "warning", "no ready manager replica and 1 WorkloadSpread(s): vpod.kb.io (failurePolicy Fail)"),
    ([spread("web")], {"metadata": {"name": "v"}, "webhooks": [webhook("vpod.kb.io", ["UPDATE"], ["pods"])]},
     NO_REPLICA, "ok", "no pod delete or eviction webhook"),
    ([spread("web")], None, NO_REPLICA, "ok", "no pod delete or eviction webhook"),
])
def test_doctor_warns_that_drains_wait_while_no_replica_answers(spreads, validating, report, level, said):
    found = check_workloadspread_drains(inventory(spreads, validating=validating), report)
    assert (found.level, said in found.message) == (level, True), found.message


def test_the_drain_fix_brings_a_replica_back_or_lets_those_webhooks_fail_open():
    found = check_workloadspread_drains(inventory([spread("web")], validating=VALIDATING), NO_REPLICA)
    assert found.remediation.startswith("bring a replica back (kubectl -n kruise-system describe pods -l ")
    assert found.remediation.endswith(
        "set them back to Fail after: kubectl patch validatingwebhookconfiguration kruise-validating-webhook-configuration "
        "--type json -p '[{\"op\":\"replace\",\"path\":\"/webhooks/1/failurePolicy\",\"value\":\"Ignore\"},"
        "{\"op\":\"replace\",\"path\":\"/webhooks/2/failurePolicy\",\"value\":\"Ignore\"}]'")
    assert found.evidence == {"webhooks": ["vpod.kb.io", "vpodeviction.kb.io"], "readyReplicas": [], "workloadSpreads": 1}
