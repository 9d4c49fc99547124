"""A user with only the `view` role in the manager's namespace (a ServiceAccount token, real
RBAC): what it may not read is "unknown (forbidden: …)", never "not found", and the commands
exit 2 naming the missing permissions as `kubectl auth can-i` would."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kruisectl.cli import cli

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)


def run(viewer, layout, *args):
    return CliRunner().invoke(cli, [*args, "--kubeconfig", str(viewer), "-n", layout["namespace"],
                                    "--mutating-webhook-configuration", layout["mutating"],
                                    "--validating-webhook-configuration", layout["validating"]])


def test_status_says_unknown_and_lists_what_is_missing(viewer, layout):
    result = run(viewer, layout, "status")
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: forbidden: missing permissions: ") and "get nodes" in line, line
    assert f"get secrets -n {layout['namespace']}" in line
    assert "not found" not in result.stdout and "no controller" not in result.output
    assert "without topology.kubernetes.io/zone" not in result.stdout  # it could not read the nodes
    if "get leases.coordination.k8s.io" in line:
        assert "Leader:   unknown (forbidden: get leases.coordination.k8s.io" in result.stdout
    assert "caBundle unknown (forbidden: " in result.stdout


def test_doctor_gives_no_verdict_where_it_could_not_read(viewer, layout):
    result = run(viewer, layout, "doctor", "-o", "json")
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    findings = {f["check"]: f for f in report["findings"]}
    for check in ("namespace-exclusion", "certificate", "zone-labels", "zone-failure", "spread"):
        assert findings[check]["message"].startswith("unknown (forbidden: "), findings[check]
    assert "get nodes" in report["missingPermissions"]
    assert not [f for f in report["findings"] if f["message"].startswith("unknown") and f["level"] != "info"]
    assert "missing permissions" in result.stderr


def test_webhook_check_never_says_reinstall_when_it_may_not_look(viewer, layout):
    result = run(viewer, layout, "webhook", "check", "--no-probe", "-o", "json")
    assert result.exit_code == 2, result.output
    findings = json.loads(result.stdout)["findings"]
    assert not [f for f in findings if "not found" in f["message"] or "reinstall" in f["remediation"]], findings
    assert any(f["message"].startswith("unknown (forbidden: ") for f in findings)
