"""status.build and doctor.diagnose over an inventory recorded from the chart's real managers
(3 replicas on hostlet nodes in 3 zones; private keys stripped), and over variants of it that
each break one part of the HA design. No cluster: every state of every check, table-driven."""

from __future__ import annotations

import copy
import datetime as dt
import json
import shlex
from pathlib import Path

import pytest

from kruisectl.doctor import diagnose
from kruisectl.inventory import Inventory
from kruisectl.status import build, problems
from kubekit import kruise

RECORDED = Path(__file__).with_name("recorded") / "chart-3-replicas-3-zones.json"


def recorded() -> dict:
    return json.loads(RECORDED.read_text())


def as_of(data: dict) -> dt.datetime:
    """The recording's moment: the Lease's last renewal."""
    return dt.datetime.fromisoformat(data["lease"]["spec"]["renewTime"].replace("Z", "+00:00"))


def findings(data: dict, now: dt.datetime | None = None) -> dict[str, tuple[str, str]]:
    return {f.check: (f.level, f.message) for f in diagnose(Inventory.from_dict(data), now or as_of(data))}


def test_the_recorded_install_reads_as_healthy():
    data = recorded()
    report = build(Inventory.from_dict(data), as_of(data))
    leader = report["leader"]
    assert leader["pod"] in {p["metadata"]["name"] for p in data["pods"]} and not leader["stale"]
    assert leader["node"] and leader["zone"] in ("zone-a", "zone-b", "zone-c")
    assert report["zones"]["replicasPerZone"] == {"zone-a": 1, "zone-b": 1, "zone-c": 1}
    assert report["zones"]["skew"] == 0 and report["zones"]["replicasOnNodesWithoutZone"] == []
    assert sorted(report["webhook"]["readyEndpoints"]) == sorted(p["status"]["podIP"] for p in data["pods"])
    assert report["webhook"]["caBundle"] == "ok" and report["webhook"]["certExpiresInDays"] > 300
    assert problems(report) == []
    found = findings(data)
    # Two trade-offs of the chart's defaults are told, never scored: failurePolicy Fail and
    # ScheduleAnyway (with 3 zones a hard spread would be possible). The recording predates
    # doctor's reads of prometheus-operator's API and of WorkloadSpreads: alerts and subsets are
    # not checked. Everything else is ok.
    assert {check for check, (level, _) in found.items() if level != "ok"} == {
        "failure-policy", "zone-spread-policy", "alerts", "workloadspread-labels", "workloadspread-subsets"}
    assert found["alerts"] == ("info", "not checked: prometheus-operator's API was not read")
    for check in ("workloadspread-labels", "workloadspread-subsets"):
        assert found[check] == ("info", "not checked: the WorkloadSpreads or the nodes could not be read")
    assert found["failure-policy"][0] == "info" and "fails while no replica answers (3 ready" in found["failure-policy"][1]
    assert found["zone-spread-policy"][0] == "info" and "ScheduleAnyway over 3 zones" in found["zone-spread-policy"][1]
    fixes = {f.check: f.remediation for f in diagnose(Inventory.from_dict(data), as_of(data))}
    assert fixes["zone-spread-policy"] == ("kruisectl upgrade -n kruise-system --release kruise "
                                           "--set manager.topologySpread.whenUnsatisfiable=DoNotSchedule")


def stale_lease(d):
    d["lease"]["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"


def no_lease(d):
    d["lease"] = None


def unready(pods):
    for pod in pods:
        for condition in pod["status"]["conditions"]:
            if condition["type"] == "Ready":
                condition["status"] = "False"


def one_ready(d):
    unready(d["pods"][1:])


def none_ready(d):
    unready(d["pods"])
    d["endpoint_slices"] = []


def one_node(d):
    node = d["pods"][0]["spec"]["nodeName"]
    for pod in d["pods"]:
        pod["spec"]["nodeName"] = node


def zones_removed(d):
    for node in list(d["nodes"].values()) + d["all_nodes"]:
        node["metadata"]["labels"].pop(kruise.ZONE_LABEL, None)


def do_not_schedule_without_zones(d):
    zones_removed(d)
    for c in d["deployment"]["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        c["whenUnsatisfiable"] = "DoNotSchedule"


def no_spread_constraint(d):
    d["deployment"]["spec"]["template"]["spec"].pop("topologySpreadConstraints")


def pod_network(d):
    d["deployment"]["spec"]["template"]["spec"]["hostNetwork"] = False


def webhook_not_excluding_own_namespace(d):
    for webhook in d["mutating"]["webhooks"]:
        webhook["namespaceSelector"] = {}


def no_pdb(d):
    d["pdbs"] = []


UPSTREAM_POD_WEBHOOK_SELECTOR = {"matchExpressions": [
    {"key": "control-plane", "operator": "NotIn", "values": ["openkruise"]},
    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]}


def namespace(name, **labels):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def upstream_selector(d, manager_namespace_labelled=True):
    """Upstream chart 1.8.3's pod webhook: it skips the manager's namespace by its label
    control-plane=openkruise, not by name."""
    for webhook in d["mutating"]["webhooks"]:
        webhook["namespaceSelector"] = copy.deepcopy(UPSTREAM_POD_WEBHOOK_SELECTOR)
    labels = {"control-plane": "openkruise"} if manager_namespace_labelled else {}
    d["namespaces"] = {"kube-system": namespace("kube-system"), "kruise-system": namespace("kruise-system", **labels)}


def upstream_selector_unlabelled(d):
    upstream_selector(d, manager_namespace_labelled=False)


def no_liveness_probe(d):
    d["deployment"]["spec"]["template"]["spec"]["containers"][0].pop("livenessProbe")


def upstream_timeout(d):
    for webhook in d["mutating"]["webhooks"]:
        webhook["timeoutSeconds"] = 30


def holder_by_node(d):
    """Host network under controller-runtime: the identity is the node's hostname."""
    leader = next(p for p in d["pods"] if d["lease"]["spec"]["holderIdentity"].startswith(p["metadata"]["name"]))
    d["lease"]["spec"]["holderIdentity"] = f"{leader['spec']['nodeName']}_0e4c7a1e-2b2f-4a57-9d54-0d2c2d0a6f0b"


def holder_by_node_of_a_gone_host_network_pod(d):
    """A rollout off host network: the Lease still names the node of the old leader (gone),
    while a new pod without host network runs on that node (its identity would be its name)."""
    holder_by_node(d)
    for pod in d["pods"]:
        pod["spec"]["hostNetwork"] = False


def holder_gone(d):
    d["lease"]["spec"]["holderIdentity"] = "kruise-controller-manager-6448c665b9-zzzzz_0e4c7a1e"


def ca_bundle_reset(d):
    for webhook in d["mutating"]["webhooks"]:
        webhook["clientConfig"]["caBundle"] = ""


@pytest.mark.parametrize("mutate, check, level, words", [
    (stale_lease, "leader", "error", "stopped renewing"),
    (no_lease, "leader", "error", "no controller leads"),
    (one_ready, "ready-replicas", "warning", "only 1 ready replica"),
    (none_ready, "ready-replicas", "error", "no ready replica"),
    (none_ready, "failure-policy", "error", "pod creation is blocked"),
    (one_node, "spread", "error", "all replicas on one node"),
    (zones_removed, "zone-labels", "warning", "replicas run on nodes without"),
    (do_not_schedule_without_zones, "zone-spread-policy", "error", "DoNotSchedule with 0 zone(s)"),
    (no_spread_constraint, "zone-spread-policy", "warning", "no topologySpreadConstraint"),
    (pod_network, "host-network", "warning", "does not use host network"),
    (webhook_not_excluding_own_namespace, "namespace-exclusion", "error", "does not exclude kruise-system"),
    (no_pdb, "pdb", "warning", "no PodDisruptionBudget"),
    (upstream_selector, "namespace-exclusion", "ok", "pod webhooks skip kube-system and kruise-system"),
    (upstream_selector_unlabelled, "namespace-exclusion", "error", "does not exclude kruise-system"),
    (no_liveness_probe, "liveness-probe", "warning", "has no liveness probe"),
    (upstream_timeout, "webhook-timeout", "warning", "waits up to 30s"),
    (holder_by_node, "leader", "ok", "host network names the holder by its node"),
    (holder_gone, "leader", "warning", "holder kruise-controller-manager-6448c665b9-zzzzz not found"),
    (holder_by_node_of_a_gone_host_network_pod, "leader", "warning", "not found"),
    (ca_bundle_reset, "certificate", "error", "will not trust the webhook"),
])
def test_each_broken_part_is_the_finding_that_names_it(mutate, check, level, words):
    data = copy.deepcopy(recorded())
    now = as_of(data)
    mutate(data)
    found = findings(data, now)
    assert found[check][0] == level and words in found[check][1], found[check]


@pytest.mark.parametrize("gone", [("mutating", "validating"), ("validating",), ("mutating",)])
def test_the_webhook_checks_judge_what_configurations_there_are(gone):
    """With neither configuration a webhook check has nothing to judge and says so; with one
    left it judges that one."""
    data = copy.deepcopy(recorded())
    for key in gone:
        data[key] = None
    found = findings(data)
    for check in ("namespace-exclusion", "webhook-timeout", "failure-policy"):
        nothing = found[check] == ("info", "webhook configurations kruise-mutating-webhook-configuration and "
                                           "kruise-validating-webhook-configuration not found")
        assert nothing is (len(gone) == 2), (check, found[check])


@pytest.mark.parametrize("days_later, level", [(400, "error"), (350, "warning"), (0, "ok")])
def test_certificate_expiry_as_time_passes(days_later, level):
    data = recorded()
    now = as_of(data) + dt.timedelta(days=days_later)
    data["lease"]["spec"]["renewTime"] = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the leader is still renewing
    assert findings(data, now)["certificate"][0] == level


MONITORING_DISCOVERY = {"kind": "APIResourceList", "groupVersion": "monitoring.coreos.com/v1", "resources": []}


def rule(namespace, name, *exprs):
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"groups": [{"name": "g", "rules": [
        {"alert": f"A{i}", "expr": expr} for i, expr in enumerate(exprs)]}]}}


def service_monitor(namespace, name, selector, matchNames=None):
    spec = {"selector": {"matchLabels": selector}, "endpoints": [{"port": "metrics"}]}
    if matchNames:
        spec["namespaceSelector"] = {"matchNames": matchNames}
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


METRICS_SERVICE = {"metadata": {"name": "kruise-manager-metrics", "labels": {"app.kubernetes.io/component": "metrics"}},
                   "spec": {"selector": {"app.kubernetes.io/name": "kruise", "app.kubernetes.io/instance": "kruise"}}}
OUR_RULE = rule("kruise-system", "kruise-manager", '(max(kruise_manager_is_leader{namespace="kruise-system"}) or vector(0)) < 1',
                'kube_deployment_status_replicas_available{namespace="kruise-system"} < 2')


def monitoring(d, rules=(), monitors=(), services=(METRICS_SERVICE,)):
    d.update(monitoring=MONITORING_DISCOVERY, prometheus_rules=list(rules), service_monitors=list(monitors),
             pod_monitors=[], services=list(services))


OUR_MONITOR = service_monitor("monitoring", "kruise-manager", {"app.kubernetes.io/component": "metrics"},
                              ["kruise-system"])


@pytest.mark.parametrize("mutate, level, words", [
    (lambda d: d.setdefault("absent", []).extend(["monitoring", "prometheus_rules", "service_monitors", "pod_monitors"]),
     "warning", "no monitoring.coreos.com/v1 API (prometheus-operator's CRDs)"),
    (lambda d: monitoring(d), "warning", "alerts are off: no PrometheusRule"),
    (lambda d: monitoring(d, [rule("kruise-system", "unrelated", "up == 0")], [OUR_MONITOR]), "warning", "alerts are off"),
    (lambda d: monitoring(d, [rule("other", "theirs", 'kruise_manager_is_leader{namespace="other"} < 1')], [OUR_MONITOR]),
     "warning", "alerts are off"),
    (lambda d: monitoring(d, [OUR_RULE]), "warning", "but no ServiceMonitor or PodMonitor scrapes it"),
    (lambda d: monitoring(d, [OUR_RULE], [service_monitor("monitoring", "x", {"app.kubernetes.io/component": "metrics"})]),
     "warning", "no ServiceMonitor"),  # looks in its own namespace only
    (lambda d: monitoring(d, [OUR_RULE], [service_monitor("kruise-system", "x", {"app": "something-else"})]),
     "warning", "no ServiceMonitor"),
    (lambda d: monitoring(d, [OUR_RULE], [OUR_MONITOR], services=[]), "warning", "no ServiceMonitor"),
    (lambda d: monitoring(d, [OUR_RULE], [OUR_MONITOR]), "ok",
     "2 alert(s) in kruise-system/kruise-manager; scraped by servicemonitor monitoring/kruise-manager"),
    (lambda d: monitoring(d, [rule("monitoring", "hand-written", "rate(kruise_manager_webhook_requests_total[5m]) > 1")],
                          [service_monitor("kruise-system", "m", {"app.kubernetes.io/component": "metrics"})]),
     "ok", "1 alert(s) in monitoring/hand-written"),
])
def test_alerts_off_or_on(mutate, level, words):
    data = copy.deepcopy(recorded())
    mutate(data)
    found = findings(data)
    assert found["alerts"][0] == level and words in found["alerts"][1], found["alerts"]


def test_alerts_off_names_the_charts_values_to_turn_them_on():
    data = copy.deepcopy(recorded())
    monitoring(data)
    fix = {f.check: f.remediation for f in diagnose(Inventory.from_dict(data), as_of(data))}["alerts"]
    assert fix.startswith("kruisectl upgrade -n kruise-system --release kruise --set metrics.serviceMonitor.enabled=true "
                          "--set metrics.prometheusRule.enabled=true"), fix


def test_refused_monitoring_reads_leave_alerts_unknown():
    data = copy.deepcopy(recorded())
    monitoring(data)
    data["prometheus_rules"] = None
    data["errors"]["prometheus_rules"], data["statuses"]["prometheus_rules"] = "forbidden: prometheusrules", 403
    found = findings(data)
    assert found["alerts"] == ("info", "unknown (forbidden: list prometheusrules.monitoring.coreos.com --all-namespaces)")


def as_viewer(d):
    """What a user with only the `view` role in the manager's namespace reads: no Lease, no
    Secret, nothing cluster-scoped."""
    for key in ("lease", "secret", "mutating", "validating", "all_nodes", "all_pods"):
        d[key] = None
        d["errors"][key], d["statuses"][key] = f"forbidden: {key}", 403
    for name in list(d["nodes"]):
        d["errors"][f"node/{name}"], d["statuses"][f"node/{name}"] = "forbidden: nodes", 403
    for name in ("kube-system", "kruise-system"):
        d["errors"][f"namespace/{name}"], d["statuses"][f"namespace/{name}"] = "forbidden: namespaces", 403
    d["nodes"] = {}


def test_refused_reads_are_unknown_never_missing():
    data = recorded()
    now = as_of(data)
    as_viewer(data)
    inventory = Inventory.from_dict(data)
    report = build(inventory, now)
    assert report["leader"]["unknown"] == "forbidden: get leases.coordination.k8s.io -n kruise-system"
    assert problems(report) == []  # not "no controller has ever led here"
    assert report["zones"]["replicasOnNodesWithoutZone"] == []  # not "nodes without a zone"
    assert report["webhook"]["caBundle"].startswith("unknown (forbidden: ") and "mutatingwebhookconfigurations" in \
        report["webhook"]["caBundle"]
    assert inventory.forbidden() == [
        "get leases.coordination.k8s.io -n kruise-system", "get mutatingwebhookconfigurations.admissionregistration.k8s.io",
        "get namespaces", "get nodes", "get secrets -n kruise-system", "get validatingwebhookconfigurations.admissionregistration.k8s.io",
        "list nodes", "list pods --all-namespaces"]
    found = findings(data, now)
    assert all(level != "error" and level != "warning" for level, _ in found.values()), found
    for check in ("leader", "spread", "zone-labels", "namespace-exclusion", "failure-policy", "certificate",
                  "zone-failure", "surge-capacity"):
        assert found[check][1].startswith("unknown (forbidden: "), (check, found[check])
    assert found["ready-replicas"][0] == "ok" and found["host-network"][0] == "ok"  # what it could read, it judges


def test_an_unreachable_cluster_is_fatal_and_a_refused_one_is_not():
    data = recorded()
    as_viewer(data)
    assert Inventory.from_dict(data).fatal() is None
    from kruisectl.inventory import READS, Names

    unreachable = Inventory(names=Names("kruise-system"), errors={k: "cannot reach the cluster" for k in READS},
                            statuses={k: 0 for k in READS})
    assert unreachable.fatal() == "cannot reach the cluster"


def test_the_fix_names_what_the_namespace_lacks():
    data = recorded()
    upstream_selector_unlabelled(data)
    fix = {f.check: f.remediation for f in diagnose(Inventory.from_dict(data), as_of(data))}["namespace-exclusion"]
    assert fix == "kubectl label namespace kruise-system control-plane=openkruise"


def test_a_holder_named_by_its_node_is_placed_on_that_node():
    data = recorded()
    holder_by_node(data)
    leader = build(Inventory.from_dict(data), as_of(data))["leader"]
    pod = next(p for p in data["pods"] if p["metadata"]["name"] == leader["pod"])
    assert (leader["holderFoundBy"], leader["node"]) == ("node", pod["spec"]["nodeName"])
    assert leader["zone"] in ("zone-a", "zone-b", "zone-c")


def kustomize_selector(d):
    """Upstream's kustomize install (config/default): its pod webhooks skip namespaces that
    carry a control-plane label at all; kruise-system does, kube-system does not."""
    for webhook in d["mutating"]["webhooks"]:
        webhook["namespaceSelector"] = {"matchExpressions": [{"key": "control-plane", "operator": "DoesNotExist"}]}
    d["namespaces"] = {"kube-system": namespace("kube-system"),
                       "kruise-system": namespace("kruise-system", **{"control-plane": "controller-manager"})}


def opt_in_selector(d):
    for webhook in d["mutating"]["webhooks"]:
        webhook["namespaceSelector"] = {"matchLabels": {"kruise.io/inject": "true"}}
    d["namespaces"] = {"kube-system": namespace("kube-system", **{"kruise.io/inject": "true"}),
                       "kruise-system": namespace("kruise-system")}


def name_selector_only(d):
    for webhook in d["mutating"]["webhooks"]:
        webhook["namespaceSelector"] = {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kruise-system"]}]}
    d["mutating"]["metadata"].setdefault("annotations", {})["template"] = "[]"  # upstream's manager keeps its copy
    d["deployment"]["metadata"]["annotations"] = {}  # applied as manifests: no helm release


@pytest.mark.parametrize("mutate, fix", [
    (kustomize_selector, "kubectl label namespace kube-system control-plane=kube-system"),
    (opt_in_selector, "kubectl label namespace kube-system kruise.io/inject-"),
])
def test_the_exclusion_fix_is_the_label_the_selector_excludes_by(mutate, fix):
    data = recorded()
    mutate(data)
    assert {f.check: f.remediation for f in diagnose(Inventory.from_dict(data), as_of(data))}["namespace-exclusion"] == fix


def test_without_such_a_label_the_exclusion_fix_patches_the_selector_and_drops_the_managers_copy():
    data = recorded()
    name_selector_only(data)
    fix = {f.check: f.remediation for f in diagnose(Inventory.from_dict(data), as_of(data))}["namespace-exclusion"]
    argv = shlex.split(fix)
    assert argv[:3] == ["kubectl", "patch", "mutatingwebhookconfiguration"] and argv[4:6] == ["--type", "json"]
    assert json.loads(argv[-1]) == [
        {"op": "remove", "path": "/metadata/annotations/template"},
        {"op": "add", "path": "/webhooks/0/namespaceSelector/matchExpressions/-",
         "value": {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}}]
