"""`--role`: webhook and controller deployed apart. A webhook-only replica serves admissions
and never touches the Lease; a controller-only replica leads and keeps status but serves no
webhook."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
import requests
from kubernetes import client

from localcluster.fleet import METRICS_PORT, Fleet, Replica
from tests.conftest import wait_for
from kubekit import kruise

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)


def metric(replica: Replica, name: str) -> float:
    text = requests.get(f"http://{replica.ip}:{METRICS_PORT}/metrics", timeout=2).text
    return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])


def test_webhook_and_controller_roles_apart(manager_cluster):
    fleet = Fleet(manager_cluster).install(2)
    webhook, controller = fleet.replicas
    try:
        fleet.set_endpoints([webhook])  # only the webhook replica behind the Service
        fleet.start(webhook, "--role=webhook")
        fleet.start(controller, "--role=controller")
        fleet.wait_ready(timeout=90)
        wait_for(lambda: fleet.leader() is controller, timeout=30, what="the controller replica to lead")
        assert metric(webhook, "kruise_manager_is_leader") == 0
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex((controller.ip, kruise.WEBHOOK_PORT)) != 0  # nothing listens

        api = manager_cluster.api()
        name = f"roles-{uuid.uuid4().hex[:6]}"
        client.CustomObjectsApi(api).create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", {
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}}, "containers": [{"name": "side", "image": "s"}]}})
        core = client.CoreV1Api(api)
        wait_for(lambda: core.list_namespaced_service_account("default", field_selector="metadata.name=default").items,
                 timeout=30, what="default ServiceAccount")
        attempt = 0

        def injected():
            nonlocal attempt
            attempt += 1
            pod = core.create_namespaced_pod("default", {"metadata": {"name": f"{name}-{attempt}", "labels": {"app": name}},
                                                         "spec": {"containers": [{"name": "app", "image": "a"}]}})
            return "side" in [c.name for c in pod.spec.containers]

        wait_for(injected, timeout=20, interval=0.3, what="injection by the webhook-only replica")
        wait_for(lambda: (client.CustomObjectsApi(api).get_cluster_custom_object(
            "apps.kruise.io", "v1alpha1", "sidecarsets", name).get("status") or {}).get("matchedPods") == attempt,
            timeout=30, what="status kept by the controller-only replica")
        assert metric(controller, "kruise_manager_sidecarset_status_writes_total") >= 1
        assert metric(webhook, "kruise_manager_sidecarset_status_writes_total") == 0
    finally:
        fleet.uninstall()


def test_without_leader_election_one_controller_leads_at_once_and_stays_live(manager_cluster):
    """``--enable-leader-election=false``: no Lease is written, the controller keeps status,
    and liveness holds past its 30 s heartbeat window (nothing is there to hang)."""
    fleet = Fleet(manager_cluster, namespace="kruise-noelect").install(1)
    (replica,) = fleet.replicas
    try:
        started = time.monotonic()
        fleet.start(replica, "--enable-leader-election=false")
        fleet.wait_ready(timeout=90)
        wait_for(lambda: metric(replica, "kruise_manager_is_leader") == 1, timeout=20, what="leading without a Lease")
        api = manager_cluster.api()
        with pytest.raises(client.exceptions.ApiException) as missing:
            client.CoordinationV1Api(api).read_namespaced_lease(fleet.lease_name, fleet.namespace)
        assert missing.value.status == 404
        name = f"noelect-{uuid.uuid4().hex[:6]}"
        client.CustomObjectsApi(api).create_cluster_custom_object("apps.kruise.io", "v1alpha1", "sidecarsets", {
            "apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}}, "containers": [{"name": "side", "image": "s"}]}})
        wait_for(lambda: "observedGeneration" in (client.CustomObjectsApi(api).get_cluster_custom_object(
            "apps.kruise.io", "v1alpha1", "sidecarsets", name).get("status") or {}),
            timeout=30, what="status kept without election")
        time.sleep(max(0.0, 35 - (time.monotonic() - started)))
        answer = requests.get(replica.url("/healthz?verbose"), timeout=2)
        assert answer.status_code == 200, answer.text
        assert replica.alive()
    finally:
        fleet.uninstall()
