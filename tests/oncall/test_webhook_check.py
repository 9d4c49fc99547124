"""`kruisectl webhook check` on the upstream-like layout, with a real HTTPS server inside the
network-namespace host of one replica's node (host network: the pod IP is the node's)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from kubernetes import client

from kruisectl.cli import cli
from localcluster.cluster import free_port
from localcluster.pki import LocalCA
from kruisectl.webhookcheck import explain

from ..conftest import require, wait_for

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

SERVER = Path(__file__).with_name("healthz_server.py")


def run(cluster, layout, *extra):
    args = ["webhook", "check", "--kubeconfig", str(cluster.kubeconfig), "-n", layout["namespace"],
            "--mutating-webhook-configuration", layout["mutating"],
            "--validating-webhook-configuration", layout["validating"], "-o", "json", "--no-probe", *extra]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    return result.exit_code, {f["check"]: f for f in json.loads(result.stdout)["findings"]}


@pytest.fixture
def serving(cluster, api, layout, tmp_path):
    """A /healthz server on node-0's address, with the layout's serving certificate."""
    require("netns")
    secret = client.CoreV1Api(api).read_namespaced_secret("kruise-webhook-certs", layout["namespace"]).data
    (tmp_path / "tls.crt").write_bytes(base64.b64decode(secret["tls.crt"]))
    (tmp_path / "tls.key").write_bytes(base64.b64decode(secret["tls.key"]))
    host = cluster.net.hosts["node-0"]
    port = free_port()
    started = []

    def start(*mode):
        process = subprocess.Popen(host.wrap([sys.executable, str(SERVER), host.ip, str(port), str(tmp_path / "tls.crt"),
                                              str(tmp_path / "tls.key"), *mode]), stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "serving"
        started.append(process)
        return process

    wait_for(lambda: len(run(cluster, layout, "--webhook-port", str(port))[1]["service"]["evidence"]
                         .get("readyEndpoints", [])) == 3, timeout=60, what="3 ready endpoints")
    yield {"host": host, "port": port, "start": start}
    for process in started:
        process.kill()
        process.wait()


def test_explain_known_failures():
    assert "no process listens" in explain("Connection refused")[0]
    assert "stale caBundle" in explain("x509: certificate signed by unknown authority")[0]
    assert "hung" in explain("context deadline exceeded")[0]
    assert explain("something new") == ("something new", "")


def test_healthy_endpoint_unreachable_replicas_and_config_checks(cluster, api, layout, serving):
    serving["start"]()
    code, by_check = run(cluster, layout, "--webhook-port", str(serving["port"]))
    assert by_check["service"]["level"] == "ok"
    assert by_check["serving-cert"]["level"] == "ok"
    assert by_check["cabundle/mpod.kb.io"]["level"] == "ok"
    assert by_check["pod-webhook/mpod.kb.io"]["level"] == "ok"
    assert by_check["pod-webhook/mpod.kb.io"]["evidence"]["failurePolicy"] == "Fail"
    node0 = serving["host"].ip
    assert by_check[f"endpoint/{node0}"]["level"] == "ok"
    assert by_check[f"endpoint/{node0}"]["evidence"]["latencyMs"] > 0
    # The other replicas' nodes have no process listening: refused, translated.
    others = [f for c, f in by_check.items() if c.startswith("endpoint/") and c != f"endpoint/{node0}"]
    assert len(others) == 2 and all("no process listens" in f["message"] for f in others)
    assert code == 1


def test_reset_ca_bundle_and_wrong_ca_are_translated(cluster, api, layout, serving):
    serving["start"]()
    other = base64.b64encode(LocalCA("someone-else").cert_pem).decode()
    client.AdmissionregistrationV1Api(api).patch_mutating_webhook_configuration(
        layout["mutating"], [{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": other}])
    code, by_check = run(cluster, layout, "--webhook-port", str(serving["port"]))
    assert code == 1
    assert "stale caBundle" in by_check["cabundle/mpod.kb.io"]["message"]


def test_hung_endpoint_is_reported_as_hung(cluster, api, layout, serving):
    serving["start"]("hang")
    _, by_check = run(cluster, layout, "--webhook-port", str(serving["port"]), "--request-timeout", "1")
    assert "hung" in by_check[f"endpoint/{serving['host'].ip}"]["message"]


def test_wait_runs_out_with_124(cluster, api, layout):
    client.AppsV1Api(api).patch_namespaced_deployment_scale("kruise-controller-manager", layout["namespace"],
                                                            {"spec": {"replicas": 0}})
    result = CliRunner().invoke(cli, ["webhook", "check", "--kubeconfig", str(cluster.kubeconfig), "-n",
                                      layout["namespace"], "--mutating-webhook-configuration", layout["mutating"],
                                      "--validating-webhook-configuration", layout["validating"],
                                      "--wait", "3s", "--interval", "1s", "--no-probe"])
    assert result.exit_code == 124
    assert "waiting:" in result.output
