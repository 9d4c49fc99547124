"""`kruisectl doctor` on an upstream-like layout: each check driven into its states by really
changing the cluster, asserting the finding and the exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from kubernetes import client

from kruisectl.cli import cli
from kruisectl.findings import Finding, failing, grade

from ..conftest import wait_for
from .conftest import run_on_layout

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)


def doctor(cluster, layout, *extra):
    return run_on_layout(cluster, layout, "doctor", *extra)


def findings(cluster, layout):
    result = doctor(cluster, layout, "-o", "json")
    report = json.loads(result.stdout)
    return result.exit_code, {f["check"]: f for f in report["findings"]}, report


def test_grade_and_fail_on_levels():
    assert grade([Finding("a", "ok", "")]) == (100, "A")
    assert grade([Finding("a", "error", ""), Finding("b", "warning", "")]) == (67, "D")
    assert grade([Finding("a", "error", ""), Finding("c", "error", ""), Finding("b", "warning", "")]) == (42, "F")
    items = [Finding("a", "warning", ""), Finding("b", "ok", "")]
    assert failing(items) == [] and [f.check for f in failing(items, "warning")] == ["a"]


def test_layout_findings_and_exit_codes(cluster, api, layout):
    wait_for(lambda: findings(cluster, layout)[1]["failure-policy"]["evidence"]["readyEndpoints"], timeout=60,
             what="ready endpoints")
    code, by_check, report = findings(cluster, layout)
    assert code == 0, by_check
    assert by_check["leader"]["level"] == "ok"
    assert by_check["ready-replicas"]["level"] == "ok"
    assert by_check["spread"]["level"] == "ok"
    # node-6 is bare metal and hosts a replica.
    assert by_check["zone-labels"]["level"] == "warning"
    assert by_check["zone-labels"]["evidence"]["replicaNodesWithoutZone"] == ["node-6"]
    assert by_check["zone-labels"]["evidence"]["clusterNodesWithoutZone"] >= 2
    assert by_check["zone-spread-policy"]["level"] == "warning", "the layout has no zone spread constraint"
    assert by_check["host-network"]["level"] == "ok"
    assert by_check["namespace-exclusion"]["level"] == "ok"
    assert by_check["failure-policy"]["level"] == "info"  # Fail: told with its trade-off, not scored
    assert "fails while no replica answers" in by_check["failure-policy"]["message"]
    assert by_check["pdb"]["level"] == "warning"
    # The layout is applied as manifests (no helm release): the fix is kubectl, not a chart value.
    assert by_check["pdb"]["remediation"].startswith(f"kubectl -n {layout['namespace']} create poddisruptionbudget ")
    assert by_check["certificate"]["level"] == "ok"
    assert by_check["zone-failure"]["level"] == "ok"
    assert report["grade"] in "BCD" and report["score"] < 100
    assert doctor(cluster, layout, "--fail-on", "warning").exit_code == 1

    table = doctor(cluster, layout)
    assert "grade" in table.output and "WARN" in table.output


def test_pdb_clears_its_warning(cluster, api, layout):
    client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(layout["namespace"], {
        "metadata": {"name": "kruise-manager"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"control-plane": "controller-manager"}}}})
    assert findings(cluster, layout)[1]["pdb"]["level"] == "ok"


def set_pod_webhook_selector(api, layout, selector):
    client.AdmissionregistrationV1Api(api).patch_mutating_webhook_configuration(layout["mutating"], [
        {"op": "replace", "path": "/webhooks/0/namespaceSelector", "value": selector}])


def test_missing_namespace_exclusion_is_a_cyclic_dependency_error(cluster, api, layout):
    set_pod_webhook_selector(api, layout, {})  # an empty selector matches every namespace
    code, by_check, _ = findings(cluster, layout)
    assert code == 1
    finding = by_check["namespace-exclusion"]
    assert finding["level"] == "error" and "kube-system" in finding["message"] and layout["namespace"] in finding["message"]


def test_a_selector_matching_no_namespace_excludes_them_all(cluster, api, layout):
    """As the apiserver reads it: matchLabels on a label no namespace has selects none."""
    set_pod_webhook_selector(api, layout, {"matchLabels": {"no-such-label": "x"}})
    assert findings(cluster, layout)[1]["namespace-exclusion"]["level"] == "ok"


def test_exclusion_by_a_namespace_label_follows_the_real_labels(cluster, api, layout):
    """Upstream chart 1.8.3's pod webhook skips the manager's namespace by the label
    control-plane=openkruise: doctor reads the namespace's real labels, and its fix is that label."""
    set_pod_webhook_selector(api, layout, {"matchExpressions": [
        {"key": "control-plane", "operator": "NotIn", "values": ["openkruise"]},
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]})
    core = client.CoreV1Api(api)
    core.patch_namespace(layout["namespace"], {"metadata": {"labels": {"control-plane": None}}})
    finding = findings(cluster, layout)[1]["namespace-exclusion"]
    assert finding["level"] == "error" and finding["message"].count("does not exclude") == 1, finding
    assert f"does not exclude {layout['namespace']}" in finding["message"]
    assert finding["remediation"] == f"kubectl label namespace {layout['namespace']} control-plane=openkruise"
    core.patch_namespace(layout["namespace"], {"metadata": {"labels": {"control-plane": "openkruise"}}})
    try:
        assert findings(cluster, layout)[1]["namespace-exclusion"]["level"] == "ok"
    finally:
        core.patch_namespace(layout["namespace"], {"metadata": {"labels": {"control-plane": None}}})


def test_no_ready_replica_with_fail_policy_blocks_pod_creation(cluster, api, layout):
    client.AppsV1Api(api).patch_namespaced_deployment_scale("kruise-controller-manager", layout["namespace"],
                                                            {"spec": {"replicas": 0}})
    wait_for(lambda: not client.CoreV1Api(api).list_namespaced_pod(layout["namespace"]).items, timeout=60,
             what="pods to go")
    wait_for(lambda: not findings(cluster, layout)[1]["failure-policy"]["evidence"]["readyEndpoints"], timeout=60,
             what="endpoints to drop")
    code, by_check, _ = findings(cluster, layout)
    assert code == 1
    assert by_check["ready-replicas"]["level"] == "error"
    assert by_check["failure-policy"]["level"] == "error"
    assert "blocked" in by_check["failure-policy"]["message"]


def test_one_replica_is_a_warning(cluster, api, layout):
    client.AppsV1Api(api).patch_namespaced_deployment_scale("kruise-controller-manager", layout["namespace"],
                                                            {"spec": {"replicas": 1}})
    wait_for(lambda: len(client.CoreV1Api(api).list_namespaced_pod(layout["namespace"]).items) == 1, timeout=60,
             what="one pod left")
    by_check = findings(cluster, layout)[1]
    assert by_check["ready-replicas"]["level"] == "warning"


def test_doctor_as_a_subprocess_exits_with_its_findings(cluster, layout):
    result = subprocess.run([sys.executable, "-m", "kruisectl", "doctor", "--kubeconfig", str(cluster.kubeconfig),
                             "-n", layout["namespace"], "--mutating-webhook-configuration", layout["mutating"],
                             "--validating-webhook-configuration", layout["validating"], "--fail-on", "warning"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "zone-labels" in result.stdout and "Traceback" not in result.stderr
    assert "Connection pool is full" not in result.stderr  # its parallel reads fit the client's pool


def test_a_wrong_namespace_or_name_is_said_and_nothing_else(cluster, layout):
    ns = layout["namespace"]
    base = ["--kubeconfig", str(cluster.kubeconfig)]
    webhooks = ["--mutating-webhook-configuration", layout["mutating"],
                "--validating-webhook-configuration", layout["validating"]]
    for command in (["doctor"], ["status"], ["webhook", "check", "--no-probe"]):
        result = CliRunner().invoke(cli, [*command, *base, "-n", "nope-ns"])
        assert result.exit_code == 2, (command, result.output)
        assert "namespace nope-ns does not exist" in result.stderr and ns in result.stderr, result.stderr
        assert result.stdout == "", result.stdout  # no findings about a namespace that is not there
    result = CliRunner().invoke(cli, ["doctor", *base, "-n", ns, *webhooks, "--service", "nope"])
    assert result.exit_code == 2 and f"service {ns}/nope not found" in result.stderr, result.output
    assert "blocked" not in result.output
    result = CliRunner().invoke(cli, ["status", *base, "-n", ns, *webhooks, "--deployment", "nope"])
    assert result.exit_code == 2 and f"deployment {ns}/nope not found" in result.stderr, result.output
