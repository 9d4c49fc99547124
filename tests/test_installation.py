"""Which installation a manager Deployment comes from, and the fix each one is given: values
of this project's chart, values of upstream's chart, or kubectl for plain manifests."""

from __future__ import annotations

import json
import shlex

import pytest

from kruisectl.installation import KRUISECTL_CHART, MANIFESTS, UPSTREAM_CHART, detect
from kruisectl.release import split_note


def deployment(labels=None, annotations=None, image="openkruise/kruise-manager:v1.8.3", probe_port=8000):
    container = {"name": "manager", "image": image,
                 "readinessProbe": {"httpGet": {"path": "readyz", "port": probe_port}},
                 "ports": [{"name": "health", "containerPort": 8001}]}
    return {"metadata": {"labels": labels or {"control-plane": "controller-manager"}, "annotations": annotations or {}},
            "spec": {"template": {"spec": {"containers": [{"name": "sidecar"}, container]}}}}


HELM = {"meta.helm.sh/release-name": "kruise", "meta.helm.sh/release-namespace": "kruise-system"}
OURS = {"app.kubernetes.io/name": "kruise", "helm.sh/chart": "kruise-0.1.0", "control-plane": "controller-manager"}


@pytest.mark.parametrize("obj, kind, release", [
    (deployment(OURS, HELM, image="kruisectl/kruise-manager:0.1.0"), KRUISECTL_CHART, "kruise"),
    (deployment(None, HELM, image="registry.local:5000/kruisectl/kruise-manager:0.1.0"), KRUISECTL_CHART, "kruise"),
    (deployment(None, HELM), UPSTREAM_CHART, "kruise"),
    (deployment(), MANIFESTS, None),
    (deployment(OURS), MANIFESTS, None),  # our labels but no release: applied as manifests
    (None, MANIFESTS, None),
])
def test_detect(obj, kind, release):
    found = detect(obj, "kruise-system", "kruise-controller-manager")
    assert (found.kind, found.release and found.release.name) == (kind, release)


UPSTREAM_RECORD = {"name": "kruise", "namespace": "kruise-system", "revision": 1, "status": "deployed",
                   "chart": "kruise", "chartVersion": "1.8.3", "appVersion": "1.8.3"}


def installed(kind):
    obj = {KRUISECTL_CHART: deployment(OURS, HELM, image="kruisectl/kruise-manager:0.1.0"),
           UPSTREAM_CHART: deployment(None, HELM), MANIFESTS: deployment()}[kind]
    return detect(obj, "kruise-system", "kruise-controller-manager", UPSTREAM_RECORD if kind == UPSTREAM_CHART else None)


@pytest.mark.parametrize("kind, fix, expected", [
    (KRUISECTL_CHART, lambda i: i.fix_replicas(3),
     "kruisectl upgrade -n kruise-system --release kruise --set manager.replicas=3"),
    (UPSTREAM_CHART, lambda i: i.fix_replicas(3),
     "helm upgrade kruise openkruise/kruise --version 1.8.3 -n kruise-system --reuse-values --set manager.replicas=3"),
    (MANIFESTS, lambda i: i.fix_replicas(3), "kubectl -n kruise-system scale deployment kruise-controller-manager --replicas=3"),
    (UPSTREAM_CHART, lambda i: i.fix_host_network(),
     "helm upgrade kruise openkruise/kruise --version 1.8.3 -n kruise-system --reuse-values --set manager.hostNetwork=true"),
    (MANIFESTS, lambda i: i.fix_host_network(),
     "kubectl -n kruise-system patch deployment kruise-controller-manager -p "
     "'{\"spec\":{\"template\":{\"spec\":{\"hostNetwork\":true}}}}'"),
    (KRUISECTL_CHART, lambda i: i.fix_pdb("control-plane=controller-manager"),
     "kruisectl upgrade -n kruise-system --release kruise --set podDisruptionBudget.enabled=true"),
    (UPSTREAM_CHART, lambda i: i.fix_pdb("control-plane=controller-manager"),
     "kubectl -n kruise-system create poddisruptionbudget kruise-controller-manager "
     "--selector control-plane=controller-manager --max-unavailable 1"),
    (UPSTREAM_CHART, lambda i: i.fix_webhook_timeout(10),
     "helm upgrade kruise openkruise/kruise --version 1.8.3 -n kruise-system --reuse-values "
     "--set webhookConfiguration.timeoutSeconds=10"),
    (KRUISECTL_CHART, lambda i: i.fix_webhook_timeout(10),
     "kruisectl upgrade -n kruise-system --release kruise --set webhook.timeoutSeconds=10"),
])
def test_fix_texts(kind, fix, expected):
    command, note = split_note(fix(installed(kind)))
    assert command == expected
    # upstream's repository alias is a guess, and the fix says so
    assert ("openkruise/kruise assumes the repository alias openkruise" in note) == command.startswith("helm ")


@pytest.mark.parametrize("kind", [UPSTREAM_CHART, MANIFESTS])
def test_kubectl_patches_are_pasteable_json(kind):
    """The json patch survives the shell: shlex splits it back into valid JSON."""
    text = installed(kind).fix_liveness_probe(1)
    command = split_note(text)[0]
    argv = shlex.split(command)
    assert argv[:6] == ["kubectl", "-n", "kruise-system", "patch", "deployment", "kruise-controller-manager"]
    assert argv[6:8] == ["--type", "json"]
    patch = json.loads(argv[argv.index("-p") + 1])
    assert patch == [{"op": "add", "path": "/spec/template/spec/containers/1/livenessProbe",
                      "value": {"httpGet": {"path": "/healthz", "port": 8000}, "initialDelaySeconds": 30,
                                "periodSeconds": 10, "failureThreshold": 3}}]
    assert ("helm upgrade keeps this patch" in text) == (kind == UPSTREAM_CHART)


def test_named_probe_port_resolves_to_the_container_port():
    obj = deployment(None, HELM, probe_port="health")
    assert detect(obj, "kruise-system", "kruise-controller-manager").health_port == 8001


def test_a_webhook_patch_drops_the_managers_copy_only_where_there_is_one():
    from kruisectl.installation import patch_webhooks

    change = [{"op": "add", "path": "/webhooks/0/timeoutSeconds", "value": 10}]
    kept = {"metadata": {"name": "kruise-mutating-webhook-configuration", "annotations": {"template": "[]"}}}
    argv = shlex.split(patch_webhooks("mutatingwebhookconfiguration", kept, change))
    assert argv[:3] == ["kubectl", "patch", "mutatingwebhookconfiguration"]
    assert json.loads(argv[-1]) == [{"op": "remove", "path": "/metadata/annotations/template"}, *change]
    plain = {"metadata": {"name": "kruise-mutating-webhook-configuration"}}
    assert json.loads(shlex.split(patch_webhooks("mutatingwebhookconfiguration", plain, change))[-1]) == change


def test_timeout_fix_for_manifests_patches_each_configuration_with_long_webhooks():
    mutating = {"metadata": {"name": "m", "annotations": {"template": "[]"}}}
    validating = {"metadata": {"name": "v"}}
    fix = installed(MANIFESTS).fix_webhook_timeout(10, [("mutatingwebhookconfiguration", mutating, [0, 2]),
                                                        ("validatingwebhookconfiguration", validating, [])])
    (command,) = fix.split("; ")
    assert json.loads(shlex.split(command)[-1])[1:] == [
        {"op": "add", "path": f"/webhooks/{i}/timeoutSeconds", "value": 10} for i in (0, 2)]


@pytest.mark.parametrize("kind, starts", [
    (KRUISECTL_CHART, "kruisectl upgrade -n kruise-system --release kruise --set manager.topologySpread.enabled=true"),
    (UPSTREAM_CHART, "kubectl -n kruise-system patch deployment kruise-controller-manager -p "),
    (MANIFESTS, "kubectl -n kruise-system patch deployment kruise-controller-manager -p "),
])
def test_zone_spread_fix(kind, starts):
    fix = installed(kind).fix_zone_spread({"control-plane": "controller-manager"})
    assert fix.startswith(starts)
    assert ("helm upgrade keeps this patch" in fix) == (kind == UPSTREAM_CHART)
