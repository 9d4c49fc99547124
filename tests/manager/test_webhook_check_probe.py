"""`kruisectl webhook check` against real manager replicas: the end-to-end probe proves the
apiserver calls both webhooks, catches a webhook that does not cover the probe namespace or
does not validate, and a missing CRD is exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from kubernetes import client

from kruisectl.cli import cli
from kubekit import kruise

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)


def check(fleet, *extra):
    result = CliRunner().invoke(cli, ["webhook", "check", "--kubeconfig", str(fleet.cluster.kubeconfig),
                                      "-o", "json", *extra], catch_exceptions=False)
    return result.exit_code, {f["check"]: f for f in json.loads(result.stdout)["findings"]}


def probe_sidecarsets(fleet) -> list[str]:
    items = client.CustomObjectsApi(fleet.cluster.api()).list_cluster_custom_object(
        "apps.kruise.io", "v1alpha1", "sidecarsets")["items"]
    return [s["metadata"]["name"] for s in items if s["metadata"]["name"].startswith("kruisectl-probe")]


def test_probe_proves_both_webhooks_and_leaves_nothing_behind(fleet):
    code, findings = check(fleet)
    assert code == 0, findings
    assert findings["probe/mutating"]["level"] == "ok"
    assert "kruisectl-probe" in findings["probe/mutating"]["evidence"]["containers"]
    assert findings["probe/validating"]["level"] == "ok"
    assert "vsidecarset.kb.io" in findings["probe/validating"]["evidence"]["message"]
    assert all(f["level"] == "ok" for k, f in findings.items() if k.startswith("endpoint/"))
    assert len([k for k in findings if k.startswith("endpoint/")]) == 3
    assert probe_sidecarsets(fleet) == []


def test_probe_catches_a_pod_webhook_that_skips_the_namespace(fleet):
    admission = client.AdmissionregistrationV1Api(fleet.cluster.api())
    path = "/webhooks/0/namespaceSelector/matchExpressions/0/values"
    values = admission.read_mutating_webhook_configuration(kruise.MUTATING_CONFIGURATION).webhooks[0] \
        .namespace_selector.match_expressions[0].values
    admission.patch_mutating_webhook_configuration(kruise.MUTATING_CONFIGURATION, [
        {"op": "replace", "path": path, "value": [*values, "default"]}])
    try:
        code, findings = check(fleet)
        assert code == 1
        assert findings["probe/mutating"]["level"] == "error"
        assert "without the probe sidecar" in findings["probe/mutating"]["message"]
        assert probe_sidecarsets(fleet) == []
    finally:
        admission.patch_mutating_webhook_configuration(kruise.MUTATING_CONFIGURATION, [
            {"op": "replace", "path": path, "value": values}])


def test_probe_catches_a_validating_webhook_that_is_not_called(fleet):
    admission = client.AdmissionregistrationV1Api(fleet.cluster.api())
    path = "/webhooks/0/rules/0/operations"
    admission.patch_validating_webhook_configuration(kruise.VALIDATING_CONFIGURATION, [
        {"op": "replace", "path": path, "value": ["DELETE"]}])
    try:
        code, findings = check(fleet)
        assert code == 1
        assert findings["probe/validating"]["level"] == "error"
        assert "was accepted" in findings["probe/validating"]["message"]
    finally:
        admission.patch_validating_webhook_configuration(kruise.VALIDATING_CONFIGURATION, [
            {"op": "replace", "path": path, "value": ["CREATE", "UPDATE"]}])


def test_no_probe_writes_nothing(fleet):
    code, findings = check(fleet, "--no-probe")
    assert code == 0
    assert not [k for k in findings if k.startswith("probe")]


def test_probing_a_namespace_the_webhook_skips_by_design_is_refused_at_once(fleet):
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["webhook", "check", "--kubeconfig", str(fleet.cluster.kubeconfig), "-n",
                                      fleet.namespace, "--probe-namespace", "kube-system"])
    assert result.exit_code == 2, result.output
    assert "skips this namespace by design" in result.stderr and "mpod.kb.io" in result.stderr
    assert time.monotonic() - started < 8  # no 10 s wait for a sidecar that can never come


def test_zz_missing_crd_is_exit_2_with_one_line(fleet):
    """Last in the module: it removes the CRD."""
    client.ApiextensionsV1Api(fleet.cluster.api()).delete_custom_resource_definition("sidecarsets.apps.kruise.io")
    import time
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = subprocess.run([sys.executable, "-m", "kruisectl", "webhook", "check", "--kubeconfig",
                                 str(fleet.cluster.kubeconfig)], capture_output=True, text=True, timeout=60)
        if result.returncode == 2:
            break
        time.sleep(1)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: the SidecarSet CRD (sidecarsets.apps.kruise.io) is not installed: install the chart "
        "(kruisectl install) or OpenKruise's CRDs"]
    assert "Traceback" not in result.stderr

