"""Doctor: every failure mode of kruise-manager's high-availability design, checked.

Each check turns the Inventory (and the status report built from it) into one Finding with a
severity and a remediation. Checks are plain functions listed in CHECKS, in the order an
on-call engineer should read them.
"""

from __future__ import annotations

import functools
from collections import Counter

from . import workloadspreads
from .capacity import selector_matches, surge_fit
from .findings import Finding
from .installation import KRUISECTL_CHART, Installation, detect, manager_container, patch_webhooks
from .inventory import MONITORING_API, Inventory
from kubekit import kruise
from kubekit.labels import selector_matches as labels_match, unmatched_requirements
from .status import NO_ZONE, build, leader_not_found

SYSTEM_NAMESPACES = ("kube-system",)
CERT_WARNING_DAYS = 30
CERT_ERROR_DAYS = 7
# A pod webhook may hold a pod create this long on a hung replica; the API's default is 10 s
# (upstream's chart sets 30 s).
WEBHOOK_TIMEOUT_WARNING_S = 10


def installation(inv: Inventory) -> Installation:
    return detect(inv.deployment, inv.names.namespace, inv.names.deployment, inv.helm_release, inv.helm_release_error)


def check_leader(inv: Inventory, report: dict) -> Finding:
    leader = report["leader"]
    evidence = {k: leader[k] for k in ("holder", "pod", "node", "zone", "renewedAgoSeconds", "leaseDurationSeconds")}
    if not leader["exists"]:
        return Finding("leader", "error", f"no Lease {inv.names.namespace}/{inv.names.lease}: no controller leads",
                       "check that the manager runs with --enable-leader-election and can write Leases in its namespace",
                       evidence)
    if leader["stale"]:
        return Finding("leader", "error", f"leader {leader['holder']} stopped renewing: no controller is reconciling",
                       "look at the holder pod (hung or partitioned?); a healthy replica takes over after the lease "
                       "duration; if none does, check the replicas' logs for leader-election errors", evidence)
    not_found = leader_not_found(report)
    if not_found:
        return Finding("leader", "warning", not_found,
                       f"kubectl -n {inv.names.namespace} get pods -l {inv.names.selector} -o wide; the holder renews "
                       "from outside this Deployment if the warning stays past the lease duration", evidence)
    how = f" (on node {leader['node']}: host network names the holder by its node)" if leader.get("holderFoundBy") == "node" else ""
    return Finding("leader", "ok", f"{leader['pod']} leads{how}, renewed {leader['renewedAgoSeconds']:.0f}s ago",
                   evidence=evidence)


def check_ready_replicas(inv: Inventory, report: dict) -> Finding:
    ready = [r["pod"] for r in report["replicas"] if r["ready"]]
    evidence = {"ready": ready, "replicas": len(report["replicas"])}
    # taken out by the leader because neither it nor another replica reaches them (docs/node-loss.md)
    unreachable = [r["pod"] for r in report["replicas"] if r.get("webhookReachable") == "False"]
    if unreachable:
        evidence["unreachableByPeers"] = unreachable
    if not ready:
        return Finding("ready-replicas", "error", "no ready replica: the webhook has no endpoint",
                       "kubectl -n {0} describe pods -l control-plane=controller-manager; "
                       "check readiness (/readyz) and the webhook certificate".format(inv.names.namespace), evidence)
    if len(ready) < 2:
        return Finding("ready-replicas", "warning", f"only {len(ready)} ready replica: one failure stops the webhook",
                       installation(inv).fix_replicas(3), evidence)
    return Finding("ready-replicas", "ok", f"{len(ready)} ready replicas", evidence=evidence)


def check_spread(inv: Inventory, report: dict) -> Finding:
    scheduled = [r for r in report["replicas"] if r["node"]]
    nodes = Counter(r["node"] for r in scheduled)
    zones = Counter(r["zone"] or NO_ZONE for r in scheduled)
    evidence = {"replicasPerNode": dict(nodes), "replicasPerZone": dict(zones)}
    if len(scheduled) < 2:
        return Finding("spread", "info", "fewer than 2 scheduled replicas: nothing to spread", evidence=evidence)
    if len(nodes) == 1:
        return Finding("spread", "error", f"all replicas on one node ({next(iter(nodes))}): a node failure stops the webhook",
                       "spread replicas over nodes (pod anti-affinity by kubernetes.io/hostname)", evidence)
    real_zones = [z for z in zones if z != NO_ZONE]
    if len(real_zones) <= 1 and NO_ZONE not in zones:
        return Finding("spread", "warning", f"all replicas in one zone ({real_zones[0] if real_zones else '?'})",
                       "add nodes in other zones or set whenUnsatisfiable: DoNotSchedule to force spreading", evidence)
    return Finding("spread", "ok", f"replicas over {len(nodes)} nodes and {len(real_zones)} zone(s)", evidence=evidence)


def check_zone_labels(inv: Inventory, report: dict) -> Finding:
    hosting = sorted({r["node"] for r in report["replicas"] if r["node"] and not r["zone"]})
    all_nodes = inv.all_nodes or []
    unlabelled = [n["metadata"]["name"] for n in all_nodes if not (n["metadata"].get("labels") or {}).get(kruise.ZONE_LABEL)]
    evidence = {"replicaNodesWithoutZone": hosting, "clusterNodesWithoutZone": len(unlabelled), "clusterNodes": len(all_nodes)}
    fix = ("label them, e.g. kruisectl label-zones --from-label <rack-label> --apply; "
           "zone spreading ignores nodes without " + kruise.ZONE_LABEL)
    if hosting:
        return Finding("zone-labels", "warning", f"replicas run on nodes without {kruise.ZONE_LABEL}: {', '.join(hosting)}",
                       fix, evidence)
    if unlabelled:
        return Finding("zone-labels", "info", f"{len(unlabelled)} of {len(all_nodes)} nodes lack {kruise.ZONE_LABEL}", fix, evidence)
    return Finding("zone-labels", "ok", "every node has a zone label", evidence=evidence)


def _zone_constraint(deployment: dict | None) -> dict | None:
    spec = ((deployment or {}).get("spec") or {}).get("template", {}).get("spec", {})
    return next((c for c in spec.get("topologySpreadConstraints") or [] if c.get("topologyKey") == kruise.ZONE_LABEL), None)


def check_when_unsatisfiable(inv: Inventory, report: dict) -> Finding:
    constraint = _zone_constraint(inv.deployment)
    zones = sorted({(n["metadata"].get("labels") or {}).get(kruise.ZONE_LABEL) for n in inv.all_nodes or []} - {None})
    evidence = {"whenUnsatisfiable": (constraint or {}).get("whenUnsatisfiable"), "zones": zones}
    if inv.deployment is None:
        return Finding("zone-spread-policy", "info", "no manager Deployment to check", evidence=evidence)
    if constraint is None:
        labels = inv.deployment["spec"]["template"].get("metadata", {}).get("labels") or {}
        return Finding("zone-spread-policy", "warning", "no topologySpreadConstraint on the zone label",
                       installation(inv).fix_zone_spread(labels), evidence)
    if constraint.get("whenUnsatisfiable") == "DoNotSchedule" and len(zones) < 2:
        return Finding("zone-spread-policy", "error",
                       f"DoNotSchedule with {len(zones)} zone(s): replicas beyond the skew cannot be scheduled",
                       "label nodes with zones (kruisectl label-zones) or use ScheduleAnyway", evidence)
    policy = constraint.get("whenUnsatisfiable", "DoNotSchedule")
    if policy == "ScheduleAnyway" and len(zones) >= 2:
        index = (inv.deployment["spec"]["template"]["spec"].get("topologySpreadConstraints") or []).index(constraint)
        return Finding("zone-spread-policy", "info", f"ScheduleAnyway over {len(zones)} zones: the spread is a preference, "
                       "so replicas can pile into one zone when others are short of room; DoNotSchedule enforces it but "
                       "leaves replicas Pending while a zone has no room",
                       installation(inv).fix_when_unsatisfiable("DoNotSchedule", index), evidence)
    return Finding("zone-spread-policy", "ok", f"{policy} over {len(zones)} zone(s)", evidence=evidence)


def check_surge_capacity(inv: Inventory, report: dict) -> Finding:
    if inv.deployment is None or inv.all_nodes is None or inv.all_pods is None:
        return Finding("surge-capacity", "info", "not checked: the Deployment, nodes or pods could not be read")
    fit = surge_fit(inv.deployment, inv.all_nodes, inv.all_pods)
    evidence = {"wanted": fit.wanted, "fits": fit.fits, "recommendedMaxSurge": fit.recommended_max_surge,
                "reasons": fit.reasons}
    if fit.fits < fit.wanted:
        return Finding("surge-capacity", "warning",
                       f"the next rollout wants {fit.wanted} surge pod(s) but only {fit.fits} fit now: it would stall",
                       f"kruisectl rollout tune --max-surge {max(fit.recommended_max_surge, 1)} (or add capacity)", evidence)
    return Finding("surge-capacity", "ok", f"all {fit.wanted} surge pod(s) of the next rollout fit", evidence=evidence)


def check_host_network(inv: Inventory, report: dict) -> Finding:
    spec = ((inv.deployment or {}).get("spec") or {}).get("template", {}).get("spec", {})
    if inv.deployment is None:
        return Finding("host-network", "info", "no manager Deployment to check")
    if not spec.get("hostNetwork"):
        return Finding("host-network", "warning", "the manager does not use host network: it depends on the CNI, "
                       "which may itself need the pod webhook (cyclic dependency)",
                       installation(inv).fix_host_network(), {"hostNetwork": False})
    return Finding("host-network", "ok", "host network", evidence={"hostNetwork": True})


def excludes_namespace(webhook: dict, labels: dict[str, str]) -> bool:
    """The apiserver never calls ``webhook`` for objects in a namespace with ``labels``: its
    namespaceSelector does not match them (an objectSelector only skips some objects)."""
    return not labels_match(webhook.get("namespaceSelector"), labels)


def exclusion_fix(inv: Inventory, webhook: dict, namespace: str) -> str:
    """How to make ``webhook`` skip ``namespace`` for good: a label of the namespace that one
    of its selector's requirements excludes by (upstream's pod webhooks skip namespaces with
    a control-plane label), else this chart's upgrade, else a patch of the configuration."""
    selector = webhook.get("namespaceSelector") or {}
    labels = inv.namespace_labels(namespace)
    for requirement in selector.get("matchExpressions") or []:
        key, operator, values = requirement.get("key"), requirement.get("operator"), requirement.get("values") or []
        if key == "kubernetes.io/metadata.name":
            continue
        if operator == "NotIn" and values:
            return f"kubectl label namespace {namespace} {key}={values[0]}"
        if operator == "DoesNotExist":
            return f"kubectl label namespace {namespace} {key}={namespace}"
        if operator in ("In", "Exists") and key in labels:
            return f"kubectl label namespace {namespace} {key}-"
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) == value:
            return f"kubectl label namespace {namespace} {key}-"
    installed = installation(inv)
    if installed.kind == KRUISECTL_CHART:
        return installed.upgrade(why="the chart excludes kube-system and the manager's namespace")
    found = _configuration_of(inv, webhook)
    if found is None:
        return f"add {namespace} to a kubernetes.io/metadata.name NotIn requirement of {webhook.get('name')}'s namespaceSelector"
    kind, configuration, index = found
    requirement = {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [namespace]}
    if "matchExpressions" in selector:
        operation = {"op": "add", "path": f"/webhooks/{index}/namespaceSelector/matchExpressions/-", "value": requirement}
    else:
        operation = {"op": "add", "path": f"/webhooks/{index}/namespaceSelector",
                     "value": {**selector, "matchExpressions": [requirement]}}
    return patch_webhooks(kind, configuration, [operation])


def _configuration_of(inv: Inventory, webhook: dict) -> tuple[str, dict, int] | None:
    """(kind, configuration, index) of a webhook of the manager's configurations."""
    for kind, configuration in (("mutatingwebhookconfiguration", inv.mutating),
                                ("validatingwebhookconfiguration", inv.validating)):
        for index, candidate in enumerate((configuration or {}).get("webhooks") or []):
            if candidate is webhook:
                return kind, configuration, index
    return None


def pod_webhooks(configuration: dict | None) -> list[dict]:
    return [w for w in (configuration or {}).get("webhooks") or []
            if any("pods" in (r.get("resources") or []) for r in w.get("rules") or [])]


def every_pod_webhook(inv: Inventory) -> list[dict]:
    """The pod webhooks of the manager's mutating, then validating, configuration."""
    return pod_webhooks(inv.mutating) + pod_webhooks(inv.validating)


def _no_configurations(inv: Inventory, check: str) -> Finding | None:
    """The finding of a check of the webhook configurations (ON_CONFIGURATIONS) when neither
    exists: nothing to judge."""
    if inv.mutating is None and inv.validating is None:
        return Finding(check, "info", f"webhook configurations {inv.names.mutating} and {inv.names.validating} not found")
    return None


def check_namespace_exclusion(inv: Inventory, report: dict) -> Finding:
    missing, fixes, matched = [], [], {}
    for webhook in every_pod_webhook(inv):
        for namespace in dict.fromkeys((*SYSTEM_NAMESPACES, inv.names.namespace)):
            labels = inv.namespace_labels(namespace)
            if not excludes_namespace(webhook, labels):
                missing.append(f"{webhook['name']} does not exclude {namespace}")
                fixes.append(exclusion_fix(inv, webhook, namespace))
                matched[f"{webhook['name']}/{namespace}"] = {"namespaceSelector": webhook.get("namespaceSelector"),
                                                               "namespaceLabels": labels}
    if missing:
        return Finding("namespace-exclusion", "error", "; ".join(missing) + ": a manager outage can block its own "
                       "pods and system pods (cyclic dependency)", "; ".join(dict.fromkeys(fixes)),
                       {"missing": missing, "matched": matched})
    skipped_by = {f"{w['name']}/{ns}": unmatched_requirements(w.get("namespaceSelector"), inv.namespace_labels(ns))
                  for w in every_pod_webhook(inv)
                  for ns in dict.fromkeys((*SYSTEM_NAMESPACES, inv.names.namespace))}
    return Finding("namespace-exclusion", "ok", f"pod webhooks skip kube-system and {inv.names.namespace}",
                   evidence={"skippedBy": skipped_by})


def check_webhook_timeout(inv: Inventory, report: dict) -> Finding:
    timeouts = {w["name"]: w.get("timeoutSeconds", 10) for w in every_pod_webhook(inv)}
    long = {name: t for name, t in timeouts.items() if t > WEBHOOK_TIMEOUT_WARNING_S}
    if long:
        worst = max(long.values())
        targets = [_configuration_of(inv, w) for w in every_pod_webhook(inv)
                   if w.get("timeoutSeconds", 10) > WEBHOOK_TIMEOUT_WARNING_S]
        configurations = [(kind, configuration, [i for k, c, i in targets if c is configuration])
                          for kind, configuration in (("mutatingwebhookconfiguration", inv.mutating),
                                                      ("validatingwebhookconfiguration", inv.validating))]
        return Finding("webhook-timeout", "warning",
                       f"{', '.join(f'{n} waits up to {t}s' for n, t in sorted(long.items()))}: a hung replica holds "
                       f"every pod create sent down its connection that long before failurePolicy applies",
                       installation(inv).fix_webhook_timeout(WEBHOOK_TIMEOUT_WARNING_S, configurations),
                       {"timeoutSeconds": timeouts, "worst": worst})
    return Finding("webhook-timeout", "ok", f"pod webhooks time out within {max(timeouts.values(), default=10)}s",
                   evidence={"timeoutSeconds": timeouts})


def check_liveness_probe(inv: Inventory, report: dict) -> Finding:
    found = manager_container(inv.deployment)
    if inv.deployment is None or found is None:
        return Finding("liveness-probe", "info", "no manager Deployment to check")
    index, container = found
    probe = container.get("livenessProbe")
    if not probe:
        return Finding("liveness-probe", "warning", f"container {container.get('name')} has no liveness probe: a hung "
                       "manager is taken out of the endpoints by its readiness probe but never restarted",
                       installation(inv).fix_liveness_probe(index), {"container": container.get("name")})
    return Finding("liveness-probe", "ok", f"liveness probe on {container.get('name')}",
                   evidence={"livenessProbe": probe})


def check_failure_policy(inv: Inventory, report: dict) -> Finding:
    failing = [w["name"] for w in every_pod_webhook(inv)
               if w.get("failurePolicy", "Fail") == "Fail"]
    endpoints = report["webhook"]["readyEndpoints"]
    evidence = {"failPolicyWebhooks": failing, "readyEndpoints": endpoints}
    if failing and not endpoints:
        return Finding("failure-policy", "error", "failurePolicy Fail with no ready endpoint: pod creation is blocked "
                       "in every namespace the webhook matches",
                       "bring a replica back (kruisectl status), or temporarily set failurePolicy Ignore", evidence)
    if failing:
        return Finding("failure-policy", "info", f"failurePolicy Fail on {', '.join(failing)}: pod creation in matched "
                       f"namespaces fails while no replica answers ({len(endpoints)} ready endpoint(s) now"
                       + (": one more failure blocks it)" if len(endpoints) < 2 else ")"),
                       "keep replicas spread over nodes and zones (Ignore would admit pods without their sidecars)",
                       evidence)
    return Finding("failure-policy", "ok", f"failurePolicy Ignore: pod creation never waits on a missing webhook, "
                   f"but pods created then lack their sidecars ({len(endpoints)} ready endpoints)", evidence=evidence)


def check_pdb(inv: Inventory, report: dict) -> Finding:
    if inv.pdbs is None:
        return Finding("pdb", "info", "PodDisruptionBudgets could not be read")
    labels = (((inv.deployment or {}).get("spec") or {}).get("template", {}).get("metadata", {}).get("labels")) or {}
    covering = [p["metadata"]["name"] for p in inv.pdbs if selector_matches(p.get("spec", {}).get("selector"), labels)]
    if not covering:
        return Finding("pdb", "warning", "no PodDisruptionBudget: a node drain may evict every replica at once",
                       installation(inv).fix_pdb(inv.names.selector))
    return Finding("pdb", "ok", f"PodDisruptionBudget {', '.join(covering)}", evidence={"pdbs": covering})


def check_certificate(inv: Inventory, report: dict) -> Finding:
    days = report["webhook"]["certExpiresInDays"]
    evidence = {"notAfter": report["webhook"]["certNotAfter"], "caBundle": report["webhook"]["caBundle"]}
    if days is None:
        return Finding("certificate", "warning", f"no serving certificate in Secret {inv.names.secret}",
                       "the manager writes it on start; check its logs", evidence)
    if days < CERT_ERROR_DAYS:
        return Finding("certificate", "error", f"serving certificate expires in {days:g} days",
                       "restart the manager or rotate the Secret's certificate", evidence)
    if days < CERT_WARNING_DAYS:
        return Finding("certificate", "warning", f"serving certificate expires in {days:g} days",
                       "make sure rotation runs (manager logs) before it expires", evidence)
    if report["webhook"]["caBundle"] not in ("ok", "unknown"):
        return Finding("certificate", "error", f"caBundle {report['webhook']['caBundle']}: the apiserver will not trust "
                       "the webhook (x509: unknown authority)", "restart a manager replica to re-patch the caBundle",
                       evidence)
    return Finding("certificate", "ok", f"certificate valid for {days:g} more days, caBundle {report['webhook']['caBundle']}",
                   evidence=evidence)


def check_zone_failure(inv: Inventory, report: dict) -> Finding:
    ready = [r for r in report["replicas"] if r["ready"]]
    zones = sorted({r["zone"] or NO_ZONE for r in ready})
    fatal = [z for z in zones if all((r["zone"] or NO_ZONE) == z for r in ready)]
    per_zone = Counter(r["zone"] or NO_ZONE for r in ready)
    # The prediction a real zone loss is checked against (tests/drill/test_machine_loss.py).
    evidence = {"readyReplicasPerZone": dict(per_zone),
                "readyReplicasLeftIfZoneLost": {z: len(ready) - n for z, n in sorted(per_zone.items())}}
    if not ready:
        return Finding("zone-failure", "info", "no ready replica: nothing to lose", evidence=evidence)
    if fatal:
        return Finding("zone-failure", "warning", f"losing zone {fatal[0]} would leave no ready replica and no leader candidate",
                       "spread replicas over at least 2 zones (label nodes, DoNotSchedule)", evidence)
    return Finding("zone-failure", "ok", f"any single zone can fail: ready replicas in {len(zones)} zones", evidence=evidence)


ALERT_METRIC_PREFIX = "kruise_manager_"  # what the chart's alerts (and any rule of this manager's) read


def _monitor_namespaces(monitor: dict) -> tuple[bool, list[str]]:
    """(any namespace, names) a ServiceMonitor or PodMonitor looks in (its own by default)."""
    selector = (monitor.get("spec") or {}).get("namespaceSelector") or {}
    if selector.get("any"):
        return True, []
    return False, selector.get("matchNames") or [monitor["metadata"].get("namespace")]


def scraping_monitors(inv: Inventory) -> list[str]:
    """ServiceMonitors selecting a Service of the manager's namespace whose selector picks the
    manager's pods, and PodMonitors picking them directly: what puts its metrics in Prometheus."""
    ns = inv.names.namespace
    pod_labels = (((inv.deployment or {}).get("spec") or {}).get("template", {}).get("metadata", {}).get("labels")) \
        or ((inv.pods or [{}])[0].get("metadata", {}).get("labels")) or {}
    manager_services = [svc for svc in inv.services or [] if (svc.get("spec") or {}).get("selector")
                        and selector_matches({"matchLabels": svc["spec"]["selector"]}, pod_labels)]
    found = []
    for kind, monitors in (("servicemonitor", inv.service_monitors), ("podmonitor", inv.pod_monitors)):
        for monitor in monitors or []:
            anywhere, names = _monitor_namespaces(monitor)
            if not anywhere and ns not in names:
                continue
            selector = (monitor.get("spec") or {}).get("selector")
            targets = [svc["metadata"].get("labels") or {} for svc in manager_services] if kind == "servicemonitor" \
                else [pod_labels]
            if any(selector_matches(selector, labels) for labels in targets):
                found.append(f"{kind} {monitor['metadata'].get('namespace')}/{monitor['metadata']['name']}")
    return found


def alerting_rules(inv: Inventory) -> dict[str, list[str]]:
    """PrometheusRule (namespace/name) -> its alerts, for each rule with an alert on the
    manager's metrics of this namespace (an expression naming no namespace counts; one naming
    another installation's does not)."""
    ns = inv.names.namespace
    found = {}
    for rule in inv.prometheus_rules or []:
        alerts = [r for g in (rule.get("spec") or {}).get("groups") or [] for r in g.get("rules") or [] if r.get("alert")]
        exprs = [str(r.get("expr", "")) for r in alerts]
        if any(ALERT_METRIC_PREFIX in e and (f'namespace="{ns}"' in e or "namespace=" not in e) for e in exprs):
            found[f"{rule['metadata'].get('namespace')}/{rule['metadata']['name']}"] = [r["alert"] for r in alerts]
    return found


def check_alerts(inv: Inventory, report: dict) -> Finding:
    installed = installation(inv)
    enable = installed.upgrade(["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"],
                               why="the chart's ServiceMonitor and alerts (docs/alerts.md)") \
        if installed.kind == KRUISECTL_CHART else None
    if "monitoring" in inv.absent:
        return Finding("alerts", "warning", f"no {MONITORING_API} API (prometheus-operator's CRDs): no alert pages "
                       "on-call when the leader, the webhook or its certificate fails",
                       "install prometheus-operator (e.g. kube-prometheus-stack) and kube-state-metrics"
                       + (f", then {enable}" if enable else "; kruisectl's chart ships the alerts (docs/alerts.md)"),
                       {"api": MONITORING_API})
    if inv.monitoring is None:
        return Finding("alerts", "info", "not checked: prometheus-operator's API was not read")
    rules, monitors = alerting_rules(inv), scraping_monitors(inv)
    evidence = {"prometheusRules": rules, "monitors": monitors}
    if not rules:
        return Finding("alerts", "warning", f"alerts are off: no PrometheusRule has an alert on the manager's metrics "
                       f"({ALERT_METRIC_PREFIX}*) of {inv.names.namespace}",
                       enable or "kruisectl's chart ships them: metrics.prometheusRule.enabled (docs/alerts.md)", evidence)
    if not monitors:
        return Finding("alerts", "warning", f"{len(rules)} PrometheusRule(s) alert on the manager, but no ServiceMonitor "
                       f"or PodMonitor scrapes it: its alerts never see data",
                       (installed.upgrade(["metrics.serviceMonitor.enabled=true"]) if enable else None)
                       or "add a ServiceMonitor selecting a Service of the manager's metrics port", evidence)
    total = sum(len(alerts) for alerts in rules.values())
    return Finding("alerts", "ok", f"{total} alert(s) in {', '.join(rules)}; scraped by {', '.join(monitors)}",
                   evidence=evidence)


def _over_workloadspreads(check_id: str, find, fine: str):
    """A check of the WorkloadSpreads against the nodes: not checked when either could not be
    read, ok when there is no WorkloadSpread or ``find(workloadspreads, nodes)`` finds nothing
    (``fine`` says so); else the decorated function's warning about what it found."""
    def wrap(warn):
        @functools.wraps(warn)
        def checked(inv: Inventory, report: dict) -> Finding:
            if inv.workloadspreads is None or inv.all_nodes is None:
                return Finding(check_id, "info", "not checked: the WorkloadSpreads or the nodes could not be read")
            if not inv.workloadspreads:
                return Finding(check_id, "ok", "no WorkloadSpread")
            found = find(inv.workloadspreads, inv.all_nodes)
            if not found:
                return Finding(check_id, "ok", f"{len(inv.workloadspreads)} WorkloadSpread(s): {fine}")
            return warn(found)
        return checked
    return wrap


@_over_workloadspreads("workloadspread-labels", workloadspreads.label_gaps,
                       "every schedulable node carries the labels their subsets select on")
def check_workloadspread_labels(gaps: list[dict]) -> Finding:
    """Subsets select on node labels (the zone, mostly) that schedulable nodes lack: those
    nodes are outside every subset that requires the label."""
    first = gaps[0]
    more = f" (and {len(gaps) - 1} more)" if len(gaps) > 1 else ""
    nodes = ", ".join(first["nodesWithout"][:5]) + (", ..." if len(first["nodesWithout"]) > 5 else "")
    return Finding("workloadspread-labels", "warning",
                   f"WorkloadSpread {first['workloadSpread']} subsets {', '.join(first['subsets'])} select on "
                   f"{first['key']}, which {len(first['nodesWithout'])} of {first['schedulableNodes']} schedulable "
                   f"nodes lack ({nodes}){more}", workloadspreads.label_fix(first["key"]), {"gaps": gaps})


@_over_workloadspreads("workloadspread-subsets", workloadspreads.unfillable,
                       "every required subset term matches a schedulable node")
def check_workloadspread_subsets(empty: list[dict]) -> Finding:
    """A subset whose requiredNodeSelectorTerm matches no schedulable node can never be filled:
    the pods the webhook puts in it stay Pending."""
    names = ", ".join(f"{e['workloadSpread']}/{e['subset']}" for e in empty)
    return Finding("workloadspread-subsets", "warning",
                   f"subset(s) no schedulable node matches, never filled: {names}",
                   "label nodes to match the subset's requiredNodeSelectorTerm (kruisectl label-zones for zones), "
                   "uncordon them, or fix the term", {"unfillable": empty})


def refuses_pod_deletions(webhook: dict) -> bool:
    """A webhook on pod DELETE or pods/eviction CREATE whose failurePolicy is Fail (WorkloadSpread's
    vpod.kb.io and vpodeviction.kb.io, as upstream registers them): with no replica to answer,
    the apiserver refuses what it matches."""
    if webhook.get("failurePolicy", "Fail") != "Fail":
        return False
    for rule in webhook.get("rules") or []:
        resources, operations = rule.get("resources") or [], set(rule.get("operations") or [])
        if ("pods" in resources and operations & {"DELETE", "*"}) or \
                ("pods/eviction" in resources and operations & {"CREATE", "*"}):
            return True
    return False


def check_workloadspread_drains(inv: Inventory, report: dict) -> Finding:
    """WorkloadSpread's pod delete and eviction webhooks keep its deletingPods; their policy is
    Fail, as upstream's, and they match every pod of the namespaces they cover (WorkloadSpread
    or not): while no replica answers, node drains and evictions there wait on the manager."""
    blocking = [(index, w) for index, w in enumerate((inv.validating or {}).get("webhooks") or [])
                if refuses_pod_deletions(w)]
    ready = [r["pod"] for r in report["replicas"] if r["ready"]]
    spreads = "" if inv.workloadspreads is None else f" and {len(inv.workloadspreads) or 'no'} WorkloadSpread(s)"
    names = ", ".join(w["name"] for _, w in blocking)
    evidence = {"webhooks": [w["name"] for _, w in blocking], "readyReplicas": ready,
                "workloadSpreads": None if inv.workloadspreads is None else len(inv.workloadspreads)}
    if not blocking:
        return Finding("workloadspread-drains", "ok", "no pod delete or eviction webhook with failurePolicy Fail: "
                       "drains never wait on the manager", evidence=evidence)
    if ready:
        return Finding("workloadspread-drains", "ok", f"{names} (failurePolicy Fail) answered by {len(ready)} ready "
                       "replica(s): pod deletions and evictions go through", evidence=evidence)
    ignore = [{"op": "replace", "path": f"/webhooks/{index}/failurePolicy", "value": "Ignore"} for index, _ in blocking]
    return Finding("workloadspread-drains", "warning",
                   f"no ready manager replica{spreads}: {names} (failurePolicy Fail) refuse every pod delete and "
                   "eviction in the namespaces they match, so node drains and evictions wait until a replica answers",
                   f"bring a replica back (kubectl -n {inv.names.namespace} describe pods -l {inv.names.selector}); to "
                   "drain before then, let them fail open for the drain's time and set them back to Fail after: "
                   + patch_webhooks("validatingwebhookconfiguration", inv.validating, ignore), evidence)


CHECKS = (check_leader, check_ready_replicas, check_spread, check_zone_labels, check_when_unsatisfiable,
          check_surge_capacity, check_host_network, check_liveness_probe, check_namespace_exclusion,
          check_webhook_timeout, check_failure_policy, check_pdb, check_certificate, check_zone_failure, check_alerts,
          check_workloadspread_labels, check_workloadspread_subsets, check_workloadspread_drains)


# Each check's id and the reads its verdict rests on: when one was refused the verdict is unknown.
NEEDS = {
    check_leader: ("leader", ("lease", "pods")),
    check_ready_replicas: ("ready-replicas", ("pods",)),
    check_spread: ("spread", ("pods", "node")),
    check_zone_labels: ("zone-labels", ("pods", "node", "all_nodes")),
    check_when_unsatisfiable: ("zone-spread-policy", ("deployment", "all_nodes")),
    check_surge_capacity: ("surge-capacity", ("deployment", "all_nodes", "all_pods")),
    check_host_network: ("host-network", ("deployment",)),
    check_liveness_probe: ("liveness-probe", ("deployment",)),
    check_namespace_exclusion: ("namespace-exclusion", ("mutating", "validating", "namespace")),
    check_webhook_timeout: ("webhook-timeout", ("mutating", "validating")),
    check_failure_policy: ("failure-policy", ("mutating", "validating", "endpoint_slices")),
    check_pdb: ("pdb", ("pdbs", "deployment")),
    check_certificate: ("certificate", ("secret", "mutating", "validating")),
    check_zone_failure: ("zone-failure", ("pods", "node")),
    check_alerts: ("alerts", ("monitoring", "prometheus_rules", "service_monitors", "pod_monitors", "services")),
    check_workloadspread_labels: ("workloadspread-labels", ("workloadspreads", "all_nodes")),
    check_workloadspread_subsets: ("workloadspread-subsets", ("workloadspreads", "all_nodes")),
    check_workloadspread_drains: ("workloadspread-drains", ("pods", "validating")),
}

# The checks of the manager's webhook configurations: with neither of them there is nothing to judge.
ON_CONFIGURATIONS = (check_namespace_exclusion, check_webhook_timeout, check_failure_policy)


def diagnose(inventory: Inventory, now=None) -> list[Finding]:
    """Every check's finding; ``now`` (default: the current time) judges the Lease and the
    certificate, so a recorded inventory can be diagnosed as of when it was recorded. A check
    whose reads were refused says "unknown" and which permission is missing, never a verdict."""
    report = build(inventory, now)
    findings = []
    for check in CHECKS:
        name, reads = NEEDS[check]
        denied = inventory.denied(*reads)
        absent = _no_configurations(inventory, name) if check in ON_CONFIGURATIONS else None
        if denied:
            findings.append(Finding(name, "info", f"unknown ({denied})",
                                    "grant that permission, or run doctor as a user who has it"))
        elif absent:
            findings.append(absent)
        else:
            findings.append(check(inventory, report))
    return findings
