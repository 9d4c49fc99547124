"""`kruisectl doctor` and `status` on WorkloadSpreads created directly in the real apiserver
(no manager: the checks read the objects, the nodes and the status as stored). The session's
kwok nodes: node-0..5 in zone-a/b/c, node-6 and node-7 without any zone label."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from click.testing import CliRunner
from kubernetes import client

from kruisectl.cli import cli

from localcluster import fleet

from ..conftest import wait_for
from .conftest import run_on_layout

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

ZONE = "topology.kubernetes.io/zone"
GROUP, VERSION, PLURAL = "apps.kruise.io", "v1alpha1", "workloadspreads"


def subset(name, key, values, max_replicas=None) -> dict:
    found = {"name": name, "requiredNodeSelectorTerm": {"matchExpressions": [
        {"key": key, "operator": "In", "values": values}]}}
    if max_replicas is not None:
        found["maxReplicas"] = max_replicas
    return found


def mine(items: list[dict], namespace: str) -> list[dict]:
    return [i for i in items if i["workloadSpread"].startswith(f"{namespace}/")]


def doctor(cluster, layout) -> dict:
    result = run_on_layout(cluster, layout, "doctor", "-o", "json")
    return {f["check"]: f for f in json.loads(result.stdout)["findings"]}


def test_doctor_and_status_on_workloadspreads(cluster, api, layout, namespace):
    fleet.install_crd(cluster.client())
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadSpread", "metadata": {"name": "web"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "subsets": [subset("a", ZONE, ["zone-a"], 2), subset("x", ZONE, ["zone-x"], 2), {"name": "rest"}]}})
    objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "web", {"status": {
        "observedGeneration": 1, "subsetStatuses": [
            {"name": "a", "replicas": 0, "missingReplicas": 2}, {"name": "x", "replicas": 0, "missingReplicas": 2},
            {"name": "rest", "replicas": 1, "missingReplicas": -1}]}})

    found = doctor(cluster, layout)
    labels, subsets = found["workloadspread-labels"], found["workloadspread-subsets"]
    assert labels["level"] == "warning", labels
    (gap,) = mine(labels["evidence"]["gaps"], namespace)
    assert gap["key"] == ZONE and gap["subsets"] == ["a", "x"]
    assert {"node-6", "node-7"} <= set(gap["nodesWithout"]) and not {"node-0", "node-5"} & set(gap["nodesWithout"])
    assert "kruisectl label-zones" in labels["remediation"]
    assert subsets["level"] == "warning", subsets
    assert mine(subsets["evidence"]["unfillable"], namespace) == [
        {"workloadSpread": f"{namespace}/web", "subset": "x", "maxReplicas": 2}]

    result = run_on_layout(cluster, layout, "status", "-o", "json")
    report = json.loads(result.stdout)
    assert mine(report["workloadSpreads"]["missingPods"], namespace) == [
        {"workloadSpread": f"{namespace}/web", "missingReplicas": {"a": 2, "x": 2}}]
    assert report["workloadSpreads"]["unknown"] is None
    table = run_on_layout(cluster, layout, "status")
    assert f"WorkloadSpread {namespace}/web: pods missing per its status (a 2, x 2)" in table.output

    # subsets on a label every node has, and a status with nothing missing: nothing to say
    objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "web", {"spec": {"subsets": [
        subset("linux", "kubernetes.io/os", ["linux"], 2), {"name": "rest"}]}})
    objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "web", {"status": {
        "subsetStatuses": [{"name": "linux", "replicas": 2, "missingReplicas": 0},
                           {"name": "rest", "replicas": 0, "missingReplicas": -1}]}})
    found = doctor(cluster, layout)
    assert not mine(found["workloadspread-labels"]["evidence"].get("gaps", []), namespace), found["workloadspread-labels"]
    assert not mine(found["workloadspread-subsets"]["evidence"].get("unfillable", []), namespace)
    report = json.loads(run_on_layout(cluster, layout, "status", "-o", "json").stdout)
    assert not mine(report["workloadSpreads"]["missingPods"], namespace)


def test_doctor_warns_that_drains_wait_while_no_replica_answers(cluster, api, layout, namespace):
    """WorkloadSpread's pod delete and eviction webhooks, registered as upstream's (failurePolicy
    Fail; here they match no namespace): fine while a replica is ready; with none, a warning whose
    fix, applied to the real configuration, clears it."""
    fleet.install_crd(cluster.client())
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkloadSpread", "metadata": {"name": "web"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "subsets": [{"name": "rest"}]}})
    admission = client.AdmissionregistrationV1Api(api)
    first = admission.read_validating_webhook_configuration(layout["validating"]).to_dict()["webhooks"][0]
    shared = {"clientConfig": {"caBundle": first["client_config"]["ca_bundle"],
                               "service": {"namespace": namespace, "name": "kruise-webhook-service", "path": "/validate-pod"}},
              "namespaceSelector": {"matchLabels": {"no-such-label": "x"}}, "failurePolicy": "Fail",
              "sideEffects": "None", "admissionReviewVersions": ["v1"]}
    admission.patch_validating_webhook_configuration(layout["validating"], [
        {"op": "add", "path": "/webhooks/-", "value": {**shared, "name": "vpod.kb.io", "rules": [
            {"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}},
        {"op": "add", "path": "/webhooks/-", "value": {**shared, "name": "vpodeviction.kb.io", "rules": [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/eviction"]}]}}])

    drains = doctor(cluster, layout)["workloadspread-drains"]
    assert drains["level"] == "ok" and "answered by 3 ready replica(s)" in drains["message"], drains

    client.AppsV1Api(api).patch_namespaced_deployment_scale("kruise-controller-manager", namespace,
                                                            {"spec": {"replicas": 0}})
    wait_for(lambda: not client.CoreV1Api(api).list_namespaced_pod(namespace).items, timeout=60, what="pods to go")
    drains = doctor(cluster, layout)["workloadspread-drains"]
    assert drains["level"] == "warning", drains
    assert re.match(r"no ready manager replica and \d+ WorkloadSpread\(s\): vpod\.kb\.io, vpodeviction\.kb\.io "
                    r"\(failurePolicy Fail\) refuse every pod delete and eviction", drains["message"]), drains
    assert drains["evidence"]["webhooks"] == ["vpod.kb.io", "vpodeviction.kb.io"]
    assert drains["remediation"].startswith(f"bring a replica back (kubectl -n {namespace} describe pods -l ")

    argv = shlex.split(drains["remediation"].rpartition(" after: ")[2])
    assert argv[:4] == ["kubectl", "patch", "validatingwebhookconfiguration", layout["validating"]]
    admission.patch_validating_webhook_configuration(layout["validating"], json.loads(argv[-1]))
    drains = doctor(cluster, layout)["workloadspread-drains"]
    assert drains["level"] == "ok" and "no pod delete or eviction webhook with failurePolicy Fail" in drains["message"]


def test_a_user_who_may_not_list_workloadspreads_gets_unknown(cluster, layout, viewer):
    """As every refused read: no verdict, the missing permission named, no traceback."""
    fleet.install_crd(cluster.client())
    ns, kubeconfig = layout["namespace"], viewer
    args = ["--kubeconfig", str(kubeconfig), "-n", ns, "--mutating-webhook-configuration", layout["mutating"],
            "--validating-webhook-configuration", layout["validating"], "-o", "json"]
    result = CliRunner().invoke(cli, ["doctor", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    findings = {f["check"]: f for f in json.loads(result.stdout)["findings"]}
    for check in ("workloadspread-labels", "workloadspread-subsets"):
        assert findings[check]["level"] == "info"
        assert findings[check]["message"].startswith("unknown (forbidden: ")
        assert "list workloadspreads.apps.kruise.io --all-namespaces" in findings[check]["message"]
    result = CliRunner().invoke(cli, ["status", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "list workloadspreads.apps.kruise.io --all-namespaces" in result.stderr
    assert json.loads(result.stdout)["workloadSpreads"]["unknown"].startswith("forbidden: ")
