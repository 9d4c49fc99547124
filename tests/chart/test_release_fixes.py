"""Every fix doctor and webhook check print for a helm install, run for real: the real helm,
kubectl and kruisectl against a real apiserver, on installs whose release lives in another
namespace than the manager (as upstream's `helm install kruise openkruise/kruise` leaves it).
No manager runs: the fixes change objects, and the findings they clear read only objects."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kruisectl.helm import BUNDLED_CHART
from kruisectl.release import split_note
from localcluster import build

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

STANDIN = Path(__file__).with_name("upstream_standin")
DEPLOYMENT = "kruise-controller-manager"
MUTATING = "kruise-mutating-webhook-configuration"


@pytest.fixture(scope="module")
def kubectl_binary() -> str:
    return str(build.ensure_binaries(log=sys.stderr)["kubectl"])


@pytest.fixture
def bare_cluster(make_cluster):
    """etcd and kube-apiserver only: helm, kubectl and doctor need nothing else here."""
    return make_cluster()


def environment(cluster, helm_binary: str, home: Path) -> dict[str, str]:
    """What a user's shell would have: a kubeconfig, helm's own homes (its repositories), no
    namespace from helm; kruisectl finds the same helm."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    env.update({"KUBECONFIG": str(cluster.kubeconfig), "KRUISECTL_HELM": helm_binary,
                "HELM_CONFIG_HOME": str(home / "config"), "HELM_CACHE_HOME": str(home / "cache"),
                "HELM_DATA_HOME": str(home / "data"), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    return env


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)


def kruisectl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "kruisectl", *args], env)


def run_printed(fix: str, env: dict[str, str], helm: str, kubectl: str) -> list[subprocess.CompletedProcess]:
    """The printed fix as a user pastes it: each command of it (the note is a shell comment),
    with the program names resolved to the real binaries."""
    programs = {"helm": [helm], "kubectl": [kubectl], "kruisectl": [sys.executable, "-m", "kruisectl"]}
    results = []
    for command in split_note(fix)[0].split("; "):
        argv = shlex.split(command)
        assert argv[0] in programs, f"not a command: {fix}"
        results.append(run(programs[argv[0]] + argv[1:], env))
    return results


def doctor(env: dict[str, str], namespace: str) -> dict[str, dict]:
    result = kruisectl(env, "doctor", "-n", namespace, "-o", "json")
    assert result.returncode in (0, 1), result.stderr
    return {f["check"]: f for f in json.loads(result.stdout)["findings"]}


def webhook_check(env: dict[str, str], namespace: str) -> dict[str, dict]:
    result = kruisectl(env, "webhook", "check", "-n", namespace, "--no-probe", "-o", "json")
    assert result.returncode in (0, 1), result.stderr
    return {f["check"]: f for f in json.loads(result.stdout)["findings"]}


def apply_every_fix(fixes: dict[str, str], env, helm_binary, kubectl_binary) -> None:
    for check, fix in fixes.items():
        for result in run_printed(fix, env, helm_binary, kubectl_binary):
            assert result.returncode == 0, f"{check}: {fix}\n{result.stderr}"


# --- this project's chart, release in kruise-rel, manager in kruise-mgr ------------------------

REL_NS, MGR_NS, RELEASE = "kruise-rel", "kruise-mgr", "r1"
CHART_FIXED = ("host-network", "pdb", "webhook-timeout", "zone-spread-policy", "liveness-probe", "namespace-exclusion")


def test_this_charts_fixes_upgrade_the_release_where_it_lives(bare_cluster, helm_binary, kubectl_binary, tmp_path):
    env = environment(bare_cluster, helm_binary, tmp_path)
    api = bare_cluster.api()
    apps, admission = client.AppsV1Api(api), client.AdmissionregistrationV1Api(api)
    installed = run([helm_binary, "install", RELEASE, str(BUNDLED_CHART), "-n", REL_NS, "--create-namespace",
                     "--set", f"installation.namespace={MGR_NS}", "--set", "installation.createNamespace=true",
                     # every HA choice a chart value fixes, turned off
                     "--set", "manager.hostNetwork=false", "--set", "podDisruptionBudget.enabled=false",
                     "--set", "webhook.timeoutSeconds=30", "--set", "manager.topologySpread.enabled=false"], env)
    assert installed.returncode == 0, installed.stderr
    deployment = apps.read_namespaced_deployment(DEPLOYMENT, MGR_NS)
    assert deployment.metadata.annotations["meta.helm.sh/release-namespace"] == REL_NS
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment(DEPLOYMENT, REL_NS)
    # and two things the chart always sets, undone by hand
    admission.patch_mutating_webhook_configuration(MUTATING, [
        {"op": "replace", "path": "/webhooks/0/namespaceSelector", "value": {}}])
    apps.patch_namespaced_deployment(DEPLOYMENT, MGR_NS, [
        {"op": "remove", "path": "/spec/template/spec/containers/0/livenessProbe"}])

    before = doctor(env, MGR_NS)
    assert {c: before[c]["level"] for c in CHART_FIXED} == {c: "warning" for c in CHART_FIXED} | {
        "namespace-exclusion": "error"}, before
    fixes = {c: before[c]["remediation"] for c in CHART_FIXED}
    pod_webhook = webhook_check(env, MGR_NS)["pod-webhook/mpod.kb.io"]
    assert pod_webhook["level"] == "error"
    fixes["pod-webhook/mpod.kb.io"] = pod_webhook["remediation"]
    for check, fix in fixes.items():
        argv = shlex.split(split_note(fix)[0])
        assert argv[:6] == ["kruisectl", "upgrade", "-n", REL_NS, "--release", RELEASE], (check, fix)

    # what was printed before: the manager's namespace is not where helm keeps the release
    wrong = kruisectl(env, "upgrade", "-n", MGR_NS, "--release", RELEASE)
    assert wrong.returncode == 2 and "no such release" in wrong.stderr, wrong.stderr

    apply_every_fix(fixes, env, helm_binary, kubectl_binary)
    after = doctor(env, MGR_NS)
    assert {c: after[c]["level"] for c in CHART_FIXED} == {c: "ok" for c in CHART_FIXED}, after
    assert webhook_check(env, MGR_NS)["pod-webhook/mpod.kb.io"]["level"] == "ok"
    # the upgrades kept the values no fix named: the manager stayed in its namespace
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment(DEPLOYMENT, REL_NS)


# --- upstream's layout: `helm install kruise openkruise/kruise`, release in default -------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - keep the test output clean
        pass


@pytest.fixture
def chart_repository(helm_binary, tmp_path):
    """The stand-in chart at 1.8.3 and a newer 1.9.0, served as a helm repository on loopback."""
    folder = tmp_path / "repository"
    folder.mkdir()
    for version in ("1.8.3", "1.9.0"):
        packaged = subprocess.run([helm_binary, "package", str(STANDIN), "--version", version, "--app-version", version,
                                   "-d", str(folder)], capture_output=True, text=True, timeout=60)
        assert packaged.returncode == 0, packaged.stderr
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(folder)))
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    indexed = subprocess.run([helm_binary, "repo", "index", str(folder), "--url", url], capture_output=True, text=True,
                             timeout=60)
    assert indexed.returncode == 0, indexed.stderr
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()


# kubectl's fixes first: the helm upgrades after them show whether helm keeps those changes
def no_secrets_of_default(cluster, tmp_path: Path) -> Path:
    """A ServiceAccount's kubeconfig that may read what doctor reads (Secrets only in
    kruise-system), not the release record in default."""
    api = cluster.api()
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    subject = [{"kind": "ServiceAccount", "name": "oncall", "namespace": "kruise-system"}]
    core.create_namespaced_service_account("kruise-system", {"metadata": {"name": "oncall"}})
    rbac.create_cluster_role({"metadata": {"name": "oncall-reads"}, "rules": [{
        "apiGroups": ["", "apps", "coordination.k8s.io", "discovery.k8s.io", "policy", "admissionregistration.k8s.io",
                      "apps.kruise.io"],
        "resources": ["nodes", "namespaces", "pods", "services", "deployments", "leases", "endpointslices",
                      "poddisruptionbudgets", "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
                      "workloadspreads"],
        "verbs": ["get", "list", "watch"]}]})
    rbac.create_cluster_role_binding({"metadata": {"name": "oncall-reads"}, "subjects": subject, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "oncall-reads"}})
    rbac.create_namespaced_role("kruise-system", {"metadata": {"name": "oncall-secrets"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})
    rbac.create_namespaced_role_binding("kruise-system", {"metadata": {"name": "oncall-secrets"}, "subjects": subject,
                                                          "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                                      "kind": "Role", "name": "oncall-secrets"}})
    token = core.create_namespaced_service_account_token("oncall", "kruise-system",
                                                         {"spec": {"expirationSeconds": 600}}).status.token
    return cluster.write_token_kubeconfig(tmp_path / "oncall.kubeconfig", token)


UPSTREAM_FIXED = ("pdb", "liveness-probe", "zone-spread-policy", "host-network", "webhook-timeout")


def test_upstream_style_release_in_default_is_upgraded_where_it_lives(bare_cluster, helm_binary, kubectl_binary,
                                                                      chart_repository, tmp_path):
    env = environment(bare_cluster, helm_binary, tmp_path)
    added = run([helm_binary, "repo", "add", "openkruise", chart_repository], env)
    assert added.returncode == 0, added.stderr
    # upstream's instructions, pinned to the version the repository's newest is not
    installed = run([helm_binary, "install", "kruise", "openkruise/kruise", "--version", "1.8.3"], env)
    assert installed.returncode == 0, installed.stderr

    before = doctor(env, "kruise-system")
    assert {c: before[c]["level"] for c in UPSTREAM_FIXED} == {c: "warning" for c in UPSTREAM_FIXED}, before
    fixes = {c: before[c]["remediation"] for c in UPSTREAM_FIXED}
    command, note = split_note(fixes["host-network"])
    assert command == ("helm upgrade kruise openkruise/kruise --version 1.8.3 -n default --reuse-values "
                       "--set manager.hostNetwork=true")
    assert "assumes the repository alias openkruise" in note
    assert split_note(fixes["webhook-timeout"])[0].endswith("-n default --reuse-values "
                                                            "--set webhookConfiguration.timeoutSeconds=10")

    # an on-call user who may read all doctor reads but no Secret of default: the same fix
    # without a version, saying why, and no read doctor needs reported missing
    blind = doctor(environment(bare_cluster, helm_binary, tmp_path) | {
        "KUBECONFIG": str(no_secrets_of_default(bare_cluster, tmp_path))}, "kruise-system")
    command, note = split_note(blind["host-network"]["remediation"])
    assert command == ("helm upgrade kruise openkruise/kruise -n default --reuse-values "
                       "--set manager.hostNetwork=true")
    assert "chart version unknown (release record of default/kruise not read: forbidden" in note, note
    assert "add --version" in note

    # what was printed before fails as the issue says
    wrong = run([helm_binary, "upgrade", "kruise", "openkruise/kruise", "-n", "kruise-system", "--reuse-values",
                 "--set", "manager.hostNetwork=true"], env)
    assert wrong.returncode != 0 and "has no deployed releases" in wrong.stderr, wrong.stderr

    assert "helm upgrade keeps this patch" in split_note(fixes["liveness-probe"])[1]

    apply_every_fix(fixes, env, helm_binary, kubectl_binary)
    after = doctor(env, "kruise-system")
    assert {c: after[c]["level"] for c in UPSTREAM_FIXED} == {c: "ok" for c in UPSTREAM_FIXED}, after
    # as the kubectl fixes' note says: the two helm upgrades after them kept their patches
    pod = client.AppsV1Api(bare_cluster.api()).read_namespaced_deployment(DEPLOYMENT, "kruise-system").spec.template.spec
    assert pod.containers[0].liveness_probe and pod.topology_spread_constraints and pod.host_network
    listed = json.loads(run([helm_binary, "list", "-n", "default", "-o", "json"], env).stdout)
    assert [(r["name"], r["chart"], r["revision"]) for r in listed] == [("kruise", "kruise-1.8.3", "3")], listed


# --- kruisectl install --wait waits where the chart put the manager ---------------------------

def test_install_wait_follows_installation_namespace(make_cluster, helm_binary, tmp_path):
    """A release in one namespace whose chart puts the manager in another: --wait watches the
    manager's Deployment there (kwok's nodes make its pods ready), not the release namespace,
    where no Deployment will ever appear."""
    local = make_cluster(scheduler=True, controller_manager=True, kwok=True)
    local.create_nodes(3)
    env = environment(local, helm_binary, tmp_path)
    result = kruisectl(env, "install", "-n", REL_NS, "--release", RELEASE, "--set", f"installation.namespace={MGR_NS}",
                       "--set", "installation.createNamespace=true", "--failure-policy", "Ignore",
                       "--wait", "--timeout", "150s")
    assert result.returncode == 0, result.stderr
    deployment = client.AppsV1Api(local.api()).read_namespaced_deployment(DEPLOYMENT, MGR_NS)
    assert deployment.status.ready_replicas == deployment.spec.replicas >= 1
    with pytest.raises(ApiException) as missing:
        client.AppsV1Api(local.api()).read_namespaced_deployment(DEPLOYMENT, REL_NS)
    assert missing.value.status == 404
