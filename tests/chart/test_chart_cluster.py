"""The chart installed by `kruisectl install` with the real helm into a real apiserver (kwok
runs the manager pods as simulated ones; the manager processes are not started here), then
upgraded and uninstalled. Also: the ServiceAccount's rights, checked by the apiserver."""

from __future__ import annotations

import base64
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kruisectl.cli import cli
from localcluster.cluster import ClusterOptions, LocalCluster
from manager import rbac
from tests.conftest import require, wait_for

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

NS = "kruise-system"
MUTATING, VALIDATING = "kruise-mutating-webhook-configuration", "kruise-validating-webhook-configuration"


@pytest.fixture(scope="module")
def chart_cluster():
    """Six nodes (two per zone), each a network-namespace host: any webhook call the
    apiserver might make goes to a harness address, never outside."""
    require("netns")
    local = LocalCluster.start(ClusterOptions(scheduler=True, controller_manager=True, kwok=True, network=True),
                               log=sys.stderr)
    local.create_nodes(6, with_hosts=True)
    yield local
    local.stop()


def kruisectl(cluster, helm_binary, *args):
    result = CliRunner().invoke(cli, [*args, "--kubeconfig", str(cluster.kubeconfig), "--helm-binary", helm_binary],
                                catch_exceptions=False)
    return result


class DeploymentWatch:
    """Samples, while a rollout runs (bounded in time), the live manager pods (not the
    Deployment's status.replicas: it sums ReplicaSet statuses written from the pods listed
    before a deletion, so it can read one more than exist) and the available replicas."""

    def __init__(self, apps, limit_s: float = 120):
        self.apps, self.core, self.limit_s = apps, client.CoreV1Api(apps.api_client), limit_s
        self.max_total, self.min_available = 0, 10**6
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        deadline = time.monotonic() + self.limit_s
        while not self.stop.is_set() and time.monotonic() < deadline:
            status = self.apps.read_namespaced_deployment_status("kruise-controller-manager", NS).status
            pods = self.core.list_namespaced_pod(NS, label_selector="control-plane=controller-manager").items
            self.max_total = max(self.max_total, sum(1 for p in pods if not p.metadata.deletion_timestamp))
            self.min_available = min(self.min_available, status.available_replicas or 0)
            time.sleep(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join(5)


def test_install_upgrade_uninstall(chart_cluster, helm_binary):
    api = chart_cluster.api()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)

    dry = kruisectl(chart_cluster, helm_binary, "install", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "kind: Deployment" in dry.stdout and "CustomResourceDefinition" in dry.stdout
    with pytest.raises(ApiException):
        core.read_namespace(NS)  # nothing was created

    result = kruisectl(chart_cluster, helm_binary, "install", "--wait", "--timeout", "120")
    assert result.exit_code == 0, result.output
    assert "successfully rolled out" in result.output
    assert "kruisectl status" in result.stdout  # NOTES: the next step
    deployment = apps.read_namespaced_deployment("kruise-controller-manager", NS)
    assert deployment.status.ready_replicas == 3
    pods = core.list_namespaced_pod(NS, label_selector="control-plane=controller-manager").items
    zones = {core.read_node(p.spec.node_name).metadata.labels["topology.kubernetes.io/zone"] for p in pods}
    assert zones == {"zone-a", "zone-b", "zone-c"}  # the spread constraint on a real scheduler
    assert all(p.spec.priority_class_name == "system-cluster-critical" for p in pods)

    again = kruisectl(chart_cluster, helm_binary, "install")
    assert again.exit_code == 2 and "use kruisectl upgrade" in again.output

    # Dry runs are validated by the apiserver and show what would change, changing nothing.
    refused = kruisectl(chart_cluster, helm_binary, "upgrade", "--dry-run", "--max-unavailable", "150%")
    assert refused.exit_code == 2, refused.output
    diff = kruisectl(chart_cluster, helm_binary, "upgrade", "--dry-run", "--max-surge", "1")
    assert diff.exit_code == 0, diff.output
    assert "-      maxSurge: 100%" in diff.stdout and "+      maxSurge: 1" in diff.stdout, diff.stdout
    assert apps.read_namespaced_deployment("kruise-controller-manager", NS).spec.strategy.rolling_update.max_surge \
        == "100%"
    tune = CliRunner().invoke(cli, ["rollout", "tune", "--max-surge", "2147483648", "--dry-run", "--force", "-n", NS,
                                    "--kubeconfig", str(chart_cluster.kubeconfig)])
    assert tune.exit_code == 2 and "would refuse" in tune.output, tune.output
    gone = kruisectl(chart_cluster, helm_binary, "uninstall", "--dry-run")
    assert gone.exit_code == 0 and "would delete Deployment/kruise-controller-manager" in gone.stdout, gone.output
    assert "uninstalled" not in gone.stdout
    assert apps.read_namespaced_deployment("kruise-controller-manager", NS)  # still there

    # What the manager does once running: fill the Secret, patch the caBundles.
    bundle = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n").decode()
    secret = core.read_namespaced_secret("kruise-webhook-certs", NS)
    secret.data = {"ca-cert.pem": bundle, "tls.crt": bundle}
    core.replace_namespaced_secret("kruise-webhook-certs", NS, secret)
    for patch in (admission.patch_mutating_webhook_configuration, admission.patch_validating_webhook_configuration):
        patch(MUTATING if patch == admission.patch_mutating_webhook_configuration else VALIDATING,
              [{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle}])

    # Upgrade with a template change: 100% surge, nothing unavailable, on the real deployment controller.
    watch = DeploymentWatch(apps)
    result = kruisectl(chart_cluster, helm_binary, "upgrade", "--set", "manager.podAnnotations.rev=2", "--wait",
                       "--timeout", "120")
    watch.finish()
    assert result.exit_code == 0, result.output
    assert watch.max_total == 6 and watch.min_available >= 3, (watch.max_total, watch.min_available)
    assert admission.read_mutating_webhook_configuration(MUTATING).webhooks[0].client_config.ca_bundle == bundle
    assert admission.read_validating_webhook_configuration(VALIDATING).webhooks[0].client_config.ca_bundle == bundle
    assert core.read_namespaced_secret("kruise-webhook-certs", NS).data == {"ca-cert.pem": bundle, "tls.crt": bundle}

    # A lower maxSurge is honoured too, and the earlier --set survives the upgrade.
    watch = DeploymentWatch(apps)
    result = kruisectl(chart_cluster, helm_binary, "upgrade", "--max-surge", "1", "--set",
                       "manager.podAnnotations.rev=3", "--wait", "--timeout", "180")
    watch.finish()
    assert result.exit_code == 0, result.output
    assert watch.max_total == 4 and watch.min_available >= 3, (watch.max_total, watch.min_available)
    template = apps.read_namespaced_deployment("kruise-controller-manager", NS).spec.template
    assert template.metadata.annotations["rev"] == "3"

    result = kruisectl(chart_cluster, helm_binary, "uninstall")
    assert result.exit_code == 0, result.output
    for read in (lambda: admission.read_mutating_webhook_configuration(MUTATING),
                 lambda: admission.read_validating_webhook_configuration(VALIDATING),
                 lambda: client.RbacAuthorizationV1Api(api).read_cluster_role(f"kruise-manager-{NS}"),
                 lambda: client.RbacAuthorizationV1Api(api).read_cluster_role_binding(f"kruise-manager-{NS}")):
        with pytest.raises(ApiException) as gone:
            read()
        assert gone.value.status == 404
    wait_for(lambda: not core.list_namespaced_pod(NS).items, timeout=60, what="manager pods gone")
    left = {
        "deployments": apps.list_namespaced_deployment(NS).items,
        "services": core.list_namespaced_service(NS).items,
        "secrets": core.list_namespaced_secret(NS).items,
        "serviceaccounts": [s for s in core.list_namespaced_service_account(NS).items if s.metadata.name != "default"],
        "roles": client.RbacAuthorizationV1Api(api).list_namespaced_role(NS).items,
        "pdbs": client.PolicyV1Api(api).list_namespaced_pod_disruption_budget(NS).items,
    }
    assert {k: [o.metadata.name for o in v] for k, v in left.items() if v} == {}
    client.ApiextensionsV1Api(api).read_custom_resource_definition("sidecarsets.apps.kruise.io")  # helm keeps CRDs
    again = kruisectl(chart_cluster, helm_binary, "install", "--dry-run")  # the kept CRD is no obstacle
    assert again.exit_code == 0 and "kind: Deployment" in again.stdout, again.output


def _allowed(api, namespace: str, attributes: dict) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review({"spec": {
        "user": f"system:serviceaccount:{NS}:kruise-manager",
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"],
        "resourceAttributes": {"namespace": namespace, **attributes}}})
    return review.status.allowed


def test_the_service_account_may_do_what_the_manager_does_and_nothing_more(chart_cluster, helm_binary):
    result = kruisectl(chart_cluster, helm_binary, "install", "--failure-policy", "Ignore")
    assert result.exit_code == 0, result.output
    api = chart_cluster.api()
    try:
        rules = rbac.rules("kruise-manager", "kruise-webhook-certs", MUTATING, VALIDATING)
        for scope, namespace in (("namespaced", NS), ("cluster", "")):
            for rule in rules[scope]:
                group, resource = rule["apiGroups"][0], rule["resources"]
                for res in resource:
                    res, _, sub = res.partition("/")
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [""]:
                            attributes = {"group": group, "resource": res, "subresource": sub, "verb": verb,
                                          "name": name}
                            assert _allowed(api, namespace, attributes), (scope, attributes)
        denied = [
            (NS, {"group": "", "resource": "secrets", "verb": "get", "name": "another-secret"}),
            (NS, {"group": "", "resource": "secrets", "verb": "list"}),
            ("default", {"group": "", "resource": "secrets", "verb": "get", "name": "kruise-webhook-certs"}),
            ("default", {"group": "coordination.k8s.io", "resource": "leases", "verb": "update", "name": "kruise-manager"}),
            (NS, {"group": "coordination.k8s.io", "resource": "leases", "verb": "delete", "name": "kruise-manager"}),
            (NS, {"group": "coordination.k8s.io", "resource": "leases", "verb": "update", "name": "other"}),
            ("", {"group": "admissionregistration.k8s.io", "resource": "mutatingwebhookconfigurations", "verb": "patch",
                  "name": "someone-elses"}),
            ("", {"group": "admissionregistration.k8s.io", "resource": "validatingwebhookconfigurations",
                  "verb": "delete", "name": VALIDATING}),
            ("", {"group": "apps.kruise.io", "resource": "sidecarsets", "verb": "update", "name": "x"}),
            ("", {"group": "apps.kruise.io", "resource": "sidecarsets", "verb": "delete", "name": "x"}),
            ("default", {"group": "", "resource": "pods", "verb": "create"}),
            # the replicas' conditions (manager/peers.py): their own namespace's pods' status only
            ("default", {"group": "", "resource": "pods", "subresource": "status", "verb": "patch", "name": "p"}),
            # pods: get (the evicted pod), patch (deletion cost), delete (rescheduling) for WorkloadSpread; no update
            ("default", {"group": "", "resource": "pods", "verb": "update", "name": "p"}),
            ("default", {"group": "apps.kruise.io", "resource": "workloadspreads", "verb": "delete", "name": "x"}),
            ("default", {"group": "apps", "resource": "deployments", "verb": "patch", "name": "x"}),
            ("default", {"group": "batch", "resource": "jobs", "verb": "delete", "name": "x"}),
            ("", {"group": "", "resource": "nodes", "verb": "list"}),
            # Events are only created (events.py): never read, changed or deleted
            ("default", {"group": "", "resource": "events", "verb": "patch", "name": "x"}),
            ("default", {"group": "", "resource": "events", "verb": "list"}),
            ("default", {"group": "", "resource": "configmaps", "verb": "get", "name": "x"}),
            ("", {"group": "apiextensions.k8s.io", "resource": "customresourcedefinitions", "verb": "update", "name": "x"}),
        ]
        for namespace, attributes in denied:
            assert not _allowed(api, namespace, attributes), (namespace, attributes)
    finally:
        assert kruisectl(chart_cluster, helm_binary, "uninstall").exit_code == 0


def test_helm_missing_and_cluster_unreachable_are_one_line_exit_2(chart_cluster, helm_binary, tmp_path):
    result = CliRunner().invoke(cli, ["install", "--kubeconfig", str(chart_cluster.kubeconfig), "--helm-binary",
                                      str(tmp_path / "no-helm")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "not found" in result.output
    bad = tmp_path / "kubeconfig"
    bad.write_text(chart_cluster.kubeconfig.read_text().replace(chart_cluster.server, "https://127.0.0.1:1"))
    result = CliRunner().invoke(cli, ["install", "--kubeconfig", str(bad), "--helm-binary", helm_binary])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") <= 2 and "unreachable" in result.output
    result = CliRunner().invoke(cli, ["install", "--kubeconfig", str(chart_cluster.kubeconfig), "--helm-binary",
                                      helm_binary, "--max-surge", "lots"])
    assert result.exit_code == 2 and "--max-surge 'lots'" in result.output
