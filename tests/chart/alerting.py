"""The chart's PrometheusRule as Prometheus sees it: its rule groups, the metric names its
alerts read and where each comes from, and promtool run on them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from localcluster import build

CASES = Path(__file__).with_name("alert_cases.yaml")

# Where a metric name comes from: the manager (checked against a real replica), the
# kube-apiserver (checked against the real one), kube-state-metrics (named in docs/alerts.md).
SOURCES = (("manager", "kruise_manager_"), ("apiserver", "apiserver_"), ("kube-state-metrics", "kube_"))
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def promtool() -> str:
    return str(build.ensure_tool("promtool", log=sys.stderr))


def rule_groups(objects: dict) -> dict:
    """The rendered PrometheusRule's spec as a Prometheus rule file."""
    return {"groups": objects[("PrometheusRule", "kruise-manager")]["spec"]["groups"]}


def alerts(groups: dict) -> dict[str, dict]:
    return {rule["alert"]: rule for group in groups["groups"] for rule in group["rules"]}


def metric_names(expr: str) -> set[str]:
    """Every metric an expression selects (each is written with a matcher list here)."""
    return set(_SELECTOR.findall(expr))


def source_of(name: str) -> str | None:
    return next((source for source, prefix in SOURCES if name.startswith(prefix)), None)


def names_by_source(groups: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for rule in alerts(groups).values():
        for name in metric_names(rule["expr"]):
            found.setdefault(source_of(name) or "unknown", set()).add(name)
    return found


def run_promtool(tmp_path: Path, groups: dict, cases: dict | None = None) -> subprocess.CompletedProcess:
    """``promtool check rules`` then ``promtool test rules`` (with ``cases``, the test file's
    content less rule_files); the first that fails is returned, else the second."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(groups, sort_keys=False))
    checked = subprocess.run([promtool(), "check", "rules", "--lint=all", "--lint-fatal", str(rules)],
                             capture_output=True, text=True, timeout=120)
    if checked.returncode != 0 or cases is None:
        return checked
    tests = tmp_path / "rules_test.yaml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules)], **cases}, sort_keys=False))
    return subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=300)


# prometheus-operator's CRDs, from its Go module at a pinned version (the module proxy serves it).
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
MONITORING_CRDS = ("servicemonitors", "podmonitors", "prometheusrules")


def monitoring_crds() -> list[dict]:
    """The CustomResourceDefinitions of ServiceMonitor, PodMonitor and PrometheusRule."""
    import json

    download = subprocess.run(["go", "mod", "download", "-json", PROMETHEUS_OPERATOR], capture_output=True, text=True,
                              env=build.go_env(), cwd="/", timeout=600)
    assert download.returncode == 0, download.stdout + download.stderr
    folder = Path(json.loads(download.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    return [yaml.safe_load((folder / f"monitoring.coreos.com_{name}.yaml").read_text()) for name in MONITORING_CRDS]


def load_cases() -> dict:
    return yaml.safe_load(CASES.read_text())
