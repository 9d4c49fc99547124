"""WorkloadSpread's ``maxReplicas`` under HA: three manager replicas behind the webhook Service
admit pods of the same WorkloadSpreads at once, each taking a subset's place by writing the
status with the resourceVersion it read (a 409 is retried on a fresh read). The cluster test
races 50 direct pod creates (owned by the Deployments' ReplicaSets) against the ReplicaSet
controller while the Deployments are scaled up, watches the pods all along, and checks after
every change and at the end that no subset holds more pods than its limit, that every pod was
given a subset, and that the status settles to what the pods say. The pure pieces (limits,
counts, status checks, metric and audit tallies) have their own table-driven tests."""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from kubekit import kruise
from kubekit.api import ApiError

GROUP_PATH = "/apis/apps.kruise.io/v1alpha1"
NS = "race"
ZONE = kruise.ZONE_LABEL
MATCHED = kruise.MATCHED_WORKLOADSPREAD_ANNOTATION
# One WorkloadSpread per Deployment: upstream's validation wants one maxReplicas type in a
# spread, so the int limits and the percent limits race in two spreads at once.
SPREADS = {
    "ints": [{"name": "a", "requiredNodeSelectorTerm": {"matchExpressions": [
                 {"key": ZONE, "operator": "In", "values": ["zone-a"]}]}, "maxReplicas": 4},
             {"name": "b", "requiredNodeSelectorTerm": {"matchExpressions": [
                 {"key": ZONE, "operator": "In", "values": ["zone-b"]}]}, "maxReplicas": 3},
             {"name": "rest"}],
    "pcts": [{"name": "a", "requiredNodeSelectorTerm": {"matchExpressions": [
                 {"key": ZONE, "operator": "In", "values": ["zone-a"]}]}, "maxReplicas": "20%"},
             {"name": "b", "requiredNodeSelectorTerm": {"matchExpressions": [
                 {"key": ZONE, "operator": "In", "values": ["zone-b"]}]}, "maxReplicas": "30%"},
             {"name": "rest"}],
}
STEPS = (12, 24, 36)  # each Deployment's replicas, one step every STEP_SECONDS
STEP_SECONDS = 1.5
DIRECT = 25  # pods created per ReplicaSet by the test itself, all at once
CONFLICT = "Operation cannot be fulfilled on workloadspreads"  # upstream's refusal after its retries
AUDIT_POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                "rules": [{"level": "Metadata", "verbs": ["update"],
                           "resources": [{"group": "apps.kruise.io", "resources": ["workloadspreads/status"]}]},
                          {"level": "None"}]}


# ---- pure pieces ----------------------------------------------------------------------------
def limit(max_replicas, replicas: int) -> int | None:
    """A subset's limit: None without maxReplicas; a percent of the workload's replicas rounds
    up (upstream's GetScaledValueFromIntOrPercent(..., true)). Computed here on its own, not
    with the manager's code, so a shared mistake cannot hide."""
    if max_replicas is None:
        return None
    if isinstance(max_replicas, str):
        return math.ceil(int(max_replicas.rstrip("%")) * replicas / 100)
    return int(max_replicas)


def active(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in (
        "Succeeded", "Failed")


def count_by_subset(pods: list[dict], spread: str) -> tuple[dict[str, int], list[str]]:
    """The active pods per subset their matched-workloadspread annotation names for ``spread``,
    and the active pods that carry no such annotation (admitted without the spread)."""
    counts: dict[str, int] = {}
    unmatched = []
    for pod in pods:
        if not active(pod):
            continue
        try:
            value = json.loads((pod["metadata"].get("annotations") or {})[MATCHED])
        except (KeyError, ValueError):
            value = {}
        if value.get("name") != spread or not value.get("subset"):
            unmatched.append(pod["metadata"]["name"])
            continue
        counts[value["subset"]] = counts.get(value["subset"], 0) + 1
    return counts, unmatched


def over_limits(counts: dict[str, int], subsets: list[dict], replicas: int) -> list[str]:
    """The subsets holding more pods than their limit at ``replicas``, and names of no subset."""
    known = {s["name"]: s for s in subsets}
    problems = [f"pods in unknown subset {name!r}" for name in counts if name not in known]
    for subset in subsets:
        most = limit(subset.get("maxReplicas"), replicas)
        if most is not None and counts.get(subset["name"], 0) > most:
            problems.append(f"subset {subset['name']}: {counts[subset['name']]} pods > maxReplicas {most}")
    return problems


def status_problems(statuses: list[dict] | None, counts: dict[str, int], subsets: list[dict],
                    replicas: int) -> list[str]:
    """How a settled subset status list differs from the pods: each subset's replicas is its
    count, no creatingPods or deletingPods remain, missingReplicas is the limit less the
    count (never below 0), -1 without a limit."""
    by_name = {s.get("name"): s for s in statuses or []}
    problems = []
    for subset in subsets:
        name = subset["name"]
        status = by_name.get(name)
        if status is None:
            problems.append(f"{name}: no status")
            continue
        most = limit(subset.get("maxReplicas"), replicas)
        want = -1 if most is None else max(0, most - counts.get(name, 0))
        if status.get("replicas", 0) != counts.get(name, 0):
            problems.append(f"{name}: replicas {status.get('replicas', 0)} != {counts.get(name, 0)} pods")
        if status.get("missingReplicas") != want:
            problems.append(f"{name}: missingReplicas {status.get('missingReplicas')} != {want}")
        for book in ("creatingPods", "deletingPods"):
            if status.get(book):
                problems.append(f"{name}: {book} left {sorted(status[book])}")
    return problems


_PATCHED = re.compile(r'^kruise_manager_webhook_requests_total\{([^}]*)\}\s+([0-9.eE+-]+)\s*$', re.M)


def patched_pods(metrics_text: str, path: str = kruise.MUTATE_POD_PATH) -> float:
    """What a replica's /metrics says it answered on ``path`` with a patch."""
    total = 0.0
    for labels, value in _PATCHED.findall(metrics_text):
        found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if found.get("path") == path and found.get("result") == "patched":
            total += float(value)
    return total


def status_writes(events: list[dict]) -> dict[str, dict[str, int]]:
    """Per writer (the pod name in the manager's user agent): WorkloadSpread status updates
    written and refused with 409, from the apiserver's audit events."""
    out: dict[str, dict[str, int]] = {}
    for event in events:
        ref = event.get("objectRef") or {}
        if event.get("stage") != "ResponseComplete" or ref.get("resource") != "workloadspreads" \
                or ref.get("subresource") != "status" or event.get("verb") != "update":
            continue
        agent = (event.get("userAgent") or "").split(" ")[0]
        if not agent.startswith("kruise-manager/"):
            continue
        writer = agent.removeprefix("kruise-manager/").split("_")[0]
        code = (event.get("responseStatus") or {}).get("code", 0)
        tally = out.setdefault(writer, {"written": 0, "conflicts": 0})
        if 200 <= code < 300:
            tally["written"] += 1
        elif code == 409:
            tally["conflicts"] += 1
    return out


# ---- unit tests -----------------------------------------------------------------------------
def _spread_object(name: str, subsets: list[dict]) -> dict:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "WorkloadSpread",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "subsets": subsets}}


@pytest.mark.parametrize("name", sorted(SPREADS))
def test_the_raced_spreads_are_valid(name):
    from manager.workloadspread.validation import validate

    assert validate(_spread_object(name, SPREADS[name])) == []


def test_one_spread_cannot_mix_int_and_percent_limits():
    """Why the test races two spreads: upstream's validation refuses int and percent together."""
    from manager.workloadspread.validation import validate

    mixed = [SPREADS["ints"][0], SPREADS["pcts"][1], SPREADS["ints"][2]]
    assert any("the maxReplicas type of all subsets must be the same" in e
               for e in validate(_spread_object("mixed", mixed)))


@pytest.mark.parametrize("max_replicas, replicas, want", [
    (None, 10, None), (4, 0, 4), (4, 100, 4), (0, 10, 0),
    ("20%", 36, 8), ("30%", 36, 11), ("20%", 10, 2), ("20%", 11, 3), ("30%", 0, 0), ("100%", 7, 7), ("1%", 1, 1),
])
def test_limit(max_replicas, replicas, want):
    assert limit(max_replicas, replicas) == want


def _pod(name: str, annotation: dict | str | None, deleted: bool = False, phase: str = "Running") -> dict:
    meta: dict = {"name": name}
    if annotation is not None:
        meta["annotations"] = {MATCHED: annotation if isinstance(annotation, str) else json.dumps(annotation)}
    if deleted:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}}


@pytest.mark.parametrize("pods, want_counts, want_unmatched", [
    ([], {}, []),
    ([_pod("p1", {"name": "ws", "subset": "a"}), _pod("p2", {"name": "ws", "subset": "a", "uid": "u"}),
      _pod("p3", {"name": "ws", "subset": "rest"})], {"a": 2, "rest": 1}, []),
    ([_pod("gone", {"name": "ws", "subset": "a"}, deleted=True), _pod("done", {"name": "ws", "subset": "a"},
                                                                        phase="Succeeded"),
      _pod("failed", None, phase="Failed")], {}, []),
    ([_pod("bare", None), _pod("other", {"name": "other", "subset": "a"}), _pod("junk", "{not json"),
      _pod("nosubset", {"name": "ws"})], {}, ["bare", "other", "junk", "nosubset"]),
])
def test_count_by_subset(pods, want_counts, want_unmatched):
    assert count_by_subset(pods, "ws") == (want_counts, want_unmatched)


@pytest.mark.parametrize("spread, counts, replicas, want", [
    ("ints", {"a": 4, "b": 3, "rest": 40}, 0, []),
    ("ints", {"a": 5, "b": 3}, 100, ["subset a: 5 pods > maxReplicas 4"]),
    ("ints", {"b": 4, "elsewhere": 1}, 10, ["pods in unknown subset 'elsewhere'", "subset b: 4 pods > maxReplicas 3"]),
    ("pcts", {"a": 8, "b": 11, "rest": 17}, 36, []),
    ("pcts", {"a": 8, "b": 11}, 35, ["subset a: 8 pods > maxReplicas 7"]),
    ("pcts", {"a": 3}, 10, ["subset a: 3 pods > maxReplicas 2"]),
    ("pcts", {}, 0, []),
])
def test_over_limits(spread, counts, replicas, want):
    assert over_limits(counts, SPREADS[spread], replicas) == want


def _status(name: str, replicas: int, missing: int, **books) -> dict:
    return {"name": name, "replicas": replicas, "missingReplicas": missing, **books}


@pytest.mark.parametrize("statuses, counts, replicas, want", [
    ([_status("a", 4, 0), _status("b", 2, 1), _status("rest", 30, -1)], {"a": 4, "b": 2, "rest": 30}, 36, []),
    ([_status("a", 4, 0), _status("b", 3, 0), _status("rest", 0, -1)], {"a": 4, "b": 3}, 7, []),
    ([_status("a", 3, 0), _status("b", 2, 1), _status("rest", 30, -1)], {"a": 4, "b": 2, "rest": 30}, 36,
     ["a: replicas 3 != 4 pods"]),
    ([_status("a", 4, 1), _status("b", 2, 0), _status("rest", 1, 0)], {"a": 4, "b": 2, "rest": 1}, 36,
     ["a: missingReplicas 1 != 0", "b: missingReplicas 0 != 1", "rest: missingReplicas 0 != -1"]),
    ([_status("a", 4, 0, creatingPods={"u1": "t"}), _status("b", 3, 0, deletingPods={"p": "t"}),
      _status("rest", 0, -1, creatingPods={})], {"a": 4, "b": 3}, 10,
     ["a: creatingPods left ['u1']", "b: deletingPods left ['p']"]),
    ([_status("a", 0, 4)], {}, 0, ["b: no status", "rest: no status"]),
    (None, {}, 0, ["a: no status", "b: no status", "rest: no status"]),
])
def test_status_problems_ints(statuses, counts, replicas, want):
    assert status_problems(statuses, counts, SPREADS["ints"], replicas) == want


@pytest.mark.parametrize("statuses, counts, replicas, want", [
    ([_status("a", 5, 3), _status("b", 11, 0), _status("rest", 20, -1)], {"a": 5, "b": 11, "rest": 20}, 36, []),
    ([_status("a", 8, 0), _status("b", 11, 0), _status("rest", 20, -1)], {"a": 8, "b": 11, "rest": 20}, 44,
     ["a: missingReplicas 0 != 1", "b: missingReplicas 0 != 3"]),
])
def test_status_problems_percent(statuses, counts, replicas, want):
    assert status_problems(statuses, counts, SPREADS["pcts"], replicas) == want


@pytest.mark.parametrize("text, want", [
    ("", 0.0),
    ('kruise_manager_webhook_requests_total{path="/mutate-pod",result="patched"} 17.0\n', 17.0),
    ('# HELP x\nkruise_manager_webhook_requests_total{path="/mutate-pod",result="allowed"} 3.0\n'
     'kruise_manager_webhook_requests_total{result="patched",path="/mutate-pod"} 2.0\n'
     'kruise_manager_webhook_requests_total{path="/validate-pod",result="patched"} 9.0\n'
     'kruise_manager_webhook_requests_created{path="/mutate-pod",result="patched"} 1.7e9\n', 2.0),
])
def test_patched_pods(text, want):
    assert patched_pods(text) == want


def _event(agent: str, code: int, resource="workloadspreads", sub="status", verb="update",
           stage="ResponseComplete") -> dict:
    return {"stage": stage, "verb": verb, "userAgent": f"{agent} (linux)", "responseStatus": {"code": code},
            "objectRef": {"resource": resource, "subresource": sub}}


@pytest.mark.parametrize("events, want", [
    ([], {}),
    ([_event("kruise-manager/kruise-controller-manager-m0_abc", 200),
      _event("kruise-manager/kruise-controller-manager-m0_abc", 409),
      _event("kruise-manager/kruise-controller-manager-m2_def", 201),
      _event("kruise-manager/kruise-controller-manager-m2_def", 422)],
     {"kruise-controller-manager-m0": {"written": 1, "conflicts": 1},
      "kruise-controller-manager-m2": {"written": 1, "conflicts": 0}}),
    ([_event("kubectl/v1.36", 200), _event("kruise-manager/m1", 200, sub=None),
      _event("kruise-manager/m1", 200, resource="sidecarsets"), _event("kruise-manager/m1", 200, verb="patch"),
      _event("kruise-manager/m1", 200, stage="ResponseStarted")], {}),
])
def test_status_writes(events, want):
    assert status_writes(events) == want


# ---- the cluster test -----------------------------------------------------------------------
def _start_audited_cluster(audit_log: Path):
    """The manager tests' control plane, its apiserver logging WorkloadSpread status updates."""
    from localcluster.cluster import ClusterOptions, LocalCluster
    from tests.conftest import require

    require("netns")
    policy = Path(tempfile.mkdtemp(prefix="ws-audit-")) / "policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    options = ClusterOptions(scheduler=True, controller_manager=True, kwok=True, network=True,
                             extra_apiserver_args=(f"--audit-policy-file={policy}", f"--audit-log-path={audit_log}",
                                                   "--audit-log-mode=blocking"))
    return LocalCluster.start(options, log=sys.stderr)


@pytest.fixture(scope="module")
def racing(tmp_path_factory):
    """(cluster, fleet of three ready replicas, audit log path)."""
    from localcluster.fleet import Fleet
    from tests.conftest import wait_for

    audit = tmp_path_factory.mktemp("audit") / "audit.log"
    local = _start_audited_cluster(audit)
    try:
        local.create_nodes(6)  # zone-a, zone-b, zone-c twice
        fleet = Fleet(local).install(3)
        fleet.start_all()
        try:
            fleet.wait_ready(timeout=90)
            wait_for(fleet.leader, timeout=30, what="a leader")
            yield local, fleet, audit
        finally:
            fleet.stop_all()
    finally:
        local.stop()


class Observer(threading.Thread):
    """Every state the namespace's pods go through, checked: a watch from a list's
    resourceVersion delivers each change in order, and after each one the changed pod's
    spread is counted against its limits at the replicas requested so far (``requested``, set
    before each scale: an admission cannot have used more). Keeps each state in which a subset
    held more pods than its limit or a pod had no subset."""

    def __init__(self, api, requested: dict[str, int]):
        super().__init__(name="observer", daemon=True)
        self.api, self.requested = api, requested
        self.stop, self.listed = threading.Event(), threading.Event()
        self.pods: dict[str, dict] = {}
        self.states, self.violations, self.seen = 0, [], 0
        self.error: BaseException | None = None
        self._watch = None

    def check(self, spread: str) -> None:
        subsets = SPREADS.get(spread)
        if subsets is None:
            return
        mine = [p for p in self.pods.values() if (p["metadata"].get("labels") or {}).get("app") == spread]
        counts, unmatched = count_by_subset(mine, spread)
        problems = over_limits(counts, subsets, self.requested.get(spread, 0))
        if unmatched:
            problems.append(f"pods without a subset: {unmatched}")
        if problems:
            self.violations.append((self.states, spread, self.requested.get(spread, 0), counts, problems))
        self.states += 1

    def run(self) -> None:
        path = f"/api/v1/namespaces/{NS}/pods"
        try:
            listed = self.api.get(path, timeout=10)
            self.pods = {p["metadata"]["uid"]: p for p in listed["items"]}
            for spread in SPREADS:
                self.check(spread)
            version = listed["metadata"]["resourceVersion"]
            self.listed.set()
            while not self.stop.is_set():
                self._watch = self.api.open_watch(path, version, timeout_s=120)
                with self._watch as watch:
                    for event in watch:
                        obj = event["object"]
                        version = obj["metadata"]["resourceVersion"]
                        self.seen = int(version)
                        if event["type"] == "BOOKMARK":
                            continue
                        if event["type"] == "DELETED":
                            self.pods.pop(obj["metadata"]["uid"], None)
                        else:
                            self.pods[obj["metadata"]["uid"]] = obj
                        self.check((obj["metadata"].get("labels") or {}).get("app", ""))
        except BaseException as err:  # reported by the test
            if not self.stop.is_set():
                self.error = err
        finally:
            self.listed.set()

    def finish(self) -> None:
        self.stop.set()
        if self._watch is not None:
            self._watch.close()
        self.join(30)


def _scrape(fleet) -> dict[int, float]:
    from localcluster.fleet import METRICS_PORT

    return {r.index: patched_pods(requests.get(r.url("/metrics", METRICS_PORT), timeout=5).text)
            for r in fleet.replicas}


def _audit_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.cluster
def test_three_replicas_admitting_at_once_never_overfill_a_subset(racing):
    from tests.conftest import wait_for

    local, fleet, audit = racing
    api = local.client("ws-race", pool_size=64)
    api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": NS}}, timeout=10)
    wait_for(lambda: api.get(f"/api/v1/namespaces/{NS}/serviceaccounts", timeout=10,
                             fieldSelector="metadata.name=default")["items"], timeout=30, what="default ServiceAccount")
    for name, subsets in SPREADS.items():
        api.request("POST", f"{GROUP_PATH}/namespaces/{NS}/workloadspreads", timeout=10, body={
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "WorkloadSpread", "metadata": {"name": name},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "subsets": subsets}})
        api.request("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", timeout=10, body={
            "metadata": {"name": name},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "app:1"}],
                                           "nodeSelector": {"type": "kwok"}}}}})

    def replicaset(name: str) -> dict | None:
        found = api.get(f"/apis/apps/v1/namespaces/{NS}/replicasets", timeout=10, labelSelector=f"app={name}")["items"]
        return found[0] if len(found) == 1 else None
    sets = {name: wait_for(lambda: replicaset(name), timeout=30, what=f"{name}'s ReplicaSet") for name in SPREADS}
    # the leader's controller has seen both spreads; the other replicas' caches watch the same events
    for name in SPREADS:
        wait_for(lambda: (api.get(f"{GROUP_PATH}/namespaces/{NS}/workloadspreads/{name}", timeout=10).get("status")
                          or {}).get("observedGeneration") == 1, timeout=30, what=f"{name}'s first status")
    time.sleep(1)

    def direct_pod(name: str) -> dict:
        rs = sets[name]
        template = rs["spec"]["template"]
        return {"metadata": {"generateName": f"{rs['metadata']['name']}-", "labels": template["metadata"]["labels"],
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                  "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"],
                                                  "controller": True, "blockOwnerDeletion": True}]},
                "spec": template["spec"]}

    start = threading.Barrier(2 * DIRECT + 1)
    refused, failed = [], []

    def create(name: str) -> None:
        start.wait(30)
        try:
            api.request("POST", f"/api/v1/namespaces/{NS}/pods", body=direct_pod(name), timeout=30)
        except ApiError as err:
            (refused if err.status == 500 and CONFLICT in err.message else failed).append(str(err))

    requested = {name: 0 for name in SPREADS}

    def scale() -> None:
        start.wait(30)
        for i, replicas in enumerate(STEPS):
            if i:
                time.sleep(STEP_SECONDS)
            for name in SPREADS:
                requested[name] = replicas
                api.request("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{name}/scale", timeout=10,
                            body={"spec": {"replicas": replicas}}, content_type="application/merge-patch+json")

    before = _scrape(fleet)
    observer = Observer(local.client("ws-observer", pool_size=2), requested)
    observer.start()
    observer.listed.wait(30)
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=2 * DIRECT + 1) as pool:
        jobs = [pool.submit(scale)] + [pool.submit(create, name) for name in SPREADS for _ in range(DIRECT)]
        for job in jobs:
            job.result(timeout=60)
    raced = time.monotonic() - began
    # what can be told already: the direct creates' answers, and the changes seen in the race
    assert not failed, failed[:3]
    assert observer.error is None, observer.error
    assert not observer.violations, observer.violations[:5]
    final = STEPS[-1]

    def settled():
        """Every Deployment at its replicas, and each spread's status agreeing with its pods."""
        pods = api.get(f"/api/v1/namespaces/{NS}/pods", timeout=10)["items"]
        latest[0] = max((int(p["metadata"]["resourceVersion"]) for p in pods), default=0)
        problems = {}
        for name, subsets in SPREADS.items():
            mine = [p for p in pods if (p["metadata"].get("labels") or {}).get("app") == name]
            counts, unmatched = count_by_subset(mine, name)
            if unmatched:
                pytest.fail(f"{name}: pods admitted without a subset: {unmatched}")
            if sum(counts.values()) != final or len(mine) != final:
                last[0] = {name: f"{len(mine)} pods, {sum(counts.values())} active, want {final}"}
                return None  # the ReplicaSet is still adding or removing pods
            status = api.get(f"{GROUP_PATH}/namespaces/{NS}/workloadspreads/{name}", timeout=10).get("status") or {}
            versioned = status.get("versionedSubsetStatuses") or {}
            found = status_problems(status.get("subsetStatuses"), counts, subsets, final)
            found += status_problems(versioned.get(sets[name]["metadata"]["labels"]["pod-template-hash"]),
                                     counts, subsets, final)
            if set(versioned) != {sets[name]["metadata"]["labels"]["pod-template-hash"]}:
                found.append(f"versions {sorted(versioned)}")
            if found:
                last[0] = {name: found}
                return None
            problems[name] = counts
        return problems
    # creatingPods entries of pods the ReplicaSet deleted before the controller saw them are
    # dropped 30 s after their admission (upstream's timeout)
    latest, last = [0], [None]
    try:
        final_counts = wait_for(settled, timeout=50, interval=0.5, what="the statuses settled")
    except pytest.fail.Exception:
        pytest.fail(f"the statuses did not settle: {last[0]}")
    # the observer has checked every change up to the settled pods (a watch delivers in order)
    wait_for(lambda: observer.seen >= latest[0] or observer.error, timeout=30, what="the observer to catch up")
    observer.finish()
    after = _scrape(fleet)
    writes = status_writes(_audit_events(audit))
    admitted = {i: after[i] - before[i] for i in after}
    print(json.dumps({"test": "workloadspread_concurrency", "states_checked": observer.states, "race_s": round(raced, 2),
                      "settled_s": round(time.monotonic() - began, 2), "admitted_per_replica": admitted,
                      "status_writes": writes, "refused_on_conflict": len(refused), "final": final_counts}))

    assert observer.error is None, observer.error
    assert not observer.violations, observer.violations[:5]
    assert observer.states >= 2 * DIRECT, "the pods' changes were hardly seen"
    assert not failed, failed[:5]
    assert len(refused) < 2 * DIRECT, "every direct create refused"
    # each replica admitted a share of the pods: the race was among three, not one
    assert all(n > 0 for n in admitted.values()) and len(admitted) == 3, admitted
    assert sum(admitted.values()) >= 2 * DIRECT
    # and their status writes did collide: the 409 retries were exercised
    assert sum(w["conflicts"] for w in writes.values()) > 0, writes
    # the final pods: every limited subset within its limit, the rest in the unlimited one
    for name, subsets in SPREADS.items():
        counts = final_counts[name]
        assert not over_limits(counts, subsets, final)
