"""On the chart's real managers (hostlet nodes, as the drill tests): the metric names the
chart's alerts read exist on a real replica and on the real apiserver; doctor's alerts finding
follows prometheus-operator's API and the chart's values from off to on; doctor --since sees a
real crash, the leader change it causes and webhook errors a replica counted."""

from __future__ import annotations

import json
import shlex
import signal
import ssl
import socket

import pytest
from kubernetes import client

from kruisectl import scrape
from tests.chart import alerting
from tests.drill.conftest import VALUES, install, manager_archive  # noqa: F401 - the image's fixture

from kubekit import kruise, paths

from ..conftest import wait_for

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

NS = "kruise-system"


@pytest.fixture(scope="module")
def installed(tmp_path_factory, manager_archive):  # noqa: F811
    """An install of its own, the chart's managers on hostlet nodes from the image: the module
    expects no restart within the hour before its crash, and upgrades the release."""
    with install(VALUES, manager_archive, tmp_path_factory.mktemp("doctor-since")) as env:
        yield env


def doctor(installed, *extra):  # noqa: F811 - the fixture
    result = installed.kruisectl("doctor", "-n", NS, "-o", "json", *extra)
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    return {f["check"]: f for f in report["findings"]}, report


def manager_pods(installed) -> list[dict]:  # noqa: F811
    return installed.cluster.client().get(paths.pods(NS), labelSelector="control-plane=controller-manager")["items"]


def rendered_rule_names(installed) -> dict[str, set[str]]:  # noqa: F811
    from tests.chart.conftest import render

    objects = render(str(installed.cluster.binary("helm")), "metrics.prometheusRule.enabled=true")
    return alerting.names_by_source(alerting.rule_groups(objects))


def test_every_metric_the_alerts_read_is_exported_by_a_real_replica_and_the_apiserver(installed):  # noqa: F811
    names = rendered_rule_names(installed)
    core = client.CoreV1Api(installed.api())
    admin = installed.cluster.client()
    # One pod create through the pod webhook, so the latency histogram and the apiserver's
    # webhook counter have their first series.
    core.create_namespaced_pod("default", {"metadata": {"generateName": "alerts-"},
                                           "spec": {"containers": [{"name": "c", "image": "registry.local/c:1"}]}},
                               dry_run="All")
    exported: set[str] = set()
    for name, result in scrape.replicas(admin, NS, manager_pods(installed), 10).items():
        assert result.error is None, (name, result.error)
        exported |= {sample for sample, _, _ in result.samples}
    assert names["manager"] and names["manager"] <= exported, names["manager"] - exported
    apiserver = {sample for sample, _, _ in scrape.parse(admin.get_text("/metrics", 30))}
    assert names["apiserver"] and names["apiserver"] <= apiserver, names["apiserver"] - apiserver
    # The error alert's codes: a call that went through is counted as 200 for the chart's webhook.
    calls = [labels for sample, labels, _ in scrape.parse(admin.get_text("/metrics", 30))
             if sample == "apiserver_admission_webhook_request_total" and labels.get("name") == "mpod.kb.io"]
    assert any(c["code"] == "200" for c in calls), calls


def test_alerts_finding_from_no_api_to_on(installed):  # noqa: F811
    found, _ = doctor(installed)
    assert found["alerts"]["level"] == "warning"
    assert "no monitoring.coreos.com/v1 API" in found["alerts"]["message"]

    extensions = client.ApiextensionsV1Api(installed.api())
    for crd in alerting.monitoring_crds():
        extensions.create_custom_resource_definition(crd)
    wait_for(lambda: doctor(installed)[0]["alerts"]["message"].startswith("alerts are off"), timeout=60,
             what="doctor to see prometheus-operator's API")
    found, _ = doctor(installed)
    assert found["alerts"]["level"] == "warning"
    fix = found["alerts"]["remediation"]
    assert fix.startswith("kruisectl upgrade -n kruise-system --release kruise --set metrics.serviceMonitor.enabled=true "
                          "--set metrics.prometheusRule.enabled=true"), fix

    # The fix, as printed: the apiserver validates the rendered objects against the real CRDs.
    argv = shlex.split(fix.split(" #")[0])[1:]
    result = installed.kruisectl(*argv)
    assert result.exit_code == 0, result.output
    found, _ = doctor(installed)
    assert found["alerts"]["level"] == "ok", found["alerts"]
    assert found["alerts"]["message"] == ("7 alert(s) in kruise-system/kruise-manager; scraped by servicemonitor "
                                          "kruise-system/kruise-manager")


def bad_requests(ip: str, count: int) -> None:
    """Requests the webhook server must refuse (not an AdmissionReview): counted as bad_request."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    for _ in range(count):
        with socket.create_connection((ip, kruise.WEBHOOK_PORT), timeout=5) as raw, \
                context.wrap_socket(raw) as tls:
            tls.sendall(b"POST /mutate-pod HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 8\r\nConnection: close\r\n\r\nnot json")
            assert tls.recv(64).startswith(b"HTTP/1.1 400")


def test_since_shows_a_crash_the_leader_change_and_webhook_errors(installed):  # noqa: F811
    found, report = doctor(installed, "--since", "1h")
    assert found["recent-restarts"]["level"] == "ok", found["recent-restarts"]
    before = found["recent-leader-changes"]["evidence"]
    holder = before["holder"]
    leader = next(p for p in manager_pods(installed) if p["spec"]["nodeName"] in holder or p["metadata"]["name"] in holder)
    name = leader["metadata"]["name"]

    installed.hostlet.signal_pod(NS, name, signal.SIGKILL)
    wait_for(lambda: doctor(installed, "--since", "1h")[0]["recent-leader-changes"]["evidence"]["holder"] != holder,
             timeout=60, what="a new leader")
    wait_for(lambda: any(c["restartCount"] >= 1 for c in doctor(installed, "--since", "1h")[0]["recent-restarts"]
                         ["evidence"]["containers"]), timeout=60, what="the restart in the pod's status")
    other = next(p for p in manager_pods(installed) if p["metadata"]["name"] != name)
    bad_requests(other["status"]["podIP"], 4)

    found, report = doctor(installed, "--since", "1h")
    restarts = found["recent-restarts"]
    assert restarts["level"] == "warning" and name in restarts["message"], restarts
    assert "exit 137" in restarts["message"] or "exit -9" in restarts["message"], restarts["message"]
    changes = found["recent-leader-changes"]
    assert changes["level"] in ("info", "warning") and len(changes["evidence"]["changes"]) >= 2, changes
    assert any("became leader" in c["message"] for c in changes["evidence"]["changes"]), changes
    errors = found["recent-webhook-errors"]
    assert errors["level"] == "warning", errors
    assert errors["evidence"]["replicas"][other["metadata"]["name"]]["errors"] >= 4, errors
    assert {h["what"] for h in report["history"]["happenings"]} >= {"restart", "leader", "webhook-errors"}

    table = installed.kruisectl("doctor", "-n", NS, "--since", "1h")
    assert "since " in table.output and "restart" in table.output and f"{name}/manager" in table.output, table.output
    assert installed.kruisectl("doctor", "-n", NS, "--since", "soon").exit_code == 2
