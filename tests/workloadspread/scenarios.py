"""WorkloadSpread scenarios on a real control plane whose manager keeps WorkloadSpreads (ours in
test_controller.py, upstream v1.8.3's in test_upstream_parity.py), each asserting upstream's
behaviour by hand-computed values: the same assertions passing on both is the comparison.
Workload pods run on kwok nodes (``type=kwok``) only, in namespace :data:`NS`."""

from __future__ import annotations

import json
import time

from kubernetes import client

from kubekit.kruise import MATCHED_WORKLOADSPREAD_ANNOTATION as MATCHED
from kubekit.kruise import POD_DELETION_COST_ANNOTATION as COST
from manager.workloadspread.status import format_time
from tests.conftest import wait_for

NS = "spread"
GROUP, VERSION, PLURAL = "apps.kruise.io", "v1alpha1", "workloadspreads"
KWOK = {"type": "kwok"}


def zone_term(zone: str) -> dict:
    return {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}]}


def create_spread(api, name: str, target: str, subsets: list[dict], **spec) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadSpread", "metadata": {"name": name},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                 "subsets": subsets, **spec}})


def get_spread(api, name: str) -> dict:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)


def create_deployment(api, name: str, replicas: int, *, workload_spec: dict | None = None, **pod_spec) -> None:
    """``workload_spec``: more fields of the Deployment's spec; ``pod_spec``: of its pods'."""
    client.AppsV1Api(api).create_namespaced_deployment(NS, {
        "metadata": {"name": name},
        "spec": {**(workload_spec or {}), "replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "app:1"}],
                                       **pod_spec, "nodeSelector": {**KWOK, **pod_spec.get("nodeSelector", {})}}}}})


def touch(api, name: str) -> None:
    """A change to the spread: the event upstream's controller reconciles on where it has none."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, name, {"metadata": {"annotations": {"test/touched": str(time.time())}}})


def scale(api, name: str, replicas: int) -> None:
    client.AppsV1Api(api).patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": replicas}})


def live_pods(api, app: str) -> list:
    pods = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"app={app}").items
    return sorted((p for p in pods if p.metadata.deletion_timestamp is None), key=lambda p: p.metadata.name)


def running(api, app: str, count: int) -> list | None:
    pods = live_pods(api, app)
    return pods if len(pods) == count and all(p.status.phase == "Running" for p in pods) else None


def annotate(api, pod_name: str, spread: str, subset: str) -> None:
    """What the pod webhook writes on admission (upstream's JSON, lowercase keys)."""
    value = json.dumps({"name": spread, "subset": subset})
    client.CoreV1Api(api).patch_namespaced_pod(pod_name, NS, {"metadata": {"annotations": {MATCHED: value}}})


def subset_of(pod) -> str:
    return json.loads(pod.metadata.annotations[MATCHED])["subset"]


def statuses(api, name: str) -> dict:
    status = get_spread(api, name).get("status") or {}
    return {s["name"]: (s["replicas"], s["missingReplicas"]) for s in status.get("subsetStatuses") or []}


def cost_of(api, pod_name: str) -> str | None:
    pod = client.CoreV1Api(api).read_namespaced_pod(pod_name, NS)
    return (pod.metadata.annotations or {}).get(COST)


def costs_by_subset(api, app: str) -> dict[str, list[str | None]]:
    """Each subset's pods' deletion costs, sorted; None for a pod the controller has not
    annotated yet (sorted last: a wait on the costs goes on instead of failing on the sort)."""
    out: dict[str, list[str | None]] = {}
    for pod in live_pods(api, app):
        out.setdefault(subset_of(pod), []).append((pod.metadata.annotations or {}).get(COST))
    return {k: sorted(v, key=lambda cost: (cost is None, cost or "")) for k, v in out.items()}


def status_deletion_cost_and_scale_down_order(api) -> None:
    create_deployment(api, "web", 4)
    older = wait_for(lambda: running(api, "web", 4), timeout=60, what="4 running pods")
    time.sleep(1.5)  # a younger fifth pod: the one a ReplicaSet would delete first, no tie to break
    scale(api, "web", 5)
    pods = wait_for(lambda: running(api, "web", 5), timeout=60, what="5 running pods")
    newest = next(p for p in pods if p.metadata.name not in {o.metadata.name for o in older})
    # Three pods admitted into a (the newest one more than its maxReplicas allows), one into b, one into c.
    for pod, subset in zip([newest, *older], ["a", "a", "a", "b", "c"]):
        annotate(api, pod.metadata.name, "web", subset)
    # (upstream's validation wants one maxReplicas type for all subsets)
    create_spread(api, "web", "web", [
        {"name": "a", "requiredNodeSelectorTerm": zone_term("zone-a"), "maxReplicas": "40%"},
        {"name": "b", "requiredNodeSelectorTerm": zone_term("zone-b"), "maxReplicas": "40%"},
        {"name": "c"}])

    # 40% of 5 rounds up to 2; c is unlimited (-1).
    wait_for(lambda: statuses(api, "web") == {"a": (3, 0), "b": (1, 1), "c": (1, -1)}, timeout=30,
             what="subset statuses")
    status = get_spread(api, "web")["status"]
    assert status["observedGeneration"] == get_spread(api, "web")["metadata"]["generation"]
    hash_ = pods[0].metadata.labels["pod-template-hash"]
    assert {s["name"]: s["replicas"] for s in status["versionedSubsetStatuses"][hash_]} == {"a": 3, "b": 1, "c": 1}
    # Earlier subsets cost more; the pod beyond a's maxReplicas costs least of all.
    wait_for(lambda: costs_by_subset(api, "web") == {"a": ["-100", "300", "300"], "b": ["200"], "c": ["100"]},
             timeout=30, what="deletion costs")
    assert cost_of(api, newest.metadata.name) == "-100"

    # Scale-down removes the cheapest pods first: a's extra one, then c's. a's maxReplicas
    # follows the replicas: 40% of 4 and of 3 round up to 2. (Not down to 2: there a's limit
    # drops to 1 with the scale itself, and whether the controller re-costs a's pods before
    # the ReplicaSet picks one is a race on either manager, so which pod goes is not defined.)
    for replicas, left, costs in (
            (4, ["a", "a", "b", "c"], {"a": ["300", "300"], "b": ["200"], "c": ["100"]}),
            (3, ["a", "a", "b"], {"a": ["300", "300"], "b": ["200"]})):
        scale(api, "web", replicas)
        wait_for(lambda: sorted(subset_of(p) for p in live_pods(api, "web")) == left, timeout=30,
                 what=f"{replicas} pods left in subsets {left}")
        wait_for(lambda: costs_by_subset(api, "web") == costs, timeout=30, what=f"costs {costs}")
    # 40% of 3 is 2 for a and b: a full, b missing one; c unlimited
    wait_for(lambda: statuses(api, "web") == {"a": (2, 0), "b": (1, 1), "c": (0, -1)}, timeout=30,
             what="statuses after the scale-down")


def creating_pods_kept_until_their_timeout(api) -> None:
    """The webhook's creatingPods entries: a fresh one still counts against missingReplicas,
    one older than 30 s is dropped."""
    create_spread(api, "pending", "pending", [{"name": "a", "maxReplicas": 3}, {"name": "b"}])
    create_deployment(api, "pending", 0)
    wait_for(lambda: statuses(api, "pending") == {"a": (0, 3), "b": (0, -1)}, timeout=30, what="first status")
    custom = client.CustomObjectsApi(api)
    now = time.time()
    for _ in range(5):  # as the webhook writes it: optimistic concurrency
        spread = get_spread(api, "pending")
        spread["status"]["subsetStatuses"][0]["creatingPods"] = {"fresh": format_time(now),
                                                                 "stale": format_time(now - 40)}
        spread["status"]["subsetStatuses"][0]["missingReplicas"] = 1
        try:
            custom.replace_namespaced_custom_object_status(GROUP, VERSION, NS, PLURAL, "pending", spread)
            break
        except client.ApiException as err:
            if err.status != 409:
                raise

    def settled():
        s = get_spread(api, "pending")["status"]["subsetStatuses"][0]
        return s.get("creatingPods") == {"fresh": format_time(now)} and s["missingReplicas"] == 2
    wait_for(settled, timeout=20, what="the stale entry dropped, the fresh one kept")
    wait_for(lambda: not get_spread(api, "pending")["status"]["subsetStatuses"][0].get("creatingPods"),
             timeout=45, what="the fresh entry dropped after 30 s")
    assert statuses(api, "pending") == {"a": (0, 3), "b": (0, -1)}


def adaptive_reschedules_a_pod_unschedulable_in_its_subset(api) -> None:
    create_spread(api, "adaptive", "adaptive",
                  [{"name": "nowhere", "requiredNodeSelectorTerm": zone_term("zone-x"), "maxReplicas": 1},
                   {"name": "rest"}],
                  scheduleStrategy={"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 3}})
    # Unschedulable anywhere (as the webhook's injected zone-x term would make it).
    create_deployment(api, "adaptive", 1, nodeSelector={"topology.kubernetes.io/zone": "zone-x"})

    def unschedulable():
        ps = live_pods(api, "adaptive")
        return ps if ps and any(c.reason == "Unschedulable" for c in ps[0].status.conditions or []) else None
    first = wait_for(unschedulable, timeout=60, what="an unschedulable pod")[0]
    annotate(api, first.metadata.name, "adaptive", "nowhere")
    # Upstream reconciles on a pod's deletion or version change, not on its becoming
    # unschedulable: a change to the spread stands for the next event it would get.
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "adaptive", {"metadata": {"annotations": {"test/touched": "1"}}})

    def condition():
        s = (get_spread(api, "adaptive").get("status") or {}).get("subsetStatuses") or []
        return {x["name"]: [(c["type"], c["status"]) for c in x.get("conditions") or []] for x in s}
    wait_for(lambda: condition() == {"nowhere": [("Schedulable", "False")], "rest": [("Schedulable", "True")]},
             timeout=30, what="subset nowhere unschedulable")
    # The stuck pod was deleted; the ReplicaSet made another.
    wait_for(lambda: [p.metadata.uid for p in live_pods(api, "adaptive")] not in ([], [first.metadata.uid]),
             timeout=30, what="the pod replaced")


def pods_created_before_the_spread_are_adopted_by_node(api) -> None:
    """No annotation: each running pod joins the first subset its node fits that still misses
    pods (else any it fits), and the leader writes the annotation the webhook would have."""
    create_deployment(api, "early", 3, nodeSelector={"topology.kubernetes.io/zone": "zone-a"})
    wait_for(lambda: running(api, "early", 3), timeout=60, what="3 running pods in zone-a")
    create_spread(api, "early", "early", [
        {"name": "a", "requiredNodeSelectorTerm": zone_term("zone-a"), "maxReplicas": 2,
         "patch": {"metadata": {"labels": {"subset": "a"}}}},
        {"name": "b", "requiredNodeSelectorTerm": zone_term("zone-b")},
        {"name": "c"}])

    def adopted():
        pods = live_pods(api, "early")
        if not all(MATCHED in (p.metadata.annotations or {}) for p in pods):
            return None
        return sorted((subset_of(p), p.metadata.labels.get("subset")) for p in pods)
    assert wait_for(adopted, timeout=30, what="pods annotated") == [("a", "a"), ("a", "a"), ("c", None)]
    wait_for(lambda: statuses(api, "early") == {"a": (2, 0), "b": (0, -1), "c": (1, -1)}, timeout=30,
             what="statuses of the adopted pods")
    wait_for(lambda: costs_by_subset(api, "early") == {"a": ["300", "300"], "c": ["100"]}, timeout=30,
             what="their deletion costs")


def pods_beyond_max_replicas_are_adopted_at_the_next_reconcile(api) -> None:
    """Found by the randomized differential test (test_workloadspread_fuzz, seed 20261204,
    combination 0): pods the webhook leaves outside a full subset are adopted by node into
    it at the controller's next reconcile, without a uid in their annotation, at cost -100.
    Upstream reconciles on a change to the spread, not on a pod being bound: the touch below
    is that event (ours needs none)."""
    create_spread(api, "beyond", "beyond", [{"name": "rest", "maxReplicas": 2}],
                  scheduleStrategy={"type": "Adaptive", "adaptive": {"rescheduleCriticalSeconds": 1}})
    create_deployment(api, "beyond", 1)
    wait_for(lambda: running(api, "beyond", 1), timeout=60, what="1 running pod")
    scale(api, "beyond", 6)
    wait_for(lambda: running(api, "beyond", 6), timeout=60, what="6 running pods")

    def adopted():
        client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "beyond", {"metadata": {"annotations": {"test/touched": str(time.time())}}})
        pods = live_pods(api, "beyond")
        return all(MATCHED in (p.metadata.annotations or {}) for p in pods)
    wait_for(adopted, timeout=30, interval=2, what="every pod annotated")
    uids = sorted("uid" in json.loads(p.metadata.annotations[MATCHED]) for p in live_pods(api, "beyond"))
    assert uids == [False] * 4 + [True] * 2  # the webhook's two, the controller's four
    wait_for(lambda: costs_by_subset(api, "beyond") == {"rest": ["-100"] * 4 + ["100"] * 2}, timeout=30,
             what="deletion costs")
    wait_for(lambda: statuses(api, "beyond") == {"rest": (6, 0)}, timeout=30, what="status")


def target_filter_replicas_paths_resolve_percent_subsets(api) -> None:
    """``targetFilter.replicasPathList`` in place of the Deployment's replicas: percent
    maxReplicas resolve against the sum at its paths (here spec.replicas plus
    spec.revisionHistoryLimit), in the pod webhook (which subset a new pod joins), the
    status (missingReplicas) and the deletion costs; its selector selects every pod. With
    spec.replicas alone 25% of 4 would be 1: a, b, c, c instead of a, a, b, b."""
    create_spread(api, "paths", "paths", [
        {"name": "a", "requiredNodeSelectorTerm": zone_term("zone-a"), "maxReplicas": "25%"},
        {"name": "b", "requiredNodeSelectorTerm": zone_term("zone-b"), "maxReplicas": "25%"},
        {"name": "c"}],
        targetFilter={"selector": {"matchLabels": {"app": "paths"}},
                      "replicasPathList": ["spec.replicas", "spec.revisionHistoryLimit"]})
    # Created at its full size after the spread: the webhook's first pod finds the workload
    # at 4 (a scale-up races the controller's re-resolving the percent against the webhook).
    create_deployment(api, "paths", 4, workload_spec={"revisionHistoryLimit": 4})
    wait_for(lambda: running(api, "paths", 4), timeout=60, what="4 running pods")

    def subsets(count: int):
        pods = live_pods(api, "paths")
        if len(pods) != count or not all(MATCHED in (p.metadata.annotations or {}) for p in pods):
            return None
        return sorted(subset_of(p) for p in pods)
    # 25% of 4 + 4 = 8 is 2
    assert wait_for(lambda: subsets(4), timeout=30, what="4 pods admitted") == ["a", "a", "b", "b"]
    wait_for(lambda: statuses(api, "paths") == {"a": (2, 0), "b": (2, 0), "c": (0, -1)}, timeout=30,
             what="statuses at 4 + 4")
    wait_for(lambda: costs_by_subset(api, "paths") == {"a": ["300", "300"], "b": ["200", "200"]}, timeout=30,
             what="deletion costs at 4 + 4")

    # A path that is not the replicas: 25% of 4 + 8 = 12 is 3. Upstream's controller
    # reconciles on a Deployment's replicas (or revision) changing, not this: touch the spread.
    client.AppsV1Api(api).patch_namespaced_deployment("paths", NS, {"spec": {"revisionHistoryLimit": 8}})

    def resized():
        touch(api, "paths")
        return statuses(api, "paths") == {"a": (2, 1), "b": (2, 1), "c": (0, -1)}
    wait_for(resized, timeout=30, interval=2, what="statuses at 4 + 8")

    # 25% of 5 + 8 = 13 is 4: a still misses pods whether the webhook sees 3 or 4 as a's
    # limit, so the fifth pod joins a (with spec.replicas alone a would be full: c).
    scale(api, "paths", 5)
    wait_for(lambda: running(api, "paths", 5), timeout=60, what="5 running pods")
    assert wait_for(lambda: subsets(5), timeout=30, what="5 pods admitted") == ["a", "a", "a", "b", "b"]
    wait_for(lambda: statuses(api, "paths") == {"a": (3, 1), "b": (2, 2), "c": (0, -1)}, timeout=30,
             what="statuses at 5 + 8")
    wait_for(lambda: costs_by_subset(api, "paths") == {"a": ["300"] * 3, "b": ["200", "200"]}, timeout=30,
             what="deletion costs at 5 + 8")

    # 25% of 3 + 8 = 11 is 3: a's three pods stay within it (costs unchanged), so the two
    # cheaper pods of b go.
    scale(api, "paths", 3)
    assert wait_for(lambda: subsets(3), timeout=30, what="3 pods left") == ["a", "a", "a"]
    wait_for(lambda: statuses(api, "paths") == {"a": (3, 0), "b": (0, 3), "c": (0, -1)}, timeout=30,
             what="statuses at 3 + 8")
    wait_for(lambda: costs_by_subset(api, "paths") == {"a": ["300"] * 3}, timeout=30, what="deletion costs at 3 + 8")


def target_filter_selector_keeps_only_the_pods_it_selects(api) -> None:
    """``targetFilter.selector``: a spread whose selector selects none of the Deployment's
    pods counts none (missingReplicas stays maxReplicas) and neither adopts nor costs them;
    changed to select them, the spread adopts them by node as it would without a filter."""
    create_deployment(api, "picked", 3, nodeSelector={"topology.kubernetes.io/zone": "zone-a"})
    wait_for(lambda: running(api, "picked", 3), timeout=60, what="3 running pods in zone-a")
    create_spread(api, "picked", "picked", [
        {"name": "a", "requiredNodeSelectorTerm": zone_term("zone-a"), "maxReplicas": 2},
        {"name": "b"}],
        targetFilter={"selector": {"matchLabels": {"app": "picked", "tier": "none"}}})

    def observed():
        spread = get_spread(api, "picked")
        return (spread.get("status") or {}).get("observedGeneration") == spread["metadata"]["generation"]
    wait_for(lambda: observed() and statuses(api, "picked") == {"a": (0, 2), "b": (0, -1)}, timeout=30,
             what="statuses counting no pod")
    # The reconcile that wrote that status would have adopted and costed the pods.
    touch(api, "picked")
    time.sleep(3)
    assert [(p.metadata.annotations or {}).get(MATCHED) for p in live_pods(api, "picked")] == [None] * 3
    assert [cost_of(api, p.metadata.name) for p in live_pods(api, "picked")] == [None] * 3
    assert statuses(api, "picked") == {"a": (0, 2), "b": (0, -1)}

    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "picked",
        {"spec": {"targetFilter": {"selector": {"matchLabels": {"tier": None}}}}})

    def adopted():
        pods = live_pods(api, "picked")
        if not all(MATCHED in (p.metadata.annotations or {}) for p in pods):
            return None
        return sorted(subset_of(p) for p in pods)
    assert wait_for(adopted, timeout=30, what="pods adopted") == ["a", "a", "b"]
    wait_for(lambda: observed() and statuses(api, "picked") == {"a": (2, 0), "b": (1, -1)}, timeout=30,
             what="statuses of the selected pods")
    wait_for(lambda: costs_by_subset(api, "picked") == {"a": ["200", "200"], "b": ["100"]}, timeout=30,
             what="their deletion costs")
