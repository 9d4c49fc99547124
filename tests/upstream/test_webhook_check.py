"""`kruisectl webhook check` on the real upstream manager: every piece read right, the
end-to-end probe run against upstream's own webhooks whatever the other findings, and a
verdict that tells a configuration risk from a webhook that cannot serve."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.cluster


def test_the_probe_proves_upstreams_webhooks_serve_despite_a_configuration_error(upstream_install):
    result = upstream_install.kruisectl("webhook", "check", "-o", "json")
    assert result.exit_code == 1  # kube-system is not skipped by upstream's kustomize install
    by_check = {f["check"]: f for f in json.loads(result.stdout)["findings"]}
    errors = sorted(c for c, f in by_check.items() if f["level"] == "error")
    assert errors == ["pod-webhook/mpod.kb.io", "pod-webhook/vpod.kb.io"]
    assert "does not skip kube-system" in by_check["pod-webhook/mpod.kb.io"]["message"]
    assert by_check["probe/mutating"]["level"] == "ok", by_check["probe/mutating"]  # run although an error exists
    assert "kruisectl-probe" in by_check["probe/mutating"]["evidence"]["containers"]
    assert by_check["probe/validating"]["level"] == "ok", by_check["probe/validating"]
    assert by_check["service"]["level"] == by_check["serving-cert"]["level"] == "ok"
    assert all(f["level"] == "ok" for c, f in by_check.items() if c.startswith(("cabundle/", "endpoint/")))
    assert len([c for c in by_check if c.startswith("endpoint/")]) == upstream_install.install.replicas
    verdict = upstream_install.kruisectl("webhook", "check").output.splitlines()[-1]
    assert verdict.startswith("webhook of kruise-system: servable, with 2 configuration error(s)"), verdict
    leftovers = upstream_install.kubectl("get", "sidecarsets", "-o", "name").stdout
    assert "kruisectl-probe" not in leftovers


def test_with_kube_system_skipped_the_check_passes(upstream_install):
    upstream_install.kubectl("label", "namespace", "kube-system", "control-plane=kube-system")
    try:
        result = upstream_install.kruisectl("webhook", "check")
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1].startswith("webhook of kruise-system: servable (0 error")
    finally:
        upstream_install.kubectl("label", "namespace", "kube-system", "control-plane-")
