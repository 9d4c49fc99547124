"""`kruisectl status` against a cluster laid out like upstream OpenKruise: the Deployment's
pods run by kwok on zoned and bare-metal nodes, a Lease naming a pod, the webhook Secret,
Service and configurations. Each state is produced by really changing the cluster."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client

from kruisectl.cli import cli
from localcluster.cluster import free_port
from localcluster.pki import LocalCA

from ..conftest import wait_for

from localcluster.upstream_layout import timestamp as _now

from .conftest import HOSTS, run_on_layout

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)


def status(cluster, layout, *extra):
    return run_on_layout(cluster, layout, "status", *extra)


def test_healthy_layout_leader_to_zone_replicas_spread_and_webhook(cluster, api, layout):
    wait_for(lambda: len(json.loads(status(cluster, layout, "-o", "json").stdout)["webhook"]["readyEndpoints"]) == 3,
             timeout=60, what="3 ready endpoints")
    result = status(cluster, layout, "-o", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["problems"] == []
    leader = report["leader"]
    assert (leader["pod"], leader["node"], leader["zone"], leader["stale"]) == (layout["leader"], "node-0", "zone-a", False)
    assert leader["transitions"] == 2 and 290 < leader["acquiredAgoSeconds"] < 400
    by_node = {r["node"]: r for r in report["replicas"]}
    assert set(by_node) == set(HOSTS)
    assert all(r["ready"] and r["hostNetwork"] for r in report["replicas"])
    assert [r["leader"] for r in report["replicas"]].count(True) == 1 and by_node["node-0"]["leader"]
    assert report["zones"]["replicasPerZone"] == {"<none>": 1, "zone-a": 1, "zone-b": 1}
    assert report["zones"]["replicasOnNodesWithoutZone"] == [by_node["node-6"]["pod"]]
    assert report["webhook"]["caBundle"] == "ok"
    assert 29 < report["webhook"]["certExpiresInDays"] <= 30

    table = status(cluster, layout)
    assert table.exit_code == 0
    assert f"pod/node/zone: {layout['leader']} / node-0 / zone-a" in table.output
    assert "on nodes without topology.kubernetes.io/zone" in table.output


def test_stale_lease_is_reported_and_exits_1(cluster, api, layout):
    client.CoordinationV1Api(api).patch_namespaced_lease("kruise-manager", layout["namespace"],
                                                         {"spec": {"renewTime": _now(-60)}})
    result = status(cluster, layout)
    assert result.exit_code == 1
    assert "STALE" in result.output
    assert json.loads(status(cluster, layout, "-o", "json").stdout)["leader"]["stale"] is True


def test_a_holder_named_by_its_node_and_a_vanished_holder(cluster, api, layout):
    """Host network under controller-runtime: the holder identity is the node's hostname. And a
    fresh Lease whose holder matches no manager pod is a warning, not a healthy leader."""
    leases = client.CoordinationV1Api(api)
    leases.patch_namespaced_lease("kruise-manager", layout["namespace"], {"spec": {
        "holderIdentity": "node-1_5f0c3a52-0c1e-4bfb-9e43-0f0f9a3d2f11", "renewTime": _now()}})
    report = json.loads(status(cluster, layout, "-o", "json").stdout)
    pod_on_node_1 = next(r["pod"] for r in report["replicas"] if r["node"] == "node-1")
    leader = report["leader"]
    assert (leader["pod"], leader["node"], leader["holderFoundBy"]) == (pod_on_node_1, "node-1", "node"), leader
    assert [r["pod"] for r in report["replicas"] if r["leader"]] == [pod_on_node_1]
    table = status(cluster, layout)
    assert "(holder named by its node: host network)" in table.output and "warning" not in table.output

    leases.patch_namespaced_lease("kruise-manager", layout["namespace"], {"spec": {
        "holderIdentity": "kruise-controller-manager-gone_5f0c3a52", "renewTime": _now()}})
    table = status(cluster, layout)
    assert table.exit_code == 0, table.output
    assert "warning: holder kruise-controller-manager-gone not found" in table.output
    doctor = CliRunner().invoke(cli, ["doctor", "--kubeconfig", str(cluster.kubeconfig), "-n", layout["namespace"],
                                      "--mutating-webhook-configuration", layout["mutating"],
                                      "--validating-webhook-configuration", layout["validating"], "-o", "json"])
    leader_finding = next(f for f in json.loads(doctor.stdout)["findings"] if f["check"] == "leader")
    assert leader_finding["level"] == "warning" and "not found" in leader_finding["message"], leader_finding


def test_reset_ca_bundle_is_a_mismatch(cluster, api, layout):
    other = base64.b64encode(LocalCA("someone-else").cert_pem).decode()
    client.AdmissionregistrationV1Api(api).patch_validating_webhook_configuration(
        layout["validating"], [{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": other}])
    report = json.loads(status(cluster, layout, "-o", "json").stdout)
    assert report["webhook"]["caBundle"] == "mismatch"


def test_scaled_to_zero_has_no_ready_replica(cluster, api, layout):
    client.AppsV1Api(api).patch_namespaced_deployment_scale("kruise-controller-manager", layout["namespace"],
                                                            {"spec": {"replicas": 0}})
    core = client.CoreV1Api(api)
    wait_for(lambda: not core.list_namespaced_pod(layout["namespace"]).items, timeout=60, what="pods to go")
    result = status(cluster, layout, "-o", "yaml")
    assert result.exit_code == 1
    assert "no ready manager replica: the webhook has no endpoint" in yaml.safe_load(result.stdout)["problems"]


def test_as_a_subprocess_and_through_helm_environment(cluster, layout):
    env = {"KUBECONFIG": str(cluster.kubeconfig), "HELM_NAMESPACE": layout["namespace"], "HELM_PLUGIN_NAME": "kruise",
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "kruisectl", "status", "--mutating-webhook-configuration",
                             layout["mutating"], "--validating-webhook-configuration", layout["validating"]],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert layout["leader"] in result.stdout


def test_unreachable_cluster_and_forbidden_user_exit_2_in_one_line(cluster, api, namespace, tmp_path):
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "kruisectl", "status", "--kubeconfig", str(dead)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: cannot reach the cluster")
    assert len(result.stderr.strip().splitlines()) == 1

    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}).status.token
    kubeconfig = cluster.write_token_kubeconfig(tmp_path / "nobody.kubeconfig", token)
    result = subprocess.run([sys.executable, "-m", "kruisectl", "status", "--kubeconfig", str(kubeconfig)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("error: forbidden")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_watch_redraws_when_the_lease_changes_hands(cluster, api, layout):
    import queue
    import signal
    import threading
    import time

    argv = [sys.executable, "-m", "kruisectl", "status", "--watch", "--kubeconfig", str(cluster.kubeconfig),
            "-n", layout["namespace"], "--mutating-webhook-configuration", layout["mutating"],
            "--validating-webhook-configuration", layout["validating"]]
    # A terminal's Ctrl-C: SIGINT's default disposition, even when this run inherited it ignored.
    watcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout], daemon=True).start()
    new_holder = f"{layout['pods'][1].metadata.name}_handover"
    seen, changed = [], False
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(new_holder in line for line in seen):
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if line.startswith("Webhook:") and not changed:
                # First report drawn: hand the lease over and expect a redraw naming the new holder.
                client.CoordinationV1Api(api).patch_namespaced_lease(
                    "kruise-manager", layout["namespace"],
                    {"spec": {"holderIdentity": new_holder, "renewTime": _now(), "leaseTransitions": 3}})
                changed = True
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=20)
        errors = watcher.stderr.read()
    assert any(new_holder in line for line in seen), "".join(seen) + f"\nstderr: {errors}"
    assert watcher.returncode == 130, errors  # Ctrl-C, as from every kruisectl command
