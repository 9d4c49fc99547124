"""`kruisectl doctor` on the real upstream manager installed from its kustomize install: no
false finding, the install's real gaps found, and every fix it prints works on that install
(run as printed, server-side dry run where it would restart the manager)."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.cluster

# What upstream's kustomize install really lacks (config/default of v1.8.3), and alerts: the
# local cluster serves no prometheus-operator API.
GAPS = {"zone-spread-policy": "warning", "host-network": "warning", "liveness-probe": "warning", "pdb": "warning",
        "namespace-exclusion": "error", "alerts": "warning"}


def findings(upstream):
    code, report = upstream.report("doctor")
    return code, {f["check"]: f for f in report["findings"]}


def test_doctor_finds_the_real_gaps_and_nothing_else(upstream_install):
    code, by_check = findings(upstream_install)
    assert code == 1  # the error below
    assert {c: f["level"] for c, f in by_check.items() if f["level"] in ("warning", "error")} == GAPS
    assert by_check["failure-policy"]["level"] == "info"  # Fail, told with its trade-off
    for ok in ("leader", "ready-replicas", "spread", "zone-labels", "surge-capacity", "webhook-timeout", "certificate",
               "zone-failure"):
        assert by_check[ok]["level"] == "ok", by_check[ok]
    # Its pod webhooks skip namespaces labelled control-plane: kruise-system is, kube-system is not.
    exclusion = by_check["namespace-exclusion"]
    assert "kube-system" in exclusion["message"] and "kruise-system" not in exclusion["message"]
    assert set(exclusion["evidence"]["matched"]) == {"mpod.kb.io/kube-system", "vpod.kb.io/kube-system"}
    alerts = by_check["alerts"]
    assert alerts["message"].startswith("no monitoring.coreos.com/v1 API"), alerts
    assert "upgrade" not in alerts["remediation"], alerts  # manifests: no chart value to set


@pytest.mark.parametrize("check", ["host-network", "liveness-probe", "pdb", "zone-spread-policy"])
def test_each_fix_is_a_command_this_install_accepts(upstream_install, check):
    """Fixes for manifests are kubectl commands: each must be accepted by the apiserver as
    printed (server-side dry run: a template change would restart the manager)."""
    _, by_check = findings(upstream_install)
    fix = by_check[check]["remediation"]
    assert fix.startswith("kubectl -n kruise-system "), fix
    result = upstream_install.run_fix(fix, "--dry-run=server", "-o", "json")
    changed = json.loads(result.stdout)
    if check == "pdb":
        assert changed["spec"]["selector"]["matchLabels"] == {"control-plane": "controller-manager"}
        return
    pod = changed["spec"]["template"]["spec"]
    if check == "host-network":
        assert pod["hostNetwork"] is True
    elif check == "liveness-probe":
        assert pod["containers"][0]["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8000, "scheme": "HTTP"}
    else:
        (constraint,) = pod["topologySpreadConstraints"]
        assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
        assert constraint["labelSelector"]["matchLabels"] == {"control-plane": "controller-manager"}


def test_the_exclusion_fix_makes_the_pod_webhooks_skip_kube_system(upstream_install):
    """Upstream's pod webhooks skip namespaces that carry a control-plane label
    (DoesNotExist): the durable fix labels kube-system (the manager restores its webhook
    configurations, so editing their selectors does not last)."""
    _, by_check = findings(upstream_install)
    fix = by_check["namespace-exclusion"]["remediation"]
    assert fix.startswith("kubectl label namespace kube-system control-plane="), fix
    try:
        upstream_install.run_fix(fix)
        code, by_check = findings(upstream_install)
        assert by_check["namespace-exclusion"]["level"] == "ok", by_check["namespace-exclusion"]
        assert code == 0
    finally:
        upstream_install.kubectl("label", "namespace", "kube-system", "control-plane-")


def pod_webhook_timeouts(upstream) -> dict[str, int]:
    timeouts = {}
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        name = f"kruise-{kind[:-len('webhookconfiguration')]}-webhook-configuration"
        config = json.loads(upstream.kubectl("get", kind, name, "-o", "json").stdout)
        for webhook in config["webhooks"]:
            if any("pods" in rule.get("resources", []) for rule in webhook.get("rules", [])):
                timeouts[webhook["name"]] = webhook.get("timeoutSeconds", 10)
    return timeouts


def set_pod_webhook_timeouts(upstream, seconds: int) -> None:
    """As upstream's chart ships them (30 s). The manager rewrites its configurations from the
    `template` annotation it keeps: a change lasts only with that annotation dropped in the
    same patch (it then keeps the configuration as it finds it)."""
    for kind, name in (("mutatingwebhookconfiguration", "kruise-mutating-webhook-configuration"),
                       ("validatingwebhookconfiguration", "kruise-validating-webhook-configuration")):
        config = json.loads(upstream.kubectl("get", kind, name, "-o", "json").stdout)
        ops = [{"op": "remove", "path": "/metadata/annotations/template"}]
        ops += [{"op": "add", "path": f"/webhooks/{i}/timeoutSeconds", "value": seconds}
                for i, w in enumerate(config["webhooks"])
                if any("pods" in rule.get("resources", []) for rule in w.get("rules", []))]
        upstream.kubectl("patch", kind, name, "--type", "json", "-p", json.dumps(ops))


def test_the_timeout_fix_lasts_although_the_manager_restores_its_webhooks(upstream_install):
    try:
        set_pod_webhook_timeouts(upstream_install, 30)
        time.sleep(2)  # the manager would have restored them by now
        assert set(pod_webhook_timeouts(upstream_install).values()) == {30}
        _, by_check = findings(upstream_install)
        finding = by_check["webhook-timeout"]
        assert finding["level"] == "warning" and finding["evidence"]["worst"] == 30
        for command in finding["remediation"].split("; "):
            upstream_install.run_fix(command)
        time.sleep(2)
        assert set(pod_webhook_timeouts(upstream_install).values()) == {10}  # still, after the manager's resync
        _, by_check = findings(upstream_install)
        assert by_check["webhook-timeout"]["level"] == "ok"
    finally:
        set_pod_webhook_timeouts(upstream_install, 10)
