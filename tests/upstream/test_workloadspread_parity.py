"""Differential tests of WorkloadSpread through the real upstream kruise-manager v1.8.3 (the
``upstream_install`` control plane) and this project's manager (a control plane of this
module's own), each scenario in a namespace of its own:
- the pod webhook: the same WorkloadSpread and Deployment, the Deployment scaled 0 -> 5.
  Compared: per pod, the matched-workloadspread annotation (the generated uid stands as
  ``<uid>``: random on both), the injected node affinity, tolerations and patched labels, as a
  multiset over the pods; and the counts per subset.
- the controller's Events: a status holding a creatingPods entry for a pod never created (40 s
  old) and a deletingPods entry for a pod still there (20 s old), as a webhook leaves them
  when a create or delete it admitted did not happen. Both controllers drop the entries;
  compared: the Events on the WorkloadSpread (type, reason, message, source).
- the removal's second validation (beyond upstream): a pod held by a finalizer is deleted, and
  the apiserver's second validation of its removal, on a watch cache's copy that still shows
  it live, is replayed to the webhook; upstream records the deletion a second time (a place
  more than the subset has, until its controller corrects it), ours writes nothing."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from kubekit import kruise
from kubekit.api import ApiError
from localcluster.cluster import LocalCluster
from manager.workloadspread.status import format_time
from tests.conftest import wait_for
from tests.upstream.conftest import our_manager

pytestmark = pytest.mark.cluster

UUID = re.compile(r'"uid":"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"')
ZONE = kruise.ZONE_LABEL
NAMESPACE = "ws-parity"
EVENTS_NAMESPACE = "ws-events"
HELD_NAMESPACE = "ws-held"
HOLD = "kruisectl.io/test-hold"  # a finalizer: the deletion marks the pod and leaves it
EVENTS_SPREADS = f"/apis/apps.kruise.io/v1alpha1/namespaces/{EVENTS_NAMESPACE}/workloadspreads"


def workloadspread() -> dict:
    term = {"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["zone-a"]}]}
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "WorkloadSpread", "metadata": {"name": "spread"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "subsets": [
                         {"name": "subset-a", "requiredNodeSelectorTerm": term, "maxReplicas": 2,
                          "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "a",
                                           "effect": "NoSchedule"}],
                          "patch": {"metadata": {"labels": {"subset": "subset-a"}}}},
                         {"name": "rest", "preferredNodeSelectorTerms": [{"weight": 10, "preference": {
                             "matchExpressions": [{"key": ZONE, "operator": "In", "values": ["zone-b"]}]}}]}]}}


def deployment(replicas: int) -> dict:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}],
                              "nodeSelector": {"never": "scheduled"}}}}}


class Side:
    def __init__(self, name: str, cluster: LocalCluster):
        self.name = name
        self.client = cluster.client("ws-parity-test")

    def call(self, method: str, path: str, body=None, **query) -> dict:
        return self.client.request(method, path, body=body, timeout=15, **query)

    def pods(self, namespace: str) -> list[dict]:
        items = self.call("GET", f"/api/v1/namespaces/{namespace}/pods", labelSelector="app=web")["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def spread(self, namespace: str, replicas: int) -> None:
        """The namespace, the WorkloadSpread, then the Deployment with ``replicas``."""
        self.call("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        wait_for(lambda: self.call("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts")["items"], timeout=30,
                 what=f"{self.name}: default ServiceAccount")
        self.call("POST", f"/apis/apps.kruise.io/v1alpha1/namespaces/{namespace}/workloadspreads", workloadspread())
        time.sleep(1.0)  # both managers read WorkloadSpreads from their caches
        self.call("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment(replicas))

    def run(self) -> list[str]:
        """Create, scale 0 -> 5; each pod as compared."""
        self.spread(NAMESPACE, 0)
        self.client.request("PATCH", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/web/scale",
                            body={"spec": {"replicas": 5}}, content_type="application/merge-patch+json", timeout=15)
        pods = wait_for(lambda: (lambda ps: ps if len(ps) == 5 else None)(self.pods(NAMESPACE)), timeout=90,
                        what=f"{self.name}: 5 pods")
        return sorted(normalized(p) for p in pods)

    def subset_a(self, version: str) -> dict | None:
        """subset-a's status for pods of ``version`` in the Events scenario's spread."""
        status = self.call("GET", f"{EVENTS_SPREADS}/spread").get("status") or {}
        return next((s for s in (status.get("versionedSubsetStatuses") or {}).get(version) or []
                     if s["name"] == "subset-a"), None)

    def run_events(self) -> set[tuple]:
        """One pod in subset-a, then the stale entries; the Events (the pod's name as <pod>)."""
        self.spread(EVENTS_NAMESPACE, 1)
        pod = wait_for(lambda: next(iter(self.pods(EVENTS_NAMESPACE)), None), timeout=60,
                       what=f"{self.name}: the Deployment's pod")
        name, version = pod["metadata"]["name"], pod["metadata"]["labels"]["pod-template-hash"]
        # the controller has seen the pod: its creatingPods entry is gone, it counts as a replica
        wait_for(lambda: (lambda s: s and s.get("replicas") == 1 and not s.get("creatingPods"))(self.subset_a(version)),
                 timeout=60, what=f"{self.name}: subset-a counting the pod")
        now = time.time()
        for _ in range(20):  # the stale entries, written as a webhook would (retried on a conflict)
            spread = self.call("GET", f"{EVENTS_SPREADS}/spread")
            for status in spread["status"]["versionedSubsetStatuses"][version]:
                if status["name"] == "subset-a":
                    status["creatingPods"] = {"never-created": format_time(now - 40)}
                    status["deletingPods"] = {name: format_time(now - 20)}
            try:
                self.call("PUT", f"{EVENTS_SPREADS}/spread/status", spread)
                break
            except ApiError as err:
                if not err.conflict:
                    raise
        wait_for(lambda: (lambda s: s and not s.get("creatingPods") and not s.get("deletingPods"))(self.subset_a(version)),
                 timeout=60, what=f"{self.name}: the stale entries dropped")

        def events():
            found = {(e["type"], e["reason"], e["message"].replace(name, "<pod>"), (e.get("source") or {}).get("component"))
                     for e in self.call("GET", f"/api/v1/namespaces/{EVENTS_NAMESPACE}/events",
                                        fieldSelector="involvedObject.kind=WorkloadSpread")["items"]}
            return found if len(found) >= 2 else None

        wait_for(events, timeout=30, what=f"{self.name}: the WorkloadSpread's Events")
        time.sleep(2.0)  # and no others come after them
        return events()


    def register_vpod(self) -> None:
        """The pod-delete webhook as upstream's chart registers it (the test fleet does not)."""
        config = self.call("GET", f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
                                  f"{kruise.VALIDATING_CONFIGURATION}")
        if any(w["name"] == "vpod.kb.io" for w in config["webhooks"]):
            return
        service = {**config["webhooks"][0]["clientConfig"]["service"], "path": kruise.VALIDATE_POD_PATH}
        config["webhooks"].append({
            "name": "vpod.kb.io", "sideEffects": "NoneOnDryRun", "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail", "timeoutSeconds": 10,
            "clientConfig": {"caBundle": config["webhooks"][0]["clientConfig"]["caBundle"], "service": service},
            "rules": [{"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                                        "values": ["kube-system", kruise.NAMESPACE]}]}})
        self.call("PUT", f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
                         f"{kruise.VALIDATING_CONFIGURATION}", config)

    def run_second_validation(self) -> tuple[int, list]:
        """A pod held by a finalizer is deleted (marked: the webhook records it) and the
        controller sees it marked; then the apiserver's second validation, on a watch cache's
        copy that still shows the pod live, is replayed to the webhook. (subset-a's
        missingReplicas before the replay; each status written in the 2 s after it, as
        (missingReplicas, deletingPods with the pod as <pod>).)"""
        ns, pods_path = HELD_NAMESPACE, f"/api/v1/namespaces/{HELD_NAMESPACE}/pods"
        self.spread(ns, 1)
        pod = wait_for(lambda: next(iter(self.pods(ns)), None), timeout=60, what=f"{self.name}: the pod")
        name, version = pod["metadata"]["name"], pod["metadata"]["labels"]["pod-template-hash"]
        spreads = f"/apis/apps.kruise.io/v1alpha1/namespaces/{ns}/workloadspreads/spread"

        def subset_a() -> dict:
            status = self.call("GET", spreads).get("status") or {}
            return next((s for s in (status.get("versionedSubsetStatuses") or {}).get(version) or []
                         if s["name"] == "subset-a"), {})

        wait_for(lambda: subset_a().get("replicas") == 1 and not subset_a().get("creatingPods"), timeout=60,
                 what=f"{self.name}: the controller counting the pod")
        live = self.client.request("PATCH", f"{pods_path}/{name}", body={"metadata": {"finalizers": [HOLD]}},
                                   content_type="application/merge-patch+json", timeout=15)
        try:
            self.call("DELETE", f"{pods_path}/{name}")
            # the ReplicaSet's replacement is counted and the marked pod is not: the controller saw the mark
            wait_for(lambda: (lambda s: s.get("replicas") == 1 and not s.get("creatingPods")
                              and len(self.pods(ns)) == 1)(subset_a()), timeout=60,
                     what=f"{self.name}: the controller seeing the pod marked")
            time.sleep(1.0)
            spread = self.call("GET", spreads)
            since, before = spread["metadata"]["resourceVersion"], subset_a()["missingReplicas"]
            review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
                "uid": f"replay-{self.name}", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"}, "name": name, "namespace": ns,
                "operation": "DELETE", "userInfo": {"username": "system:admin"}, "oldObject": live,
                "options": {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}}}
            answer = self.replay(review)
            assert answer["response"]["allowed"] is True, answer
            # every status written since (a controller may correct it at once: the place was free meanwhile)
            written = []
            for event in self.client.watch(f"/apis/apps.kruise.io/v1alpha1/namespaces/{ns}/workloadspreads", since,
                                           timeout_s=2, fieldSelector="metadata.name=spread"):
                statuses = ((event["object"].get("status") or {}).get("versionedSubsetStatuses") or {}).get(version)
                a = next((x for x in statuses or [] if x["name"] == "subset-a"), {})
                if event["type"] == "MODIFIED":
                    written.append((a.get("missingReplicas"), sorted(d.replace(name, "<pod>") for d in a.get("deletingPods") or {})))
            return before, written
        finally:
            self.client.request("PATCH", f"{pods_path}/{name}", body={"metadata": {"finalizers": None}},
                                content_type="application/merge-patch+json", timeout=15)


    def replay(self, review: dict) -> dict:
        """POST ``review`` to a ready endpoint of the webhook Service, as the apiserver would
        (its serving certificate is not what is tested here)."""
        slices = self.call("GET", f"/apis/discovery.k8s.io/v1/namespaces/{kruise.NAMESPACE}/endpointslices",
                           labelSelector=f"kubernetes.io/service-name={kruise.SERVICE}")["items"]
        address, port = next((e["addresses"][0], s["ports"][0]["port"]) for s in slices for e in s.get("endpoints") or []
                             if (e.get("conditions") or {}).get("ready", True))
        answer = requests.post(f"https://{address}:{port}{kruise.VALIDATE_POD_PATH}?timeout=10s", json=review,
                               verify=False, timeout=15)
        answer.raise_for_status()
        return answer.json()


def played(upstream_install, ours: Side, play) -> dict:
    """``play(side)`` on upstream's side, then on ours; upstream's namespaces deleted after (its
    control plane is the session's)."""
    theirs = Side("upstream", upstream_install.cluster)
    try:
        return {side.name: play(side) for side in (theirs, ours)}
    finally:
        for namespace in (NAMESPACE, EVENTS_NAMESPACE, HELD_NAMESPACE):
            try:
                theirs.call("DELETE", f"/api/v1/namespaces/{namespace}")
            except ApiError:
                pass  # not created by this test, or a cleanup of a session cluster: best effort


def normalized(pod: dict) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != "pod-template-hash"}
    annotation = UUID.sub('"uid":"<uid>"', (meta.get("annotations") or {}).get(kruise.MATCHED_WORKLOADSPREAD_ANNOTATION, ""))
    tolerations = [t for t in spec.get("tolerations") or [] if t.get("key") == "dedicated"]  # the rest: admission's defaults
    return json.dumps({"annotation": annotation, "affinity": spec.get("affinity"), "tolerations": tolerations,
                       "labels": labels}, sort_keys=True)


@pytest.fixture(scope="module")
def ours():
    with our_manager() as cluster:
        yield Side("ours", cluster)


def test_workloadspread_parity(upstream_install, ours):
    got = played(upstream_install, ours, Side.run)
    subsets = [json.loads(json.loads(p)["annotation"] or "{}").get("subset") for p in got["upstream"]]
    assert sorted(subsets) == ["rest", "rest", "rest", "subset-a", "subset-a"], got["upstream"]
    assert got["ours"] == got["upstream"]


def test_the_controller_records_upstreams_events_when_it_drops_stale_entries(upstream_install, ours):
    got = played(upstream_install, ours, Side.run_events)
    assert got["upstream"] == {
        ("Warning", "CreatePodFailed", f"Pod {EVENTS_NAMESPACE}/never-created was expected to be created but it wasn't",
         "workloadspread-controller"),
        ("Warning", "DeletePodFailed", f"Pod {EVENTS_NAMESPACE}/<pod> was expected to be deleted but it wasn't",
         "workloadspread-controller")}, got["upstream"]
    assert got["ours"] == got["upstream"]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the replay's, on purpose
def test_the_removals_second_validation_frees_no_second_place(upstream_install, ours):
    """Upstream's controller drops a marked pod's deletingPods entry, so the apiserver's second
    validation of the removal (on a watch cache's copy still showing the pod live) records the
    deletion again: one place more than the subset has, until its controller corrects it (a
    pod admitted meanwhile takes it). Here the entry stays: the replay writes nothing."""
    ours.register_vpod()
    got = played(upstream_install, ours, Side.run_second_validation)
    theirs_before, theirs_written = got["upstream"]
    assert theirs_written and theirs_written[0] == (theirs_before + 1, ["<pod>"]), got["upstream"]  # upstream's double
    ours_before, ours_written = got["ours"]
    assert ours_before == theirs_before and ours_written == [], got["ours"]
