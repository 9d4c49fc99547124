"""The chart's ServiceMonitor and PrometheusRule, rendered by the real helm: only when enabled,
what they select, their options, and every alert under promtool (firing and not firing)."""

from __future__ import annotations

import copy
import re
import shlex

import pytest
from click.testing import CliRunner

from kruisectl.cli import cli
from prometheus_client import REGISTRY

import manager.metrics  # noqa: F401 - registers the manager's metrics

from . import alerting
from .conftest import render

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

MONITORING = {"ServiceMonitor", "PrometheusRule"}
ALL_ALERTS = {"KruiseLeaderVacant", "KruiseWebhookErrors", "KruiseAdmissionLatencyHigh", "KruiseManagerReplicasLow",
              "KruiseManagerSingleZone", "KruiseWebhookCertificateExpiring", "KruiseManagerCrashLooping"}


# The sample names prometheus_client exposes for a metric family of each type.
SUFFIXES = {"gauge": ("",), "counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


def kinds(objects) -> set[str]:
    return {kind for kind, _ in objects}


def test_nothing_of_prometheus_is_rendered_by_default(helm_binary):
    """The monitoring.coreos.com API is not in every cluster: off by default, nothing of it."""
    objects = render(helm_binary)
    assert not kinds(objects) & MONITORING
    assert ("Service", "kruise-manager-metrics") not in objects
    only_rule = render(helm_binary, "metrics.prometheusRule.enabled=true")
    assert kinds(only_rule) & MONITORING == {"PrometheusRule"}
    only_monitor = render(helm_binary, "metrics.serviceMonitor.enabled=true")
    assert kinds(only_monitor) & MONITORING == {"ServiceMonitor"}
    assert ("Service", "kruise-manager-metrics") in only_monitor


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("role", ["all", "split"])
def test_service_monitor_scrapes_the_metrics_port_of_every_replica(helm_binary, role):
    objects = render(helm_binary, "metrics.serviceMonitor.enabled=true", f"manager.role={role}",
                     namespace="ops-kruise")
    monitor = objects[("ServiceMonitor", "kruise-manager")]
    service = objects[("Service", "kruise-manager-metrics")]
    assert monitor["metadata"]["namespace"] == "ops-kruise"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops-kruise"]}
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    others = [o for (kind, name), o in objects.items() if kind == "Service" and name != "kruise-manager-metrics"]
    assert others and not any(matches(monitor["spec"]["selector"]["matchLabels"], o["metadata"]["labels"])
                              for o in others), "the ServiceMonitor also selects the webhook Service"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert (endpoint["interval"], endpoint["scrapeTimeout"], endpoint["path"]) == ("30s", "10s", "/metrics")
    deployments = [o for (kind, _), o in objects.items() if kind == "Deployment"]
    assert len(deployments) == (2 if role == "split" else 1)
    for deployment in deployments:
        template = deployment["spec"]["template"]
        assert matches(service["spec"]["selector"], template["metadata"]["labels"])
        ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        address = next(a for a in template["spec"]["containers"][0]["args"] if a.startswith("--metrics-addr="))
        assert address == f"--metrics-addr=:{ports[service['spec']['ports'][0]['targetPort']]}"


def test_service_monitor_and_rule_options(helm_binary):
    objects = render(helm_binary, "metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true",
                     "metrics.serviceMonitor.namespace=monitoring", "metrics.serviceMonitor.interval=15s",
                     "metrics.serviceMonitor.labels.release=kps", "metrics.serviceMonitor.additionalLabels.team=infra",
                     "metrics.prometheusRule.namespace=monitoring", "metrics.prometheusRule.additionalLabels.release=kps",
                     "metrics.prometheusRule.ruleLabels.team=infra",
                     "metrics.prometheusRule.disabled.KruiseManagerSingleZone=true",
                     "metrics.prometheusRule.minReadyReplicas=3")
    monitor, rule = objects[("ServiceMonitor", "kruise-manager")], objects[("PrometheusRule", "kruise-manager")]
    assert monitor["metadata"]["namespace"] == rule["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["kruise-system"]}  # the manager stays put
    assert {"release": "kps", "team": "infra"}.items() <= monitor["metadata"]["labels"].items()
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"
    rules = alerting.alerts(alerting.rule_groups(objects))
    assert set(rules) == ALL_ALERTS - {"KruiseManagerSingleZone"}
    assert all(r["labels"]["team"] == "infra" and r["labels"]["namespace"] == "kruise-system" for r in rules.values())
    assert rules["KruiseManagerReplicasLow"]["expr"].endswith("< 3")


def test_every_alert_fires_and_stays_quiet_under_promtool(helm_binary, tmp_path):
    """``promtool check rules`` (lint fatal) and ``promtool test rules`` on the rendered rules,
    with each alert's firing and quiet cases (alert_cases.yaml)."""
    groups = alerting.rule_groups(render(helm_binary, "metrics.prometheusRule.enabled=true"))
    assert set(alerting.alerts(groups)) == ALL_ALERTS
    cases = alerting.load_cases()
    firing = {t["alertname"] for case in cases["tests"] for t in case["alert_rule_test"] if t["exp_alerts"]}
    quiet = {t["alertname"] for case in cases["tests"] for t in case["alert_rule_test"]
             if not t["exp_alerts"] and t["eval_time"] == max(x["eval_time"] for x in case["alert_rule_test"])}
    assert firing == quiet == ALL_ALERTS, (firing, quiet)
    result = alerting.run_promtool(tmp_path, groups, cases)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_catches_a_broken_rule(helm_binary, tmp_path):
    """The promtool run can fail: a threshold off by one and a rule that does not parse."""
    groups = alerting.rule_groups(render(helm_binary, "metrics.prometheusRule.enabled=true",
                                         "metrics.prometheusRule.restartsPer15m=8"))
    result = alerting.run_promtool(tmp_path, groups, alerting.load_cases())
    assert result.returncode != 0 and "KruiseManagerCrashLooping" in result.stdout + result.stderr
    broken = copy.deepcopy(groups)
    broken["groups"][0]["rules"][0]["expr"] = "max(kruise_manager_is_leader{namespace=}"
    assert alerting.run_promtool(tmp_path, broken).returncode != 0


def test_split_role_alerts_cover_both_deployments(helm_binary):
    rules = alerting.alerts(alerting.rule_groups(render(helm_binary, "metrics.prometheusRule.enabled=true",
                                                        "manager.role=split")))
    for name in ("KruiseManagerReplicasLow", "KruiseManagerSingleZone", "KruiseManagerCrashLooping"):
        assert "kruise-controller-manager|kruise-controller" in rules[name]["expr"], name


def test_webhook_alert_watches_exactly_the_charts_webhooks(helm_binary):
    objects = render(helm_binary, "metrics.prometheusRule.enabled=true")
    expr = alerting.alerts(alerting.rule_groups(objects))["KruiseWebhookErrors"]["expr"]
    pattern = re.search(r'name=~"([^"]+)"', expr).group(1).replace("\\\\", "\\")
    names = {w["name"] for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
             for (k, _), o in objects.items() if k == kind for w in o["webhooks"]}
    assert names and all(re.fullmatch(pattern, n) for n in names)
    assert not re.fullmatch(pattern, "mpodxkb.io") and not re.fullmatch(pattern, "mpod.other.io")


def test_every_metric_a_rule_reads_has_a_known_source(helm_binary):
    """Manager names are the manager's own (its registry here; a real replica's /metrics in
    tests/manager/test_alert_metrics.py); the rest are the apiserver's or kube-state-metrics'."""
    found = alerting.names_by_source(alerting.rule_groups(render(helm_binary, "metrics.prometheusRule.enabled=true")))
    assert "unknown" not in found, found
    exported = {f"{family.name}{suffix}" for family in REGISTRY.collect() if family.name.startswith("kruise_manager_")
                for suffix in SUFFIXES[family.type]}
    assert found["manager"] <= exported, found["manager"] - exported
    assert found["kube-state-metrics"] == {"kube_deployment_status_replicas_available", "kube_pod_info",
                                           "kube_pod_status_ready", "kube_node_labels",
                                           "kube_pod_container_status_restarts_total"}
    assert found["apiserver"] == {"apiserver_admission_webhook_request_total"}


def test_each_runbook_names_kruisectl_commands_that_parse(helm_binary):
    rules = alerting.alerts(alerting.rule_groups(render(helm_binary, "metrics.prometheusRule.enabled=true")))
    runner = CliRunner()
    for name, rule in rules.items():
        commands = [c.split(" (")[0].strip() for c in rule["annotations"]["runbook"].split(";")]
        kruisectl = [shlex.split(c)[1:] for c in commands if c.startswith("kruisectl ")]
        assert kruisectl, f"{name}: no kruisectl command in its runbook"
        for argv in kruisectl:
            result = runner.invoke(cli, [*argv, "--help"] if "--help" not in argv else argv)
            assert result.exit_code == 0, f"{name}: kruisectl {' '.join(argv)}: {result.output}"
