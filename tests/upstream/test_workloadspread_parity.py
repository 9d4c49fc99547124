"""Differential test of WorkloadSpread's pod webhook: the same WorkloadSpread and Deployment
through the real upstream kruise-manager v1.8.3 (the ``upstream_install`` control plane) and
through this project's manager (a control plane of this module's own), the Deployment scaled
0 -> 5. Compared: per pod, the matched-workloadspread annotation (the generated uid stands as
``<uid>``: random on both), the injected node affinity, tolerations and patched labels, as a
multiset over the pods; and the counts per subset."""

from __future__ import annotations

import json
import re
import time

import pytest

from kubekit import kruise
from localcluster.cluster import LocalCluster
from tests.conftest import wait_for
from tests.upstream.conftest import our_manager

pytestmark = pytest.mark.cluster

UUID = re.compile(r'"uid":"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"')
ZONE = kruise.ZONE_LABEL
NAMESPACE = "ws-parity"


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

    def call(self, method: str, path: str, body=None) -> dict:
        return self.client.request(method, path, body=body, timeout=15)

    def pods(self) -> list[dict]:
        items = self.call("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=app%3Dweb")["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def run(self) -> list[str]:
        """Create, scale 0 -> 5; each pod as compared."""
        self.call("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        wait_for(lambda: self.call("GET", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts")["items"], timeout=30,
                 what=f"{self.name}: default ServiceAccount")
        self.call("POST", f"/apis/apps.kruise.io/v1alpha1/namespaces/{NAMESPACE}/workloadspreads", workloadspread())
        time.sleep(1.0)  # both managers read WorkloadSpreads from their caches
        self.call("POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", deployment(0))
        self.client.request("PATCH", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/web/scale",
                            body={"spec": {"replicas": 5}}, content_type="application/merge-patch+json", timeout=15)
        pods = wait_for(lambda: (lambda ps: ps if len(ps) == 5 else None)(self.pods()), timeout=90,
                        what=f"{self.name}: 5 pods")
        return sorted(normalized(p) for p in pods)


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
    theirs = Side("upstream", upstream_install.cluster)
    try:
        got = {side.name: side.run() for side in (theirs, ours)}
    finally:
        try:
            theirs.call("DELETE", f"/api/v1/namespaces/{NAMESPACE}")
        except Exception:  # noqa: BLE001 - cleanup of a session cluster, best effort
            pass
    subsets = [json.loads(json.loads(p)["annotation"] or "{}").get("subset") for p in got["upstream"]]
    assert sorted(subsets) == ["rest", "rest", "rest", "subset-a", "subset-a"], got["upstream"]
    assert got["ours"] == got["upstream"]
