"""The local control plane is the real thing: optimistic concurrency, scheduling, spreading,
the deployment controller and admission webhooks all behave as Kubernetes does."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcluster.cluster import free_port
from localcluster.pki import LocalCA

from kubekit import kruise

from .conftest import require, wait_for

pytestmark = pytest.mark.cluster  # the real local control plane (or its built binaries)

ECHO = Path(__file__).with_name("webhook_echo.py")


def _deployment(name: str, replicas: int, spread: bool = False) -> dict:
    spec = {
        "containers": [{"name": "app", "image": "registry.local/app:1", "resources": {"requests": {"cpu": "100m"}}}],
    }
    if spread:
        spec["topologySpreadConstraints"] = [{
            "maxSkew": 1,
            "topologyKey": kruise.ZONE_LABEL,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": name}},
            "matchLabelKeys": ["pod-template-hash"],
        }]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def test_lease_update_with_stale_resource_version_conflicts(api, namespace):
    leases = client.CoordinationV1Api(api)
    lease = leases.create_namespaced_lease(namespace, {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}})
    stale = lease.metadata.resource_version
    lease.spec.holder_identity = "b"
    updated = leases.replace_namespaced_lease("l", namespace, lease)
    assert updated.metadata.resource_version != stale

    lease.spec.holder_identity = "c"
    lease.metadata.resource_version = stale
    with pytest.raises(ApiException) as raised:
        leases.replace_namespaced_lease("l", namespace, lease)
    assert raised.value.status == 409
    assert leases.read_namespaced_lease("l", namespace).spec.holder_identity == "b"


def test_deployment_is_scheduled_onto_kwok_nodes_and_becomes_ready(api, namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("web", 3))
    wait_for(lambda: (apps.read_namespaced_deployment("web", namespace).status.ready_replicas or 0) == 3,
             timeout=90, what="3 ready replicas")
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 3
    nodes = {n.metadata.name: n for n in core.list_node().items}
    for pod in pods:
        assert pod.spec.node_name in nodes, "bound by the scheduler to a node that exists"
        assert nodes[pod.spec.node_name].metadata.annotations.get("kwok.x-k8s.io/node") == "fake"
        assert pod.status.phase == "Running" and pod.status.pod_ip


def test_zone_spread_do_not_schedule_puts_pods_in_different_zones(api, namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("spread", 3, spread=True))
    wait_for(lambda: (apps.read_namespaced_deployment("spread", namespace).status.ready_replicas or 0) == 3,
             timeout=90, what="3 ready spread replicas")
    zones = {n.metadata.name: (n.metadata.labels or {}).get(kruise.ZONE_LABEL) for n in core.list_node().items}
    placed = Counter(zones[p.spec.node_name] for p in core.list_namespaced_pod(namespace, label_selector="app=spread").items)
    assert None not in placed, "DoNotSchedule never uses nodes without the zone label"
    assert sorted(placed.values()) == [1, 1, 1], placed


def _start_echo(cluster, tmp_path, host_argv_prefix, bind_ip: str, port: int, dns: tuple[str, ...], ips: tuple[str, ...], tag: str):
    ca = LocalCA("echo-webhook-ca")
    cert, key = ca.issue("echo", dns_names=dns, ips=ips, server=True)
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    process = subprocess.Popen(
        [*host_argv_prefix, sys.executable, str(ECHO), bind_ip, str(port), str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), tag],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout.readline().strip() == "serving"
    return process, base64.b64encode(ca.cert_pem).decode()


def _mutating_config(name: str, namespace: str, client_config: dict) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": f"{name}.kruisectl.test",
            "clientConfig": client_config,
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
        }],
    }


def _pod(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "registry.local/c:1"}]}}


def _create_pod_when_webhook_answers(core, namespace: str) -> client.V1Pod:
    """The apiserver picks up a new webhook configuration within a moment; retry until it calls it."""
    attempt = 0

    def created():
        nonlocal attempt
        attempt += 1
        pod = core.create_namespaced_pod(namespace, _pod(f"p{attempt}"))
        return pod if (pod.metadata.labels or {}).get("echo-webhook") else None

    return wait_for(created, timeout=30, interval=0.5, what="the apiserver to call the webhook")


def test_mutating_webhook_on_loopback_url_is_called_on_pod_create(cluster, api, namespace, tmp_path):
    port = free_port()
    process, ca_bundle = _start_echo(cluster, tmp_path, [], "127.0.0.1", port, (), ("127.0.0.1",), "loopback")
    admission = client.AdmissionregistrationV1Api(api)
    name = f"echo-{namespace}"
    try:
        admission.create_mutating_webhook_configuration(
            _mutating_config(name, namespace, {"url": f"https://127.0.0.1:{port}/mutate", "caBundle": ca_bundle}))
        pod = _create_pod_when_webhook_answers(client.CoreV1Api(api), namespace)
        assert pod.metadata.labels["echo-webhook"] == "loopback"
    finally:
        admission.delete_mutating_webhook_configuration(name)
        process.kill()
        process.wait()


def test_mutating_webhook_behind_service_is_called_in_a_host(cluster, api, namespace, tmp_path):
    """The production path: clientConfig.service, Endpoints resolved by the apiserver
    (aggregator routing), the server a process in a network-namespace host."""
    require("netns")
    core, admission = client.CoreV1Api(api), client.AdmissionregistrationV1Api(api)
    host = cluster.add_host(f"echo-{namespace}")
    port = 9443
    service = "echo"
    process, ca_bundle = _start_echo(
        cluster, tmp_path, host.wrap([]), host.ip, port, (f"{service}.{namespace}.svc",), (), "in-host")
    core.create_namespaced_service(namespace, {
        "metadata": {"name": service},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
    })
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(namespace, {
        "metadata": {"name": f"{service}-1", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [host.ip], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    })
    core.create_namespaced_endpoints(namespace, {
        "metadata": {"name": service},
        "subsets": [{"addresses": [{"ip": host.ip}], "ports": [{"name": "https", "port": port}]}],
    })
    name = f"echo-svc-{namespace}"
    try:
        admission.create_mutating_webhook_configuration(_mutating_config(name, namespace, {
            "service": {"namespace": namespace, "name": service, "path": "/mutate", "port": 443},
            "caBundle": ca_bundle,
        }))
        pod = _create_pod_when_webhook_answers(core, namespace)
        assert pod.metadata.labels["echo-webhook"] == "in-host"
    finally:
        admission.delete_mutating_webhook_configuration(name)
        process.kill()
        process.wait()
