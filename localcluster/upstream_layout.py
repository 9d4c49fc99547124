"""A kruise-manager installation laid out exactly like upstream OpenKruise's, built through the
API: Deployment kruise-controller-manager (pods run by kwok), Service, Secret with a real CA
and serving cert, webhook configurations, and a Lease whose holder is a pod on ``hosts[0]``.

It lets kruisectl be tested and benchmarked on "an upstream cluster" without the upstream
image: the objects are what kruisectl reads; no process serves the webhook. Its webhooks
match no namespace (an extra label selector), so they never intercept anything.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid

from kubernetes import client

from .pki import LocalCA


def timestamp(offset_s: float = 0) -> str:
    """A MicroTime as Leases carry it, ``offset_s`` from now."""
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def create(api, namespace: str, hosts: list[str], mutating: str, validating: str, timeout: float = 90) -> dict:
    """Create the layout with its 3 replicas pinned to ``hosts`` (one each); wait until ready."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    admission, leases = client.AdmissionregistrationV1Api(api), client.CoordinationV1Api(api)
    labels = {"control-plane": "controller-manager"}
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "kruise-controller-manager", "labels": labels},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "100%"}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "hostNetwork": True,
                "containers": [{"name": "manager", "image": "openkruise/kruise-manager:v1.8.0"}],
                "affinity": {
                    "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": list(hosts)}]}]}},
                    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]},
                },
            }},
        },
    })
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "kruise-webhook-service"},
        "spec": {"selector": labels, "ports": [{"port": 443, "targetPort": 9876}]},
    })
    ca = LocalCA("kruise-webhook-ca")
    cert, key = ca.issue("kruise-webhook-service", dns_names=(f"kruise-webhook-service.{namespace}.svc",), server=True)
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": "kruise-webhook-certs"},
        "data": {"ca-cert.pem": b64(ca.cert_pem), "ca-key.pem": b64(ca.key_pem), "cert.pem": b64(cert),
                 "key.pem": b64(key), "tls.crt": b64(cert), "tls.key": b64(key)},
    })
    names = {"mutating": mutating, "validating": validating}
    webhook = {"clientConfig": {"service": {"namespace": namespace, "name": "kruise-webhook-service", "path": "/x"},
                                "caBundle": b64(ca.cert_pem)},
               "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
               # As upstream: skip kube-system and the manager's namespace. The extra label
               # matches no namespace, so other tests' pods are never sent to this webhook.
               "namespaceSelector": {
                   "matchLabels": {"no-such-label": "x"},
                   "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                         "values": ["kube-system", namespace]}]}}
    pod_rule = {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
    sidecarset_rule = {"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps.kruise.io"], "apiVersions": ["v1alpha1"],
                       "resources": ["sidecarsets"]}
    admission.create_mutating_webhook_configuration(
        {"metadata": {"name": names["mutating"]}, "webhooks": [{**webhook, "name": "mpod.kb.io", "rules": [pod_rule]}]})
    admission.create_validating_webhook_configuration(
        {"metadata": {"name": names["validating"]},
         "webhooks": [{**webhook, "name": "vsidecarset.kb.io", "rules": [sidecarset_rule]}]})
    deadline = time.monotonic() + timeout
    while (apps.read_namespaced_deployment("kruise-controller-manager", namespace).status.ready_replicas or 0) < 3:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the layout's 3 manager pods were not ready within {timeout}s")
        time.sleep(0.2)
    pods = sorted(core.list_namespaced_pod(namespace, label_selector="control-plane=controller-manager").items,
                  key=lambda p: p.metadata.name)
    leader = next(p for p in pods if p.spec.node_name == hosts[0])
    leases.create_namespaced_lease(namespace, {"metadata": {"name": "kruise-manager"}, "spec": {
        "holderIdentity": f"{leader.metadata.name}_{uuid.uuid4()}", "leaseDurationSeconds": 15,
        "acquireTime": timestamp(-300), "renewTime": timestamp(), "leaseTransitions": 2}})
    return {"namespace": namespace, "leader": leader.metadata.name, "pods": pods, "ca": ca, **names}


def delete_webhooks(api, mutating: str, validating: str) -> None:
    """The cluster-scoped part; the rest goes with the namespace."""
    admission = client.AdmissionregistrationV1Api(api)
    admission.delete_mutating_webhook_configuration(mutating)
    admission.delete_validating_webhook_configuration(validating)
