"""The chart rendered by the real helm: every HA default, every value that changes it, the
schema's refusals, and RBAC equal to the manager's own list of calls."""

from __future__ import annotations

import subprocess

import pytest

from kruisectl.helm import BUNDLED_CHART
from kubekit import kruise
from manager import rbac

from .conftest import KUBE_VERSION, render

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

DEPLOYMENT = ("Deployment", "kruise-controller-manager")


def pod_spec(objects, name="kruise-controller-manager"):
    return objects[("Deployment", name)]["spec"]["template"]["spec"]


def manager_container(objects, name="kruise-controller-manager"):
    return pod_spec(objects, name)["containers"][0]


def test_the_projects_helm_renders_the_chart_without_a_kube_version(helm_binary):
    """Built with its client-go's Kubernetes version (as helm's Makefile does), not v1.20,
    which the chart's kubeVersion refuses."""
    result = subprocess.run([helm_binary, "template", "kruise", str(BUNDLED_CHART)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout


def test_lint_is_clean(helm_binary):
    result = subprocess.run([helm_binary, "lint", "--strict", str(BUNDLED_CHART), "--kube-version", KUBE_VERSION],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_defaults_carry_the_ha_design(helm_binary):
    objects = render(helm_binary)
    deployment = objects[DEPLOYMENT]
    assert deployment["metadata"]["labels"]["control-plane"] == "controller-manager"
    spec = deployment["spec"]
    assert spec["replicas"] == 3 and spec["minReadySeconds"] == 5
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}
    pod = pod_spec(objects)
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["topologySpreadConstraints"] == [{
        "topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"control-plane": "controller-manager"}},
        "matchLabelKeys": ["pod-template-hash"]}]
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = manager_container(objects)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8000}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert "--role=all" in container["args"] and "--health-probe-addr=:8000" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["WEBHOOK_PORT"]["value"] == "9876"
    assert objects[("PodDisruptionBudget", "kruise-controller-manager")]["spec"]["maxUnavailable"] == 1
    service = objects[("Service", "kruise-webhook-service")]["spec"]
    assert service["ports"][0]["port"] == 443 and service["ports"][0]["targetPort"] == 9876
    assert service["selector"] == {"control-plane": "controller-manager"}


def test_pod_webhook_skips_kube_system_and_the_release_namespace_by_name(helm_binary):
    objects = render(helm_binary, "webhook.excludeNamespaces={team-infra}", namespace="ops-kruise")
    webhook = objects[("MutatingWebhookConfiguration", "kruise-mutating-webhook-configuration")]["webhooks"][0]
    assert webhook["name"] == "mpod.kb.io"
    assert webhook["namespaceSelector"] == {"matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "ops-kruise", "team-infra"]}]}
    assert webhook["clientConfig"]["service"] == {"name": "kruise-webhook-service", "namespace": "ops-kruise",
                                                  "path": "/mutate-pod", "port": 443}
    assert webhook["failurePolicy"] == "Fail" and webhook["timeoutSeconds"] == 10
    validating = objects[("ValidatingWebhookConfiguration", "kruise-validating-webhook-configuration")]["webhooks"][0]
    assert validating["name"] == "vsidecarset.kb.io"
    assert validating["clientConfig"]["service"]["path"] == "/validate-apps-kruise-io-v1alpha1-sidecarset"


def test_validating_webhooks_are_upstreams_for_what_the_manager_serves(helm_binary):
    """WorkloadSpread's: the object's validation, and pod DELETE and pods/eviction CREATE for
    its deletingPods (upstream's vpod.kb.io without pod UPDATE, which only its
    PodUnavailableBudget uses), the pod ones skipping what the pod webhook skips."""
    objects = render(helm_binary, "webhook.excludeNamespaces={team-infra}", namespace="ops-kruise")
    validating = objects[("ValidatingWebhookConfiguration", "kruise-validating-webhook-configuration")]["webhooks"]
    mutating = objects[("MutatingWebhookConfiguration", "kruise-mutating-webhook-configuration")]["webhooks"]
    found = {w["name"]: (w["clientConfig"]["service"]["path"], w["rules"], w.get("namespaceSelector")) for w in validating}
    skip = mutating[0]["namespaceSelector"]
    assert skip["matchExpressions"][0]["values"] == ["kube-system", "ops-kruise", "team-infra"]
    assert found == {
        "vsidecarset.kb.io": ("/validate-apps-kruise-io-v1alpha1-sidecarset", [{
            "operations": ["CREATE", "UPDATE"], "apiGroups": ["apps.kruise.io"], "apiVersions": ["v1alpha1"],
            "resources": ["sidecarsets"]}], None),
        "vpod.kb.io": (kruise.VALIDATE_POD_PATH, [{"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"],
                                                   "resources": ["pods"]}], skip),
        "vpodeviction.kb.io": (kruise.VALIDATE_POD_PATH, [{"operations": ["CREATE"], "apiGroups": [""],
                                                           "apiVersions": ["v1"], "resources": ["pods/eviction"]}], skip),
        "vworkloadspread.kb.io": (kruise.VALIDATE_WORKLOADSPREAD_PATH, [{
            "operations": ["CREATE", "UPDATE"], "apiGroups": ["apps.kruise.io"], "apiVersions": ["v1alpha1"],
            "resources": ["workloadspreads"]}], None),
    }
    for webhook in validating:
        assert webhook["failurePolicy"] == "Fail" and webhook["timeoutSeconds"] == 10
        assert webhook["clientConfig"]["service"]["namespace"] == "ops-kruise"


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                  "ValidatingWebhookConfiguration", "CustomResourceDefinition"}


def test_installation_namespace_puts_the_manager_outside_the_release_namespace(helm_binary):
    """As upstream's chart: the release stays where helm -n says, the manager and every
    namespaced object go to installation.namespace, and that is what the pod webhook skips."""
    objects = render(helm_binary, "installation.namespace=kruise-mgr", "installation.createNamespace=true",
                     namespace="default")
    placed = {key: o["metadata"].get("namespace") for key, o in objects.items() if key[0] not in CLUSTER_SCOPED}
    assert DEPLOYMENT in placed and set(placed.values()) == {"kruise-mgr"}, placed
    assert ("Namespace", "kruise-mgr") in objects
    webhook = objects[("MutatingWebhookConfiguration", "kruise-mutating-webhook-configuration")]["webhooks"][0]
    assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "kruise-mgr"]
    assert webhook["clientConfig"]["service"]["namespace"] == "kruise-mgr"
    binding = objects[("ClusterRoleBinding", "kruise-manager-kruise-mgr")]
    assert binding["subjects"][0]["namespace"] == "kruise-mgr"
    # unset, or the release namespace itself: everything there, and no Namespace object
    for sets in ((), ("installation.namespace=ops", "installation.createNamespace=true")):
        objects = render(helm_binary, *sets, namespace="ops")
        assert {o["metadata"].get("namespace") for k, o in objects.items() if k[0] not in CLUSTER_SCOPED} == {"ops"}
        assert not any(kind == "Namespace" for kind, _ in objects)


@pytest.mark.parametrize("value, check", [
    ("manager.replicas=5", lambda o: o[DEPLOYMENT]["spec"]["replicas"] == 5),
    ("manager.topologySpread.whenUnsatisfiable=DoNotSchedule",
     lambda o: pod_spec(o)["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule"),
    ("manager.topologySpread.enabled=false", lambda o: "topologySpreadConstraints" not in pod_spec(o)),
    ("manager.updateStrategy.rollingUpdate.maxSurge=1",
     lambda o: o[DEPLOYMENT]["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 1),
    ("manager.updateStrategy.rollingUpdate.maxUnavailable=1",
     lambda o: o[DEPLOYMENT]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 1),
    ("manager.hostNetwork=false",
     lambda o: pod_spec(o)["hostNetwork"] is False and pod_spec(o)["dnsPolicy"] == "ClusterFirst"),
    ("manager.ports.health=18000", lambda o: manager_container(o)["readinessProbe"]["httpGet"]["port"] == 18000
     and "--health-probe-addr=:18000" in manager_container(o)["args"]),
    ("manager.ports.webhook=19876", lambda o: o[("Service", "kruise-webhook-service")]["spec"]["ports"][0]["targetPort"]
     == 19876),
    ("manager.podAntiAffinity=required",
     lambda o: "requiredDuringSchedulingIgnoredDuringExecution" in pod_spec(o)["affinity"]["podAntiAffinity"]),
    ("manager.podAntiAffinity=none", lambda o: "affinity" not in pod_spec(o)),
    ("manager.priorityClassName=", lambda o: "priorityClassName" not in pod_spec(o)),
    ("manager.minReadySeconds=0", lambda o: o[DEPLOYMENT]["spec"]["minReadySeconds"] == 0),
    ("podDisruptionBudget.enabled=false", lambda o: ("PodDisruptionBudget", "kruise-controller-manager") not in o),
    ("webhook.failurePolicy=Ignore", lambda o: o[("MutatingWebhookConfiguration", "kruise-mutating-webhook-configuration")]
     ["webhooks"][0]["failurePolicy"] == "Ignore"),
    ("webhook.timeoutSeconds=5", lambda o: o[("ValidatingWebhookConfiguration", "kruise-validating-webhook-configuration")]
     ["webhooks"][0]["timeoutSeconds"] == 5),
    ("webhook.certMode=external", lambda o: {e["name"]: e.get("value") for e in manager_container(o)["env"]}
     ["WEBHOOK_CERT_MODE"] == "external"),
    ("manager.leaderElection.leaseDuration=30s",
     lambda o: "--leader-election-lease-duration=30s" in manager_container(o)["args"]),
])
def test_each_value_changes_what_it_names(helm_binary, value, check):
    assert check(render(helm_binary, value))


def test_split_roles_deploy_webhook_and_controller_apart(helm_binary):
    objects = render(helm_binary, "manager.role=split", "manager.controllerReplicas=2")
    webhook, controller = manager_container(objects), manager_container(objects, "kruise-controller")
    assert "--role=webhook" in webhook["args"] and "--role=controller" in controller["args"]
    assert objects[("Deployment", "kruise-controller")]["spec"]["replicas"] == 2
    assert controller["readinessProbe"]["httpGet"]["port"] != webhook["readinessProbe"]["httpGet"]["port"]
    assert not any(p["name"] == "webhook" for p in controller["ports"])
    assert objects[("Service", "kruise-webhook-service")]["spec"]["selector"] == {"control-plane": "controller-manager"}


def test_rbac_is_exactly_what_the_manager_calls(helm_binary):
    objects = render(helm_binary, namespace="ops")
    expected = rbac.rules("kruise-manager", "kruise-webhook-certs", "kruise-mutating-webhook-configuration",
                          "kruise-validating-webhook-configuration")
    assert objects[("Role", "kruise-manager")]["metadata"]["namespace"] == "ops"
    assert objects[("Role", "kruise-manager")]["rules"] == expected["namespaced"]
    assert objects[("ClusterRole", "kruise-manager-ops")]["rules"] == expected["cluster"]
    binding = objects[("RoleBinding", "kruise-manager")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kruise-manager", "namespace": "ops"}]


@pytest.mark.parametrize("value, message", [
    ("manager.replicas=0", "/manager/replicas"),
    ("manager.topologySpread.whenUnsatisfiable=Maybe", "whenUnsatisfiable"),
    ("webhook.failurePolicy=Sometimes", "failurePolicy"),
    ("manager.updateStrategy.rollingUpdate.maxSurge=lots", "maxSurge"),
    ("manager.ports.webhook=70000", "/manager/ports/webhook"),
    ("manager.leaderElection.leaseDuration=soon", "leaseDuration"),
    ("manager.role=both", "/manager/role"),
    ("installation.namespace=Kruise_System", "/installation/namespace"),
])
def test_schema_rejects_bad_values_with_the_field(helm_binary, value, message):
    assert message in render(helm_binary, value, expect_error=True)


def test_max_surge_and_max_unavailable_both_zero_is_refused(helm_binary):
    error = render(helm_binary, "manager.updateStrategy.rollingUpdate.maxSurge=0", expect_error=True)
    assert "maxSurge and maxUnavailable cannot both be 0" in error
    error = render(helm_binary, "manager.updateStrategy.rollingUpdate.maxSurge=0%",
                   "manager.updateStrategy.rollingUpdate.maxUnavailable=0%", expect_error=True)
    assert "cannot both be 0" in error


@pytest.mark.parametrize("values", [(), ("manager.role=split",), ("manager.leaderElection.enabled=false",),
                                    ("manager.extraArgs={--webhook-max-connections=64}",)])
def test_the_manager_accepts_the_arguments_the_chart_gives_it(helm_binary, values):
    from manager.options import parser

    objects = render(helm_binary, *values)
    for (kind, name), obj in objects.items():
        if kind == "Deployment":
            args = parser().parse_args(obj["spec"]["template"]["spec"]["containers"][0]["args"])
            assert args.enable_leader_election is ("manager.leaderElection.enabled=false" not in values)
            assert args.role in ("all", "webhook", "controller")


def test_the_charts_defaults_are_the_managers_defaults(helm_binary):
    """With the chart's defaults the manager runs with exactly its own defaults (one source:
    manager/options.py): a value in values.yaml that drifts from the option it sets fails here."""
    import dataclasses

    from manager.options import Options, parse

    container = manager_container(render(helm_binary))
    given = {arg.split("=", 1)[0] for arg in container["args"]}
    assert {"--webhook-max-requests-per-connection", "--webhook-max-connection-age", "--webhook-drain-delay",
            "--webhook-idle-timeout", "--leader-election-lease-duration", "--leader-election-renew-deadline",
            "--leader-election-retry-period", "--metrics-addr", "--health-probe-addr"} <= given, given
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    environ = {name: e["value"] for name, e in env.items() if "value" in e}
    environ["POD_NAMESPACE"] = "kruise-system"  # the release's namespace, through the fieldRef
    assert {"WEBHOOK_PORT", "WEBHOOK_CERT_DIR", "WEBHOOK_CERT_MODE", "SECRET_NAME", "SERVICE_NAME"} <= set(environ)
    rendered = parse(container["args"], environ=environ)
    drift = {f.name: (getattr(rendered, f.name), f.default) for f in dataclasses.fields(Options)
             if getattr(rendered, f.name) != f.default}
    assert drift == {}, "chart value vs manager default: " + repr(drift)


@pytest.mark.parametrize("values, gated", [((), True), (("manager.peerProbe.enabled=false",), False),
                                           (("manager.role=split",), False)])
def test_the_webhook_readiness_gate_comes_with_the_peer_probes(helm_binary, values, gated):
    """The gate only where a replica that probes its peers writes it (role all): a declared gate
    nobody writes would keep every pod unready."""
    from manager.options import parser
    from manager.peers import GATE

    objects = render(helm_binary, *values)
    deployment = objects[("Deployment", "kruise-controller-manager")]
    gates = deployment["spec"]["template"]["spec"].get("readinessGates") or []
    assert ([g["conditionType"] for g in gates] == [GATE]) is gated
    args = manager_container(objects)["args"]
    assert parser().parse_args(args).webhook_peer_probe  # the manager's default; inert without the gate
    # Without the gate no peer flag at all, so an older image that lacks them still starts.
    assert any(a.startswith("--webhook-peer-") for a in args) is gated
